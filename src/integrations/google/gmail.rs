//! Gmail: `POST {crm.gmail_base_url}/gmail/v1/users/me/messages/send` with the mailbox's
//! access token and the RFC 5322 message in `raw` (crm_core::integrations::google::gmail). Gmail has no
//! idempotency key; the Message-ID is `<queue row id@sender's domain>`, so a repeat after a
//! crash is at least recognisable.

use crate::email::provider::{Provider, Request};
use crate::guc;
use crate::runtime::http;
use chrono::Utc;
use crm_core::email::mime::Envelope;
use crm_core::integrations::google::gmail;
use crm_core::runtime::outcome::Answer;

pub struct Gmail;

impl Provider for Gmail {
    fn name(&self) -> &'static str {
        "gmail"
    }
    fn rate_limit(&self) -> f64 {
        super::settings::GMAIL_RATE_LIMIT.get()
    }
    fn needs_mailbox(&self) -> bool {
        true
    }
    fn send(&self, req: &Request) -> Answer {
        let env = Envelope {
            id: req.id,
            date: Utc::now(),
            include_bcc: true,
        };
        let body = gmail::send_json(req.email, &env, req.thread_id);
        let auth = format!("Bearer {}", req.access_token.unwrap_or_default());
        let url = http::url(
            &guc::text(&super::settings::GMAIL_BASE_URL),
            "/gmail/v1/users/me/messages/send",
        );
        http::post_json(&url, &[("Authorization", &auth)], &body)
    }
    fn message_id(&self, answer: &Answer) -> Option<String> {
        gmail::message_id(&answer.body)
    }
}
