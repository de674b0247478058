//! `calendar.sync_job`: a job's schedule becomes an event on its technician's Google Calendar
//! (else the account's default calendar connection), kept in step as the job changes; the
//! trigger on `crm.jobs` (sql/calendar.sql) queues one coalesced task per job, so the request
//! happens after the user's commit, and five reschedules before the worker runs cost one.
//!
//! Actions, from the job and its mapping (`crm.calendar_events`):
//! - scheduled, no event yet → insert under the id derived from the job; a 409 (our earlier
//!   insert succeeded but its answer was lost) → update that event instead;
//! - scheduled, event on the same calendar → update; 404/410 (deleted in Google) → insert the
//!   next generation;
//! - scheduled, event on another calendar (reassigned) → delete there, insert here;
//! - cancelled, unscheduled, deleted, or no calendar to put it on → delete the event
//!   (404/410 count as deleted).
//!
//! 401 → the token is refreshed once and the request repeated; quota 403s and 429 are retried
//! by the shared rules; a calendar that does not exist (404 on insert) fails the task and
//! records the reason on the connection.

use super::settings::{CALENDAR_RATE_LIMIT, CALENDAR_SEND_UPDATES, GOOGLE_CALENDAR_BASE_URL};
use crate::guc;
use crate::runtime::http;
use crate::runtime::limiter::{self, Lane};
use crate::runtime::oauth::{Connection, ConnectionUpdate, Mailboxes, NoToken};
use crate::runtime::tasks::{Ran, Step, Task, TaskKind};
use chrono::{DateTime, Utc};
use crm_core::integrations::google::calendar::{self as wire, JobEvent};
use crm_core::runtime::outcome::Answer;
use crm_core::template::budget::Checkpoint;
use serde::Deserialize;
use serde_json::{json, Value};

pub struct SyncJob;

#[derive(Debug, Deserialize)]
struct Job {
    id: String,
    title: String,
    description: Option<String>,
    status: String,
    start: Option<f64>,
    end: Option<f64>,
    address: Option<String>,
    customer: Option<String>,
}

#[derive(Debug, Deserialize)]
struct Target {
    #[serde(flatten)]
    connection: Connection,
    calendar_id: String,
}

#[derive(Debug, Deserialize)]
struct Mapping {
    connection_id: Option<String>,
    calendar_id: String,
    event_id: String,
    generation: i32,
    connection: Option<Connection>,
}

#[derive(Debug, Deserialize)]
struct Context {
    job: Option<Job>,
    target: Option<Target>,
    mapping: Option<Mapping>,
    time_zone: String,
    app_base_url: Option<String>,
}

/// What the record step applies (crm._apply_calendar_sync).
#[derive(Default)]
struct Apply {
    mapping: Option<Value>,
    delete_mapping: bool,
    connection_error: Option<(String, String)>,
}

/// One calendar connection's requests: its token (refreshed once on a 401) and its lane.
struct Calendar<'a> {
    connection: &'a Connection,
    calendar_id: &'a str,
    mailboxes: &'a mut Mailboxes,
    checkpoint: Checkpoint,
}

enum Failure {
    Answer(Answer, &'static str),
    Token(String),
    Stopped,
}

impl Calendar<'_> {
    fn url(&self, event_id: Option<&str>) -> String {
        let base = guc::text(&GOOGLE_CALENDAR_BASE_URL);
        let cal = urlencode(self.calendar_id);
        let sends = guc::text(&CALENDAR_SEND_UPDATES);
        let sends = if matches!(sends.as_str(), "none" | "all" | "externalOnly") {
            sends
        } else {
            "none".into()
        };
        match event_id {
            Some(id) => http::url(
                &base,
                &format!("/calendar/v3/calendars/{cal}/events/{id}?sendUpdates={sends}"),
            ),
            None => http::url(
                &base,
                &format!("/calendar/v3/calendars/{cal}/events?sendUpdates={sends}"),
            ),
        }
    }

    /// One request, with a refresh and one repeat after a 401.
    fn call(
        &mut self,
        method: &str,
        event_id: Option<&str>,
        body: Option<&Value>,
    ) -> Result<Answer, Failure> {
        let lane = Lane {
            provider: "google_calendar",
            key: Some(self.connection.id.clone()),
        };
        let mut refreshed = false;
        loop {
            let token = match self.mailboxes.token(self.connection, refreshed) {
                Ok(t) => t,
                Err(NoToken::Revoked(r) | NoToken::Unusable(r)) => return Err(Failure::Token(r)),
                Err(NoToken::Failed(answer, what)) => return Err(Failure::Answer(answer, what)),
            };
            if !limiter::pace(&lane, CALENDAR_RATE_LIMIT.get(), self.checkpoint) {
                return Err(Failure::Stopped);
            }
            let answer = wire::normalised(http::bearer(method, &self.url(event_id), &token, body));
            if answer.status == Some(429) {
                limiter::slow_down(&lane, answer.retry_after.as_deref());
            }
            if answer.status == Some(401) && !refreshed {
                refreshed = true;
                continue;
            }
            return Ok(answer);
        }
    }
}

