//! An ERROR caught inside a transaction without losing the transaction: the statement runs in
//! an internal subtransaction (as PL/Python's `plpy.subtransaction` and PL/pgSQL's EXCEPTION
//! blocks do), rolled back alone when it fails. The worker needs this around SQL a task kind
//! contributes (its context query, its apply step): one task's bad row must fail that task,
//! not abort the claim or record of every task beside it and restart the worker.

use pgrx::pg_sys;
use pgrx::pg_sys::panic::CaughtError;
use pgrx::PgTryBuilder;

/// Run `f` in a subtransaction; an ERROR raised in it rolls back its work only and comes back
/// as the error's message.
pub fn catch<R>(f: impl FnOnce() -> R) -> Result<R, String> {
    // SAFETY: the begin/release/rollback sequence of PL/Python's PLy_spi_subtransaction_*:
    // keep the caller's memory context and resource owner across the subtransaction.
    let (context, owner) = unsafe {
        let context = pg_sys::CurrentMemoryContext;
        let owner = pg_sys::CurrentResourceOwner;
        pg_sys::BeginInternalSubTransaction(std::ptr::null());
        pg_sys::MemoryContextSwitchTo(context);
        (context, owner)
    };
    let f = std::panic::AssertUnwindSafe(std::cell::Cell::new(Some(f)));
    PgTryBuilder::new(|| {
        let r = (f.take().expect("run once"))();
        // SAFETY: see above; the subtransaction begun here is still the current one.
        unsafe {
            pg_sys::ReleaseCurrentSubTransaction();
            pg_sys::MemoryContextSwitchTo(context);
            pg_sys::CurrentResourceOwner = owner;
        }
        Ok(r)
    })
    .catch_others(|e| {
        // SAFETY: see above; pgrx has already copied and flushed the error state.
        unsafe {
            pg_sys::MemoryContextSwitchTo(context);
            pg_sys::RollbackAndReleaseCurrentSubTransaction();
            pg_sys::MemoryContextSwitchTo(context);
            pg_sys::CurrentResourceOwner = owner;
        }
        Err(match e {
            CaughtError::PostgresError(r)
            | CaughtError::ErrorReport(r)
            | CaughtError::RustPanic { ereport: r, .. } => r.message().to_string(),
        })
    })
    .execute()
}
