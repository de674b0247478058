//! Resend over HTTP: `POST {crm.resend_base_url}/emails` with `Authorization: Bearer
//! {crm.resend_api_key}` and `Idempotency-Key: <queue row id>`; and the client-side pacing that
//! keeps a burst under the configured requests per second.

use crate::guc;
use crm_core::delivery::outcome::{parse_retry_after, Answer};
use crm_core::delivery::{resend, Outgoing};
use std::time::{Duration, Instant};

fn agent() -> ureq::Agent {
    let timeout = Duration::from_millis(guc::EMAIL_HTTP_TIMEOUT_MS.get().max(1) as u64);
    ureq::AgentBuilder::new().timeout(timeout).build()
}

pub fn send(email: &Outgoing, idempotency_key: &str) -> Answer {
    let base = guc::text(&guc::RESEND_BASE_URL);
    let key = guc::text(&guc::RESEND_API_KEY);
    if key.is_empty() {
        return Answer { status: None, body: String::new(), retry_after: None, error: Some("crm.resend_api_key is not set".into()) };
    }
    let url = format!("{}/emails", base.trim_end_matches('/'));
    let result = agent()
        .post(&url)
        .set("Authorization", &format!("Bearer {key}"))
        .set("Idempotency-Key", idempotency_key)
        .set("User-Agent", concat!("crm_integrations/", env!("CARGO_PKG_VERSION")))
        .send_json(resend::email_json(email));
    match result {
        Ok(resp) => answer(resp),
        Err(ureq::Error::Status(_, resp)) => answer(resp),
        Err(e) => Answer { status: None, body: String::new(), retry_after: None, error: Some(e.to_string()) },
    }
}

fn answer(resp: ureq::Response) -> Answer {
    let status = resp.status();
    let retry_after = resp.header("Retry-After").map(str::to_owned);
    let body = resp.into_string().unwrap_or_default();
    Answer { status: Some(status), body, retry_after, error: None }
}

/// At most `crm.resend_rate_limit` requests per second from this process (0 = unlimited), and
/// after a 429 no request before the provider's Retry-After: one throttled message slows every
/// message to that provider, not just itself.
pub struct Pacer {
    interval: Option<Duration>,
    next: Instant,
}

impl Pacer {
    pub fn from_settings() -> Self {
        let rate = guc::RESEND_RATE_LIMIT.get();
        Pacer { interval: (rate > 0.0).then(|| Duration::from_secs_f64(1.0 / rate)), next: Instant::now() }
    }

    pub fn wait(&mut self) {
        let now = Instant::now();
        if self.next > now {
            std::thread::sleep(self.next - now);
        }
        if let Some(i) = self.interval {
            self.next = Instant::now().max(self.next) + i;
        }
    }

    pub fn slow_down(&mut self, retry_after: Option<&str>) {
        let secs = retry_after.and_then(|v| parse_retry_after(v, chrono::Utc::now())).unwrap_or(1.0).min(60.0);
        self.next = self.next.max(Instant::now() + Duration::from_secs_f64(secs));
    }
}
