//! The background workers that run the queues continuously (`crm.worker_count` of them,
//! default 1; they share each queue through the claim's SKIP LOCKED, like any other runner).
//! Each round gives every queue a turn (emails, then integration tasks): a turn claims, runs
//! and records, and ends after `crm.worker_turn` (the rows not started are given back, their
//! attempt not counted), so a deep email backlog holds a task back by one turn at most and a
//! flood of tasks cannot stop email. The claim size adapts to what a turn gets through.
//!
//! - Registered in `_PG_init` when the library is preloaded (`shared_preload_libraries`);
//!   restarted by the postmaster 5 s after a crash or a SIGTERM (unless the server is shutting
//!   down); a SIGTERM ends its loop at once, between two provider requests at worst.
//! - Connects to `crm.worker_database`; idles while `crm.worker_enabled` is off or the extension
//!   is not installed there.
//! - Each turn: claim (one short transaction), run (render and call the provider) with **no
//!   transaction open**, record the outcomes (a new transaction). A busy round loops at once.
//! - Idle, it sleeps until the next row is due (a scheduled email, a retry, an expired lease),
//!   at most `crm.worker_idle_sleep`. An enqueue wakes it at commit: `crm.enqueue_email` asks
//!   for a wake-up, and a transaction callback sets the worker's latch when (and only if) the
//!   transaction commits — no polling, no wake-up for a rolled-back enqueue. One wake-up
//!   serves both queues (`crm.enqueue_task` asks for the same one).

use super::queue::{self, Queue};
use super::settings::{
    WORKER_BATCH_SIZE, WORKER_COUNT, WORKER_DATABASE, WORKER_ENABLED, WORKER_IDLE_SLEEP_MS,
    WORKER_TURN_MS,
};
use super::tasks::TaskQueue;
use crate::email::queue::EmailQueue;
use crate::guc;
use pgrx::bgworkers::*;
use pgrx::prelude::*;
use pgrx::{pg_shmem_init, register_xact_callback, PgAtomic, PgLwLock, PgXactCallbackEvent};
use std::cell::Cell;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

/// Most workers `crm.worker_count` can ask for.
pub const MAX_WORKERS: usize = 8;

/// The workers' pids (0: not running), in shared memory, for backends to find their latches.
static WORKER_PIDS: PgLwLock<[i32; MAX_WORKERS]> =
    unsafe { PgLwLock::new(c"crm_integrations_email_worker_pids") };
/// Bumped at the commit of every transaction that queued (or retried) a task: a worker runs a
/// task turn when it changed, when a task it knows of comes due, or after `TASK_RECHECK`
/// anyway — so an idle task queue costs the email queue no claim per turn.
static TASK_SIGNAL: PgAtomic<AtomicU64> = unsafe { PgAtomic::new(c"crm_integrations_task_signal") };
/// The longest a worker goes without looking at the task queue (tasks queued by a direct
/// INSERT, retries recorded by another process).
const TASK_RECHECK: Duration = Duration::from_secs(1);
/// Set in the postmaster when preloaded (inherited by every forked backend): only then does
/// the shared memory above exist.
static PRELOADED: AtomicBool = AtomicBool::new(false);
/// This worker process was asked to stop (see `stopping`).
static STOP_REQUESTED: AtomicBool = AtomicBool::new(false);

pub const WORKER_NAME: &str = "crm_integrations email worker";

