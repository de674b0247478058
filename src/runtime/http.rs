//! The HTTP client of every HTTP provider and token endpoint: one keep-alive agent per process
//! (the worker, or a backend running crm.process_email_queue), and the provider's answer as a
//! plain `Answer` whatever the status, so that the outcome rules in crm_core decide.

use crm_core::runtime::outcome::Answer;
use serde_json::Value;
use std::cell::RefCell;
use std::time::Duration;

const USER_AGENT: &str = concat!("crm_integrations/", env!("CARGO_PKG_VERSION"));

thread_local! {
    // Rebuilt when crm.http_timeout changes.
    static AGENT: RefCell<Option<(i32, ureq::Agent)>> = const { RefCell::new(None) };
}

fn agent() -> ureq::Agent {
    let ms = crate::runtime::settings::http_timeout_ms();
    AGENT.with(|a| {
        let mut a = a.borrow_mut();
        match &*a {
            Some((t, agent)) if *t == ms => agent.clone(),
            _ => {
                let agent = ureq::AgentBuilder::new()
                    .timeout(Duration::from_millis(ms as u64))
                    .build();
                *a = Some((ms, agent.clone()));
                agent
            }
        }
    })
}

/// Run a request a caller waits for (the connect flow, config_check's live check, the
/// revocations of disconnect) on a helper thread while the backend keeps checking for
/// interrupts, so statement_timeout and pg_cancel_backend end the wait within 50 ms instead of
/// after crm.http_timeout. The helper thread has every signal blocked (Postgres' handlers stay
/// on the backend's thread); a cancelled request is left to it, and it ends within
/// crm.http_timeout. Not for the workers, which check SIGTERM between requests.
pub fn interruptible<T: Send + 'static>(request: impl FnOnce() -> T + Send + 'static) -> T {
    let (tx, rx) = std::sync::mpsc::channel();
    let started = {
        let _blocked = crm_core::runtime::signals::SignalsBlocked::new();
        std::thread::Builder::new()
            .name("crm-http".into())
            .spawn(move || {
                let _ = tx.send(request());
            })
    };
    if let Err(e) = started {
        pgrx::error!("cannot start the HTTP request's thread: {e}");
    }
    loop {
        match rx.recv_timeout(Duration::from_millis(50)) {
            Ok(answer) => return answer,
            Err(std::sync::mpsc::RecvTimeoutError::Timeout) => {
                pgrx::check_for_interrupts!();
            }
            Err(std::sync::mpsc::RecvTimeoutError::Disconnected) => {
                pgrx::error!("the HTTP request's thread failed")
            }
        }
    }
}

/// `post_form` on the interruptible path (owned arguments: they go to the request's thread;
/// the agent is taken here, since settings may only be read on the backend's thread).
pub fn post_form_interruptible(url: String, form: Vec<(String, String)>) -> Answer {
    let agent = agent();
    interruptible(move || {
        let form: Vec<(&str, &str)> = form.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
        post_form_with(&agent, &url, &form)
    })
}

/// A form POST with headers (Stripe: Authorization, Idempotency-Key), interruptible.
pub fn post_form_headers_interruptible(
    url: String,
    headers: Vec<(&'static str, String)>,
    form: Vec<(String, String)>,
) -> Answer {
    let agent = agent();
    interruptible(move || {
        let mut req = agent.post(&url).set("User-Agent", USER_AGENT);
        for (k, v) in &headers {
            req = req.set(k, v);
        }
        let form: Vec<(&str, &str)> = form.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
        answer(req.send_form(&form))
    })
}

/// `bearer` on the interruptible path.
pub fn bearer_interruptible(
    method: &'static str,
    url: String,
    token: String,
    body: Option<Value>,
) -> Answer {
    let agent = agent();
    interruptible(move || bearer_with(&agent, method, &url, &token, body.as_ref()))
}

/// GET with a query string (the Geocoding API), on the interruptible path.
pub fn get_query_interruptible(url: String, query: Vec<(&'static str, String)>) -> Answer {
    let agent = agent();
    interruptible(move || get_query_with(&agent, &url, &query))
}

/// GET with a query string, in the worker.
pub fn get_query(url: &str, query: &[(&'static str, String)]) -> Answer {
    get_query_with(&agent(), url, query)
}

fn get_query_with(agent: &ureq::Agent, url: &str, query: &[(&'static str, String)]) -> Answer {
    let mut req = agent.get(url).set("User-Agent", USER_AGENT);
    for (k, v) in query {
        req = req.query(k, v);
    }
    answer(req.call())
}

/// `post_json` on the interruptible path (the Routes API's matrix for a caller waiting).
pub fn post_json_interruptible(
    url: String,
    headers: Vec<(&'static str, String)>,
    body: Value,
) -> Answer {
    let agent = agent();
    interruptible(move || {
        let mut req = agent.post(&url).set("User-Agent", USER_AGENT);
        for (k, v) in &headers {
            req = req.set(k, v);
        }
        answer(req.send_json(&body))
    })
}

/// `base` without a trailing slash, then `path`.
pub fn url(base: &str, path: &str) -> String {
    format!("{}{path}", base.trim_end_matches('/'))
}

/// POST a JSON body with the given headers.
pub fn post_json(url: &str, headers: &[(&str, &str)], body: &Value) -> Answer {
    let mut req = agent().post(url).set("User-Agent", USER_AGENT);
    for (k, v) in headers {
        req = req.set(k, v);
    }
    answer(req.send_json(body))
}

/// Any method with `Authorization: Bearer <token>` and an optional JSON body (the Calendar
/// API's insert, update, delete).
pub fn bearer(method: &str, url: &str, token: &str, body: Option<&Value>) -> Answer {
    bearer_with(&agent(), method, url, token, body)
}

fn bearer_with(
    agent: &ureq::Agent,
    method: &str,
    url: &str,
    token: &str,
    body: Option<&Value>,
) -> Answer {
    let req = agent
        .request(method, url)
        .set("User-Agent", USER_AGENT)
        .set("Authorization", &format!("Bearer {token}"));
    answer(match body {
        Some(b) => req.send_json(b),
        None => req.call(),
    })
}

/// A bodiless request with `Authorization: Bearer <token>` and more headers (Graph's
/// `Prefer: odata.maxpagesize`), in the worker.
pub fn bearer_with_headers(
    method: &str,
    url: &str,
    token: &str,
    headers: &[(&'static str, String)],
) -> Answer {
    let mut req = agent()
        .request(method, url)
        .set("User-Agent", USER_AGENT)
        .set("Authorization", &format!("Bearer {token}"));
    for (k, v) in headers {
        req = req.set(k, v);
    }
    answer(req.call())
}

/// POST an application/x-www-form-urlencoded body (OAuth token endpoints).
pub fn post_form(url: &str, form: &[(&str, &str)]) -> Answer {
    post_form_with(&agent(), url, form)
}

fn post_form_with(agent: &ureq::Agent, url: &str, form: &[(&str, &str)]) -> Answer {
    answer(
        agent
            .post(url)
            .set("User-Agent", USER_AGENT)
            .send_form(form),
    )
}

fn answer(result: Result<ureq::Response, ureq::Error>) -> Answer {
    let resp = match result {
        Ok(resp) | Err(ureq::Error::Status(_, resp)) => resp,
        Err(e) => {
            return Answer {
                error: Some(e.to_string()),
                ..Answer::default()
            }
        }
    };
    let status = resp.status();
    let retry_after = resp.header("Retry-After").map(str::to_owned);
    let body = resp.into_string().unwrap_or_default();
    Answer {
        status: Some(status),
        body,
        retry_after,
        ..Answer::default()
    }
}
