//! Google Calendar API v3, as data: a job's event (its id, body) and what the API's answers
//! mean. <https://developers.google.com/calendar/api/v3/reference/events>
//!
//! The event id is derived from the job: Google takes ids of 5–1024 characters of base32hex
//! (`0-9a-v`), which a UUID's hex digits are, so `<job uuid hex>g<generation>` is ours to
//! choose. A retried insert whose first attempt succeeded then answers 409 instead of making
//! a second event; the generation moves on only when an event had to be re-created (it was
//! deleted in Google, or the job moved to another calendar).

use crate::runtime::outcome::Answer;
use chrono::{DateTime, Utc};
use chrono_tz::Tz;
use serde_json::{json, Value};

/// The event id of `job_id` (a UUID) at `generation`.
pub fn event_id(job_id: &str, generation: i32) -> String {
    let hex: String = job_id
        .chars()
        .filter(|c| c.is_ascii_hexdigit())
        .map(|c| c.to_ascii_lowercase())
        .collect();
    format!("{hex}g{}", generation.max(0))
}

/// What an event shows of a job.
#[derive(Debug, Clone, PartialEq)]
pub struct JobEvent<'a> {
    pub job_id: &'a str,
    pub account_id: &'a str,
    pub title: &'a str,
    pub customer: Option<&'a str>,
    pub address: Option<&'a str>,
    pub notes: Option<&'a str>,
    pub start: DateTime<Utc>,
    pub end: DateTime<Utc>,
    /// IANA zone the times are written in (crm.calendar_time_zone); an unknown one is UTC.
    pub time_zone: &'a str,
    /// crm.app_base_url: the description links back to the job there.
    pub app_base_url: Option<&'a str>,
}

fn when(t: DateTime<Utc>, tz: Tz) -> Value {
    json!({"dateTime": t.with_timezone(&tz).to_rfc3339(), "timeZone": tz.name()})
}

/// The event resource (without `id`: insert adds it).
pub fn event_body(e: &JobEvent) -> Value {
    let tz: Tz = e.time_zone.parse().unwrap_or(chrono_tz::UTC);
    let summary = match e.customer.filter(|c| !c.trim().is_empty()) {
        Some(c) => format!("{} — {}", e.title, c.trim()),
        None => e.title.to_string(),
    };
    let mut description = e.notes.unwrap_or("").trim().to_string();
    if let Some(base) = e.app_base_url.map(str::trim).filter(|b| !b.is_empty()) {
        if !description.is_empty() {
            description.push_str("\n\n");
        }
        description.push_str(&format!("{}/jobs/{}", base.trim_end_matches('/'), e.job_id));
    }
    let mut body = json!({
        "summary": summary,
        "start": when(e.start, tz),
        "end": when(e.end.max(e.start), tz),
        "extendedProperties": {"private": {"crm_job_id": e.job_id, "crm_account_id": e.account_id}},
    });
    if let Some(a) = e.address.map(str::trim).filter(|a| !a.is_empty()) {
        body["location"] = json!(a);
    }
    if !description.is_empty() {
        body["description"] = json!(description);
    }
    body
}

/// The `etag` of an event in an answer.
pub fn etag(body: &str) -> Option<String> {
    serde_json::from_str::<Value>(body)
        .ok()?
        .get("etag")?
        .as_str()
        .map(str::to_owned)
}

/// Google's quota errors come as 403 with reason `rateLimitExceeded` or
/// `userRateLimitExceeded` (and 429 `rateLimitExceeded`): retryable, unlike other 403s.
pub fn is_rate_limited(answer: &Answer) -> bool {
    matches!(answer.status, Some(403 | 429))
        && (answer.body.contains("rateLimitExceeded")
            || answer.body.contains("userRateLimitExceeded"))
}

