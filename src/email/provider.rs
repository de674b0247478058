//! The send-email capability's trait: what a provider implements to send email (Resend,
//! Gmail, Microsoft Graph, SMTP, each in `crate::integrations::<provider>`). A provider turns
//! one rendered email into one request and hands back the answer as it came; what the answer
//! means (sent, retry, failed) is decided in one place, `crm_core::runtime::outcome`.

use crm_core::email::Outgoing;
use crm_core::runtime::outcome::Answer;

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
    /// Requests per second this server may send (its `crm.<name>_rate_limit`; 0 = unlimited),
    /// paced cluster-wide by `crate::runtime::limiter`.
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

/// The provider of `email_queue.provider` (registered in `crate::integrations`).
pub fn by_name(name: &str) -> Option<&'static dyn Provider> {
    crate::integrations::EMAIL_PROVIDERS
        .iter()
        .copied()
        .find(|p| p.name() == name)
}
