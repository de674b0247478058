//! Client-side rate limits, per process (the worker, or a backend running
//! crm.process_email_queue): at most the provider's `rate_limit()` requests per second (its
//! `crm.<provider>_rate_limit` setting; 0 = unlimited), and after a 429 nothing more before its Retry-After, so one throttled message
//! slows every message that shares the limit, not just itself. Resend and SMTP limits are per
//! provider (one API key, one relay); Gmail's and Graph's are per mailbox, as their quotas are.

use crm_core::delivery::outcome::parse_retry_after;
use std::cell::RefCell;
use std::collections::HashMap;
use std::time::{Duration, Instant};

/// What shares one limit: a provider, or one mailbox of a provider.
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct Lane {
    pub provider: &'static str,
    pub mailbox: Option<String>,
}

impl Lane {
    pub fn provider(provider: &'static str) -> Lane {
        Lane {
            provider,
            mailbox: None,
        }
    }
}

thread_local! {
    // When the next request in each lane may start.
    static NEXT_REQUEST: RefCell<HashMap<Lane, Instant>> = RefCell::new(HashMap::new());
}

/// Wait until a request in `lane` may start, and book the slot after it (`rate` requests per
/// second; 0 = unlimited).
pub fn pace(lane: &Lane, rate: f64) {
    let now = Instant::now();
    let next = NEXT_REQUEST
        .with(|m| m.borrow().get(lane).copied())
        .unwrap_or(now);
    if next > now {
        std::thread::sleep(next - now);
    }
    let start = Instant::now().max(next);
    NEXT_REQUEST.with(|m| {
        let mut m = m.borrow_mut();
        if rate > 0.0 {
            m.insert(lane.clone(), start + Duration::from_secs_f64(1.0 / rate));
        } else {
            m.remove(lane);
        }
    });
}

/// The provider answered 429: hold back every request in the lane until `Retry-After` (1 s
/// when it gives none; at most 60 s, the rows themselves carry the longer backoff).
pub fn slow_down(lane: &Lane, retry_after: Option<&str>) {
    let secs = retry_after
        .and_then(|v| parse_retry_after(v, chrono::Utc::now()))
        .unwrap_or(1.0)
        .min(60.0);
    let until = Instant::now() + Duration::from_secs_f64(secs);
    NEXT_REQUEST.with(|m| {
        let mut m = m.borrow_mut();
        let t = m.entry(lane.clone()).or_insert(until);
        *t = (*t).max(until);
    });
}
