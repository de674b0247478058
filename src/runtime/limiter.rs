//! The cluster-wide rate limiter: one table of lanes in shared memory, taken by every sender
//! in every process (the workers, backends running `crm.process_email_queue` or
//! `crm.process_integration_tasks`), so `crm.<provider>_rate_limit` is requests per second
//! from this server. A 429 closes its lane for everyone until its Retry-After.
//!
//! A lane is a provider (Resend and SMTP: one API key, one relay), one mailbox (Gmail and
//! Graph quotas are per mailbox) or one API key (Maps). The table has `LANES` slots; when
//! full, the least recently used lane's slot is reused. The arithmetic is
//! `crm_core::runtime::pacing`.
//!
//! Without `shared_preload_libraries` there is no shared memory: each process then paces
//! itself with the same table in process memory (the README says so).

use crm_core::runtime::outcome::parse_retry_after;
use crm_core::runtime::pacing::{self, Slot};
use crm_core::template::budget::Checkpoint;
use pgrx::prelude::*;
use pgrx::{pg_shmem_init, PgLwLock};
use std::cell::RefCell;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

/// Lanes the shared table holds.
pub const LANES: usize = 512;

static SHARED: PgLwLock<[[i64; 4]; LANES]> =
    unsafe { PgLwLock::new(c"crm_integrations_rate_lanes") };
/// Set in the postmaster when preloaded (inherited by every backend): only then does SHARED
/// exist.
static IN_SHARED_MEMORY: AtomicBool = AtomicBool::new(false);

thread_local! {
    static LOCAL: RefCell<Vec<[i64; 4]>> = RefCell::new(vec![[0; 4]; LANES]);
}

/// In `_PG_init` while preloading: ask for the shared table.
pub fn init_shared_memory() {
    pg_shmem_init!(SHARED = [[0i64; 4]; LANES]);
    IN_SHARED_MEMORY.store(true, Ordering::Relaxed);
}

/// What shares one limit.
#[derive(Clone, PartialEq, Eq, Hash, Debug)]
pub struct Lane {
    pub provider: &'static str,
    /// A mailbox's connection id, an API key's fingerprint; None: the whole provider.
    pub key: Option<String>,
}

impl Lane {
    pub fn provider(provider: &'static str) -> Lane {
        Lane {
            provider,
            key: None,
        }
    }
    fn hash(&self) -> u64 {
        pacing::lane_key(self.provider, self.key.as_deref())
    }
}

fn now_ns() -> i64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: a valid out-pointer; CLOCK_MONOTONIC is system-wide, so every process reads the
    // same clock.
    unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut ts) };
    ts.tv_sec * 1_000_000_000 + ts.tv_nsec
}

/// Run `f` on the lane's slot, under the shared table's lock (or in process memory).
fn with_slot<R>(lane: &Lane, f: impl FnOnce(&mut Slot, i64) -> R) -> R {
    let key = lane.hash();
    let apply = |slots: &mut [[i64; 4]]| {
        let now = now_ns();
        let i = pacing::slot_index(slots, key, now);
        let mut slot = Slot::from_words(slots[i]);
        let r = f(&mut slot, now);
        slots[i] = slot.to_words();
        r
    };
    if IN_SHARED_MEMORY.load(Ordering::Relaxed) {
        // Held for a scan of LANES slots: microseconds, never across a sleep.
        apply(&mut *SHARED.exclusive())
    } else {
        LOCAL.with(|l| apply(&mut l.borrow_mut()))
    }
}

/// Wait until a request in `lane` may start (`rate` per second; 0 = unlimited), and start it.
/// False when `checkpoint` said stop while waiting (nothing was started).
pub fn pace(lane: &Lane, rate: f64, checkpoint: Checkpoint) -> bool {
    let interval = pacing::interval_ns(rate);
    loop {
        match with_slot(lane, |slot, now| pacing::admit(slot, now, interval)) {
            Ok(()) => return true,
            Err(wait_ns) => {
                if checkpoint() {
                    return false;
                }
                // Short naps: a stop request is seen within 100 ms however long the lane is
                // closed.
                std::thread::sleep(Duration::from_nanos(wait_ns.clamp(0, 100_000_000) as u64));
            }
        }
    }
}

/// The provider answered 429: close the lane for everyone until `Retry-After` (1 s when it
/// gives none; at most 60 s, the rows themselves carry the longer backoff).
pub fn slow_down(lane: &Lane, retry_after: Option<&str>) {
    let secs = retry_after
        .and_then(|v| parse_retry_after(v, chrono::Utc::now()))
        .unwrap_or(1.0)
        .min(60.0);
    with_slot(lane, |slot, now| pacing::close(slot, now, secs));
}

/// Whether pacing is cluster-wide (the library was preloaded).
#[pg_extern(volatile)]
fn rate_limiter_is_shared() -> bool {
    IN_SHARED_MEMORY.load(Ordering::Relaxed)
}
