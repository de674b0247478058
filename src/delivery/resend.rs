//! Resend over HTTP: `POST {crm.resend_base_url}/emails` with `Authorization: Bearer
//! {crm.resend_api_key}` and `Idempotency-Key: <queue row id>`; and the client-side pacing that
//! keeps a burst under the configured requests per second.

use crate::guc;
use crm_core::delivery::outcome::{parse_retry_after, Answer};
use crm_core::delivery::{resend, Outgoing};
use std::cell::Cell;
use std::time::{Duration, Instant};

thread_local! {
    // One agent per process: it keeps connections to the provider open between requests.
    // Rebuilt when crm.email_http_timeout changes.
    static AGENT: std::cell::RefCell<Option<(i32, ureq::Agent)>> = const { std::cell::RefCell::new(None) };
}

fn agent() -> ureq::Agent {
    let ms = guc::EMAIL_HTTP_TIMEOUT_MS.get().max(1);
    AGENT.with(|a| {
        let mut a = a.borrow_mut();
        match &*a {
            Some((t, agent)) if *t == ms => agent.clone(),
            _ => {
                let agent = ureq::AgentBuilder::new().timeout(Duration::from_millis(ms as u64)).build();
                *a = Some((ms, agent.clone()));
                agent
            }
        }
    })
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

// When the next request to Resend may start, for this process (the worker, or a backend
// running crm.process_email_queue). At most crm.resend_rate_limit requests per second
// (0 = unlimited); after a 429, nothing before the provider's Retry-After: one throttled
// message slows every message to the provider, not just itself.
thread_local! {
    static NEXT_REQUEST: Cell<Option<Instant>> = const { Cell::new(None) };
}

pub fn pace() {
    let now = Instant::now();
    let next = NEXT_REQUEST.with(Cell::get).unwrap_or(now);
    if next > now {
        std::thread::sleep(next - now);
    }
    let rate = guc::RESEND_RATE_LIMIT.get();
    let start = Instant::now().max(next);
    NEXT_REQUEST.with(|n| n.set((rate > 0.0).then(|| start + Duration::from_secs_f64(1.0 / rate))));
}

pub fn slow_down(retry_after: Option<&str>) {
    let secs = retry_after.and_then(|v| parse_retry_after(v, chrono::Utc::now())).unwrap_or(1.0).min(60.0);
    let until = Instant::now() + Duration::from_secs_f64(secs);
    NEXT_REQUEST.with(|n| n.set(Some(n.get().map_or(until, |t| t.max(until)))));
}