pub fn init() {
    pg_shmem_init!(WORKER_PIDS);
    pg_shmem_init!(TASK_SIGNAL);
    PRELOADED.store(true, Ordering::Relaxed);
    let count = WORKER_COUNT.get().clamp(1, MAX_WORKERS as i32);
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
    static TASK_SIGNAL_PENDING: Cell<bool> = const { Cell::new(false) };
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

/// As `_wake_email_worker_on_commit`, for a transaction that queued or retried a task: the
/// workers then look at the task queue on their next round.
#[pg_extern(volatile, parallel_unsafe)]
fn _wake_workers_for_tasks_on_commit() {
    if !PRELOADED.load(Ordering::Relaxed) || TASK_SIGNAL_PENDING.with(Cell::get) {
        return;
    }
    TASK_SIGNAL_PENDING.with(|w| w.set(true));
    register_xact_callback(PgXactCallbackEvent::Commit, || {
        TASK_SIGNAL_PENDING.with(|w| w.set(false));
        TASK_SIGNAL.get().fetch_add(1, Ordering::SeqCst);
        wake_workers();
    });
    register_xact_callback(PgXactCallbackEvent::Abort, || {
        TASK_SIGNAL_PENDING.with(|w| w.set(false))
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
    let database = guc::text(&WORKER_DATABASE);
    BackgroundWorker::connect_worker_to_spi(Some(&database), None);
    // SAFETY: MyProcPid is set for every backend before its main function runs.
    set_pid(index, unsafe { pg_sys::MyProcPid });
    log!("{WORKER_NAME} started in database \"{database}\"");

    let mut sleep = Duration::ZERO;
    // Whether the extension is installed in the database: checked until it is. If it is
    // dropped later, the claim fails and the worker restarts, which checks again.
    let mut installed = false;
    loop {
        if !BackgroundWorker::wait_latch(Some(sleep)) {
            STOP_REQUESTED.store(true, Ordering::Relaxed);
        }
        if stopping() {
            break;
        }
        if BackgroundWorker::sighup_received() {
            // SAFETY: reloading the configuration is what a backend does on SIGHUP.
            unsafe { pg_sys::ProcessConfigFile(pg_sys::GucContext::PGC_SIGHUP) };
            if guc::text(&WORKER_DATABASE) != database {
                log!("{WORKER_NAME}: crm.worker_database changed, restarting");
                set_pid(index, 0);
                // SAFETY: exit code 1 makes the postmaster start the worker again (in 5 s).
                unsafe { pg_sys::proc_exit(1) };
            }
        }
        if !WORKER_ENABLED.get() {
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

/// The worker's checkpoint: SIGTERM (pg_terminate_backend, shutdown) was received. Sticky:
/// pgrx's `sigterm_received` clears its flag when read, so a SIGTERM seen by a checkpoint in
/// the middle of a turn must still end the main loop after it (else the postmaster's fast
/// shutdown waits on a worker that forgot it was asked to stop).
fn stopping() -> bool {
    if BackgroundWorker::sigterm_received() {
        STOP_REQUESTED.store(true, Ordering::Relaxed);
    }
    STOP_REQUESTED.load(Ordering::Relaxed)
}

fn idle_sleep() -> Duration {
    Duration::from_millis(WORKER_IDLE_SLEEP_MS.get().max(10) as u64)
}

thread_local! {
    /// When the current turn ends (the worker's checkpoint reads it).
    static TURN_ENDS: Cell<Option<Instant>> = const { Cell::new(None) };
    /// Rows to claim per queue next turn (emails, tasks), adapted to what a turn gets done.
    static CLAIM_SIZE: Cell<[i32; 2]> = const { Cell::new([0, 0]) };
}

/// The worker's checkpoint during a turn: SIGTERM, or the turn is over.
fn turn_over() -> bool {
    stopping()
        || TURN_ENDS
            .with(Cell::get)
            .is_some_and(|end| Instant::now() >= end)
}

/// One turn of `queue` (index `slot` in CLAIM_SIZE); returns how many rows it claimed.
fn turn<Q: Queue>(queue: &Q, slot: usize) -> usize {
    let batch = WORKER_BATCH_SIZE.get().max(1);
    let mut sizes = CLAIM_SIZE.with(Cell::get);
    let size = if sizes[slot] <= 0 {
        batch
    } else {
        sizes[slot].min(batch)
    };
    let (rows, unreadable) = BackgroundWorker::transaction(|| queue::claim(queue, size));
    let claimed = rows.len() + unreadable.len();
    if claimed == 0 {
        return 0;
    }
    let mut done = queue.unreadable(unreadable);
    TURN_ENDS.with(|t| {
        t.set(Some(
            Instant::now() + Duration::from_millis(WORKER_TURN_MS.get().max(1) as u64),
        ))
    });
    Q::merge(&mut done, queue.run(&rows, turn_over)); // no transaction is open here
    TURN_ENDS.with(|t| t.set(None));
    BackgroundWorker::transaction(|| queue.record(&done));
    // Claim next time about what this turn got through (given back rows cost a claim and a
    // record for nothing); double it while a turn finishes everything it claimed.
    let released = Q::released(&done);
    sizes[slot] = if released > 0 {
        (claimed - released).max(1) as i32
    } else {
        (size.saturating_mul(2)).min(batch)
    };
    CLAIM_SIZE.with(|c| c.set(sizes));
    claimed
}

thread_local! {
    /// When the task queue needs a look: the signal last seen, and when a task is next due
    /// (None: at the next round).
    static TASK_WATCH: Cell<Option<(u64, Option<Instant>)>> = const { Cell::new(None) };
}

/// Whether this round gives the task queue a turn.
fn tasks_need_a_turn() -> bool {
    let signal = TASK_SIGNAL.get().load(Ordering::SeqCst);
    match TASK_WATCH.with(Cell::get) {
        None => true,
        Some((seen, due)) => seen != signal || due.is_none_or(|d| Instant::now() >= d),
    }
}

/// After a task turn: busy means look again next round; idle means look again when the next
/// task is due, the signal changes, or after TASK_RECHECK.
fn task_turn_done(claimed: usize, signal_before: u64) {
    let due = if claimed > 0 {
        None
    } else {
        let secs = BackgroundWorker::transaction(|| TaskQueue.next_due_secs());
        let recheck = Instant::now() + TASK_RECHECK;
        Some(match secs {
            Some(s) => (Instant::now() + Duration::from_secs_f64(s.clamp(0.0, 1.0))).min(recheck),
            None => recheck,
        })
    };
    TASK_WATCH.with(|w| w.set(Some((signal_before, due))));
}

/// How often a worker queues refreshes for connections about to expire.
const REFRESH_SCHEDULE_EVERY: Duration = Duration::from_secs(30);

thread_local! {
    static REFRESHES_SCHEDULED_AT: Cell<Option<Instant>> = const { Cell::new(None) };
}

/// Upkeep every 30 s: keep connections alive (`crm.schedule_token_refreshes()`), read
/// calendars and address books that are due (`crm._schedule_calendar_syncs()`,
/// `crm._schedule_contact_syncs()`), and drop expired Maps cache
/// entries and old location history (`crm._maps_upkeep()`); the first two coalesce per connection,
/// so several workers doing it is harmless. In a subtransaction: an error here
/// (an older schema without the function) must not stop the queues.
fn schedule_token_refreshes() {
    let due = REFRESHES_SCHEDULED_AT
        .with(Cell::get)
        .is_none_or(|at| at.elapsed() >= REFRESH_SCHEDULE_EVERY);
    if !due {
        return;
    }
    REFRESHES_SCHEDULED_AT.with(|c| c.set(Some(Instant::now())));
    BackgroundWorker::transaction(|| {
        // each on its own: a database whose schema predates one of them still gets the others
        for step in [
            "SELECT crm.schedule_token_refreshes()",
            "SELECT crm._schedule_calendar_syncs()",
            "SELECT crm._schedule_contact_syncs()",
            "SELECT crm._maps_upkeep()",
            "SELECT crm._drafts_upkeep()",
            "SELECT crm._tool_calls_upkeep()",
        ] {
            if let Err(e) =
                super::subxact::catch(|| Spi::run(step)).and_then(|r| r.map_err(|e| e.to_string()))
            {
                log!("{WORKER_NAME}: upkeep ({step}) failed: {e}");
            }
        }
    });
}

/// One round: a turn for each queue (the task queue's only when it may have work). Returns
/// how long to sleep before the next.
fn round() -> Duration {
    schedule_token_refreshes();
    let emails = turn(&EmailQueue, 0);
    let mut tasks = 0;
    if tasks_need_a_turn() {
        let signal = TASK_SIGNAL.get().load(Ordering::SeqCst);
        tasks = turn(&TaskQueue, 1);
        task_turn_done(tasks, signal);
    }
    if emails + tasks > 0 {
        return Duration::ZERO;
    }
    let next = BackgroundWorker::transaction(|| {
        [EmailQueue.next_due_secs(), TaskQueue.next_due_secs()]
            .into_iter()
            .flatten()
            .reduce(f64::min)
    });
    let idle = idle_sleep().min(REFRESH_SCHEDULE_EVERY);
    match next {
        Some(secs) => Duration::from_secs_f64(secs.max(0.005)).min(idle),
        None => idle,
    }
}
