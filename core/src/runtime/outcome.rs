//! What a provider's answer means for a queue row: sent, retry later (and when), or failed.
//!
//! 2xx → sent. 429, 5xx and network errors → retry after the backoff (the reference's 5, 10,
//! 20 minutes: base × factor^(attempt-1)), or at the provider's `Retry-After` when that is
//! later. Other 4xx → failed at once (a malformed or refused message does not get better).
//! When the attempts are used up, a retryable answer fails too. The error text always says what
//! the provider answered.

use chrono::{DateTime, Utc};

#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Backoff {
    pub base_secs: f64,
    pub factor: f64,
    /// Cap on one delay, so a large factor cannot schedule a retry years out.
    pub max_secs: f64,
}

impl Default for Backoff {
    fn default() -> Self {
        Backoff {
            base_secs: 300.0,
            factor: 2.0,
            max_secs: 86400.0,
        }
    }
}

impl Backoff {
    /// Delay before the next try, after `attempt` (1-based) failed.
    pub fn delay_secs(&self, attempt: i32) -> f64 {
        let exp = (attempt.max(1) - 1).min(30);
        (self.base_secs * self.factor.powi(exp))
            .min(self.max_secs)
            .max(0.0)
    }
}

#[derive(Debug, Clone, PartialEq)]
pub enum Outcome {
    Sent { provider_message_id: Option<String> },
    Retry { after_secs: f64, error: String },
    Failed { error: String },
}

/// The provider's answer to one request. `status` None: no HTTP answer (connection refused,
/// reset, timeout), with `error` saying which. `smtp_code`: an SMTP server's reply code (then
/// `status` is None and `body` is the reply text): 2yz sent, 4yz retry, 5yz failed.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Answer {
    pub status: Option<u16>,
    pub body: String,
    pub retry_after: Option<String>,
    pub error: Option<String>,
    pub smtp_code: Option<u16>,
}

/// Retry-After: delay-seconds or an HTTP-date. Seconds from `now`.
pub fn parse_retry_after(v: &str, now: DateTime<Utc>) -> Option<f64> {
    let v = v.trim();
    if let Ok(secs) = v.parse::<f64>() {
        return (secs.is_finite() && secs >= 0.0).then_some(secs.min(86400.0));
    }
    DateTime::parse_from_rfc2822(v).ok().map(|at| {
        ((at.with_timezone(&Utc) - now).num_milliseconds() as f64 / 1000.0).clamp(0.0, 86400.0)
    })
}

/// One line of what the provider said, for `last_error`.
pub fn describe(answer: &Answer) -> String {
    let body: String = answer
        .body
        .chars()
        .filter(|c| !c.is_control())
        .take(500)
        .collect();
    if let Some(code) = answer.smtp_code {
        return format!("SMTP {code}: {body}");
    }
    match (answer.status, &answer.error) {
        (Some(s), _) => format!(
            "HTTP {s}: {}",
            if body.is_empty() {
                "(empty body)"
            } else {
                &body
            }
        ),
        (None, Some(e)) => format!("no answer: {e}"),
        (None, None) => "no answer".into(),
    }
}

