//! One send round over claimed rows: Resend batch groups first (one request per `send_key`),
//! then every other row one request each through its provider. Returns the outcomes for
//! `crm._record_email_outcomes` and the mailbox connection changes (refreshed or revoked
//! tokens). No SPI in here: the worker calls it with no transaction open.

use super::provider::{self, Provider, Request};
use super::queue::{ClaimedEmail, EmailOutcome};
use super::render::{self, NotReady};
use super::settings::{EMAIL_RETRY_BASE, EMAIL_RETRY_FACTOR};
use crate::integrations::resend;
use crate::runtime::limiter::{self, Lane};
use crate::runtime::oauth::{ConnectionUpdate, Mailboxes, NoToken};
use crate::runtime::queue::Verdict;
use chrono::Utc;
use crm_core::email::Outgoing;
use crm_core::runtime::outcome::{self, Answer, Backoff, Outcome};
use crm_core::template::budget::Checkpoint;
use crm_core::template::Options;

fn backoff() -> Backoff {
    Backoff {
        base_secs: EMAIL_RETRY_BASE.get().max(0) as f64,
        factor: EMAIL_RETRY_FACTOR.get(),
        ..Backoff::default()
    }
}

struct Round {
    backoff: Backoff,
    templates: Options,
    mailboxes: Mailboxes,
    outcomes: Vec<EmailOutcome>,
}

impl Round {
    fn failed(&mut self, job: &ClaimedEmail, error: String) {
        self.outcomes.push(Verdict::failed(&job.id, error).into());
    }

    /// Give a row back unsent (the sender is stopping, or its turn is over): due again at
    /// once, the attempt not counted.
    fn release(&mut self, job: &ClaimedEmail) {
        self.outcomes.push(Verdict::release(&job.id).into());
    }

    fn not_ready(&mut self, job: &ClaimedEmail, why: NotReady) {
        match why {
            NotReady::Interrupted => self.release(job),
            NotReady::Invalid(reason) => self.failed(job, reason),
        }
    }

    /// What `answer` means for `job`, recorded. `subject`: the subject as sent (for a
    /// template email the rendered one replaces the template text in the row, so the queue
    /// shows what the recipient got).
    fn judge(
        &mut self,
        job: &ClaimedEmail,
        answer: &Answer,
        subject: Option<&str>,
        message_id: Option<String>,
    ) {
        self.judge_as(job, answer, "", subject, message_id)
    }

    /// `what`: which request answered, when it was not the send itself ("token refresh: ").
    fn judge_as(
        &mut self,
        job: &ClaimedEmail,
        answer: &Answer,
        what: &str,
        subject: Option<&str>,
        message_id: Option<String>,
    ) {
        let judged = outcome::classify(
            answer,
            job.attempts,
            job.max_attempts,
            &self.backoff,
            Utc::now(),
        );
        let sent = matches!(judged, Outcome::Sent { .. });
        self.outcomes.push(EmailOutcome {
            verdict: Verdict::from_outcome(&job.id, &judged, "sent", what),
            subject: subject.filter(|_| sent).map(str::to_owned),
            provider_message_id: message_id.filter(|_| sent),
        });
    }

    /// One Resend batch request for the rows of one send_key.
    fn send_group(&mut self, key: &str, jobs: &[&ClaimedEmail]) {
        let mut ready: Vec<(&ClaimedEmail, Outgoing)> = Vec::with_capacity(jobs.len());
        for job in jobs {
            match render::prepare(job, &self.templates) {
                Ok(email) => ready.push((job, email)),
                Err(e) => self.not_ready(job, e),
            }
        }
        if ready.is_empty() {
            return;
        }
        let lane = Lane::provider("resend");
        if !limiter::pace(
            &lane,
            resend::Resend.rate_limit(),
            self.templates.checkpoint,
        ) {
            return ready.iter().for_each(|(job, _)| self.release(job));
        }
        let emails: Vec<&Outgoing> = ready.iter().map(|(_, e)| e).collect();
        let answer = resend::send_batch(&emails, key);
        if answer.status == Some(429) {
            limiter::slow_down(&lane, answer.retry_after.as_deref());
        }
        let ids =
            crm_core::integrations::resend::batch_message_ids(&answer.body).unwrap_or_default();
        for (i, (job, email)) in ready.iter().enumerate() {
            self.judge(
                job,
                &answer,
                Some(&email.subject),
                ids.get(i).cloned().flatten(),
            );
        }
    }

