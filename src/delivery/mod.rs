//! Email delivery, the SQL shell: `crm._validate_email_message` / `_validate_email_batch`
//! (enqueue's validation, from `crm_core::delivery::message`) and `crm.process_email_queue`:
//! claim due rows (sql/delivery.sql), render (`render`) and send them (`send`, through
//! `providers::*`), record the outcomes.
//!
//! A Resend send carries `Idempotency-Key`: the queue row's id, or for a batch request the
//! group's `send_key`, stored at claim time; so a row re-sent after a crash between the
//! provider's 2xx and our status update is dropped by the provider. Gmail, Graph and SMTP have
//! no such key (see the README's delivery guarantees).

mod http;
mod oauth;
mod pacing;
mod providers;
mod render;
mod send;
pub mod worker;

use crate::guc;
use crate::json_arg::JsonbArg;
use chrono::Utc;
use crm_core::delivery::message::{self, Invalid, Limits};
use pgrx::prelude::*;
use pgrx::JsonB;
use serde_json::{json, Value};

fn raise_invalid(e: &Invalid) -> ! {
    crate::errors::raise(
        PgSqlErrorCode::ERRCODE_INVALID_PARAMETER_VALUE,
        e.to_string(),
        None,
        "crm.delivery",
    )
}

fn limits() -> Limits {
    Limits {
        max_attachment_bytes: guc::EMAIL_MAX_ATTACHMENT_BYTES.get().max(0) as usize,
        max_variables_bytes: guc::MAX_JSON_ARGUMENT_BYTES.get().max(0) as usize,
        ..Limits::default()
    }
}

/// The largest message argument: crm.max_json_argument_bytes for everything but attachments,
/// plus twice crm.email_max_attachment_bytes for the attachments (base64 is 4/3 of them; the
/// margin lets validation name an attachment that is a little too large).
fn max_message_bytes() -> usize {
    let json = guc::MAX_JSON_ARGUMENT_BYTES.get().max(0) as usize;
    json.saturating_add((guc::EMAIL_MAX_ATTACHMENT_BYTES.get().max(0) as usize).saturating_mul(2))
}

/// Validate and normalize one message for `crm.enqueue_email` (22023 naming the field; 54000
/// when the argument is over its size limit).
#[pg_extern(stable, parallel_safe)]
fn _validate_email_message(message: JsonbArg) -> JsonB {
    let message = message.parse("message", max_message_bytes(), "crm.delivery");
    JsonB(message::validate(&message, &limits(), Utc::now()).unwrap_or_else(|e| raise_invalid(&e)))
}

/// Validate and normalize a batch (a JSON array of at most 100 messages; four times a
/// message's size limit in all).
#[pg_extern(stable, parallel_safe)]
fn _validate_email_batch(messages: JsonbArg) -> JsonB {
    let messages = messages.parse(
        "messages",
        max_message_bytes().saturating_mul(4),
        "crm.delivery",
    );
    JsonB(json!(message::validate_batch(
        &messages,
        &limits(),
        Utc::now()
    )
    .unwrap_or_else(|e| raise_invalid(&e))))
}

/// Claim up to `max_items` due rows (SPI; the caller owns the transaction). Returns the rows
/// to send and, for rows that cannot even be read (JSON nested deeper than serde_json
/// takes, from a direct insert by a privileged role), their "failed" outcomes: each row is
/// parsed on its own, so one bad row fails alone and never stops the queue.
pub(crate) fn claim(max_items: i32) -> (Vec<Value>, Vec<Value>) {
    let lease = guc::EMAIL_LEASE_SECONDS.get() as f64;
    let batch = guc::RESEND_BATCH.get();
    let rows: Vec<(Option<String>, Option<String>)> = Spi::connect(|client| {
        client
            .select(
                "SELECT j ->> 'id', j::text FROM json_array_elements(crm._claim_emails($1, $2, $3)) j",
                None,
                &[max_items.into(), lease.into(), batch.into()],
            )?
            .map(|row| Ok((row.get::<String>(1)?, row.get::<String>(2)?)))
            .collect::<Result<Vec<_>, pgrx::spi::Error>>()
    })
    .unwrap_or_else(|e| pgrx::error!("claiming emails failed: {e}"));
    let mut jobs = Vec::with_capacity(rows.len());
    let mut unreadable = Vec::new();
    for (id, text) in rows {
        match crate::json_arg::parse_json_text(text.as_deref().unwrap_or("null")) {
            Ok(job) => jobs.push(job),
            Err(e) => unreadable.push(json!({"id": id, "outcome": "failed", "error": format!("the row cannot be sent: {e}")})),
        }
    }
    (jobs, unreadable)
}

/// Record outcomes and mailbox connection changes (SPI; the caller owns the transaction).
pub(crate) fn record(outcomes: &[Value], connections: &[Value]) {
    if outcomes.is_empty() && connections.is_empty() {
        return;
    }
    Spi::run_with_args(
        "SELECT crm._record_email_outcomes($1, $2)",
        &[
            pgrx::Json(json!(outcomes)).into(),
            pgrx::Json(json!(connections)).into(),
        ],
    )
    .unwrap_or_else(|e| pgrx::error!("recording outcomes failed: {e}"));
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
    let (jobs, mut outcomes) = claim(max_items);
    let (sent, connections) = send::send_all(&jobs, crate::templates::check_interrupts);
    outcomes.extend(sent);
    record(&outcomes, &connections);
    let count = |k: &str| outcomes.iter().filter(|o| o["outcome"] == k).count();
    JsonB(
        json!({"claimed": outcomes.len(), "sent": count("sent"), "retried": count("retry"), "failed": count("failed")}),
    )
}
