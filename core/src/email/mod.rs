//! The send-email capability, the parts that need no database or network: message validation
//! for `crm.enqueue_email` and the RFC 5322 message (`mime`). Providers' wire formats are in
//! `integrations/<provider>`.

pub mod message;
pub mod mime;

use serde_json::Value;

/// One email ready to hand to a provider: content rendered, sender resolved.
#[derive(Debug, Clone, PartialEq)]
pub struct Outgoing {
    pub from: String,
    pub to: Vec<String>,
    pub cc: Vec<String>,
    pub bcc: Vec<String>,
    pub reply_to: Option<String>,
    pub subject: String,
    pub html: Option<String>,
    pub text: Option<String>,
    pub headers: Value,
    pub attachments: Value,
}

/// The `id` of a JSON answer (`{"id": "..."}`: Resend's `POST /emails`, Gmail's send).
pub fn id_field(body: &str) -> Option<String> {
    serde_json::from_str::<Value>(body)
        .ok()?
        .get("id")?
        .as_str()
        .map(str::to_owned)
}
