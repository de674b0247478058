//! The one call shape of `crm.enqueue_email(message jsonb)`: validation and normalization,
//! before anything is written. Every error names the offending field (`to[1]`,
//! `attachments[0].filename`, …); unknown keys are errors too, so a typo such as `tempalte`
//! is caught instead of silently sending an empty email.

use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use std::fmt;

pub const MAX_RECIPIENTS: usize = 50;
pub const MAX_ATTACHMENTS: usize = 20;
pub const MAX_HEADERS: usize = 50;
pub const MAX_BODY_BYTES: usize = 2 * 1024 * 1024;
pub const MAX_METADATA_BYTES: usize = 16 * 1024;
pub const MAX_BATCH: usize = 100;
pub const PROVIDERS: [&str; 4] = ["resend", "gmail", "microsoft", "smtp"];

/// Header names a message may not set: the queue sets them from its own fields.
const RESERVED_HEADERS: [&str; 9] = [
    "from",
    "to",
    "cc",
    "bcc",
    "subject",
    "reply-to",
    "content-type",
    "mime-version",
    "content-transfer-encoding",
];

const KEYS: [&str; 19] = [
    "account_id",
    "to",
    "to_name",
    "cc",
    "bcc",
    "subject",
    "html",
    "text",
    "template",
    "variables",
    "from",
    "reply_to",
    "headers",
    "attachments",
    "scheduled_at",
    "priority",
    "provider",
    "metadata",
    "idempotency_key",
];
const MORE_KEYS: [&str; 1] = ["max_attempts"];

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Invalid {
    pub field: String,
    pub reason: String,
}

impl fmt::Display for Invalid {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // (a problem with the message as a whole names no field)
        if self.field.is_empty() {
            write!(f, "message: {}", self.reason)
        } else {
            write!(f, "message.{}: {}", self.field, self.reason)
        }
    }
}

fn invalid(field: impl Into<String>, reason: impl Into<String>) -> Invalid {
    Invalid {
        field: field.into(),
        reason: reason.into(),
    }
}

/// Limits that are settings in the SQL shell.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    pub max_attachment_bytes: usize,
    /// Largest `variables` object, as JSON text.
    pub max_variables_bytes: usize,
    /// Latest accepted `scheduled_at`, as seconds from now.
    pub max_schedule_ahead_secs: i64,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_attachment_bytes: 10 * 1024 * 1024,
            max_variables_bytes: 1024 * 1024,
            max_schedule_ahead_secs: 366 * 86400,
        }
    }
}

/// Validate one message and return its normalized form (the keys the SQL side inserts):
/// `to`, `cc`, `bcc` as arrays of bare addresses, `scheduled_at` in RFC 3339 UTC, defaults
/// filled in (`variables` `{}`, `priority` 0, `max_attempts` 3, `headers` `{}`, …).
pub fn validate(message: &Value, limits: &Limits, now: DateTime<Utc>) -> Result<Value, Invalid> {
    validate_queued(message, limits, now).map(|m| {
        serde_json::to_value(m).expect("a QueuedMessage is plain JSON (strings, numbers, maps)")
    })
}

