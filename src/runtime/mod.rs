//! The runtime every outbound integration shares, once:
//!
//! - `queue`: the claim → run (no transaction open) → record cycle, generic over a queue
//!   (`email::EmailQueue`, `tasks::TaskQueue`), with typed claimed rows and outcomes;
//! - `tasks`: the integration task queue (`crm.integration_tasks`) and the `TaskKind` trait
//!   each integration implements for its kinds;
//! - `worker`: the background workers, serving every queue fairly, woken at commit;
//! - `limiter`: the cluster-wide rate limiter (shared memory), one lane per provider,
//!   mailbox or API key;
//! - `http`: the HTTP client; `oauth`: connected mailboxes' tokens (decrypt, refresh);
//! - `settings`: the runtime's own settings (worker, lease, HTTP timeout).

pub mod config_check;
pub mod connect;
pub mod http;
pub mod limiter;
pub mod oauth;
pub mod queue;
pub mod settings;
pub mod subxact;
pub mod tasks;
pub mod worker;
