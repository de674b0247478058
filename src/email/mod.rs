//! The send-email capability, the SQL shell: `crm._validate_email_message` /
//! `_validate_email_batch` (enqueue's validation, from `crm_core::email::message`) and
//! `crm.process_email_queue`. The queue (`queue`: claim, record) runs on the shared runtime
//! (`crate::runtime::queue`); `send` renders (`render`) and sends each row through its
//! provider (`provider::EmailProvider`, implemented in `crate::integrations::<provider>`).
//!
//! A Resend send carries `Idempotency-Key`: the queue row's id, or for a batch request the
//! group's `send_key`, stored at claim time; so a row re-sent after a crash between the
//! provider's 2xx and our status update is dropped by the provider. Gmail, Graph and SMTP have
//! no such key (see the README's delivery guarantees).

pub mod drafts;
pub mod provider;
pub mod queue;
mod render;
mod send;
pub mod settings;

use crate::guc;
use crate::json_arg::JsonbArg;
use crate::runtime::queue::process_in_transaction;
use chrono::Utc;
use crm_core::email::message::{self, Invalid, Limits};
use pgrx::prelude::*;
use pgrx::JsonB;
use queue::EmailQueue;
use serde_json::json;
use settings::*;

fn raise_invalid(e: &Invalid) -> ! {
    crate::errors::raise(
        PgSqlErrorCode::ERRCODE_INVALID_PARAMETER_VALUE,
        e.to_string(),
        None,
        "crm.delivery",
    )
}

thread_local! {
    /// The backend's generator of queue row ids (seeded from the OS on first use).
    static ROW_IDS: std::cell::RefCell<crm_core::ids::UuidV7Source> =
        std::cell::RefCell::new(crm_core::ids::UuidV7Source::new());
}

fn limits() -> Limits {
    Limits {
        max_attachment_bytes: EMAIL_MAX_ATTACHMENT_BYTES.get().max(0) as usize,
        max_variables_bytes: guc::MAX_JSON_ARGUMENT_BYTES.get().max(0) as usize,
        ..Limits::default()
    }
}

/// The largest message argument: crm.max_json_argument_bytes for everything but attachments,
/// plus twice crm.email_max_attachment_bytes for the attachments (base64 is 4/3 of them; the
/// margin lets validation name an attachment that is a little too large).
fn max_message_bytes() -> usize {
    let json = guc::MAX_JSON_ARGUMENT_BYTES.get().max(0) as usize;
    json.saturating_add((EMAIL_MAX_ATTACHMENT_BYTES.get().max(0) as usize).saturating_mul(2))
}

/// One message argument, within its size limit (54000 over it, 22023 when not JSON serde takes).
fn parse_message(message: &JsonbArg) -> serde_json::Value {
    message.parse("message", max_message_bytes(), "crm.delivery")
}

/// A batch argument: four times a message's size limit in all.
fn parse_batch(messages: &JsonbArg) -> serde_json::Value {
    messages.parse(
        "messages",
        max_message_bytes().saturating_mul(4),
        "crm.delivery",
    )
}

/// Validate and normalize one message (22023 naming the field; 54000 when the argument is over
/// its size limit). Drafts use it; enqueue uses `_validate_email_rows`.
#[pg_extern(stable, parallel_safe)]
fn _validate_email_message(message: JsonbArg) -> JsonB {
    let message = parse_message(&message);
    JsonB(message::validate(&message, &limits(), Utc::now()).unwrap_or_else(|e| raise_invalid(&e)))
}

/// Validate and normalize a batch (a JSON array of at most 100 messages). No longer called by
/// the schema (enqueue uses `_validate_email_rows`); kept because the frozen 0.4.0→0.5.0 update
/// script creates it from this library's symbol.
#[pg_extern(stable, parallel_safe)]
fn _validate_email_batch(messages: JsonbArg) -> JsonB {
    let messages = parse_batch(&messages);
    JsonB(json!(message::validate_batch(
        &messages,
        &limits(),
        Utc::now()
    )
    .unwrap_or_else(|e| raise_invalid(&e))))
}

/// NULL instead of an empty array (most messages have no cc or bcc: no array to build)
fn non_empty(v: Vec<String>) -> Option<crate::text_array::TextArray> {
    (!v.is_empty()).then_some(crate::text_array::TextArray(v))
}

fn non_empty_object(m: serde_json::Map<String, serde_json::Value>) -> Option<JsonB> {
    (!m.is_empty()).then_some(JsonB(serde_json::Value::Object(m)))
}

