//! The four ways out, one module each behind one trait. A provider turns one rendered email
//! into one request and hands back the answer as it came; what the answer means (sent, retry,
//! failed) is decided in one place, `crm_core::delivery::outcome`.

pub mod gmail;
pub mod microsoft;
pub mod resend;
pub mod smtp;

use crm_core::delivery::outcome::Answer;
use crm_core::delivery::Outgoing;

/// One email to send, with what the provider may need besides its content.
pub struct Request<'a> {
    /// The queue row's id: the idempotency key (Resend), the Message-ID (Gmail, SMTP), the
    /// X-CRM-Queue-Id header (Graph).
    pub id: &'a str,
    pub email: &'a Outgoing,
    /// Gmail's threadId for a reply (the message's `metadata.thread_id`).
    pub thread_id: Option<&'a str>,
    /// The mailbox's OAuth access token (Gmail, Microsoft), already refreshed when due.
    pub access_token: Option<&'a str>,
}

pub trait Provider: Sync {
    /// As in `email_queue.provider`, and the key of its rate limit.
    fn name(&self) -> &'static str;
    /// Requests per second this process may send (its `crm.<name>_rate_limit`; 0 = unlimited).
    fn rate_limit(&self) -> f64;
    /// Whether it sends as a connected mailbox (an `email_providers` row and its token).
    fn needs_mailbox(&self) -> bool {
        false
    }
    fn send(&self, req: &Request) -> Answer;
    /// The provider's id of the message it accepted, when it gives one.
    fn message_id(&self, _answer: &Answer) -> Option<String> {
        None
    }
}

pub fn by_name(name: &str) -> Option<&'static dyn Provider> {
    match name {
        "resend" => Some(&resend::Resend),
        "gmail" => Some(&gmail::Gmail),
        "microsoft" => Some(&microsoft::Microsoft),
        "smtp" => Some(&smtp::Smtp),
        _ => None,
    }
}
