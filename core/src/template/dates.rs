//! Date formatting for `{{when:MM/DD/YYYY}}`, the syntax of the reference document.
//!
//! A value is one of:
//! - an ISO 8601 / RFC 3339 string with an offset (`2025-02-01T09:00:00Z`, Postgres'
//!   `2025-02-01 09:00:00+00`): an instant, shown on the wall clock of the chosen time zone;
//! - an ISO 8601 string without offset (`2025-02-01T09:00`): already a wall-clock time, shown as is;
//! - a date (`2025-02-01`): shown as is, time tokens give midnight;
//! - a number: Unix epoch seconds, or milliseconds when its magnitude is 10^11 or more
//!   (10^11 s is the year 5138, 10^11 ms is 1973).
//!
//! Pattern tokens (moment.js spelling, the reference's users write these): `YYYY YY MMMM MMM MM M
//! DD D dddd ddd HH H hh h mm ss A a Z`; text in `[brackets]` is literal, everything else is
//! copied. Names are English.

use chrono::{DateTime, Datelike, FixedOffset, NaiveDate, NaiveDateTime, Timelike, Utc};
use chrono_tz::Tz;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum When {
    Instant(DateTime<Utc>),
    Local(NaiveDateTime),
    Date(NaiveDate),
}

const MONTHS: [&str; 12] = [
    "January",
    "February",
    "March",
    "April",
    "May",
    "June",
    "July",
    "August",
    "September",
    "October",
    "November",
    "December",
];
const WEEKDAYS: [&str; 7] = [
    "Monday",
    "Tuesday",
    "Wednesday",
    "Thursday",
    "Friday",
    "Saturday",
    "Sunday",
];

/// Longest pattern accepted; a format string is template text, bounded like it.
pub const MAX_PATTERN_LEN: usize = 200;

pub fn parse_when(value: &serde_json::Value) -> Option<When> {
    match value {
        serde_json::Value::String(s) => parse_text(s.trim()),
        serde_json::Value::Number(n) => {
            let f = n.as_f64()?;
            if !f.is_finite() {
                return None;
            }
            let millis = if f.abs() >= 1e11 { f } else { f * 1000.0 };
            // chrono's range is about ±262,000 years; refuse what it cannot hold.
            if millis.abs() > 8.0e15 {
                return None;
            }
            DateTime::<Utc>::from_timestamp_millis(millis.round() as i64).map(When::Instant)
        }
        _ => None,
    }
}

fn parse_text(s: &str) -> Option<When> {
    if s.is_empty() || s.len() > 64 {
        return None;
    }
    if let Ok(d) = NaiveDate::parse_from_str(s, "%Y-%m-%d") {
        return Some(When::Date(d));
    }
    // Accept a space instead of 'T' (Postgres' text output) and short offsets (+00, +0530).
    let mut t = s.replacen(' ', "T", 1);
    if let Some(pos) = t.rfind(['+', '-']).filter(|&p| p > 10) {
        let off = &t[pos + 1..];
        if off.len() == 2 && off.bytes().all(|b| b.is_ascii_digit()) {
            t.push_str(":00");
        } else if off.len() == 4 && off.bytes().all(|b| b.is_ascii_digit()) {
            t.insert(pos + 3, ':');
        }
    }
    if let Ok(dt) = DateTime::<FixedOffset>::parse_from_rfc3339(&t) {
        return Some(When::Instant(dt.with_timezone(&Utc)));
    }
    for fmt in ["%Y-%m-%dT%H:%M:%S%:z", "%Y-%m-%dT%H:%M%:z"] {
        if let Ok(dt) = DateTime::<FixedOffset>::parse_from_str(&t, fmt) {
            return Some(When::Instant(dt.with_timezone(&Utc)));
        }
    }
    for fmt in ["%Y-%m-%dT%H:%M:%S%.f", "%Y-%m-%dT%H:%M"] {
        if let Ok(dt) = NaiveDateTime::parse_from_str(&t, fmt) {
            return Some(When::Local(dt));
        }
    }
    None
}

