//! Microsoft 365: Graph `POST {crm.microsoft_graph_base_url}/v1.0/me/sendMail` with the
//! mailbox's access token (crm_core::delivery::microsoft). Graph answers 202 with no body and
//! no message id, and has no idempotency key; the queue row's id travels as X-CRM-Queue-Id.

use super::{Provider, Request};
use crate::delivery::http;
use crate::guc;
use crm_core::delivery::microsoft;
use crm_core::delivery::outcome::Answer;

pub struct Microsoft;

impl Provider for Microsoft {
    fn name(&self) -> &'static str {
        "microsoft"
    }
    fn rate_limit(&self) -> f64 {
        guc::MICROSOFT_RATE_LIMIT.get()
    }
    fn needs_mailbox(&self) -> bool {
        true
    }
    fn send(&self, req: &Request) -> Answer {
        let auth = format!("Bearer {}", req.access_token.unwrap_or_default());
        let url = http::url(
            &guc::text(&guc::MICROSOFT_GRAPH_BASE_URL),
            "/v1.0/me/sendMail",
        );
        http::post_json(
            &url,
            &[("Authorization", &auth)],
            &microsoft::send_json(req.email, req.id),
        )
    }
}