    fn send_one(&mut self, job: &ClaimedEmail) {
        let name = job.provider.as_str();
        let Some(provider) = provider::by_name(name) else {
            return self.failed(job, format!("unknown provider {name}"));
        };
        let email = match render::prepare(job, &self.templates) {
            Ok(e) => e,
            Err(e) => return self.not_ready(job, e),
        };
        let connection = job.connection.as_ref();
        if provider.needs_mailbox() && connection.is_none() {
            return self.failed(job, format!("the account has no active {name} connection"));
        }
        // Gmail's and Graph's quotas are per mailbox: one lane per connection.
        let lane = Lane {
            provider: provider.name(),
            key: connection.map(|c| c.id.clone()),
        };
        let mut refreshed_for_401 = false;
        loop {
            let token = if let Some(connection) = connection.filter(|_| provider.needs_mailbox()) {
                match self.mailboxes.token(connection, refreshed_for_401) {
                    Ok(t) => Some(t),
                    Err(NoToken::Revoked(reason) | NoToken::Unusable(reason)) => {
                        return self.failed(job, reason)
                    }
                    Err(NoToken::Failed(answer, what)) => {
                        return self.judge_as(job, &answer, what, None, None)
                    }
                }
            } else {
                None
            };
            if !limiter::pace(&lane, provider.rate_limit(), self.templates.checkpoint) {
                return self.release(job);
            }
            let req = Request {
                id: &job.id,
                email: &email,
                thread_id: job.thread_id.as_deref(),
                access_token: token.as_deref(),
            };
            let answer = provider.send(&req);
            // A token can be revoked or expire early although its recorded expiry is later:
            // refresh once and try again.
            if answer.status == Some(401) && provider.needs_mailbox() && !refreshed_for_401 {
                refreshed_for_401 = true;
                continue;
            }
            if answer.status == Some(429) {
                limiter::slow_down(&lane, answer.retry_after.as_deref());
            }
            let message_id = provider.message_id(&answer);
            return self.judge(job, &answer, Some(&email.subject), message_id);
        }
    }
}

/// Send claimed rows; returns (outcomes, connection changes). `checkpoint` is asked between
/// rows and while rendering: when it says stop, the rows not yet sent are given back.
pub fn send_all(
    jobs: &[ClaimedEmail],
    checkpoint: Checkpoint,
) -> (Vec<EmailOutcome>, Vec<ConnectionUpdate>) {
    if jobs.is_empty() {
        return (Vec::new(), Vec::new());
    }
    let mut round = Round {
        backoff: backoff(),
        templates: Options {
            checkpoint,
            ..crate::templates::options(None, None)
        },
        mailboxes: Mailboxes::default(),
        outcomes: Vec::with_capacity(jobs.len()),
    };
    // Batch groups keep the claim's order (priority first) by their first row.
    let mut groups: Vec<(&str, Vec<&ClaimedEmail>)> = Vec::new();
    for job in jobs {
        if let Some(key) = job.send_key.as_deref() {
            match groups.iter_mut().find(|(k, _)| *k == key) {
                Some((_, rows)) => rows.push(job),
                None => groups.push((key, vec![job])),
            }
        }
    }
    // A repeat must carry the same emails in the same order as the first request under its
    // key (the provider refuses a key with a different payload): order each group by row id.
    for (key, rows) in &mut groups {
        rows.sort_by(|a, b| a.id.cmp(&b.id));
        if checkpoint() {
            rows.iter().for_each(|job| round.release(job));
        } else {
            round.send_group(key, rows);
        }
    }
    for job in jobs.iter().filter(|j| j.send_key.is_none()) {
        if checkpoint() {
            round.release(job);
        } else {
            round.send_one(job);
        }
    }
    let Round {
        outcomes,
        mailboxes,
        ..
    } = round;
    (outcomes, mailboxes.updates())
}