/// [`validate`], typed: the message as the queue stores it, built directly (not through a
/// JSON map that is then deserialized: enqueue validates every message of every batch).
pub fn validate_queued(
    message: &Value,
    limits: &Limits,
    now: DateTime<Utc>,
) -> Result<QueuedMessage, Invalid> {
    let m = message
        .as_object()
        .ok_or_else(|| invalid("", "the message must be a JSON object"))?;
    if let Some(k) = m
        .keys()
        .find(|k| !KEYS.contains(&k.as_str()) && !MORE_KEYS.contains(&k.as_str()))
    {
        return Err(invalid(k.clone(), "unknown key"));
    }
    let account_id = match m.get("account_id").filter(|v| !v.is_null()) {
        Some(a) => Some(
            a.as_str()
                .filter(|s| is_uuid(s))
                .ok_or_else(|| invalid("account_id", "must be a UUID"))?
                .to_ascii_lowercase(),
        ),
        None => None,
    };

    let to = recipients(m.get("to"), "to")?;
    if to.is_empty() {
        return Err(invalid("to", "at least one recipient is required"));
    }
    let cc = recipients(m.get("cc"), "cc")?;
    let bcc = recipients(m.get("bcc"), "bcc")?;
    if to.len() + cc.len() + bcc.len() > MAX_RECIPIENTS {
        return Err(invalid(
            "to",
            format!("at most {MAX_RECIPIENTS} recipients in to, cc and bcc together"),
        ));
    }
    let to_name = opt_text(m, "to_name", 200)?;

    let subject = opt_text(m, "subject", 998)?;
    let html = opt_body(m, "html")?;
    let text = opt_body(m, "text")?;
    let template = opt_text(m, "template", 200)?;
    match (&template, html.is_some() || text.is_some()) {
        (Some(_), true) => {
            return Err(invalid(
                "template",
                "give either template or html/text, not both",
            ))
        }
        (None, false) => {
            return Err(invalid(
                "html",
                "no content: give html, text, or a template",
            ))
        }
        (None, true) if subject.is_none() => {
            return Err(invalid("subject", "required unless a template is used"))
        }
        _ => {}
    }
    let variables = match m.get("variables") {
        None => Map::new(),
        Some(Value::Object(v)) => v.clone(),
        Some(_) => return Err(invalid("variables", "must be a JSON object")),
    };
    let variables_bytes = json_len(&variables);
    if variables_bytes > limits.max_variables_bytes {
        return Err(invalid(
            "variables",
            format!(
                "{variables_bytes} bytes of JSON exceed crm.max_json_argument_bytes ({})",
                limits.max_variables_bytes
            ),
        ));
    }
    if template.is_none() && m.get("variables").is_some() {
        return Err(invalid("variables", "only used with a template"));
    }

    let mailbox = |field: &str| -> Result<Option<String>, Invalid> {
        let Some(v) = m.get(field).filter(|v| !v.is_null()) else {
            return Ok(None);
        };
        let s = v
            .as_str()
            .ok_or_else(|| invalid(field, "must be a string"))?;
        let addr = parse_mailbox(s).map_err(|r| invalid(field, r))?;
        // Keep "Name <addr>" for from (the display name matters); reply_to is an address.
        Ok(Some(if field == "from" {
            s.trim().to_string()
        } else {
            addr
        }))
    };
    let from = mailbox("from")?;
    let reply_to = mailbox("reply_to")?;

    let headers = headers(m.get("headers"))?;
    let attachments = attachments(m.get("attachments"), limits)?;

    let mut scheduled_at = None;
    if let Some(v) = m.get("scheduled_at").filter(|v| !v.is_null()) {
        let s = v
            .as_str()
            .ok_or_else(|| invalid("scheduled_at", "must be an ISO 8601 string"))?;
        let at = DateTime::parse_from_rfc3339(s.trim())
            .map_err(|_| {
                invalid(
                    "scheduled_at",
                    "not an ISO 8601 timestamp with a time zone (e.g. 2025-02-01T09:00:00Z)",
                )
            })?
            .with_timezone(&Utc);
        if (at - now).num_seconds() > limits.max_schedule_ahead_secs {
            return Err(invalid("scheduled_at", "too far in the future"));
        }
        scheduled_at = Some(at.to_rfc3339_opts(chrono::SecondsFormat::Micros, true));
    }

    // (both within i32: int_in bounds them)
    let priority = int_in(m, "priority", -1000, 1000, 0)? as i32;
    let max_attempts = int_in(m, "max_attempts", 1, 20, 3)? as i32;

    let mut provider = None;
    if let Some(p) = m.get("provider").filter(|v| !v.is_null()) {
        let p = p
            .as_str()
            .map(|s| s.trim().to_ascii_lowercase())
            .unwrap_or_default();
        if !PROVIDERS.contains(&p.as_str()) {
            return Err(invalid(
                "provider",
                "unknown provider (resend, gmail, microsoft or smtp)",
            ));
        }
        provider = Some(p);
    }
    let metadata = match m.get("metadata") {
        None => Map::new(),
        Some(Value::Object(v)) => v.clone(),
        Some(_) => return Err(invalid("metadata", "must be a JSON object")),
    };
    if json_len(&metadata) > MAX_METADATA_BYTES {
        return Err(invalid(
            "metadata",
            format!("larger than {MAX_METADATA_BYTES} bytes"),
        ));
    }
    if metadata.get("provider_message_id").is_some() {
        return Err(invalid(
            "metadata.provider_message_id",
            "is set by the queue",
        ));
    }
    let idempotency_key = opt_text(m, "idempotency_key", 256)?;
    Ok(QueuedMessage {
        account_id,
        to,
        cc,
        bcc,
        to_name,
        subject,
        html,
        text,
        template,
        variables,
        from,
        reply_to,
        headers,
        attachments,
        scheduled_at,
        priority,
        max_attempts,
        provider,
        metadata,
        idempotency_key,
    })
}

