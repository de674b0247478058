//! Stripe's API: form bodies in its bracket notation, the idempotency keys we derive from our
//! rows, and what an error answer means. Pure: no Postgres, no network.

use serde::Deserialize;
use serde_json::Value;

/// A JSON object as Stripe's form encoding: nested objects as `a[b][c]=v`, arrays as
/// `a[0][b]=v`, booleans as `true`/`false`, nulls left out (Stripe reads an empty value as
/// "unset", which is not what a missing field means).
pub fn form(body: &Value) -> Vec<(String, String)> {
    fn walk(prefix: &str, v: &Value, out: &mut Vec<(String, String)>) {
        match v {
            Value::Null => {}
            Value::Object(m) => {
                for (k, v) in m {
                    let key = if prefix.is_empty() {
                        k.clone()
                    } else {
                        format!("{prefix}[{k}]")
                    };
                    walk(&key, v, out);
                }
            }
            Value::Array(a) => {
                for (i, v) in a.iter().enumerate() {
                    walk(&format!("{prefix}[{i}]"), v, out);
                }
            }
            Value::String(s) => out.push((prefix.to_string(), s.clone())),
            Value::Bool(b) => out.push((prefix.to_string(), b.to_string())),
            Value::Number(n) => out.push((prefix.to_string(), n.to_string())),
        }
    }
    let mut out = Vec::new();
    walk("", body, &mut out);
    out
}

/// An idempotency key from the parts that make a request what it is (an invoice, its amount
/// and currency, the session it replaces): the same parts give the same key, so a second
/// click, a retry or a concurrent call is answered by Stripe with the first request's object.
/// Stripe takes keys up to 255 characters.
pub fn idempotency_key(kind: &str, parts: &[&str]) -> String {
    use sha2::{Digest, Sha256};
    let mut h = Sha256::new();
    for p in parts {
        h.update(p.as_bytes());
        h.update([0u8]);
    }
    let digest = h.finalize();
    let hex: String = digest.iter().take(16).map(|b| format!("{b:02x}")).collect();
    format!("crm-{kind}-{hex}")
}

/// Stripe's error object.
#[derive(Debug, Clone, Default, Deserialize, PartialEq)]
pub struct StripeError {
    #[serde(rename = "type", default)]
    pub kind: String,
    #[serde(default)]
    pub code: Option<String>,
    #[serde(default)]
    pub param: Option<String>,
    #[serde(default)]
    pub message: Option<String>,
    #[serde(default)]
    pub decline_code: Option<String>,
}

/// What a failed answer means for the caller.
#[derive(Debug, Clone, PartialEq)]
pub enum Refusal {
    /// The request is wrong (invalid_request_error, card_error): 22023, with the param.
    Invalid(String),
    /// The key is missing, wrong or lacks permission: 55000.
    Key(String),
    /// The same Idempotency-Key was sent with another payload: 55000.
    Idempotency(String),
    /// Rate limited: 53400, retry later.
    Busy(String),
    /// Stripe failed or could not be reached: 08000, retry later.
    Unavailable(String),
}

