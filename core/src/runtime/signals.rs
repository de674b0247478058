//! Threads beside a Postgres backend: a thread started while `SignalsBlocked` is alive inherits
//! a full signal mask, so Postgres' signal handlers (cancel, terminate, latch) always run on the
//! backend's own thread. Used by the template parser's big-stack thread and the HTTP thread of
//! interactive requests.

/// Every signal blocked on this thread while alive, so a thread started meanwhile inherits
/// the full mask: Postgres' signal handlers must run on the backend's own thread.
pub struct SignalsBlocked {
    old: libc::sigset_t,
}

impl SignalsBlocked {
    #[allow(clippy::new_without_default)]
    pub fn new() -> Self {
        // SAFETY: sigset_t is plain data; sigfillset/pthread_sigmask only write the sets given.
        unsafe {
            let mut all: libc::sigset_t = std::mem::zeroed();
            let mut old: libc::sigset_t = std::mem::zeroed();
            libc::sigfillset(&mut all);
            libc::pthread_sigmask(libc::SIG_SETMASK, &all, &mut old);
            SignalsBlocked { old }
        }
    }
}

impl Drop for SignalsBlocked {
    fn drop(&mut self) {
        // SAFETY: restores the mask saved by `new`; signals that arrived meanwhile are
        // delivered now, to this thread.
        unsafe {
            libc::pthread_sigmask(libc::SIG_SETMASK, &self.old, std::ptr::null_mut());
        }
    }
}
