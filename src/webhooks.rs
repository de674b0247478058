//! SQL face of inbound webhook verification: `crm._verify_webhook(provider, headers, body)`.
//! `crm.ingest_webhook` (sql/webhooks.sql) calls it first; nothing is written unless it
//! returns. Secrets come from superuser-only settings and never appear in an error.
//!
//! | condition | SQLSTATE |
//! |---|---|
//! | unknown provider, headers not a JSON object | 22023 |
//! | no secret configured for the provider, or an unusable one | 55000 |
//! | body over crm.webhook_max_body | 54000 |
//! | missing or malformed signature headers, no matching signature, stale timestamp | 28000 |

use crate::guc;
use crm_core::webhooks::{stripe, svix, VerifyError};
use pgrx::prelude::*;
use pgrx::JsonB;

fn raise(code: PgSqlErrorCode, message: String) -> ! {
    crate::errors::raise(code, message, None, "crm.webhooks")
}

fn raise_verify(provider: &str, err: &VerifyError) -> ! {
    let code = match err {
        VerifyError::BadSecret(_) => PgSqlErrorCode::ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE,
        _ => PgSqlErrorCode::ERRCODE_INVALID_AUTHORIZATION_SPECIFICATION,
    };
    raise(code, format!("{provider} webhook rejected: {err}"))
}

/// Header lookup, case-insensitive as HTTP is. A JSON array value (repeated header) gives its
/// first element.
fn header<'a>(headers: &'a serde_json::Map<String, serde_json::Value>, name: &str) -> Option<&'a str> {
    headers.iter().find(|(k, _)| k.eq_ignore_ascii_case(name)).and_then(|(_, v)| match v {
        serde_json::Value::String(s) => Some(s.as_str()),
        serde_json::Value::Array(a) => a.first().and_then(|f| f.as_str()),
        _ => None,
    })
}

fn secrets(setting: &'static pgrx::guc::GucSetting<Option<std::ffi::CString>>, name: &str) -> Vec<String> {
    let list: Vec<String> = guc::text(setting)
        .split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(str::to_owned)
        .collect();
    if list.is_empty() {
        raise(
            PgSqlErrorCode::ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE,
            format!("{name} is not set: webhooks cannot be verified"),
        );
    }
    list
}

fn now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0)
}

/// Verify a webhook's signature. Returns the delivery's message id where the scheme has one in
/// its headers (Svix: `svix-id`), else NULL. Raises on anything else.
#[pg_extern(volatile, parallel_safe)]
fn _verify_webhook(provider: &str, headers: JsonB, body: &str) -> Option<String> {
    let provider = provider.trim().to_ascii_lowercase();
    let (secret_setting, setting_name) = match provider.as_str() {
        "stripe" => (&guc::STRIPE_WEBHOOK_SECRET, "crm.stripe_webhook_secret"),
        "resend" => (&guc::RESEND_WEBHOOK_SECRET, "crm.resend_webhook_secret"),
        other => raise(
            PgSqlErrorCode::ERRCODE_INVALID_PARAMETER_VALUE,
            format!("unknown webhook provider \"{}\" (expected stripe or resend)", other.chars().take(40).collect::<String>()),
        ),
    };
    let serde_json::Value::Object(headers) = headers.0 else {
        raise(PgSqlErrorCode::ERRCODE_INVALID_PARAMETER_VALUE, "webhook headers must be a JSON object".into())
    };
    let secrets = secrets(secret_setting, setting_name);
    let max = guc::WEBHOOK_MAX_BODY.get().max(0) as usize;
    if body.len() > max {
        raise(
            PgSqlErrorCode::ERRCODE_PROGRAM_LIMIT_EXCEEDED,
            format!("webhook body of {} bytes exceeds crm.webhook_max_body ({max})", body.len()),
        );
    }
    match provider.as_str() {
        "stripe" => {
            let refs: Vec<&str> = secrets.iter().map(String::as_str).collect();
            stripe::verify(header(&headers, stripe::HEADER), body.as_bytes(), &refs, now(), guc::STRIPE_WEBHOOK_TOLERANCE.get() as i64)
                .unwrap_or_else(|e| raise_verify("stripe", &e));
            None
        }
        _ => {
            let keys: Vec<Vec<u8>> = secrets
                .iter()
                .map(|s| svix::decode_secret(s).unwrap_or_else(|| raise_verify("resend", &VerifyError::BadSecret("crm.resend_webhook_secret"))))
                .collect();
            let h = svix::Headers {
                id: header(&headers, "svix-id").or_else(|| header(&headers, "webhook-id")),
                timestamp: header(&headers, "svix-timestamp").or_else(|| header(&headers, "webhook-timestamp")),
                signature: header(&headers, "svix-signature").or_else(|| header(&headers, "webhook-signature")),
            };
            let id = svix::verify(&h, body.as_bytes(), &keys, now(), guc::RESEND_WEBHOOK_TOLERANCE.get() as i64)
                .unwrap_or_else(|e| raise_verify("resend", &e));
            Some(id.to_owned())
        }
    }
}
