//! The runtime's settings: the background workers, and the HTTP client every integration uses.

use pgrx::guc::*;
use std::ffi::CString;

pub static WORKER_ENABLED: GucSetting<bool> = GucSetting::<bool>::new(true);
pub static WORKER_DATABASE: GucSetting<Option<CString>> =
    GucSetting::<Option<CString>>::new(Some(c"postgres"));
pub static WORKER_COUNT: GucSetting<i32> = GucSetting::<i32>::new(1);
pub static WORKER_BATCH_SIZE: GucSetting<i32> = GucSetting::<i32>::new(100);
pub static WORKER_IDLE_SLEEP_MS: GucSetting<i32> = GucSetting::<i32>::new(10_000);
pub static HTTP_TIMEOUT_MS: GucSetting<i32> = GucSetting::<i32>::new(10_000);
/// Deprecated alias of crm.http_timeout (0.3.0's name), kept for one version.
pub static EMAIL_HTTP_TIMEOUT_MS: GucSetting<i32> = GucSetting::<i32>::new(0);
pub static WORKER_TURN_MS: GucSetting<i32> = GucSetting::<i32>::new(1_000);
pub static OAUTH_REFRESH_AHEAD_SECONDS: GucSetting<i32> = GucSetting::<i32>::new(600);
pub static TASK_LEASE_SECONDS: GucSetting<i32> = GucSetting::<i32>::new(120);
pub static TASK_RETRY_BASE: GucSetting<i32> = GucSetting::<i32>::new(30);
pub static TASK_RETRY_FACTOR: GucSetting<f64> = GucSetting::<f64>::new(2.0);

/// The HTTP timeout: crm.http_timeout, unless the deprecated crm.email_http_timeout is set
/// (non-zero), which then wins so an 0.3.0 configuration keeps meaning what it meant.
pub fn http_timeout_ms() -> i32 {
    match EMAIL_HTTP_TIMEOUT_MS.get() {
        0 => HTTP_TIMEOUT_MS.get(),
        alias => alias,
    }
    .max(1)
}

pub fn register() {
    GucRegistry::define_bool_guc(
        c"crm.worker_enabled",
        c"Whether the background workers run the queues (they idle when off).",
        c"",
        &WORKER_ENABLED,
        GucContext::Sighup,
        GucFlags::default(),
    );
    GucRegistry::define_string_guc(
        c"crm.worker_database",
        c"Database the background workers serve (the one with the extension).",
        c"",
        &WORKER_DATABASE,
        GucContext::Sighup,
        GucFlags::default(),
    );
    GucRegistry::define_int_guc(
        c"crm.worker_count",
        c"How many background workers to start (server start only).",
        c"",
        &WORKER_COUNT,
        1,
        8,
        GucContext::Postmaster,
        GucFlags::default(),
    );
    GucRegistry::define_int_guc(
        c"crm.worker_batch_size",
        c"Rows a worker claims from one queue per turn (emails, tasks).",
        c"",
        &WORKER_BATCH_SIZE,
        1,
        10_000,
        GucContext::Sighup,
        GucFlags::default(),
    );
    GucRegistry::define_int_guc(
        c"crm.worker_idle_sleep",
        c"Longest sleep of an idle worker (an enqueue wakes it at once).",
        c"",
        &WORKER_IDLE_SLEEP_MS,
        10,
        3_600_000,
        GucContext::Sighup,
        GucFlags::UNIT_MS,
    );
    GucRegistry::define_int_guc(
        c"crm.http_timeout",
        c"Timeout of one request to a provider (every integration).",
        c"",
        &HTTP_TIMEOUT_MS,
        100,
        300000,
        GucContext::Suset,
        GucFlags::UNIT_MS,
    );
    GucRegistry::define_int_guc(
        c"crm.email_http_timeout",
        c"Deprecated alias of crm.http_timeout (removed in the next version); 0 = unset.",
        c"When set (non-zero) it wins over crm.http_timeout.",
        &EMAIL_HTTP_TIMEOUT_MS,
        0,
        300000,
        GucContext::Suset,
        GucFlags::UNIT_MS,
    );
    GucRegistry::define_int_guc(
        c"crm.worker_turn",
        c"Longest a worker works on one queue before it turns to the next (emails, tasks).",
        c"Rows not started when the turn ends are given back, their attempt not counted.",
        &WORKER_TURN_MS,
        50,
        60_000,
        GucContext::Sighup,
        GucFlags::UNIT_MS,
    );
    GucRegistry::define_int_guc(
        c"crm.oauth_refresh_ahead",
        c"Refresh a connection's access token this long before it expires (oauth.refresh tasks the workers schedule).",
        c"",
        &OAUTH_REFRESH_AHEAD_SECONDS,
        60,
        86400,
        GucContext::Suset,
        GucFlags::UNIT_S,
    );
    GucRegistry::define_int_guc(
        c"crm.task_lease",
        c"How long a claimed integration task is reserved for its runner before others may claim it.",
        c"",
        &TASK_LEASE_SECONDS,
        5,
        86400,
        GucContext::Suset,
        GucFlags::UNIT_S,
    );
    GucRegistry::define_int_guc(
        c"crm.task_retry_base",
        c"First retry delay of a failed integration task.",
        c"",
        &TASK_RETRY_BASE,
        0,
        86400,
        GucContext::Suset,
        GucFlags::UNIT_S,
    );
    GucRegistry::define_float_guc(
        c"crm.task_retry_factor",
        c"Growth of an integration task's retry delay per attempt.",
        c"",
        &TASK_RETRY_FACTOR,
        1.0,
        10.0,
        GucContext::Suset,
        GucFlags::default(),
    );
}
