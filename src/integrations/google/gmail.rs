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

impl crate::email::drafts::DraftBox for Gmail {
    fn provider(&self) -> &'static str {
        "gmail"
    }
    fn draft_scopes(&self) -> &'static [&'static str] {
        &[
            "https://www.googleapis.com/auth/gmail.compose",
            "https://www.googleapis.com/auth/gmail.modify",
            "https://mail.google.com/",
        ]
    }
    /// `POST {crm.gmail_base_url}/gmail/v1/users/me/drafts` (users.drafts.create).
    fn create(
        &self,
        email: &crm_core::email::Outgoing,
        id: &str,
        thread_id: Option<&str>,
        token: String,
    ) -> Answer {
        let env = Envelope {
            id,
            date: Utc::now(),
            include_bcc: true,
        };
        let url = http::url(
            &guc::text(&super::settings::GMAIL_BASE_URL),
            "/gmail/v1/users/me/drafts",
        );
        http::bearer_interruptible(
            "POST",
            url,
            token,
            Some(gmail::draft_json(email, &env, thread_id)),
        )
    }
    fn draft(&self, answer: &Answer) -> Option<serde_json::Value> {
        gmail::draft_answer(&answer.body)
    }
}
