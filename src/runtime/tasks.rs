//! The integration task queue's runner (the SQL is sql/tasks.sql): the `TaskKind` trait each
//! integration implements for its kinds, the queue the shared runtime serves, and the SQL
//! functions `crm._check_task` (enqueue's validation), `crm.process_integration_tasks` (for
//! pg_cron) and `crm.integration_task_kinds()`.

use super::queue::{self, Queue, Verdict};
use super::settings::{TASK_LEASE_SECONDS, TASK_RETRY_BASE, TASK_RETRY_FACTOR};
use super::subxact;
use crate::json_arg::JsonbArg;
use chrono::Utc;
use crm_core::runtime::outcome::{self, Answer, Backoff};
use crm_core::template::budget::Checkpoint;
use pgrx::prelude::*;
use pgrx::JsonB;
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

/// A claimed task, as `crm._claim_tasks` returns it.
#[derive(Debug, Deserialize)]
pub struct Task {
    pub id: String,
    pub account_id: String,
    pub kind: String,
    pub payload: Value,
    /// This attempt's number (1-based).
    pub attempts: i32,
    pub max_attempts: i32,
    /// What the kind's `context_sql` found (Null when it has none, or found no row).
    #[serde(default)]
    pub context: Value,
}

/// What a handler's run came to.
pub enum Step {
    /// Done; the result is stored in `integration_tasks.result`.
    Done(Value),
    /// A provider answered something other than success: judged by the shared rules (429 and
    /// 5xx retried after the backoff or Retry-After, other 4xx failed), `what` naming the
    /// request ("geocode: ").
    Answered(Answer, &'static str),
    /// Cannot succeed (the payload names a row that is gone): failed at once.
    Failed(String),
    /// Not run now, and not an attempt: due again in `secs` (a daily budget is spent until
    /// it renews), `why` shown as its last_error meanwhile.
    Deferred { secs: f64, why: String },
}

/// What a run did: its step, and what to apply to the kind's rows when it is recorded (the
/// input of the kind's `apply_sql`, whatever the step: a revoked token is applied although
/// the task fails).
pub struct Ran {
    pub step: Step,
    pub apply: Option<Value>,
}

impl From<Step> for Ran {
    fn from(step: Step) -> Self {
        Ran { step, apply: None }
    }
}

/// One kind of task, implemented next to its integration and listed in
/// `crate::integrations::TASK_KINDS`.
pub trait TaskKind: Sync {
    /// `integration_tasks.kind`: `<integration>.<action>`.
    fn name(&self) -> &'static str;
    /// One line for `crm.integration_task_kinds()` and the README.
    fn description(&self) -> &'static str;
    /// Attempts before the task fails.
    fn max_attempts(&self) -> i32 {
        5
    }
    /// At enqueue (pure): whether the handler can run this payload; the error names what is
    /// wrong (22023).
    fn check(&self, payload: &Value) -> Result<(), String>;
    /// Run it with **no transaction open**: no SPI, no ERROR; `checkpoint` true means stop
    /// (return `Step::Failed` is wrong then: the runner releases tasks it did not start, and a
    /// started one is finished or answered). Handlers are idempotent or keyed by the task's
    /// id, since a runner killed after the effect but before recording runs it again.
    fn run(&self, task: &Task, checkpoint: Checkpoint) -> Ran;
    /// A query run in the claim's transaction for each claimed task of this kind, with `$1`
    /// the task's account_id (text: write `$1::uuid`) and `$2` its payload (jsonb), returning
    /// one json value (or
    /// no row): what `run` needs from the database, as `Task::context`. Scope it to `$1`
    /// (the tables' foreign keys do not keep tenants apart). An ERROR in it fails the task.
    fn context_sql(&self) -> Option<&'static str> {
        None
    }
    /// A statement run in the record transaction for a run that returned `apply`, with `$1`
    /// the account_id (text), `$2` the payload (jsonb), `$3` the `apply` value (jsonb). An ERROR in it fails
    /// the task.
    fn apply_sql(&self) -> Option<&'static str> {
        None
    }
}

pub fn kind(name: &str) -> Option<&'static dyn TaskKind> {
    crate::integrations::TASK_KINDS
        .iter()
        .copied()
        .find(|k| k.name() == name)
}

/// A task's outcome for `crm._record_task_outcomes`.
#[derive(Debug, Clone, Serialize)]
pub struct TaskOutcome {
    #[serde(flatten)]
    pub verdict: Verdict,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub result: Option<Value>,
    /// The kind's apply step, run before the outcome is recorded (not stored).
    #[serde(skip)]
    pub apply: Option<Apply>,
}