/// The length of an object's JSON text, as the size limits count it.
fn json_len(m: &Map<String, Value>) -> usize {
    if m.is_empty() {
        return 2;
    }
    serde_json::to_string(m).map_or(usize::MAX, |s| s.len())
}

/// Validate a batch: a JSON array of 1..=100 messages. Errors name the message: `[3].to`.
pub fn validate_batch(
    messages: &Value,
    limits: &Limits,
    now: DateTime<Utc>,
) -> Result<Vec<Value>, Invalid> {
    batch_of(messages, |m| validate(m, limits, now))
}

/// [`validate_batch`], typed.
pub fn validate_batch_queued(
    messages: &Value,
    limits: &Limits,
    now: DateTime<Utc>,
) -> Result<Vec<QueuedMessage>, Invalid> {
    batch_of(messages, |m| validate_queued(m, limits, now))
}

fn batch_of<T>(
    messages: &Value,
    validate_one: impl Fn(&Value) -> Result<T, Invalid>,
) -> Result<Vec<T>, Invalid> {
    let arr = messages
        .as_array()
        .ok_or_else(|| invalid("", "a batch must be a JSON array of messages"))?;
    if arr.is_empty() {
        return Err(invalid("", "a batch needs at least one message"));
    }
    if arr.len() > MAX_BATCH {
        return Err(invalid(
            "",
            format!(
                "a batch holds at most {MAX_BATCH} messages, not {}",
                arr.len()
            ),
        ));
    }
    arr.iter()
        .enumerate()
        .map(|(i, m)| {
            validate_one(m).map_err(|e| Invalid {
                field: format!(
                    "[{i}]{}{}",
                    if e.field.is_empty() { "" } else { "." },
                    e.field
                ),
                reason: e.reason,
            })
        })
        .collect()
}

/// A validated message, typed, as the queue stores it. `crm._validate_email_rows` hands these
/// to SQL as one row per message, so the enqueue does not turn JSON into text and back
/// (jsonb → serde → jsonb) for every message of a batch. Serialized, it is the normalized
/// JSON of [`validate`]: optional fields absent when not given.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct QueuedMessage {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub account_id: Option<String>,
    pub to: Vec<String>,
    pub cc: Vec<String>,
    pub bcc: Vec<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub to_name: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub subject: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub html: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub text: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub template: Option<String>,
    pub variables: Map<String, Value>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub from: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reply_to: Option<String>,
    pub headers: Map<String, Value>,
    pub attachments: Vec<Value>,
    /// RFC 3339, UTC, microseconds.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub scheduled_at: Option<String>,
    pub priority: i32,
    pub max_attempts: i32,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub provider: Option<String>,
    pub metadata: Map<String, Value>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub idempotency_key: Option<String>,
}

/// A UUID as 32 hex digits or in the hyphenated 8-4-4-4-12 form.
pub fn is_uuid(s: &str) -> bool {
    crate::ids::parse_uuid(s).is_some()
}

