//! The integration task queue's runner (the SQL is sql/tasks.sql): the `TaskKind` trait each
//! integration implements for its kinds, the queue the shared runtime serves, and the SQL
//! functions `crm._check_task` (enqueue's validation), `crm.process_integration_tasks` (for
//! pg_cron) and `crm.integration_task_kinds()`.

use super::queue::{self, Queue, Verdict};
use super::settings::{TASK_LEASE_SECONDS, TASK_RETRY_BASE, TASK_RETRY_FACTOR};
use crate::json_arg::JsonbArg;
use chrono::Utc;
use crm_core::runtime::outcome::{self, Answer, Backoff, Outcome};
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
    pub dedupe_key: Option<String>,
    /// This attempt's number (1-based).
    pub attempts: i32,
    pub max_attempts: i32,
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
    fn run(&self, task: &Task, checkpoint: Checkpoint) -> Step;
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
}

impl From<Verdict> for TaskOutcome {
    fn from(verdict: Verdict) -> Self {
        TaskOutcome {
            verdict,
            result: None,
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
        match handler.run(task, checkpoint) {
            Step::Done(result) => TaskOutcome {
                verdict: Verdict::new(&task.id, "done", None),
                result: Some(result),
            },
            Step::Failed(error) => Verdict::failed(&task.id, error).into(),
            Step::Answered(answer, what) => {
                let judged = outcome::classify(
                    &answer,
                    task.attempts,
                    task.max_attempts,
                    backoff,
                    Utc::now(),
                );
                // A 2xx handed back as an answer is still success, with no result to keep.
                if let Outcome::Sent { .. } = judged {
                    return TaskOutcome {
                        verdict: Verdict::new(&task.id, "done", None),
                        result: Some(Value::Null),
                    };
                }
                Verdict::from_outcome(&task.id, &judged, "done", what).into()
            }
        }
    }
}

impl Queue for TaskQueue {
    type Row = Task;
    type Done = Vec<TaskOutcome>;
    const NAME: &'static str = "integration tasks";

    fn claim_json(&self, max_items: i32) -> Vec<(Option<String>, Option<String>)> {
        let lease = TASK_LEASE_SECONDS.get() as f64;
        queue::claim_rows(
            "SELECT j ->> 'id', j::text FROM json_array_elements(crm._claim_tasks($1, $2)) j",
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

    fn unreadable(&self, unreadable: Vec<Verdict>) -> Vec<TaskOutcome> {
        unreadable.into_iter().map(Into::into).collect()
    }

    fn record(&self, done: &Vec<TaskOutcome>) {
        if done.is_empty() {
            return;
        }
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
