//! Mail drafts: `crm.create_draft` (sql/drafts.sql) puts a message in a connected mailbox's
//! Drafts folder instead of sending it. The message is the one `enqueue_email` would send,
//! built the same way (template rendered, the RFC 5322 text for Gmail, Graph's message JSON
//! for Microsoft); the `DraftBox` capability is implemented next to each mailbox provider
//! (src/integrations/google/gmail.rs, src/integrations/microsoft/mail.rs).
//!
//! A caller waits for this call, so it is the interactive kind: one request (and at most one
//! token refresh), on the interruptible path, with crm.http_timeout.

use super::queue::ClaimedEmail;
use super::render::{self, NotReady};
use crate::errors::raise;
use crate::runtime::oauth::{Mailboxes, NoToken};
use crm_core::email::Outgoing;
use crm_core::runtime::outcome::{describe, Answer};
use pgrx::prelude::*;
use pgrx::JsonB;
use serde_json::{json, Value};

const DOMAIN: &str = "crm.create_draft";

/// A mailbox that keeps drafts.
pub trait DraftBox: Sync {
    /// `email_providers.provider`.
    fn provider(&self) -> &'static str;
    /// The scopes of which the consent needs one (sending alone is not enough).
    fn draft_scopes(&self) -> &'static [&'static str];
    /// Create the draft (interruptible); `id` is its Message-ID's / X-CRM-Queue-Id's key.
    fn create(&self, email: &Outgoing, id: &str, thread_id: Option<&str>, token: String) -> Answer;
    /// {draft_id, message_id, thread_id, link} from a successful answer.
    fn draft(&self, answer: &Answer) -> Option<Value>;
}

fn draft_box(provider: &str) -> Option<&'static dyn DraftBox> {
    crate::integrations::DRAFT_BOXES
        .iter()
        .copied()
        .find(|b| b.provider() == provider)
}

/// Whether a consent allows drafts (scopes compared as `connect` does: Graph's in either form).
fn granted(scopes: &[String], needed: &[&str]) -> bool {
    scopes.iter().any(|s| {
        let short = s.trim_start_matches("https://graph.microsoft.com/");
        needed
            .iter()
            .any(|n| n.eq_ignore_ascii_case(short) || n == s)
    })
}

/// What a provider's refusal means to the caller.
fn refused(answer: &Answer) -> ! {
    use PgSqlErrorCode::*;
    let why = describe(answer);
    let (code, hint) = match answer.status {
        Some(400) | Some(413) => (ERRCODE_INVALID_PARAMETER_VALUE, None),
        Some(401) => (
            ERRCODE_INVALID_AUTHORIZATION_SPECIFICATION,
            Some("The mailbox refused the connection's token: connect it again."),
        ),
        Some(403) => (
            ERRCODE_INSUFFICIENT_PRIVILEGE,
            Some("The connection may lack the drafts scope: connect the mailbox again."),
        ),
        Some(429) => (
            ERRCODE_CONFIGURATION_LIMIT_EXCEEDED,
            Some("Try again later."),
        ),
        _ => (ERRCODE_CONNECTION_EXCEPTION, Some("Try again later.")),
    };
    raise(
        code,
        format!("the draft was not created: {why}"),
        hint,
        DOMAIN,
    )
}

/// Create a draft for `request` = {provider, id, message (the claim's shape:
/// crm._claim_emails' row, connection included)}; returns {draft: {...}, connections: [...]}.
/// Errors carry the provider's answer.
#[pg_extern(volatile)]
fn _create_draft(request: JsonB) -> JsonB {
    let job: ClaimedEmail = serde_json::from_value(request.0).unwrap_or_else(|e| {
        raise(
            PgSqlErrorCode::ERRCODE_INTERNAL_ERROR,
            format!("the draft request cannot be read: {e}"),
            None,
            DOMAIN,
        )
    });
    let Some(mailbox) = draft_box(&job.provider) else {
        raise(
            PgSqlErrorCode::ERRCODE_FEATURE_NOT_SUPPORTED,
            format!("{} keeps no drafts (Gmail and Microsoft do)", job.provider),
            None,
            DOMAIN,
        )
    };
    let Some(connection) = job.connection.as_ref() else {
        raise(
            PgSqlErrorCode::ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE,
            format!("the account has no active {} mailbox", job.provider),
            None,
            DOMAIN,
        )
    };
    if !granted(&connection.scopes, mailbox.draft_scopes()) {
        raise(
            PgSqlErrorCode::ERRCODE_INSUFFICIENT_PRIVILEGE,
            format!(
                "the {} connection was not granted {}",
                job.provider,
                mailbox.draft_scopes().join(" or ")
            ),
            Some("Connect the mailbox again: the connect flow asks for the drafts scope."),
            DOMAIN,
        )
    }
    let options = crate::templates::options(None, None);
    let email = match render::prepare(&job, &options) {
        Ok(e) => e,
        Err(NotReady::Interrupted) => {
            pgrx::check_for_interrupts!();
            raise(
                PgSqlErrorCode::ERRCODE_QUERY_CANCELED,
                "rendering the draft was interrupted",
                None,
                DOMAIN,
            )
        }
        Err(NotReady::Invalid(why)) => raise(
            PgSqlErrorCode::ERRCODE_INVALID_PARAMETER_VALUE,
            format!("message: {why}"),
            None,
            DOMAIN,
        ),
    };
    let mut mailboxes = Mailboxes::interactive();
    let mut refreshed = false;
    loop {
        let token = match mailboxes.token(connection, refreshed) {
            Ok(t) => t,
            Err(NoToken::Revoked(why) | NoToken::Unusable(why)) => raise(
                PgSqlErrorCode::ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE,
                why,
                Some("Connect the mailbox again."),
                DOMAIN,
            ),
            Err(NoToken::Failed(answer, _)) => refused(&answer),
        };
        let answer = mailbox.create(&email, &job.id, job.thread_id.as_deref(), token);
        if answer.status == Some(401) && !refreshed {
            refreshed = true;
            continue;
        }
        if !matches!(answer.status, Some(200..=299)) {
            refused(&answer);
        }
        let Some(draft) = mailbox.draft(&answer) else {
            refused(&Answer {
                status: Some(502),
                body: "an answer without the draft's id".into(),
                ..answer
            })
        };
        return JsonB(json!({"draft": draft, "connections": mailboxes.updates()}));
    }
}
