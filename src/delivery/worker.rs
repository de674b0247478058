//! The background workers that send continuously (`crm.worker_count` of them, default 1;
//! they share the queue through the claim's SKIP LOCKED, like any other sender).
//!
//! - Registered in `_PG_init` when the library is preloaded (`shared_preload_libraries`);
//!   restarted by the postmaster 5 s after a crash or a SIGTERM (unless the server is shutting
//!   down); a SIGTERM ends its loop at once, between two provider requests at worst.
//! - Connects to `crm.worker_database`; idles while `crm.worker_enabled` is off or the extension
//!   is not installed there.
//! - Each round: claim (one short transaction), render and call the provider with **no
//!   transaction open**, record the outcomes (a new transaction). A full batch loops at once.
//! - Idle, it sleeps until the next row is due (a scheduled email, a retry, an expired lease),
//!   at most `crm.worker_idle_sleep`. An enqueue wakes it at commit: `crm.enqueue_email` asks
//!   for a wake-up, and a transaction callback sets the worker's latch when (and only if) the
//!   transaction commits — no polling, no wake-up for a rolled-back enqueue.

use super::{claim, record, send};
use crate::guc;
use pgrx::bgworkers::*;
use pgrx::prelude::*;
use pgrx::{pg_shmem_init, register_xact_callback, PgLwLock, PgXactCallbackEvent};
use std::cell::Cell;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

/// Most workers `crm.worker_count` can ask for.
pub const MAX_WORKERS: usize = 8;

/// The workers' pids (0: not running), in shared memory, for backends to find their latches.
static WORKER_PIDS: PgLwLock<[i32; MAX_WORKERS]> =
    unsafe { PgLwLock::new(c"crm_integrations_email_worker_pids") };
/// Set in the postmaster when preloaded (inherited by every forked backend): only then does
/// the shared memory above exist.
static PRELOADED: AtomicBool = AtomicBool::new(false);

pub const WORKER_NAME: &str = "crm_integrations email worker";

pub fn init() {
    pg_shmem_init!(WORKER_PIDS);
    PRELOADED.store(true, Ordering::Relaxed);
    let count = guc::WORKER_COUNT.get().clamp(1, MAX_WORKERS as i32);
    for index in 0..count {
        let name = if index == 0 {
            WORKER_NAME.to_string()
        } else {
            format!("{WORKER_NAME} {}", index + 1)
        };
        BackgroundWorkerBuilder::new(&name)
            .set_type("crm_integrations email worker")
            .set_function("crm_email_worker_main")
            .set_library("crm_integrations")
            .set_argument(index.into_datum())
            .enable_spi_access()
            .set_start_time(BgWorkerStartTime::RecoveryFinished)
            .set_restart_time(Some(Duration::from_secs(5)))
            .load();
    }
}

fn set_pid(index: usize, pid: i32) {
    WORKER_PIDS.exclusive()[index] = pid;
}

fn running_pids() -> Vec<i32> {
    WORKER_PIDS
        .share()
        .iter()
        .copied()
        .filter(|p| *p > 0)
        .collect()
}

thread_local! {
    static WAKE_PENDING: Cell<bool> = const { Cell::new(false) };
}

fn wake_workers() {
    for pid in running_pids() {
        wake(pid);
    }
}

fn wake(pid: i32) {
    // SAFETY: BackendPidGetProc takes ProcArrayLock itself and returns NULL for a pid that is
    // gone; a PGPROC's latch lives as long as the slot, and SetLatch on a reused slot only
    // causes one spurious wake-up.
    unsafe {
        let proc = pg_sys::BackendPidGetProc(pid);
        if !proc.is_null() {
            pg_sys::SetLatch(&raw mut (*proc).procLatch);
        }
    }
}

/// Ask for the email worker to be woken when the current transaction commits (once per
/// transaction, however many emails it queues). A no-op when the library is not preloaded.
#[pg_extern(volatile, parallel_unsafe)]
fn _wake_email_worker_on_commit() {
    if !PRELOADED.load(Ordering::Relaxed) || WAKE_PENDING.with(Cell::get) {
        return;
    }
    WAKE_PENDING.with(|w| w.set(true));
    register_xact_callback(PgXactCallbackEvent::Commit, || {
        WAKE_PENDING.with(|w| w.set(false));
        wake_workers();
    });
    register_xact_callback(PgXactCallbackEvent::Abort, || {
        WAKE_PENDING.with(|w| w.set(false))
    });
}

/// pid of the (first) running email worker, NULL when none (for monitoring and tests).
#[pg_extern(volatile)]
fn email_worker_pid() -> Option<i32> {
    if !PRELOADED.load(Ordering::Relaxed) {
        return None;
    }
    Some(WORKER_PIDS.share()[0]).filter(|p| *p > 0)
}

