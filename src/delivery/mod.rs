//! Email delivery, the SQL shell: `crm._validate_email_message` / `_validate_email_batch`
//! (enqueue's validation, from `crm_core::delivery::message`) and `crm.process_email_queue`:
//! claim due rows (sql/delivery.sql), render and send them, record the outcomes.
//!
//! Each send carries `Idempotency-Key: <queue row id>`, so a row re-sent after a crash
//! between the provider's 2xx and our status update is dropped by the provider.

mod resend;
pub mod worker;

use crate::guc;
use chrono::Utc;
use crm_core::delivery::message::{self, Invalid, Limits};
use crm_core::delivery::outcome::{self, Backoff, Outcome};
use crm_core::delivery::Outgoing;
use crm_core::template::{Format, Options};
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

/// A claimed row made ready to send, or the reason it cannot be. `base` carries the template
/// settings (time zone, limits), read once per batch.
fn prepare(job: &Value, base: &Options) -> Result<Outgoing, String> {
    let strs = |k: &str| -> Vec<String> {
        job[k].as_array().map(|a| a.iter().filter_map(|v| v.as_str().map(str::to_owned)).collect()).unwrap_or_default()
    };
    let s = |k: &str| job[k].as_str().map(str::to_owned);
    let (subject, html, text) = match job.get("template").filter(|t| !t.is_null()) {
        None => (s("subject").unwrap_or_default(), s("html"), s("text")),
        Some(t) => {
            let vars = job["variables"].clone();
            let render = |src: Option<&str>, format| -> Result<Option<String>, String> {
                let Some(src) = src else { return Ok(None) };
                let opts = Options { format, ..*base };
                crate::templates::with_engine(|e| e.render(src, vars.clone(), &opts)).map(Some).map_err(|e| format!("template: {e}"))
            };
            let html = render(t["html"].as_str(), Format::Html)?;
            let text = match render(t["text"].as_str(), Format::Text)? {
                Some(t) => Some(t),
                None => html.as_deref().map(crm_core::template::text::html_to_text),
            };
            (render(t["subject"].as_str(), Format::Text)?.unwrap_or_default(), html, text)
        }
    };
    Ok(Outgoing {
        from: s("from").ok_or("no sender")?,
        to: strs("to"),
        cc: strs("cc"),
        bcc: strs("bcc"),
        reply_to: s("reply_to"),
        subject,
        html,
        text,
        headers: job["headers"].clone(),
        attachments: job["attachments"].clone(),
    })
}

fn backoff() -> Backoff {
    Backoff {
        base_secs: guc::EMAIL_RETRY_BASE.get().max(0) as f64,
        factor: guc::EMAIL_RETRY_FACTOR.get(),
        ..Backoff::default()
    }
}

/// Send claimed rows one request each and return `[{id, outcome, …}]` for
/// `crm._record_email_outcomes`. No SPI in here: callers decide the transactions around it.
fn send_all(jobs: &[Value]) -> Vec<Value> {
    if jobs.is_empty() {
        return Vec::new();
    }
    let backoff = backoff();
    let base = crate::templates::options(None, None);
    jobs.iter()
        .map(|job| {
            let id = job["id"].as_str().unwrap_or_default().to_string();
            let attempt = job["attempts"].as_i64().unwrap_or(1) as i32;
            let max = job["max_attempts"].as_i64().unwrap_or(3) as i32;
            let outgoing = match prepare(job, &base) {
                Ok(o) => o,
                Err(e) => return json!({"id": id, "outcome": "failed", "error": e}),
            };
            let provider = job["provider"].as_str().unwrap_or("resend");
            let answer = match provider {
                "resend" => {
                    resend::pace();
                    resend::send(&outgoing, &id)
                }
                // Enqueue refuses these; a row can only get here if it was written directly.
                // Retrying cannot help, so it fails at once.
                other => return json!({"id": id, "outcome": "failed",
                                       "error": format!("sending through {other} is not available in this version")}),
            };
            if answer.status == Some(429) {
                resend::slow_down(answer.retry_after.as_deref());
            }
            match outcome::classify(&answer, attempt, max, &backoff, Utc::now()) {
                // The subject as sent: for a template email, the rendered one replaces the
                // template text in the row, so the queue shows what the recipient got.
                Outcome::Sent { .. } => json!({"id": id, "outcome": "sent", "subject": outgoing.subject,
                                               "provider_message_id": crm_core::delivery::resend::message_id(&answer.body)}),
                Outcome::Retry { after_secs, error } => json!({"id": id, "outcome": "retry", "error": error, "after_seconds": after_secs}),
                Outcome::Failed { error } => json!({"id": id, "outcome": "failed", "error": error}),
            }
        })
        .collect()
}

/// Claim up to `max_items` due rows (SPI; the caller owns the transaction).
pub(crate) fn claim(max_items: i32) -> Vec<Value> {
    let lease = guc::EMAIL_LEASE_SECONDS.get() as f64;
    Spi::get_one_with_args::<JsonB>("SELECT crm._claim_emails($1, $2)", &[max_items.into(), lease.into()])
        .unwrap_or_else(|e| pgrx::error!("claiming emails failed: {e}"))
        .and_then(|j| j.0.as_array().cloned())
        .unwrap_or_default()
}

/// Record outcomes (SPI; the caller owns the transaction).
pub(crate) fn record(outcomes: &[Value]) {
    if outcomes.is_empty() {
        return;
    }
    Spi::run_with_args("SELECT crm._record_email_outcomes($1)", &[JsonB(json!(outcomes)).into()])
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
    let outcomes = send_all(&jobs);
    record(&outcomes);
    let count = |k: &str| outcomes.iter().filter(|o| o["outcome"] == k).count();
    JsonB(json!({"claimed": jobs.len(), "sent": count("sent"), "retried": count("retry"), "failed": count("failed")}))
}