fn opt_text(m: &Map<String, Value>, key: &str, max: usize) -> Result<Option<String>, Invalid> {
    match m.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => {
            if s.trim().is_empty() {
                return Err(invalid(key, "must not be empty"));
            }
            if s.chars().count() > max {
                return Err(invalid(key, format!("longer than {max} characters")));
            }
            if s.contains(['\r', '\n']) {
                return Err(invalid(key, "must not contain line breaks"));
            }
            Ok(Some(s.clone()))
        }
        Some(_) => Err(invalid(key, "must be a string")),
    }
}

fn opt_body(m: &Map<String, Value>, key: &str) -> Result<Option<String>, Invalid> {
    match m.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) if s.len() > MAX_BODY_BYTES => {
            Err(invalid(key, format!("larger than {MAX_BODY_BYTES} bytes")))
        }
        Some(Value::String(s)) if s.trim().is_empty() => Err(invalid(key, "must not be empty")),
        Some(Value::String(s)) => Ok(Some(s.clone())),
        Some(_) => Err(invalid(key, "must be a string")),
    }
}

fn int_in(
    m: &Map<String, Value>,
    key: &str,
    lo: i64,
    hi: i64,
    default: i64,
) -> Result<i64, Invalid> {
    match m.get(key) {
        None | Some(Value::Null) => Ok(default),
        Some(v) => match v.as_i64() {
            Some(n) if (lo..=hi).contains(&n) => Ok(n),
            _ => Err(invalid(
                key,
                format!("must be an integer from {lo} to {hi}"),
            )),
        },
    }
}

fn recipients(v: Option<&Value>, field: &str) -> Result<Vec<String>, Invalid> {
    let items: &[Value] = match v {
        None | Some(Value::Null) => return Ok(vec![]),
        Some(one @ Value::String(_)) => std::slice::from_ref(one),
        Some(Value::Array(a)) => a,
        Some(_) => {
            return Err(invalid(
                field,
                "must be an address or an array of addresses",
            ))
        }
    };
    if items.len() > MAX_RECIPIENTS {
        return Err(invalid(
            field,
            format!("at most {MAX_RECIPIENTS} addresses"),
        ));
    }
    // (the item's name is only spelled out for an error)
    let name = |i: usize| {
        if matches!(v, Some(Value::Array(_))) {
            format!("{field}[{i}]")
        } else {
            field.to_string()
        }
    };
    let mut out: Vec<String> = Vec::with_capacity(items.len());
    for (i, item) in items.iter().enumerate() {
        let s = item
            .as_str()
            .ok_or_else(|| invalid(name(i), "must be a string"))?;
        let addr = parse_mailbox(s).map_err(|r| invalid(name(i), r))?;
        if !out.contains(&addr) {
            out.push(addr);
        }
    }
    Ok(out)
}

/// `Display Name <addr>` → `(Some("Display Name"), addr)` (the name unquoted, None when
/// empty); a bare `addr` → `(None, addr)`; None when the angle brackets do not pair up.
/// The one place a mailbox is taken apart (validation here, headers in `mime`).
pub fn split_mailbox(s: &str) -> Option<(Option<&str>, &str)> {
    let s = s.trim();
    match (s.rfind('<'), s.ends_with('>')) {
        (Some(lt), true) => {
            let name = s[..lt].trim().trim_matches('"').trim();
            Some(((!name.is_empty()).then_some(name), &s[lt + 1..s.len() - 1]))
        }
        (None, false) => Some((None, s)),
        _ => None,
    }
}

/// `addr@example.com` or `Display Name <addr@example.com>` → the address, lower-cased domain.
pub fn parse_mailbox(s: &str) -> Result<String, String> {
    let s = s.trim();
    if s.contains(['\r', '\n', '\0']) {
        return Err("must not contain line breaks".into());
    }
    let (_, addr) =
        split_mailbox(s).ok_or_else(|| format!("\"{}\" is not an email address", truncate(s)))?;
    if is_address(addr) {
        let at = addr.rfind('@').expect("checked");
        let mut out = addr.to_string();
        out[at + 1..].make_ascii_lowercase();
        Ok(out)
    } else {
        Err(format!("\"{}\" is not an email address", truncate(s)))
    }
}

