//! The email queue on the shared runtime: a claimed row (`crm._claim_emails`) and an outcome
//! (`crm._record_email_outcomes`) as typed structs, so a renamed key is an error, not a default.

use super::send;
use super::settings::EMAIL_LEASE_SECONDS;
use crate::integrations::resend::settings::RESEND_BATCH;
use crate::runtime::oauth::{Connection, ConnectionUpdate};
use crate::runtime::queue::{self, Queue, Verdict};
use crm_core::template::budget::Checkpoint;
use pgrx::prelude::*;
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

/// The template of a template email, as it is now.
#[derive(Debug, Deserialize)]
pub struct TemplateParts {
    pub subject: Option<String>,
    pub html: Option<String>,
    pub text: Option<String>,
}

/// A claimed email row, as `crm._claim_emails` builds it.
#[derive(Debug, Deserialize)]
pub struct ClaimedEmail {
    pub id: String,
    pub provider: String,
    pub from: Option<String>,
    pub to: Vec<String>,
    pub to_name: Option<String>,
    pub cc: Vec<String>,
    pub bcc: Vec<String>,
    pub reply_to: Option<String>,
    pub subject: Option<String>,
    pub html: Option<String>,
    pub text: Option<String>,
    pub headers: Value,
    pub attachments: Value,
    pub template: Option<TemplateParts>,
    pub variables: Value,
    pub thread_id: Option<String>,
    /// The Resend batch group's key (also the batch request's Idempotency-Key).
    pub send_key: Option<String>,
    /// The sending mailbox (Gmail, Microsoft), tokens still encrypted.
    pub connection: Option<Connection>,
    pub attempts: i32,
    pub max_attempts: i32,
}

/// An email's outcome for `crm._record_email_outcomes`.
#[derive(Debug, Clone, Serialize)]
pub struct EmailOutcome {
    #[serde(flatten)]
    pub verdict: Verdict,
    /// The subject as sent (a template email's rendered subject replaces the template text).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub subject: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub provider_message_id: Option<String>,
}

impl From<Verdict> for EmailOutcome {
    fn from(verdict: Verdict) -> Self {
        EmailOutcome {
            verdict,
            subject: None,
            provider_message_id: None,
        }
    }
}

pub struct EmailQueue;

impl Queue for EmailQueue {
    type Row = ClaimedEmail;
    /// Outcomes, and what was learnt about mailbox connections (refreshed or revoked tokens).
    type Done = (Vec<EmailOutcome>, Vec<ConnectionUpdate>);
    const UNREADABLE: &'static str = "the row cannot be sent";

    fn claim_json(&self, max_items: i32) -> Vec<(Option<String>, Option<String>)> {
        let lease = EMAIL_LEASE_SECONDS.get() as f64;
        let batch = RESEND_BATCH.get();
        queue::claim_array(
            "SELECT crm._claim_emails($1, $2, $3)::text",
            &[max_items.into(), lease.into(), batch.into()],
        )
    }

    fn run(&self, rows: &[ClaimedEmail], checkpoint: Checkpoint) -> Self::Done {
        send::send_all(rows, checkpoint)
    }

    fn unreadable(&self, unreadable: Vec<Verdict>) -> Self::Done {
        (unreadable.into_iter().map(Into::into).collect(), Vec::new())
    }

    fn record(&self, (outcomes, connections): &Self::Done) {
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

    fn released(done: &Self::Done) -> usize {
        done.0
            .iter()
            .filter(|o| o.verdict.outcome == "release")
            .count()
    }

    fn merge(into: &mut Self::Done, more: Self::Done) {
        into.0.extend(more.0);
        into.1.extend(more.1);
    }

    fn next_due_secs(&self) -> Option<f64> {
        Spi::get_one::<f64>(
            "SELECT extract(epoch FROM crm._next_email_due() - clock_timestamp())::float8",
        )
        .ok()
        .flatten()
    }
}