/// Percent-encoding of a calendar id for a path segment (ids are addresses like
/// `abc@group.calendar.google.com`, or `primary`), and of sync and page tokens in a query.
/// By hand: form_urlencoded would write a space as `+`, which is not a space in a path.
pub(super) fn urlencode(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

fn ok(a: &Answer) -> bool {
    matches!(a.status, Some(200..=299))
}

fn gone(a: &Answer) -> bool {
    matches!(a.status, Some(404 | 410))
}

impl SyncJob {
    /// Delete the mapped event (404/410: already gone).
    fn delete(
        mapping: &Mapping,
        mailboxes: &mut Mailboxes,
        checkpoint: Checkpoint,
    ) -> Result<(), Failure> {
        let Some(connection) = mapping.connection.as_ref() else {
            // The connection was deleted: nothing can reach the event any more.
            return Ok(());
        };
        let mut cal = Calendar {
            connection,
            calendar_id: &mapping.calendar_id,
            mailboxes,
            checkpoint,
        };
        let answer = cal.call("DELETE", Some(&mapping.event_id), None)?;
        if ok(&answer) || gone(&answer) {
            Ok(())
        } else {
            Err(Failure::Answer(answer, "calendar delete: "))
        }
    }

    /// Update `existing`, or insert at `first_generation` (409: it is there already, from an
    /// insert whose answer was lost: update it); a 404/410 on update inserts the next
    /// generation.
    fn put(
        job_id: &str,
        body: &Value,
        target: &Target,
        existing: Option<(String, i32)>,
        first_generation: i32,
        mailboxes: &mut Mailboxes,
        checkpoint: Checkpoint,
    ) -> Result<(String, i32, Option<String>), Failure> {
        let mut cal = Calendar {
            connection: &target.connection,
            calendar_id: &target.calendar_id,
            mailboxes,
            checkpoint,
        };
        let mut generation = match &existing {
            Some((event_id, generation)) => {
                let answer = cal.call("PUT", Some(event_id), Some(body))?;
                if ok(&answer) {
                    return Ok((event_id.clone(), *generation, wire::etag(&answer.body)));
                }
                if !gone(&answer) {
                    return Err(Failure::Answer(answer, "calendar update: "));
                }
                generation + 1
            }
            None => first_generation,
        };
        // A few generations at most: each 409 on an id we never recorded means an insert of
        // ours whose answer was lost, which we then update rather than duplicate.
        for _ in 0..3 {
            let event_id = wire::event_id(job_id, generation);
            let mut with_id = body.clone();
            with_id["id"] = json!(event_id);
            let answer = cal.call("POST", None, Some(&with_id))?;
            if ok(&answer) {
                return Ok((event_id, generation, wire::etag(&answer.body)));
            }
            if answer.status == Some(409) {
                let again = cal.call("PUT", Some(&event_id), Some(body))?;
                if ok(&again) {
                    return Ok((event_id, generation, wire::etag(&again.body)));
                }
                if gone(&again) {
                    // deleted in Google since: a fresh id
                    generation += 1;
                    continue;
                }
                return Err(Failure::Answer(again, "calendar update: "));
            }
            return Err(Failure::Answer(answer, "calendar insert: "));
        }
        Err(Failure::Answer(
            Answer {
                status: Some(500),
                body: "three generations of the job's event were taken".into(),
                ..Answer::default()
            },
            "calendar insert: ",
        ))
    }
}

fn to_time(secs: f64) -> Option<DateTime<Utc>> {
    DateTime::<Utc>::from_timestamp_millis((secs * 1000.0).round() as i64)
}

impl TaskKind for SyncJob {
    fn name(&self) -> &'static str {
        "calendar.sync_job"
    }
    fn description(&self) -> &'static str {
        "put a job's schedule on its technician's (else the account's) Google Calendar, or take it off (payload {\"job_id\": uuid}); queued by a trigger on crm.jobs"
    }
    fn max_attempts(&self) -> i32 {
        8
    }
    fn check(&self, payload: &Value) -> Result<(), String> {
        let id = payload
            .get("job_id")
            .and_then(Value::as_str)
            .ok_or("the payload needs job_id")?;
        crm_core::email::message::is_uuid(id)
            .then_some(())
            .ok_or_else(|| "job_id must be a uuid".into())
    }
    fn context_sql(&self) -> Option<&'static str> {
        Some(include_str!("calendar_context.sql"))
    }
    fn apply_sql(&self) -> Option<&'static str> {
        Some("SELECT crm._apply_calendar_sync($1::uuid, $2, $3)")
    }
    fn run(&self, task: &Task, checkpoint: Checkpoint) -> Ran {
        let ctx: Context = match serde_json::from_value(task.context.clone()) {
            Ok(c) => c,
            Err(e) => {
                return Step::Failed(format!("the job's calendar context cannot be read: {e}"))
                    .into()
            }
        };
        let mut mailboxes = Mailboxes::default();
        let mut apply = Apply::default();
        let step = self.decide(task, &ctx, &mut mailboxes, &mut apply, checkpoint);
        let mut value = json!({});
        if let Some(m) = apply.mapping {
            value["mapping"] = m;
        }
        if apply.delete_mapping {
            value["delete_mapping"] = json!(true);
        }
        if let Some((id, error)) = apply.connection_error {
            value["connection_error"] = json!({"id": id, "error": error});
        }
        let updates: Vec<ConnectionUpdate> = mailboxes.updates();
        if !updates.is_empty() {
            value["connections"] = json!(updates);
        }
        Ran {
            step,
            apply: Some(value),
        }
    }
}