/// A kind's `apply_sql` with its arguments.
#[derive(Debug, Clone)]
pub struct Apply {
    pub sql: &'static str,
    pub account_id: String,
    pub payload: Value,
    pub value: Value,
}

impl From<Verdict> for TaskOutcome {
    fn from(verdict: Verdict) -> Self {
        TaskOutcome {
            verdict,
            result: None,
            apply: None,
        }
    }
}

fn backoff() -> Backoff {
    Backoff {
        base_secs: TASK_RETRY_BASE.get().max(0) as f64,
        factor: TASK_RETRY_FACTOR.get(),
        ..Backoff::default()
    }
}

pub struct TaskQueue;

impl TaskQueue {
    fn run_one(task: &Task, backoff: &Backoff, checkpoint: Checkpoint) -> TaskOutcome {
        let Some(handler) = kind(&task.kind) else {
            return Verdict::failed(&task.id, format!("unknown task kind {}", task.kind)).into();
        };
        let Ran { step, apply } = handler.run(task, checkpoint);
        let mut out: TaskOutcome = match step {
            Step::Done(result) => TaskOutcome {
                result: Some(result),
                ..Verdict::new(&task.id, "done", None).into()
            },
            Step::Failed(error) => Verdict::failed(&task.id, error).into(),
            Step::Deferred { secs, why } => Verdict {
                after_seconds: Some(secs.max(0.0)),
                ..Verdict::new(&task.id, "release", Some(why))
            }
            .into(),
            Step::Answered(answer, what) => {
                let judged = outcome::classify(
                    &answer,
                    task.attempts,
                    task.max_attempts,
                    backoff,
                    Utc::now(),
                );
                Verdict::from_outcome(&task.id, &judged, "done", what).into()
            }
        };
        out.apply = apply.and_then(|value| {
            Some(Apply {
                sql: handler.apply_sql()?,
                account_id: task.account_id.clone(),
                payload: task.payload.clone(),
                value,
            })
        });
        out
    }
}

impl Queue for TaskQueue {
    type Row = Task;
    type Done = Vec<TaskOutcome>;
    const UNREADABLE: &'static str = "the task cannot be run";

    fn claim_json(&self, max_items: i32) -> Vec<(Option<String>, Option<String>)> {
        let lease = TASK_LEASE_SECONDS.get() as f64;
        queue::claim_array(
            "SELECT crm._claim_tasks($1, $2)::text",
            &[max_items.into(), lease.into()],
        )
    }

    fn run(&self, tasks: &[Task], checkpoint: Checkpoint) -> Vec<TaskOutcome> {
        let backoff = backoff();
        let mut out = Vec::with_capacity(tasks.len());
        for task in tasks {
            out.push(if checkpoint() {
                Verdict::release(&task.id).into()
            } else {
                Self::run_one(task, &backoff, checkpoint)
            });
        }
        out
    }

    /// Each task's context, from its kind's `context_sql` (in the claim's transaction). A
    /// query that fails fails its task alone.
    fn prepare(&self, tasks: Vec<Task>) -> (Vec<Task>, Vec<Verdict>) {
        let mut ready = Vec::with_capacity(tasks.len());
        let mut failed = Vec::new();
        for mut task in tasks {
            let Some(sql) = kind(&task.kind).and_then(|k| k.context_sql()) else {
                ready.push(task);
                continue;
            };
            let found = subxact::catch(|| {
                Spi::get_one_with_args::<pgrx::Json>(
                    sql,
                    &[
                        task.account_id.as_str().into(),
                        pgrx::JsonB(task.payload.clone()).into(),
                    ],
                )
                .map(|j| j.map(|j| j.0))
                .or_else(|e| match e {
                    // no row: nothing found
                    pgrx::spi::Error::InvalidPosition => Ok(None),
                    e => Err(e.to_string()),
                })
            })
            .and_then(|r| r);
            match found {
                Ok(value) => {
                    task.context = value.unwrap_or(Value::Null);
                    ready.push(task);
                }
                Err(e) => failed.push(Verdict::failed(
                    &task.id,
                    format!("loading the task's context: {e}"),
                )),
            }
        }
        (ready, failed)
    }

    fn unreadable(&self, unreadable: Vec<Verdict>) -> Vec<TaskOutcome> {
        unreadable.into_iter().map(Into::into).collect()
    }