/// pids of every running email worker.
#[pg_extern(volatile)]
fn email_worker_pids() -> Vec<i32> {
    if !PRELOADED.load(Ordering::Relaxed) {
        return Vec::new();
    }
    running_pids()
}

#[pg_guard]
#[unsafe(no_mangle)]
pub extern "C-unwind" fn crm_email_worker_main(arg: pg_sys::Datum) {
    // SAFETY: the argument is the i32 that init() registered.
    let index = unsafe { i32::from_polymorphic_datum(arg, false, pg_sys::INT4OID) }
        .unwrap_or(0)
        .clamp(0, MAX_WORKERS as i32 - 1) as usize;
    BackgroundWorker::attach_signal_handlers(SignalWakeFlags::SIGHUP | SignalWakeFlags::SIGTERM);
    let database = guc::text(&guc::WORKER_DATABASE);
    BackgroundWorker::connect_worker_to_spi(Some(&database), None);
    // SAFETY: MyProcPid is set for every backend before its main function runs.
    set_pid(index, unsafe { pg_sys::MyProcPid });
    log!("{WORKER_NAME} started in database \"{database}\"");

    let mut sleep = Duration::ZERO;
    // Whether the extension is installed in the database: checked until it is. If it is
    // dropped later, the claim fails and the worker restarts, which checks again.
    let mut installed = false;
    while BackgroundWorker::wait_latch(Some(sleep)) {
        if BackgroundWorker::sighup_received() {
            // SAFETY: reloading the configuration is what a backend does on SIGHUP.
            unsafe { pg_sys::ProcessConfigFile(pg_sys::GucContext::PGC_SIGHUP) };
            if guc::text(&guc::WORKER_DATABASE) != database {
                log!("{WORKER_NAME}: crm.worker_database changed, restarting");
                set_pid(index, 0);
                // SAFETY: exit code 1 makes the postmaster start the worker again (in 5 s).
                unsafe { pg_sys::proc_exit(1) };
            }
        }
        if !guc::WORKER_ENABLED.get() {
            sleep = idle_sleep();
            continue;
        }
        if !installed {
            installed = BackgroundWorker::transaction(|| {
                Spi::get_one::<bool>(
                    "SELECT EXISTS (SELECT 1 FROM pg_extension WHERE extname = 'crm_integrations')",
                )
            }) == Ok(Some(true));
            if !installed {
                sleep = idle_sleep();
                continue;
            }
        }
        sleep = round();
    }
    set_pid(index, 0);
    log!("{WORKER_NAME} stopping");
    // Exit code 1: the postmaster starts the worker again in 5 s, unless the server itself is
    // shutting down (then nothing restarts). So pg_terminate_backend() is a restart, not a
    // way to lose the worker until the next server start.
    // SAFETY: ends this process the way Postgres expects.
    unsafe { pg_sys::proc_exit(1) };
}

/// The render and send checkpoint of the worker: SIGTERM (pg_terminate_backend, shutdown).
fn stopping() -> bool {
    BackgroundWorker::sigterm_received()
}

fn idle_sleep() -> Duration {
    Duration::from_millis(guc::WORKER_IDLE_SLEEP_MS.get().max(10) as u64)
}

/// One round; returns how long to sleep before the next.
fn round() -> Duration {
    let batch = guc::WORKER_BATCH_SIZE.get();
    let (jobs, unreadable) = BackgroundWorker::transaction(|| claim(batch));
    if !unreadable.is_empty() {
        BackgroundWorker::transaction(|| record(&unreadable, &[]));
    }
    if jobs.is_empty() && unreadable.is_empty() {
        let next = BackgroundWorker::transaction(|| {
            Spi::get_one::<f64>(
                "SELECT extract(epoch FROM least(
                     (SELECT min(next_attempt_at) FROM crm.email_queue WHERE status IN ('pending', 'scheduled')),
                     (SELECT min(locked_until) FROM crm.email_queue WHERE status = 'processing')) - clock_timestamp())::float8",
            )
        });
        let idle = idle_sleep();
        return match next {
            Ok(Some(secs)) => Duration::from_secs_f64(secs.max(0.005)).min(idle),
            _ => idle,
        };
    }
    let full = (jobs.len() + unreadable.len()) as i32 >= batch;
    let (outcomes, connections) = send::send_all(&jobs, stopping); // no transaction is open here
    BackgroundWorker::transaction(|| record(&outcomes, &connections));
    if full {
        Duration::ZERO
    } else {
        Duration::from_millis(1)
    }
}