impl SyncJob {
    fn decide(
        &self,
        task: &Task,
        ctx: &Context,
        mailboxes: &mut Mailboxes,
        apply: &mut Apply,
        checkpoint: Checkpoint,
    ) -> Step {
        let failed = |f: Failure| match f {
            Failure::Answer(a, what) => Step::Answered(a, what),
            Failure::Token(reason) => Step::Failed(reason),
            Failure::Stopped => Step::Answered(
                Answer {
                    error: Some("the runner stopped before the request".into()),
                    ..Answer::default()
                },
                "calendar: ",
            ),
        };
        let scheduled = ctx.job.as_ref().and_then(|j| {
            let (s, e) = (to_time(j.start?)?, to_time(j.end.or(j.start)?)?);
            (j.status != "cancelled").then_some((j, s, e))
        });
        let (Some((job, start, end)), Some(target)) = (scheduled, ctx.target.as_ref()) else {
            // Off the calendar: delete what we put there.
            return match &ctx.mapping {
                None => Step::Done(json!({"action": "none"})),
                Some(m) => match Self::delete(m, mailboxes, checkpoint) {
                    Ok(()) => {
                        apply.delete_mapping = true;
                        Step::Done(json!({"action": "deleted", "event_id": m.event_id}))
                    }
                    Err(f) => failed(f),
                },
            };
        };
        let body = wire::event_body(&JobEvent {
            job_id: &job.id,
            account_id: &task.account_id,
            title: &job.title,
            customer: job.customer.as_deref(),
            address: job.address.as_deref(),
            notes: job.description.as_deref(),
            start,
            end,
            time_zone: &ctx.time_zone,
            app_base_url: ctx.app_base_url.as_deref(),
        });
        // Reassigned to another calendar: off the old one first.
        let mut existing = None;
        let mut moved = false;
        if let Some(m) = &ctx.mapping {
            let same = m.connection_id.as_deref() == Some(target.connection.id.as_str())
                && m.calendar_id == target.calendar_id;
            if same {
                existing = Some((m.event_id.clone(), m.generation));
            } else {
                if let Err(f) = Self::delete(m, mailboxes, checkpoint) {
                    return failed(f);
                }
                moved = true;
            }
        }
        let base_generation = ctx
            .mapping
            .as_ref()
            .map_or(0, |m| m.generation + i32::from(moved));
        let result = Self::put(
            &job.id,
            &body,
            target,
            existing,
            base_generation,
            mailboxes,
            checkpoint,
        );
        match result {
            Ok((event_id, generation, etag)) => {
                apply.mapping = Some(json!({
                    "connection_id": target.connection.id, "calendar_id": target.calendar_id,
                    "event_id": event_id, "generation": generation, "etag": etag
                }));
                Step::Done(
                    json!({"action": if moved { "moved" } else { "upserted" }, "event_id": event_id, "generation": generation}),
                )
            }
            Err(Failure::Answer(a, what))
                if a.status == Some(404) && what == "calendar insert: " =>
            {
                let reason = format!(
                    "the calendar {} does not exist or this account cannot see it",
                    target.calendar_id
                );
                apply.connection_error = Some((target.connection.id.clone(), reason.clone()));
                Step::Failed(reason)
            }
            Err(f) => failed(f),
        }
    }
}

/// Whether `name` is an IANA time zone (the CHECK on `accounts.time_zone`).
#[pgrx::pg_extern(immutable, parallel_safe)]
fn _is_time_zone(name: &str) -> bool {
    name.len() <= 64 && crm_core::template::dates::parse_timezone(name).is_some()
}