/// The answer with a quota 403 turned into the 429 the shared outcome rules retry.
pub fn normalised(answer: Answer) -> Answer {
    if answer.status == Some(403) && is_rate_limited(&answer) {
        Answer {
            status: Some(429),
            ..answer
        }
    } else {
        answer
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    #[test]
    fn event_ids_are_base32hex_from_the_job() {
        let id = event_id("0A1B2C3D-4E5F-6789-abcd-ef0123456789", 2);
        assert_eq!(id, "0a1b2c3d4e5f6789abcdef0123456789g2");
        assert!(id
            .chars()
            .all(|c| c.is_ascii_digit() || ('a'..='v').contains(&c)));
        assert_ne!(event_id("0a1b2c3d-4e5f-6789-abcd-ef0123456789", 0), id);
    }

    #[test]
    fn the_event_carries_the_job_in_the_accounts_zone() {
        let start = Utc.with_ymd_and_hms(2026, 12, 1, 14, 0, 0).unwrap();
        let body = event_body(&JobEvent {
            job_id: "j1",
            account_id: "a1",
            title: "Water heater replacement",
            customer: Some("John Smith"),
            address: Some("12 Elm St, Indianapolis"),
            notes: Some("Bring the 50-gallon unit."),
            start,
            end: start + chrono::Duration::hours(2),
            time_zone: "America/Indiana/Indianapolis",
            app_base_url: Some("https://app.317plumber.com/"),
        });
        assert_eq!(body["summary"], "Water heater replacement — John Smith");
        assert_eq!(body["start"]["dateTime"], "2026-12-01T09:00:00-05:00");
        assert_eq!(body["end"]["dateTime"], "2026-12-01T11:00:00-05:00");
        assert_eq!(body["start"]["timeZone"], "America/Indiana/Indianapolis");
        assert_eq!(body["location"], "12 Elm St, Indianapolis");
        assert_eq!(
            body["description"],
            "Bring the 50-gallon unit.\n\nhttps://app.317plumber.com/jobs/j1"
        );
        assert_eq!(body["extendedProperties"]["private"]["crm_job_id"], "j1");
    }

    #[test]
    fn quota_errors_are_retryable() {
        let a = Answer {
            status: Some(403),
            body: r#"{"error":{"errors":[{"reason":"userRateLimitExceeded"}],"code":403}}"#.into(),
            ..Answer::default()
        };
        assert_eq!(normalised(a).status, Some(429));
        let denied = Answer {
            status: Some(403),
            body: r#"{"error":{"errors":[{"reason":"forbidden"}],"code":403}}"#.into(),
            ..Answer::default()
        };
        assert_eq!(normalised(denied).status, Some(403));
    }
}

/// One event of an `events.list` answer, as the inbound sync needs it.
#[derive(Debug, Clone, PartialEq)]
pub struct ListedEvent {
    pub id: String,
    /// confirmed, tentative, or cancelled (deleted).
    pub cancelled: bool,
    /// Google's last modification (RFC 3339), for "the later change wins".
    pub updated: Option<String>,
    /// Timed events: RFC 3339; all-day events: None (they block no time slot here).
    pub start: Option<String>,
    pub end: Option<String>,
    /// `extendedProperties.private.crm_job_id`: one of ours.
    pub job_id: Option<String>,
    /// `transparency: transparent` ("show as free"): not busy.
    pub free: bool,
}

impl ListedEvent {
    /// As the apply step reads it (crm._apply_calendar_changes).
    pub fn to_json(&self) -> Value {
        json!({"id": self.id, "cancelled": self.cancelled, "updated": self.updated, "start": self.start,
               "end": self.end, "job_id": self.job_id, "free": self.free})
    }
}

/// A page of `events.list`: its events, and the next page's token or the sync token.
#[derive(Debug, Clone, PartialEq)]
pub struct ListPage {
    pub events: Vec<ListedEvent>,
    pub next_page_token: Option<String>,
    pub next_sync_token: Option<String>,
}

pub fn parse_list(body: &str) -> Option<ListPage> {
    let j: Value = serde_json::from_str(body).ok()?;
    let s = |v: &Value, k: &str| v.get(k).and_then(Value::as_str).map(str::to_owned);
    let events = j
        .get("items")
        .and_then(Value::as_array)
        .map(|items| {
            items
                .iter()
                .filter_map(|e| {
                    Some(ListedEvent {
                        id: s(e, "id")?,
                        cancelled: e.get("status").and_then(Value::as_str) == Some("cancelled"),
                        updated: s(e, "updated"),
                        start: e.get("start").and_then(|t| s(t, "dateTime")),
                        end: e.get("end").and_then(|t| s(t, "dateTime")),
                        job_id: e
                            .pointer("/extendedProperties/private/crm_job_id")
                            .and_then(Value::as_str)
                            .map(str::to_owned),
                        free: e.get("transparency").and_then(Value::as_str) == Some("transparent"),
                    })
                })
                .collect()
        })
        .unwrap_or_default();
    Some(ListPage {
        events,
        next_page_token: s(&j, "nextPageToken"),
        next_sync_token: s(&j, "nextSyncToken"),
    })
}

#[cfg(test)]
mod list_tests {
    use super::*;

    #[test]
    fn pages_and_events() {
        let body = r#"{"items":[
            {"id":"a","status":"confirmed","updated":"2026-12-01T10:00:00.000Z","start":{"dateTime":"2026-12-02T09:00:00-05:00"},"end":{"dateTime":"2026-12-02T10:00:00-05:00"},"extendedProperties":{"private":{"crm_job_id":"j1"}}},
            {"id":"b","status":"cancelled"},
            {"id":"c","start":{"date":"2026-12-03"},"end":{"date":"2026-12-04"},"transparency":"transparent"}],
            "nextPageToken":"p2"}"#;
        let p = parse_list(body).unwrap();
        assert_eq!(p.events.len(), 3);
        assert_eq!(p.events[0].job_id.as_deref(), Some("j1"));
        assert!(p.events[1].cancelled);
        assert!(p.events[2].free && p.events[2].start.is_none());
        assert_eq!(
            (p.next_page_token.as_deref(), p.next_sync_token),
            (Some("p2"), None)
        );
        assert_eq!(
            parse_list(r#"{"items":[],"nextSyncToken":"s"}"#)
                .unwrap()
                .next_sync_token
                .as_deref(),
            Some("s")
        );
    }
}
