//! Resend: `POST {crm.resend_base_url}/emails`, and `POST /emails/batch` for up to 100 emails
//! in one request, with `Authorization: Bearer {crm.resend_api_key}`. Idempotency-Key: the
//! queue row's id for one email, the group's `send_key` for a batch.

pub mod settings;

use crate::email::provider::{Provider, Request};
use crate::guc;
use crate::runtime::http;
use crm_core::email::Outgoing;
use crm_core::integrations::resend;
use crm_core::runtime::outcome::Answer;
use serde_json::Value;

pub struct Resend;

fn post(path: &str, key: &str, body: &Value) -> Answer {
    let api_key = guc::text(&settings::RESEND_API_KEY);
    if api_key.is_empty() {
        return Answer {
            error: Some("crm.resend_api_key is not set".into()),
            ..Answer::default()
        };
    }
    let auth = format!("Bearer {api_key}");
    let url = http::url(&guc::text(&settings::RESEND_BASE_URL), path);
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
        settings::RESEND_RATE_LIMIT.get()
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