/// The wall-clock time to show, and its UTC offset when the value was an instant.
fn wall_clock(when: When, tz: Tz) -> (NaiveDateTime, Option<FixedOffset>) {
    match when {
        When::Instant(utc) => {
            let local = utc.with_timezone(&tz);
            let offset = local.offset().fix();
            (local.naive_local(), Some(offset))
        }
        When::Local(dt) => (dt, None),
        When::Date(d) => (d.and_hms_opt(0, 0, 0).expect("midnight exists"), None),
    }
}

use chrono::Offset;

const TOKENS: [&str; 19] = [
    "YYYY", "MMMM", "dddd", "ddd", "MMM", "YY", "MM", "DD", "HH", "hh", "mm", "ss", "M", "D", "H",
    "h", "A", "a", "Z",
];

pub fn format(when: When, tz: Tz, pattern: &str) -> String {
    let (dt, offset) = wall_clock(when, tz);
    let mut out = String::with_capacity(pattern.len() + 16);
    let mut rest = pattern;
    while let Some(c) = rest.chars().next() {
        if c == '[' {
            if let Some(end) = rest.find(']') {
                out.push_str(&rest[1..end]);
                rest = &rest[end + 1..];
                continue;
            }
        }
        if let Some(tok) = TOKENS.iter().find(|t| rest.starts_with(**t)) {
            push_token(&mut out, tok, &dt, offset);
            rest = &rest[tok.len()..];
        } else {
            out.push(c);
            rest = &rest[c.len_utf8()..];
        }
    }
    out
}

fn push_token(out: &mut String, tok: &str, dt: &NaiveDateTime, offset: Option<FixedOffset>) {
    use std::fmt::Write;
    let h12 = match dt.hour() % 12 {
        0 => 12,
        h => h,
    };
    let _ = match tok {
        "YYYY" => write!(out, "{:04}", dt.year()),
        "YY" => write!(out, "{:02}", dt.year().rem_euclid(100)),
        "MMMM" => write!(out, "{}", MONTHS[dt.month0() as usize]),
        "MMM" => write!(out, "{}", &MONTHS[dt.month0() as usize][..3]),
        "MM" => write!(out, "{:02}", dt.month()),
        "M" => write!(out, "{}", dt.month()),
        "DD" => write!(out, "{:02}", dt.day()),
        "D" => write!(out, "{}", dt.day()),
        "dddd" => write!(
            out,
            "{}",
            WEEKDAYS[dt.weekday().num_days_from_monday() as usize]
        ),
        "ddd" => write!(
            out,
            "{}",
            &WEEKDAYS[dt.weekday().num_days_from_monday() as usize][..3]
        ),
        "HH" => write!(out, "{:02}", dt.hour()),
        "H" => write!(out, "{}", dt.hour()),
        "hh" => write!(out, "{h12:02}"),
        "h" => write!(out, "{h12}"),
        "mm" => write!(out, "{:02}", dt.minute()),
        "ss" => write!(out, "{:02}", dt.second()),
        "A" => write!(out, "{}", if dt.hour() < 12 { "AM" } else { "PM" }),
        "a" => write!(out, "{}", if dt.hour() < 12 { "am" } else { "pm" }),
        "Z" => match offset {
            Some(off) => {
                let secs = off.local_minus_utc();
                let sign = if secs < 0 { '-' } else { '+' };
                let secs = secs.abs();
                write!(out, "{sign}{:02}:{:02}", secs / 3600, secs % 3600 / 60)
            }
            None => Ok(()),
        },
        _ => unreachable!("every token is handled"),
    };
}

