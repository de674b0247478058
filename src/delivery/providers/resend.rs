//! Resend: `POST {crm.resend_base_url}/emails`, and `POST /emails/batch` for up to 100 emails
//! in one request, with `Authorization: Bearer {crm.resend_api_key}`. Idempotency-Key: the
//! queue row's id for one email, the group's `send_key` for a batch.

use super::{Provider, Request};
use crate::delivery::http;
use crate::guc;
use crm_core::delivery::outcome::Answer;
use crm_core::delivery::{resend, Outgoing};
use serde_json::Value;

pub struct Resend;

fn post(path: &str, key: &str, body: &Value) -> Answer {
    let api_key = guc::text(&guc::RESEND_API_KEY);
    if api_key.is_empty() {
        return Answer {
            error: Some("crm.resend_api_key is not set".into()),
            ..Answer::default()
        };
    }
    let auth = format!("Bearer {api_key}");
    let url = http::url(&guc::text(&guc::RESEND_BASE_URL), path);
    http::post_json(
        &url,
        &[("Authorization", &auth), ("Idempotency-Key", key)],
        body,
    )
}

impl Provider for Resend {
    fn name(&self) -> &'static str {
        "resend"
    }
    fn rate_limit(&self) -> f64 {
        guc::RESEND_RATE_LIMIT.get()
    }
    fn send(&self, req: &Request) -> Answer {
        post("/emails", req.id, &resend::email_json(req.email))
    }
    fn message_id(&self, answer: &Answer) -> Option<String> {
        resend::message_id(&answer.body)
    }
}

/// One batch request; the answer's ids are in request order (`resend::batch_message_ids`).
pub fn send_batch(emails: &[&Outgoing], send_key: &str) -> Answer {
    let body = Value::Array(emails.iter().map(|e| resend::email_json(e)).collect());
    post("/emails/batch", send_key, &body)
}