/// Validate a batch (`batch`: a JSON array of 1..=100 messages, errors naming `[i].field`) or
/// one message, and return the messages as rows in their order (`ord` from 1), what
/// `crm._enqueue` inserts. The same validation and limits as `_validate_email_batch` /
/// `_validate_email_message`. `id` is each row's new id, a UUIDv7 (`crm_core::ids`: cheaper
/// than `gen_random_uuid()`, and the primary key grows at its right edge). Other columns are
/// named after the queue's (`scheduled_at` as text, cast in SQL); the JSON columns, `cc` and
/// `bcc` are NULL when empty, so the common message (no variables, headers, attachments,
/// metadata, cc or bcc) builds no jsonb and one array.
// (pgrx reads the row type from the signature itself: it cannot be a type alias; volatile, as
// gen_random_uuid() is: every call makes new ids)
#[allow(clippy::type_complexity)]
#[pg_extern(volatile, parallel_safe)]
fn _validate_email_rows(
    messages: JsonbArg,
    batch: bool,
) -> TableIterator<
    'static,
    (
        name!(ord, i32),
        name!(id, pgrx::Uuid),
        name!(account_id, Option<pgrx::Uuid>),
        name!(to_addresses, crate::text_array::TextArray),
        name!(cc, Option<crate::text_array::TextArray>),
        name!(bcc, Option<crate::text_array::TextArray>),
        name!(recipient_name, Option<String>),
        name!(subject, Option<String>),
        name!(html_content, Option<String>),
        name!(text_content, Option<String>),
        name!(template_name, Option<String>),
        name!(template_variables, Option<JsonB>),
        name!(from_email, Option<String>),
        name!(reply_to, Option<String>),
        name!(headers, Option<JsonB>),
        name!(attachments, Option<JsonB>),
        name!(scheduled_at, Option<String>),
        name!(priority, i32),
        name!(max_attempts, i32),
        name!(provider, Option<String>),
        name!(metadata, Option<JsonB>),
        name!(idempotency_key, Option<String>),
    ),
> {
    let now = Utc::now();
    let queued = if batch {
        let v = parse_batch(&messages);
        message::validate_batch_queued(&v, &limits(), now)
    } else {
        let v = parse_message(&messages);
        message::validate_queued(&v, &limits(), now).map(|m| vec![m])
    }
    .unwrap_or_else(|e| raise_invalid(&e));
    let now_ms = u64::try_from(now.timestamp_millis()).unwrap_or(0);
    let ids: Vec<pgrx::Uuid> = ROW_IDS.with_borrow_mut(|ids| {
        queued
            .iter()
            .map(|_| pgrx::Uuid::from_bytes(ids.next(now_ms)))
            .collect()
    });
    TableIterator::new(queued.into_iter().zip(ids).zip(1..).map(|((m, id), ord)| {
        (
            ord,
            id,
            // validated: 32 hex digits or 8-4-4-4-12
            m.account_id
                .as_deref()
                .and_then(crm_core::ids::parse_uuid)
                .map(pgrx::Uuid::from_bytes),
            crate::text_array::TextArray(m.to),
            non_empty(m.cc),
            non_empty(m.bcc),
            m.to_name,
            m.subject,
            m.html,
            m.text,
            m.template,
            non_empty_object(m.variables),
            m.from,
            m.reply_to,
            non_empty_object(m.headers),
            (!m.attachments.is_empty()).then_some(JsonB(serde_json::Value::Array(m.attachments))),
            m.scheduled_at,
            m.priority,
            m.max_attempts,
            m.provider,
            non_empty_object(m.metadata),
            m.idempotency_key,
        )
    }))
}

/// Send due emails now: claim up to `max_items`, send, record. For pg_cron and psql:
/// `SELECT cron.schedule('email-queue', '* * * * *', 'SELECT crm.process_email_queue()')`.
/// Returns `{claimed, sent, retried, failed}`. Runs in the caller's transaction (a function
/// cannot commit); the idempotency keys make a rolled-back call safe to repeat.
#[pg_extern(volatile)]
fn process_email_queue(max_items: default!(i32, 100)) -> JsonB {
    if !(1..=10_000).contains(&max_items) {
        crate::errors::raise(
            PgSqlErrorCode::ERRCODE_INVALID_PARAMETER_VALUE,
            "max_items must be between 1 and 10000",
            None,
            "crm.delivery",
        );
    }
    let (outcomes, _) =
        process_in_transaction(&EmailQueue, max_items, crate::templates::check_interrupts);
    let count = |k: &str| outcomes.iter().filter(|o| o.verdict.outcome == k).count();
    JsonB(
        json!({"claimed": outcomes.len(), "sent": count("sent"), "retried": count("retry"), "failed": count("failed")}),
    )
}