pub fn parse_timezone(name: &str) -> Option<Tz> {
    name.trim().parse::<Tz>().ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn fmt(v: serde_json::Value, tz: &str, p: &str) -> String {
        format(
            parse_when(&v).expect("parses"),
            parse_timezone(tz).unwrap(),
            p,
        )
    }

    #[test]
    fn reference_pattern() {
        assert_eq!(
            fmt(json!("2025-02-01T09:00:00Z"), "UTC", "MM/DD/YYYY"),
            "02/01/2025"
        );
    }

    #[test]
    fn every_token() {
        let v = json!("2025-07-04T21:05:09Z");
        assert_eq!(
            fmt(
                v,
                "UTC",
                "YYYY YY MMMM MMM MM M DD D dddd ddd HH H hh h mm ss A a Z"
            ),
            "2025 25 July Jul 07 7 04 4 Friday Fri 21 21 09 9 05 09 PM pm +00:00"
        );
        assert_eq!(
            fmt(json!("2025-01-05T00:30:00Z"), "UTC", "h:mm A, hh"),
            "12:30 AM, 12"
        );
        assert_eq!(
            fmt(json!("2025-01-05T12:30:00Z"), "UTC", "h:mm A"),
            "12:30 PM"
        );
    }

    #[test]
    fn brackets_are_literal() {
        assert_eq!(
            fmt(json!("2025-02-01T09:00:00Z"), "UTC", "dddd [at] h:mm A"),
            "Saturday at 9:00 AM"
        );
        assert_eq!(fmt(json!("2025-02-01"), "UTC", "[unclosed"), "[unclosed");
    }

    #[test]
    fn time_zones_and_dst() {
        // New York: EST (-05:00) until 2026-03-08 02:00, EDT (-04:00) after.
        let before = json!("2026-03-08T06:59:00Z");
        let after = json!("2026-03-08T07:00:00Z");
        assert_eq!(
            fmt(before, "America/New_York", "YYYY-MM-DD HH:mm Z"),
            "2026-03-08 01:59 -05:00"
        );
        assert_eq!(
            fmt(after, "America/New_York", "YYYY-MM-DD HH:mm Z"),
            "2026-03-08 03:00 -04:00"
        );
        // Autumn: 01:30 happens twice; the instant decides which.
        assert_eq!(
            fmt(
                json!("2026-11-01T05:30:00Z"),
                "America/New_York",
                "h:mm A Z"
            ),
            "1:30 AM -04:00"
        );
        assert_eq!(
            fmt(
                json!("2026-11-01T06:30:00Z"),
                "America/New_York",
                "h:mm A Z"
            ),
            "1:30 AM -05:00"
        );
        // Date line and half-hour zones.
        assert_eq!(
            fmt(
                json!("2025-12-31T23:30:00Z"),
                "Pacific/Kiritimati",
                "YYYY-MM-DD HH:mm"
            ),
            "2026-01-01 13:30"
        );
        assert_eq!(
            fmt(json!("2025-06-01T00:00:00Z"), "Asia/Kolkata", "HH:mm Z"),
            "05:30 +05:30"
        );
    }

    #[test]
    fn input_shapes() {
        assert_eq!(
            fmt(json!("2025-02-01 09:00:00+00"), "UTC", "HH:mm"),
            "09:00"
        );
        assert_eq!(
            fmt(json!("2025-02-01 09:00:00.123456-05"), "UTC", "HH:mm"),
            "14:00"
        );
        assert_eq!(
            fmt(json!("2025-02-01T09:00:00+0530"), "UTC", "HH:mm"),
            "03:30"
        );
        assert_eq!(
            fmt(json!("2025-02-01T09:00"), "Asia/Tokyo", "HH:mm Z"),
            "09:00 "
        );
        assert_eq!(
            fmt(json!("2025-02-01"), "Asia/Tokyo", "MMMM D, YYYY h A"),
            "February 1, 2025 12 AM"
        );
        assert_eq!(
            fmt(json!(1738400400), "UTC", "YYYY-MM-DD HH:mm"),
            "2025-02-01 09:00"
        );
        assert_eq!(
            fmt(json!(1738400400000_i64), "UTC", "YYYY-MM-DD HH:mm"),
            "2025-02-01 09:00"
        );
        assert_eq!(fmt(json!(0), "UTC", "YYYY"), "1970");
    }

    #[test]
    fn not_dates() {
        for v in [
            json!("TBD"),
            json!(""),
            json!(true),
            json!(null),
            json!([1]),
            json!({"a": 1}),
            json!(1e300),
            json!("2025-13-01"),
            json!("x".repeat(100)),
        ] {
            assert_eq!(parse_when(&v), None, "{v}");
        }
        assert!(parse_timezone("Mars/Olympus").is_none());
        assert!(parse_timezone("Europe/Paris").is_some());
    }
}