fn truncate(s: &str) -> String {
    s.chars().take(80).collect()
}

/// The dot-atom form of RFC 5322 addresses (what mail providers accept in practice): no quoted
/// local parts, no IP-literal domains, a domain of at least two labels.
pub fn is_address(addr: &str) -> bool {
    if addr.len() > 254 {
        return false;
    }
    let Some((local, domain)) = addr.rsplit_once('@') else {
        return false;
    };
    // (bytes: a non-ASCII character fails these checks whichever of its bytes is looked at)
    let atext = |c: u8| c.is_ascii_alphanumeric() || b"!#$%&'*+/=?^_`{|}~-".contains(&c);
    let local_ok = !local.is_empty()
        && local.len() <= 64
        && local
            .split('.')
            .all(|part| !part.is_empty() && part.bytes().all(atext));
    let label_ok = |l: &str| {
        !l.is_empty()
            && l.len() <= 63
            && !l.starts_with('-')
            && !l.ends_with('-')
            && l.bytes().all(|c| c.is_ascii_alphanumeric() || c == b'-')
    };
    let tld = domain.rsplit('.').next().unwrap_or("");
    let domain_ok = domain.contains('.')
        && domain.split('.').all(label_ok)
        && tld.len() >= 2
        && tld.bytes().all(|c| c.is_ascii_alphabetic());
    local_ok && domain_ok
}

fn headers(v: Option<&Value>) -> Result<Map<String, Value>, Invalid> {
    let Some(v) = v.filter(|v| !v.is_null()) else {
        return Ok(Map::new());
    };
    let h = v
        .as_object()
        .ok_or_else(|| invalid("headers", "must be a JSON object of strings"))?;
    if h.len() > MAX_HEADERS {
        return Err(invalid("headers", format!("at most {MAX_HEADERS} headers")));
    }
    for (name, value) in h {
        let field = format!("headers.{name}");
        if name.is_empty()
            || name.len() > 76
            || !name.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
        {
            return Err(invalid(field, "is not a valid header name"));
        }
        if RESERVED_HEADERS.contains(&name.to_ascii_lowercase().as_str()) {
            return Err(invalid(field, "is set from the message's own fields"));
        }
        let s = value
            .as_str()
            .ok_or_else(|| invalid(field.clone(), "must be a string"))?;
        if s.contains(['\r', '\n', '\0']) || s.len() > 998 {
            return Err(invalid(field, "must be one line of at most 998 characters"));
        }
    }
    Ok(h.clone())
}

