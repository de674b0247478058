//! Microsoft 365: Graph `POST {crm.microsoft_graph_base_url}/v1.0/me/sendMail` with the
//! mailbox's access token (crm_core::integrations::microsoft::mail). Graph answers 202 with no body and
//! no message id, and has no idempotency key; the queue row's id travels as X-CRM-Queue-Id.

use crate::email::provider::{Provider, Request};
use crate::guc;
use crate::runtime::http;
use crm_core::integrations::microsoft::mail as wire;
use crm_core::runtime::outcome::Answer;

pub struct Microsoft;

impl Provider for Microsoft {
    fn name(&self) -> &'static str {
        "microsoft"
    }
    fn rate_limit(&self) -> f64 {
        super::settings::MICROSOFT_RATE_LIMIT.get()
    }
    fn needs_mailbox(&self) -> bool {
        true
    }
    fn send(&self, req: &Request) -> Answer {
        let auth = format!("Bearer {}", req.access_token.unwrap_or_default());
        let url = http::url(
            &guc::text(&super::settings::MICROSOFT_GRAPH_BASE_URL),
            "/v1.0/me/sendMail",
        );
        http::post_json(
            &url,
            &[("Authorization", &auth)],
            &wire::send_json(req.email, req.id),
        )
    }
}

impl crate::email::drafts::DraftBox for Microsoft {
    fn provider(&self) -> &'static str {
        "microsoft"
    }
    fn draft_scopes(&self) -> &'static [&'static str] {
        &["Mail.ReadWrite"]
    }
    /// `POST {crm.microsoft_graph_base_url}/v1.0/me/messages`: the message, unsent, in Drafts.
    fn create(
        &self,
        email: &crm_core::email::Outgoing,
        id: &str,
        _thread_id: Option<&str>,
        token: String,
    ) -> Answer {
        let url = http::url(
            &guc::text(&super::settings::MICROSOFT_GRAPH_BASE_URL),
            "/v1.0/me/messages",
        );
        http::bearer_interruptible("POST", url, token, Some(wire::draft_json(email, id)))
    }
    fn draft(&self, answer: &Answer) -> Option<serde_json::Value> {
        wire::draft_answer(&answer.body)
    }
}