/// Read a non-2xx answer (`status` None: no answer, `error` says why).
pub fn refusal(status: Option<u16>, body: &str, error: Option<&str>) -> Refusal {
    let Some(status) = status else {
        return Refusal::Unavailable(format!(
            "Stripe could not be reached: {}",
            error.unwrap_or("unknown error")
        ));
    };
    #[derive(Deserialize)]
    struct Wrapper {
        error: StripeError,
    }
    let e = serde_json::from_str::<Wrapper>(body)
        .map(|w| w.error)
        .unwrap_or_default();
    let message = e
        .message
        .clone()
        .unwrap_or_else(|| format!("HTTP {status}"));
    let detail = match (&e.code, &e.param) {
        (Some(c), Some(p)) => format!("{message} ({c}, param {p})"),
        (None, Some(p)) => format!("{message} (param {p})"),
        (Some(c), None) => format!("{message} ({c})"),
        (None, None) => message,
    };
    match (status, e.kind.as_str()) {
        (429, _) | (_, "rate_limit_error") => Refusal::Busy(format!("Stripe rate limit: {detail}")),
        (_, "idempotency_error") => {
            Refusal::Idempotency(format!("Stripe idempotency_error: {detail}"))
        }
        // Not Stripe's message: it quotes the key's prefix and last four characters, and the
        // caller may be a tenant.
        (401, _) | (403, _) | (_, "authentication_error") | (_, "permission_error") => {
            Refusal::Key(format!(
                "Stripe {}: the API key was refused",
                if e.kind.is_empty() {
                    "authentication_error"
                } else {
                    &e.kind
                }
            ))
        }
        (500..=599, _) | (_, "api_error") => {
            Refusal::Unavailable(format!("Stripe api_error: {detail}"))
        }
        (_, "card_error") => Refusal::Invalid(format!("Stripe card_error: {detail}")),
        _ => Refusal::Invalid(format!(
            "Stripe {}: {detail}",
            if e.kind.is_empty() {
                "invalid_request_error"
            } else {
                &e.kind
            }
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn forms_use_bracket_notation() {
        let f = form(&json!({
            "mode": "payment",
            "line_items": [{"price_data": {"currency": "usd", "unit_amount": 1234,
                                           "product_data": {"name": "Invoice INV-1"}}, "quantity": 1}],
            "metadata": {"invoice_id": "abc"},
            "automatic_payment_methods": {"enabled": true},
            "customer_email": null
        }));
        let get = |k: &str| f.iter().find(|(a, _)| a == k).map(|(_, v)| v.as_str());
        assert_eq!(get("mode"), Some("payment"));
        assert_eq!(get("line_items[0][price_data][unit_amount]"), Some("1234"));
        assert_eq!(
            get("line_items[0][price_data][product_data][name]"),
            Some("Invoice INV-1")
        );
        assert_eq!(get("line_items[0][quantity]"), Some("1"));
        assert_eq!(get("metadata[invoice_id]"), Some("abc"));
        assert_eq!(get("automatic_payment_methods[enabled]"), Some("true"));
        assert_eq!(get("customer_email"), None);
    }

    #[test]
    fn keys_follow_their_parts() {
        let a = idempotency_key("checkout", &["inv", "100", "usd", ""]);
        assert_eq!(a, idempotency_key("checkout", &["inv", "100", "usd", ""]));
        assert_ne!(a, idempotency_key("checkout", &["inv", "101", "usd", ""]));
        assert_ne!(
            a,
            idempotency_key("checkout", &["inv", "100", "usd", "cs_1"])
        );
        // parts are delimited: ("ab", "c") is not ("a", "bc")
        assert_ne!(
            idempotency_key("k", &["ab", "c"]),
            idempotency_key("k", &["a", "bc"])
        );
        assert!(a.len() < 255 && a.starts_with("crm-checkout-"));
    }

    #[test]
    fn errors_map_to_refusals() {
        let body = |t: &str| {
            format!(r#"{{"error":{{"type":"{t}","code":"c","param":"p","message":"m"}}}}"#)
        };
        assert_eq!(
            refusal(Some(400), &body("invalid_request_error"), None),
            Refusal::Invalid("Stripe invalid_request_error: m (c, param p)".into())
        );
        assert!(
            matches!(refusal(Some(402), &body("card_error"), None), Refusal::Invalid(m) if m.contains("card_error"))
        );
        assert_eq!(
            refusal(
                Some(401),
                r#"{"error":{"type":"authentication_error","message":"Invalid API Key provided: sk_live_****1234"}}"#,
                None
            ),
            Refusal::Key("Stripe authentication_error: the API key was refused".into())
        );
        assert!(matches!(refusal(Some(403), "", None), Refusal::Key(_)));
        assert!(matches!(
            refusal(Some(400), &body("idempotency_error"), None),
            Refusal::Idempotency(_)
        ));
        assert!(matches!(
            refusal(Some(429), &body("rate_limit_error"), None),
            Refusal::Busy(_)
        ));
        assert!(matches!(
            refusal(Some(500), &body("api_error"), None),
            Refusal::Unavailable(_)
        ));
        assert!(
            matches!(refusal(None, "", Some("refused")), Refusal::Unavailable(m) if m.contains("refused"))
        );
    }
}
