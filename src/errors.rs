//! Raising a Postgres ERROR with a chosen SQLSTATE, from anywhere in the SQL shell. One place,
//! so every module reports the same way (the function name as the error's context domain).

use pgrx::pg_sys::panic::ErrorReport;
use pgrx::prelude::*;
use pgrx::PgLogLevel;

/// ERROR with `code` and `message` (and a hint). Never returns.
pub fn raise(
    code: PgSqlErrorCode,
    message: impl Into<String>,
    hint: Option<&str>,
    domain: &'static str,
) -> ! {
    let mut report = ErrorReport::new(code, message.into(), domain);
    if let Some(hint) = hint {
        report = report.set_hint(hint);
    }
    report.report(PgLogLevel::ERROR);
    unreachable!("ERROR does not return")
}
