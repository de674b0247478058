//! Stripe, outbound: `crm._stripe_post`, the one request behind `crm.create_invoice_checkout`
//! and `crm.create_payment_intent` (sql/payments.sql). Interactive: a frontend waits for the
//! URL, so it runs in the caller's transaction with `crm.http_timeout`, on a helper thread the
//! backend can cancel. Inbound (webhooks) is src/webhooks.rs and sql/webhooks.sql.

pub mod invoice_pdf;
pub mod settings;

use crate::errors::raise;
use crate::guc;
use crate::json_arg::JsonbArg;
use crate::runtime::http;
use crate::runtime::limiter::{self, Lane};
use crm_core::integrations::stripe::{self as wire, Refusal};
use pgrx::prelude::*;
use pgrx::JsonB;
use serde_json::Value;
use settings::{STRIPE_BASE_URL, STRIPE_RATE_LIMIT, STRIPE_SECRET_KEY};

const DOMAIN: &str = "crm_integrations.stripe";

/// POST `params` (a JSON object, sent in Stripe's bracket form encoding) to `path` with an
/// Idempotency-Key; the object Stripe answered, or an ERROR: 22023 (invalid_request_error
/// with its param, card_error), 55000 (the key, or an idempotency_error), 53400 (rate limit),
/// 08000 (Stripe failed or is unreachable).
#[pg_extern(volatile, parallel_unsafe)]
fn _stripe_post(path: &str, params: JsonbArg, idempotency_key: &str) -> JsonB {
    let key = guc::text(&STRIPE_SECRET_KEY);
    if key.is_empty() {
        raise(
            PgSqlErrorCode::ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE,
            "Stripe is not configured: crm.stripe_secret_key is not set",
            Some("a superuser sets crm.stripe_secret_key (ALTER SYSTEM SET ...; SELECT pg_reload_conf())"),
            DOMAIN,
        );
    }
    let params = params.parse(
        "params",
        guc::MAX_JSON_ARGUMENT_BYTES.get().max(0) as usize,
        DOMAIN,
    );
    if !params.is_object() || !path.starts_with("/v1/") {
        raise(
            PgSqlErrorCode::ERRCODE_INVALID_PARAMETER_VALUE,
            "a Stripe request is a /v1/ path and a JSON object",
            None,
            DOMAIN,
        );
    }
    if !limiter::pace(
        &Lane::provider("stripe"),
        STRIPE_RATE_LIMIT.get(),
        crate::templates::check_interrupts,
    ) {
        raise(
            PgSqlErrorCode::ERRCODE_QUERY_CANCELED,
            "canceled while waiting for the Stripe rate limit",
            None,
            DOMAIN,
        );
    }
    let answer = http::post_form_headers_interruptible(
        http::url(&guc::text(&STRIPE_BASE_URL), path),
        vec![
            ("Authorization", format!("Bearer {key}")),
            ("Idempotency-Key", idempotency_key.to_string()),
        ],
        wire::form(&params),
    );
    if let Some(200..=299) = answer.status {
        return match serde_json::from_str::<Value>(&answer.body) {
            Ok(v) if v.is_object() => JsonB(v),
            _ => raise(
                PgSqlErrorCode::ERRCODE_CONNECTION_EXCEPTION,
                "Stripe answered something that is not a JSON object",
                None,
                DOMAIN,
            ),
        };
    }
    if answer.status == Some(429) {
        limiter::slow_down(&Lane::provider("stripe"), answer.retry_after.as_deref());
    }
    // the key never appears in an answer; ureq's transport errors quote only the URL
    match wire::refusal(answer.status, &answer.body, answer.error.as_deref()) {
        Refusal::Invalid(m) => raise(
            PgSqlErrorCode::ERRCODE_INVALID_PARAMETER_VALUE,
            m,
            None,
            DOMAIN,
        ),
        Refusal::Key(m) => raise(
            PgSqlErrorCode::ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE,
            m,
            Some("check crm.stripe_secret_key"),
            DOMAIN,
        ),
        Refusal::Idempotency(m) => raise(
            PgSqlErrorCode::ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE,
            m,
            None,
            DOMAIN,
        ),
        Refusal::Busy(m) => raise(
            PgSqlErrorCode::ERRCODE_CONFIGURATION_LIMIT_EXCEEDED,
            format!("{m}; try again later"),
            None,
            DOMAIN,
        ),
        Refusal::Unavailable(m) => raise(
            PgSqlErrorCode::ERRCODE_CONNECTION_EXCEPTION,
            format!("{m}; try again later"),
            None,
            DOMAIN,
        ),
    }
}

/// The idempotency key of an outbound request, from the row's parts (for the SQL callers).
#[pg_extern(immutable, parallel_safe)]
fn _stripe_idempotency_key(kind: &str, parts: Vec<Option<String>>) -> String {
    let parts: Vec<String> = parts.into_iter().map(Option::unwrap_or_default).collect();
    let refs: Vec<&str> = parts.iter().map(String::as_str).collect();
    wire::idempotency_key(kind, &refs)
}
