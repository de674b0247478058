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
    let req = agent()
        .request(method, url)
        .set("User-Agent", USER_AGENT)
        .set("Authorization", &format!("Bearer {token}"));
    answer(match body {
        Some(b) => req.send_json(b),
        None => req.call(),
    })
}

/// GET with `Authorization: Bearer <token>` (userinfo, Graph /me).
pub fn get_bearer(url: &str, token: &str) -> Answer {
    answer(
        agent()
            .get(url)
            .set("User-Agent", USER_AGENT)
            .set("Authorization", &format!("Bearer {token}"))
            .call(),
    )
}

/// POST an application/x-www-form-urlencoded body (OAuth token endpoints).
pub fn post_form(url: &str, form: &[(&str, &str)]) -> Answer {
    answer(
        agent()
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
