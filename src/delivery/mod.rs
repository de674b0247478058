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
use chrono::Utc;
use crm_core::delivery::message::{self, Invalid, Limits};
use pgrx::prelude::*;
use pgrx::JsonB;
use serde_json::{json, Value};

fn raise_invalid(e: &Invalid) -> ! {
    crate::errors::raise(PgSqlErrorCode::ERRCODE_INVALID_PARAMETER_VALUE, e.to_string(), None, "crm.delivery")
}

fn limits() -> Limits {
    Limits { max_attachment_bytes: guc::EMAIL_MAX_ATTACHMENT_BYTES.get().max(0) as usize, ..Limits::default() }
}

/// Validate and normalize one message for `crm.enqueue_email` (22023 naming the field).
#[pg_extern(stable, parallel_safe)]
fn _validate_email_message(message: JsonB) -> JsonB {
    JsonB(message::validate(&message.0, &limits(), Utc::now()).unwrap_or_else(|e| raise_invalid(&e)))
}

/// Validate and normalize a batch (a JSON array of at most 100 messages).
#[pg_extern(stable, parallel_safe)]
fn _validate_email_batch(messages: JsonB) -> JsonB {
    JsonB(json!(message::validate_batch(&messages.0, &limits(), Utc::now()).unwrap_or_else(|e| raise_invalid(&e))))
}

/// Claim up to `max_items` due rows (SPI; the caller owns the transaction).
pub(crate) fn claim(max_items: i32) -> Vec<Value> {
    let lease = guc::EMAIL_LEASE_SECONDS.get() as f64;
    let batch = guc::RESEND_BATCH.get();
    Spi::get_one_with_args::<pgrx::Json>("SELECT crm._claim_emails($1, $2, $3)", &[max_items.into(), lease.into(), batch.into()])
        .unwrap_or_else(|e| pgrx::error!("claiming emails failed: {e}"))
        .and_then(|j| j.0.as_array().cloned())
        .unwrap_or_default()
}

/// Record outcomes and mailbox connection changes (SPI; the caller owns the transaction).
pub(crate) fn record(outcomes: &[Value], connections: &[Value]) {
    if outcomes.is_empty() && connections.is_empty() {
        return;
    }
    Spi::run_with_args("SELECT crm._record_email_outcomes($1, $2)", &[pgrx::Json(json!(outcomes)).into(), pgrx::Json(json!(connections)).into()])
        .unwrap_or_else(|e| pgrx::error!("recording outcomes failed: {e}"));
}

/// Send due emails now: claim up to `max_items`, send, record. For pg_cron and psql:
/// `SELECT cron.schedule('email-queue', '* * * * *', 'SELECT crm.process_email_queue()')`.
/// Returns `{claimed, sent, retried, failed}`. Runs in the caller's transaction (a function
/// cannot commit); the idempotency keys make a rolled-back call safe to repeat.
#[pg_extern(volatile)]
fn process_email_queue(max_items: default!(i32, 100)) -> JsonB {
    if !(1..=10_000).contains(&max_items) {
        crate::errors::raise(PgSqlErrorCode::ERRCODE_INVALID_PARAMETER_VALUE, "max_items must be between 1 and 10000", None, "crm.delivery");
    }
    let jobs = claim(max_items);
    let (outcomes, connections) = send::send_all(&jobs);
    record(&outcomes, &connections);
    let count = |k: &str| outcomes.iter().filter(|o| o["outcome"] == k).count();
    JsonB(json!({"claimed": jobs.len(), "sent": count("sent"), "retried": count("retry"), "failed": count("failed")}))
}
