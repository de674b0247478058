//! `noop`: a task that does nothing but succeed, through the whole runtime (claim, lease,
//! record). For health checks ("is anything running the task queue?": enqueue one and watch it
//! turn done) and for benchmarking the runtime itself.

use crate::runtime::tasks::{Ran, Step, Task, TaskKind};
use crm_core::template::budget::Checkpoint;
use serde_json::{json, Value};

pub struct Noop;

impl TaskKind for Noop {
    fn name(&self) -> &'static str {
        "noop"
    }
    fn description(&self) -> &'static str {
        "does nothing and succeeds: health checks and benchmarks of the task runtime"
    }
    fn max_attempts(&self) -> i32 {
        3
    }
    fn check(&self, payload: &Value) -> Result<(), String> {
        if payload.is_object() {
            Ok(())
        } else {
            Err("the payload must be a JSON object".into())
        }
    }
    fn run(&self, task: &Task, _checkpoint: Checkpoint) -> Ran {
        // SAFETY: a plain read of the process's own pid, set before any of our code runs.
        let runner = unsafe { pgrx::pg_sys::MyProcPid };
        Step::Done(json!({"ok": true, "attempt": task.attempts, "runner_pid": runner})).into()
    }
}
