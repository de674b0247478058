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
use crate::json_arg::JsonbArg;
use crm_core::webhooks::{stripe, svix, VerifyError};
use pgrx::prelude::*;
use std::cell::RefCell;
use std::collections::HashMap;

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
fn header<'a>(
    headers: &'a serde_json::Map<String, serde_json::Value>,
    name: &str,
) -> Option<&'a str> {
    headers
        .iter()
        .find(|(k, _)| k.eq_ignore_ascii_case(name))
        .and_then(|(_, v)| match v {
            serde_json::Value::String(s) => Some(s.as_str()),
            serde_json::Value::Array(a) => a.first().and_then(|f| f.as_str()),
            _ => None,
        })
}

/// A provider's signing keys as the verifiers want them (Stripe: the secrets' bytes; Svix: the
/// base64-decoded secrets), or why there are none.
type Keys = Result<Vec<Vec<u8>>, VerifyError>;

thread_local! {
    // Per backend, per setting: the setting's text and the keys parsed from it. A SET or a
    // reload changes the text, and the next call parses again; an unchanged setting costs one
    // byte comparison instead of a split and (Svix) a base64 decode on every delivery.
    static KEYS: RefCell<HashMap<&'static str, (Vec<u8>, Keys)>> = RefCell::new(HashMap::new());
}

/// Comma-separated secrets (several while rolling one); none is `Ok(empty)`.
fn parse_keys(text: &str, setting: &'static str) -> Keys {
    text.split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(|s| match setting {
            "crm.resend_webhook_secret" => {
                svix::decode_secret(s).ok_or(VerifyError::BadSecret(setting))
            }
            _ => Ok(s.as_bytes().to_vec()),
        })
        .collect()
}

/// The keys of `setting`, from this backend's cache while the setting's text is unchanged.
fn keys(
    setting: &'static pgrx::guc::GucSetting<Option<std::ffi::CString>>,
    name: &'static str,
) -> Keys {
    let raw = guc::raw(setting);
    KEYS.with(|cache| {
        let mut cache = cache.borrow_mut();
        let fresh = matches!(cache.get(name), Some((text, _)) if text.as_slice() == raw);
        if !fresh {
            let keys = parse_keys(&String::from_utf8_lossy(raw), name);
            cache.insert(name, (raw.to_vec(), keys));
        }
        cache[name].1.clone()
    })
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
fn _verify_webhook(provider: &str, headers: JsonbArg, body: &str) -> Option<String> {
    let provider = provider.trim().to_ascii_lowercase();
    let (secret_setting, setting_name) = match provider.as_str() {
        "stripe" => (&guc::STRIPE_WEBHOOK_SECRET, "crm.stripe_webhook_secret"),
        "resend" => (&guc::RESEND_WEBHOOK_SECRET, "crm.resend_webhook_secret"),
        "elevenlabs" => (
            &crate::integrations::elevenlabs::ELEVENLABS_WEBHOOK_SECRET,
            "crm.elevenlabs_webhook_secret",
        ),
        other => raise(
            PgSqlErrorCode::ERRCODE_INVALID_PARAMETER_VALUE,
            format!(
                "unknown webhook provider \"{}\" (expected stripe, resend or elevenlabs)",
                other.chars().take(40).collect::<String>()
            ),
        ),
    };
    let serde_json::Value::Object(headers) = headers.parse(
        "headers",
        guc::MAX_JSON_ARGUMENT_BYTES.get().max(0) as usize,
        "crm.webhooks",
    ) else {
        raise(
            PgSqlErrorCode::ERRCODE_INVALID_PARAMETER_VALUE,
            "webhook headers must be a JSON object".into(),
        )
    };
    let keys = keys(secret_setting, setting_name);
    if matches!(&keys, Ok(k) if k.is_empty()) {
        raise(
            PgSqlErrorCode::ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE,
            format!("{setting_name} is not set: webhooks cannot be verified"),
        );
    }
    let max = guc::WEBHOOK_MAX_BODY.get().max(0) as usize;
    if body.len() > max {
        raise(
            PgSqlErrorCode::ERRCODE_PROGRAM_LIMIT_EXCEEDED,
            format!(
                "webhook body of {} bytes exceeds crm.webhook_max_body ({max})",
                body.len()
            ),
        );
    }
    let keys = keys.unwrap_or_else(|e| raise_verify(&provider, &e));
    match provider.as_str() {
        "stripe" => {
            stripe::verify(
                header(&headers, stripe::HEADER),
                body.as_bytes(),
                &keys,
                now(),
                guc::STRIPE_WEBHOOK_TOLERANCE.get() as i64,
            )
            .unwrap_or_else(|e| raise_verify("stripe", &e));
            None
        }
        "elevenlabs" => {
            crm_core::webhooks::elevenlabs::verify(
                header(&headers, crm_core::webhooks::elevenlabs::HEADER),
                body.as_bytes(),
                &keys,
                now(),
                crate::integrations::elevenlabs::ELEVENLABS_WEBHOOK_TOLERANCE.get() as i64,
            )
            .unwrap_or_else(|e| raise_verify("elevenlabs", &e));
            None
        }
        _ => {
            let h = svix::Headers {
                id: header(&headers, "svix-id").or_else(|| header(&headers, "webhook-id")),
                timestamp: header(&headers, "svix-timestamp")
                    .or_else(|| header(&headers, "webhook-timestamp")),
                signature: header(&headers, "svix-signature")
                    .or_else(|| header(&headers, "webhook-signature")),
            };
            let id = svix::verify(
                &h,
                body.as_bytes(),
                &keys,
                now(),
                guc::RESEND_WEBHOOK_TOLERANCE.get() as i64,
            )
            .unwrap_or_else(|e| raise_verify("resend", &e));
            Some(id.to_owned())
        }
    }
}

/// The recipients of a Resend event's `data.to`, for `crm._apply_resend_event`
/// (`crm_core::integrations::resend::event_recipients`: the address in angle brackets, distinct,
/// at most 50; lower-cased there, in SQL). A function, so PL/pgSQL evaluates it as a simple
/// expression: as an inlined SQL query it was planned with every delivery.
#[pg_extern(immutable, parallel_safe)]
fn _event_recipients(to: Option<JsonbArg>) -> Vec<String> {
    let Some(to) = to else {
        return Vec::new();
    };
    // (the limit the error names; the body it comes from is already within crm.webhook_max_body)
    let to = to.parse(
        "to",
        guc::MAX_JSON_ARGUMENT_BYTES.get().max(0) as usize,
        "crm.webhooks",
    );
    crm_core::integrations::resend::event_recipients(&to)
}