pub fn classify(
    answer: &Answer,
    attempt: i32,
    max_attempts: i32,
    backoff: &Backoff,
    now: DateTime<Utc>,
) -> Outcome {
    let error = describe(answer);
    let retryable = match (answer.smtp_code, answer.status) {
        (Some(c), _) if (200..300).contains(&c) => {
            return Outcome::Sent {
                provider_message_id: None,
            }
        }
        (Some(c), _) => c < 500,
        (None, Some(s)) if (200..300).contains(&s) => {
            return Outcome::Sent {
                provider_message_id: None,
            }
        }
        (None, Some(429)) => true,
        // Resend: the same idempotency key is still being processed (our earlier request, its
        // sender gone): try again later, when the first has finished and is replayed.
        (None, Some(409)) if answer.body.contains("concurrent_idempotent_requests") => true,
        (None, Some(s)) if s >= 500 => true,
        (None, Some(_)) => false,
        (None, None) => true,
    };
    if !retryable {
        return Outcome::Failed { error };
    }
    if attempt >= max_attempts {
        return Outcome::Failed {
            error: format!("{error} (gave up after {attempt} attempts)"),
        };
    }
    let backoff = backoff.delay_secs(attempt);
    let asked = answer
        .retry_after
        .as_deref()
        .and_then(|v| parse_retry_after(v, now))
        .unwrap_or(0.0);
    Outcome::Retry {
        after_secs: backoff.max(asked),
        error,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn now() -> DateTime<Utc> {
        "2026-11-24T12:00:00Z".parse().unwrap()
    }
    fn ans(status: Option<u16>, retry_after: Option<&str>) -> Answer {
        Answer {
            status,
            body: "{\"message\":\"x\"}".into(),
            retry_after: retry_after.map(Into::into),
            error: Some("connection refused".into()),
            smtp_code: None,
        }
    }

    #[test]
    fn reference_backoff_is_5_10_20_minutes() {
        let b = Backoff::default();
        assert_eq!(
            [b.delay_secs(1), b.delay_secs(2), b.delay_secs(3)],
            [300.0, 600.0, 1200.0]
        );
        assert_eq!(
            Backoff {
                base_secs: 300.0,
                factor: 10.0,
                max_secs: 3600.0
            }
            .delay_secs(5),
            3600.0
        );
    }

    #[test]
    fn classification() {
        let b = Backoff::default();
        assert!(matches!(
            classify(&ans(Some(200), None), 1, 3, &b, now()),
            Outcome::Sent { .. }
        ));
        assert!(matches!(
            classify(&ans(Some(202), None), 1, 3, &b, now()),
            Outcome::Sent { .. }
        ));
        assert!(
            matches!(classify(&ans(Some(503), None), 1, 3, &b, now()), Outcome::Retry { after_secs, .. } if after_secs == 300.0)
        );
        assert!(
            matches!(classify(&ans(None, None), 2, 3, &b, now()), Outcome::Retry { after_secs, .. } if after_secs == 600.0)
        );
        assert!(
            matches!(classify(&ans(Some(422), None), 1, 3, &b, now()), Outcome::Failed { error } if error.starts_with("HTTP 422"))
        );
        assert!(
            matches!(classify(&ans(Some(500), None), 3, 3, &b, now()), Outcome::Failed { error } if error.contains("gave up after 3"))
        );
        let conflict = |name: &str| Answer {
            status: Some(409),
            body: format!("{{\"name\":\"{name}\"}}"),
            ..Answer::default()
        };
        assert!(matches!(
            classify(&conflict("concurrent_idempotent_requests"), 1, 3, &b, now()),
            Outcome::Retry { .. }
        ));
        assert!(matches!(
            classify(&conflict("invalid_idempotent_request"), 1, 3, &b, now()),
            Outcome::Failed { .. }
        ));
        let smtp = |code, text: &str| Answer {
            smtp_code: Some(code),
            body: text.into(),
            ..Answer::default()
        };
        assert!(matches!(
            classify(&smtp(250, "2.0.0 OK"), 1, 3, &b, now()),
            Outcome::Sent { .. }
        ));
        assert!(
            matches!(classify(&smtp(451, "4.7.1 try later"), 1, 3, &b, now()), Outcome::Retry { error, .. } if error == "SMTP 451: 4.7.1 try later")
        );
        assert!(
            matches!(classify(&smtp(550, "5.1.1 no such user"), 1, 3, &b, now()), Outcome::Failed { error } if error == "SMTP 550: 5.1.1 no such user")
        );
    }

    #[test]
    fn retry_after_wins_when_later() {
        let b = Backoff::default();
        assert!(
            matches!(classify(&ans(Some(429), Some("900")), 1, 3, &b, now()), Outcome::Retry { after_secs, .. } if after_secs == 900.0)
        );
        assert!(
            matches!(classify(&ans(Some(429), Some("5")), 1, 3, &b, now()), Outcome::Retry { after_secs, .. } if after_secs == 300.0)
        );
        assert_eq!(
            parse_retry_after("Tue, 24 Nov 2026 12:30:00 GMT", now()),
            Some(1800.0)
        );
        assert_eq!(parse_retry_after("soon", now()), None);
        assert_eq!(parse_retry_after("-5", now()), None);
    }

    #[test]
    fn errors_say_what_the_provider_answered() {
        assert_eq!(
            describe(&ans(Some(422), None)),
            "HTTP 422: {\"message\":\"x\"}"
        );
        assert_eq!(describe(&ans(None, None)), "no answer: connection refused");
    }
}