fn attachments(v: Option<&Value>, limits: &Limits) -> Result<Vec<Value>, Invalid> {
    let Some(v) = v.filter(|v| !v.is_null()) else {
        return Ok(Vec::new());
    };
    let arr = v
        .as_array()
        .ok_or_else(|| invalid("attachments", "must be an array"))?;
    if arr.len() > MAX_ATTACHMENTS {
        return Err(invalid(
            "attachments",
            format!("at most {MAX_ATTACHMENTS} attachments"),
        ));
    }
    let mut total = 0usize;
    for (i, a) in arr.iter().enumerate() {
        let f = |k: &str| format!("attachments[{i}].{k}");
        let o = a
            .as_object()
            .ok_or_else(|| invalid(format!("attachments[{i}]"), "must be an object"))?;
        if let Some(k) = o
            .keys()
            .find(|k| !["filename", "content_base64", "content_type"].contains(&k.as_str()))
        {
            return Err(invalid(f(k), "unknown key"));
        }
        let name = o
            .get("filename")
            .and_then(Value::as_str)
            .ok_or_else(|| invalid(f("filename"), "is required"))?;
        if name.is_empty() || name.len() > 255 || name.contains(['/', '\\', '\r', '\n', '\0', '"'])
        {
            return Err(invalid(f("filename"), "must be a plain file name"));
        }
        let ct = o
            .get("content_type")
            .and_then(Value::as_str)
            .unwrap_or("application/octet-stream");
        let ct_ok = ct.split_once('/').is_some_and(|(t, s)| {
            !t.is_empty()
                && !s.is_empty()
                && ct
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || "/+-.".contains(c))
        });
        if !ct_ok {
            return Err(invalid(
                f("content_type"),
                "must be a MIME type such as application/pdf",
            ));
        }
        let b64 = o
            .get("content_base64")
            .and_then(Value::as_str)
            .ok_or_else(|| invalid(f("content_base64"), "is required"))?;
        // Size from the encoded length first: refuse a huge string before decoding it.
        if b64.len() / 4 * 3 > limits.max_attachment_bytes + 3 {
            return Err(invalid(
                f("content_base64"),
                format!("attachments exceed {} bytes", limits.max_attachment_bytes),
            ));
        }
        let bytes = STANDARD
            .decode(b64.trim())
            .map_err(|_| invalid(f("content_base64"), "is not base64"))?;
        total += bytes.len();
        if total > limits.max_attachment_bytes {
            return Err(invalid(
                f("content_base64"),
                format!("attachments exceed {} bytes", limits.max_attachment_bytes),
            ));
        }
    }
    Ok(arr.clone())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn errors_name_the_field_or_the_whole_message() {
        assert_eq!(
            invalid("", "must be a JSON object").to_string(),
            "message: must be a JSON object"
        );
        assert_eq!(
            invalid("to", "required").to_string(),
            "message.to: required"
        );
        let batch = validate_batch_queued(
            &json!([{"to": "a@b.co", "subject": "s", "text": "x"}, 3]),
            &Limits::default(),
            Utc::now(),
        );
        assert_eq!(
            batch.unwrap_err().to_string(),
            "message.[1]: the message must be a JSON object"
        );
    }
    use serde_json::json;

    fn now() -> DateTime<Utc> {
        "2026-11-24T12:00:00Z".parse().unwrap()
    }
    fn ok(v: Value) -> Value {
        validate(&v, &Limits::default(), now()).unwrap()
    }
    fn err(v: Value) -> (String, String) {
        let e = validate(&v, &Limits::default(), now()).unwrap_err();
        (e.field, e.reason)
    }

    #[test]
    fn normalizes_a_simple_message() {
        let m = ok(json!({"to": "John <John@Example.COM>", "subject": "Hi", "html": "<p>x</p>"}));
        assert_eq!(m["to"], json!(["John@example.com"]));
        assert_eq!(m["priority"], json!(0));
        assert_eq!(m["max_attempts"], json!(3));
        assert_eq!(m["cc"], json!([]));
        assert_eq!(m["attachments"], json!([]));
    }

    #[test]
    fn template_messages() {
        let m = ok(
            json!({"to": ["a@x.io", "a@x.io", "b@x.io"], "template": "Welcome Email", "variables": {"firstName": "Jo"},
                          "scheduled_at": "2026-11-25T09:00:00+01:00", "priority": 5}),
        );
        assert_eq!(m["to"], json!(["a@x.io", "b@x.io"]));
        assert_eq!(m["scheduled_at"], json!("2026-11-25T08:00:00.000000Z"));
        assert_eq!(
            err(json!({"to": "a@x.io", "template": "T", "html": "<p>"})).0,
            "template"
        );
        assert_eq!(
            err(json!({"to": "a@x.io", "subject": "s", "html": "h", "variables": {}})).0,
            "variables"
        );
    }

    #[test]
    fn each_error_names_its_field() {
        assert_eq!(err(json!([])).1, "the message must be a JSON object");
        assert_eq!(
            err(json!({"to": "a@x.io", "subject": "s", "html": "h", "tempalte": "x"})).0,
            "tempalte"
        );
        assert_eq!(err(json!({"subject": "s", "html": "h"})).0, "to");
        assert_eq!(
            err(json!({"to": ["a@x.io", "not an address"], "subject": "s", "html": "h"})).0,
            "to[1]"
        );
        assert_eq!(
            err(json!({"to": "a@x.io", "cc": "a@@x.io", "subject": "s", "html": "h"})).0,
            "cc"
        );
        assert_eq!(err(json!({"to": "a@x.io", "subject": "s"})).0, "html");
        assert_eq!(err(json!({"to": "a@x.io", "html": "h"})).0, "subject");
        assert_eq!(
            err(json!({"to": "a@x.io", "subject": "s\r\nBcc: victim@x.io", "html": "h"})).0,
            "subject"
        );
        assert_eq!(
            err(json!({"to": "a@x.io", "subject": "s", "html": "h", "scheduled_at": "tomorrow"})).0,
            "scheduled_at"
        );
        assert_eq!(err(json!({"to": "a@x.io", "subject": "s", "html": "h", "scheduled_at": "2026-11-25T09:00:00"})).0, "scheduled_at");
        assert_eq!(err(json!({"to": "a@x.io", "subject": "s", "html": "h", "scheduled_at": "2030-01-01T00:00:00Z"})).1, "too far in the future");
        assert_eq!(
            err(json!({"to": "a@x.io", "subject": "s", "html": "h", "provider": "mailchimp"})).0,
            "provider"
        );
        assert_eq!(
            err(json!({"to": "a@x.io", "subject": "s", "html": "h", "priority": 1.5})).0,
            "priority"
        );
        assert_eq!(
            err(json!({"to": "a@x.io", "subject": "s", "html": "h", "max_attempts": 0})).0,
            "max_attempts"
        );
        assert_eq!(
            err(json!({"to": "a@x.io", "subject": "s", "html": "h", "headers": {"Bcc": "x@y.io"}}))
                .0,
            "headers.Bcc"
        );
        assert_eq!(
            err(json!({"to": "a@x.io", "subject": "s", "html": "h", "headers": {"X-Tag": "a\nb"}}))
                .0,
            "headers.X-Tag"
        );
        assert_eq!(
            err(json!({"to": "a@x.io", "subject": "s", "html": "h", "account_id": "nope"})).0,
            "account_id"
        );
        assert_eq!(
            err(json!({"to": "a@x.io", "subject": "s", "html": "h", "from": "x"})).0,
            "from"
        );
        assert_eq!(err(json!({"to": "a@x.io", "subject": "s", "html": "h", "metadata": {"provider_message_id": "x"}})).0, "metadata.provider_message_id");
    }

    #[test]
    fn attachments_are_checked_and_bounded() {
        let small = STANDARD.encode(b"%PDF-1.4 tiny");
        let m = ok(json!({"to": "a@x.io", "subject": "s", "text": "t",
                          "attachments": [{"filename": "invoice.pdf", "content_base64": small, "content_type": "application/pdf"}]}));
        assert_eq!(m["attachments"][0]["filename"], json!("invoice.pdf"));
        let limits = Limits {
            max_attachment_bytes: 1000,
            ..Limits::default()
        };
        let big = STANDARD.encode(vec![0u8; 1001]);
        let e = validate(
            &json!({"to": "a@x.io", "subject": "s", "text": "t",
                                 "attachments": [{"filename": "a.bin", "content_base64": big}]}),
            &limits,
            now(),
        )
        .unwrap_err();
        assert_eq!(e.field, "attachments[0].content_base64");
        assert_eq!(err(json!({"to": "a@x.io", "subject": "s", "text": "t", "attachments": [{"filename": "../etc/passwd", "content_base64": small}]})).0,
                   "attachments[0].filename");
        assert_eq!(err(json!({"to": "a@x.io", "subject": "s", "text": "t", "attachments": [{"filename": "a", "content_base64": "!!"}]})).0,
                   "attachments[0].content_base64");
    }

    #[test]
    fn addresses() {
        for good in [
            "a@x.io",
            "first.last+tag@sub.example.co.uk",
            "o'brien@example.com",
            "Jo Smith <jo@x.io>",
        ] {
            assert!(parse_mailbox(good).is_ok(), "{good}");
        }
        for bad in [
            "",
            "a",
            "a@",
            "@x.io",
            "a@x",
            "a@x.c",
            "a..b@x.io",
            ".a@x.io",
            "a@-x.io",
            "a b@x.io",
            "a@x.io\r\nBcc: z@z.io",
            "Jo <a@x.io",
            "a@x.123",
            &format!("{}@x.io", "a".repeat(65)),
        ] {
            assert!(parse_mailbox(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn batches() {
        let one = json!({"to": "a@x.io", "subject": "s", "text": "t"});
        assert_eq!(
            validate_batch(
                &json!([one.clone(), one.clone()]),
                &Limits::default(),
                now()
            )
            .unwrap()
            .len(),
            2
        );
        let e = validate_batch(
            &json!([one.clone(), {"to": "bad"}]),
            &Limits::default(),
            now(),
        )
        .unwrap_err();
        assert_eq!(e.field, "[1].to");
        let many: Vec<Value> = (0..101).map(|_| one.clone()).collect();
        assert!(validate_batch(&json!(many), &Limits::default(), now())
            .unwrap_err()
            .reason
            .contains("at most 100"));
        assert!(validate_batch(&json!([]), &Limits::default(), now()).is_err());
    }

    #[test]
    fn every_key_of_a_full_message_reaches_the_typed_form() {
        let full = json!({"account_id": "0000000B-0000-0000-0000-00000000D1D1", "to": ["a@x.io"], "to_name": "Ann",
                          "cc": "c@x.io", "bcc": ["d@x.io"], "subject": "s", "template": "T", "variables": {"n": 1},
                          "from": "CRM <crm@x.io>", "reply_to": "r@x.io", "headers": {"X-Tag": "t"},
                          "attachments": [{"filename": "a.txt", "content_base64": "aGk=", "content_type": "text/plain"}],
                          "scheduled_at": "2026-11-25T09:00:00Z", "priority": 5, "max_attempts": 7,
                          "provider": "smtp", "metadata": {"job": "j"}, "idempotency_key": "k"});
        let q = validate_queued(&full, &Limits::default(), now()).unwrap();
        assert_eq!(
            q.account_id.as_deref(),
            Some("0000000b-0000-0000-0000-00000000d1d1")
        );
        assert_eq!(
            (q.to, q.cc, q.bcc),
            (
                vec!["a@x.io".to_string()],
                vec!["c@x.io".to_string()],
                vec!["d@x.io".to_string()]
            )
        );
        assert_eq!(
            (
                q.to_name.as_deref(),
                q.subject.as_deref(),
                q.template.as_deref()
            ),
            (Some("Ann"), Some("s"), Some("T"))
        );
        assert_eq!((q.html, q.text), (None, None));
        assert_eq!(Value::Object(q.variables), json!({"n": 1}));
        assert_eq!(
            (q.from.as_deref(), q.reply_to.as_deref()),
            (Some("CRM <crm@x.io>"), Some("r@x.io"))
        );
        assert_eq!(q.headers.len(), 1);
        assert_eq!(q.attachments.len(), 1);
        assert_eq!(
            q.scheduled_at.as_deref(),
            Some("2026-11-25T09:00:00.000000Z")
        );
        assert_eq!((q.priority, q.max_attempts), (5, 7));
        assert_eq!(
            (q.provider.as_deref(), q.idempotency_key.as_deref()),
            (Some("smtp"), Some("k"))
        );
        assert_eq!(Value::Object(q.metadata), json!({"job": "j"}));
        // the least a message can be: defaults filled in
        let min = validate_queued(
            &json!({"to": "a@x.io", "subject": "s", "text": "t"}),
            &Limits::default(),
            now(),
        )
        .unwrap();
        assert_eq!(
            (
                min.priority,
                min.max_attempts,
                min.variables.len(),
                min.attachments.len()
            ),
            (0, 3, 0, 0)
        );
        let batch = validate_batch_queued(
            &json!([full, {"to": "b@x.io", "subject": "s", "html": "h"}]),
            &Limits::default(),
            now(),
        )
        .unwrap();
        assert_eq!(batch.len(), 2);
        assert_eq!(batch[1].html.as_deref(), Some("h"));
    }
}