    fn record(&self, done: &Vec<TaskOutcome>) {
        if done.is_empty() {
            return;
        }
        // Each apply step on its own: one that fails fails its task, not the record.
        let mut applied: Vec<TaskOutcome> = Vec::with_capacity(done.len());
        for outcome in done {
            let mut outcome = outcome.clone();
            if let Some(apply) = outcome.apply.take() {
                let ran = subxact::catch(|| {
                    Spi::run_with_args(
                        apply.sql,
                        &[
                            apply.account_id.as_str().into(),
                            pgrx::JsonB(apply.payload.clone()).into(),
                            pgrx::JsonB(apply.value.clone()).into(),
                        ],
                    )
                    .map_err(|e| e.to_string())
                })
                .and_then(|r| r);
                if let Err(e) = ran {
                    outcome =
                        Verdict::failed(&outcome.verdict.id, format!("applying the result: {e}"))
                            .into();
                }
            }
            applied.push(outcome);
        }
        let done = &applied;
        Spi::run_with_args(
            "SELECT crm._record_task_outcomes($1)",
            &[pgrx::Json(json!(done)).into()],
        )
        .unwrap_or_else(|e| pgrx::error!("recording task outcomes failed: {e}"));
    }

    fn released(done: &Vec<TaskOutcome>) -> usize {
        done.iter()
            .filter(|o| o.verdict.outcome == "release")
            .count()
    }

    fn merge(into: &mut Vec<TaskOutcome>, more: Vec<TaskOutcome>) {
        into.extend(more);
    }

    fn next_due_secs(&self) -> Option<f64> {
        Spi::get_one::<f64>(
            "SELECT extract(epoch FROM crm._next_task_due() - clock_timestamp())::float8",
        )
        .ok()
        .flatten()
    }
}

/// Enqueue's check (crm.enqueue_task): the kind is registered and its handler can run the
/// payload (22023 otherwise), the payload is within crm.max_json_argument_bytes (54000).
/// Returns the kind's max_attempts.
#[pg_extern(stable, parallel_safe)]
fn _check_task(kind_name: &str, payload: JsonbArg) -> i32 {
    let invalid = |msg: String| -> ! {
        crate::errors::raise(
            PgSqlErrorCode::ERRCODE_INVALID_PARAMETER_VALUE,
            msg,
            Some("SELECT kind FROM crm.integration_task_kinds() lists the kinds"),
            "crm.tasks",
        )
    };
    let Some(handler) = kind(kind_name) else {
        let shown: String = kind_name.chars().take(64).collect();
        invalid(format!("unknown task kind \"{shown}\""));
    };
    let max = crate::guc::MAX_JSON_ARGUMENT_BYTES.get().max(0) as usize;
    let payload = payload.parse("payload", max, "crm.tasks");
    if let Err(e) = handler.check(&payload) {
        invalid(format!("{kind_name}: {e}"));
    }
    handler.max_attempts()
}

/// The registered task kinds.
#[pg_extern(immutable, parallel_safe)]
fn integration_task_kinds() -> TableIterator<
    'static,
    (
        name!(kind, &'static str),
        name!(description, &'static str),
        name!(max_attempts, i32),
    ),
> {
    TableIterator::new(
        crate::integrations::TASK_KINDS
            .iter()
            .map(|k| (k.name(), k.description(), k.max_attempts())),
    )
}

/// Run due integration tasks now: claim up to `max_items`, run, record. For pg_cron and psql:
/// `SELECT cron.schedule('integration-tasks', '* * * * *', 'SELECT crm.process_integration_tasks()')`.
/// Returns `{claimed, done, retried, failed}`. Runs in the caller's transaction.
#[pg_extern(volatile)]
fn process_integration_tasks(max_items: default!(i32, 100)) -> JsonB {
    if !(1..=10_000).contains(&max_items) {
        crate::errors::raise(
            PgSqlErrorCode::ERRCODE_INVALID_PARAMETER_VALUE,
            "max_items must be between 1 and 10000",
            None,
            "crm.tasks",
        );
    }
    let outcomes =
        queue::process_in_transaction(&TaskQueue, max_items, crate::templates::check_interrupts);
    let count = |k: &str| outcomes.iter().filter(|o| o.verdict.outcome == k).count();
    JsonB(
        json!({"claimed": outcomes.len(), "done": count("done"), "retried": count("retry"), "failed": count("failed")}),
    )
}
