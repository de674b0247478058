//! Resend's API, as data: the JSON of `POST /emails` and `POST /emails/batch`, the message ids
//! in their answers, and the recipients of its webhook events. (The HTTP call itself is in the
//! SQL shell's provider module.)
//! <https://resend.com/docs/api-reference/emails/send-email>

use crate::email::Outgoing;
use serde_json::{json, Value};

/// Resend's batch endpoint takes at most 100 emails, and no attachments or scheduling.
pub const MAX_BATCH: usize = 100;

pub fn can_batch(e: &Outgoing) -> bool {
    e.attachments.as_array().is_none_or(|a| a.is_empty())
}

pub fn email_json(e: &Outgoing) -> Value {
    let mut o = json!({
        "from": e.from,
        "to": e.to,
        "subject": e.subject,
    });
    let m = o.as_object_mut().expect("object");
    if !e.cc.is_empty() {
        m.insert("cc".into(), json!(e.cc));
    }
    if !e.bcc.is_empty() {
        m.insert("bcc".into(), json!(e.bcc));
    }
    if let Some(r) = &e.reply_to {
        m.insert("reply_to".into(), json!(r));
    }
    if let Some(h) = &e.html {
        m.insert("html".into(), json!(h));
    }
    if let Some(t) = &e.text {
        m.insert("text".into(), json!(t));
    }
    if e.headers.as_object().is_some_and(|h| !h.is_empty()) {
        m.insert("headers".into(), e.headers.clone());
    }
    if let Some(atts) = e.attachments.as_array().filter(|a| !a.is_empty()) {
        let list: Vec<Value> = atts
            .iter()
            .map(|a| {
                let mut x = json!({"filename": a["filename"], "content": a["content_base64"]});
                if let Some(ct) = a.get("content_type") {
                    x["content_type"] = ct.clone();
                }
                x
            })
            .collect();
        m.insert("attachments".into(), json!(list));
    }
    o
}

/// `{"id": "..."}` from `POST /emails`.
pub fn message_id(body: &str) -> Option<String> {
    crate::email::id_field(body)
}

/// `{"data": [{"id": "..."}, ...]}` from `POST /emails/batch`, in request order.
pub fn batch_message_ids(body: &str) -> Option<Vec<Option<String>>> {
    let v: Value = serde_json::from_str(body).ok()?;
    Some(
        v.get("data")?
            .as_array()?
            .iter()
            .map(|d| d.get("id").and_then(Value::as_str).map(str::to_owned))
            .collect(),
    )
}

/// The most recipients an event is recorded for.
pub const MAX_EVENT_RECIPIENTS: usize = 50;

/// The recipients of a webhook event's `data.to` (an address or an array of them, each
/// `addr` or `Name <addr>`): the address in the first non-empty angle brackets, else the text
/// trimmed of spaces; distinct, in order, at most [`MAX_EVENT_RECIPIENTS`]. Not lower-cased:
/// SQL's `lower()` does that, as it does for the suppression list the addresses are matched
/// against. A non-string element counts as its JSON text; a null is skipped.
pub fn event_recipients(to: &Value) -> Vec<String> {
    let items: Vec<&Value> = match to {
        Value::Array(a) => a.iter().collect(),
        Value::String(_) => vec![to],
        _ => Vec::new(),
    };
    let mut out: Vec<String> = Vec::new();
    for item in items {
        let text = match item {
            Value::Null => continue,
            Value::String(s) => s.clone(),
            other => other.to_string(),
        };
        let addr = bracketed(&text)
            .unwrap_or_else(|| text.trim_matches(' '))
            .to_string();
        if !out.contains(&addr) {
            out.push(addr);
            if out.len() == MAX_EVENT_RECIPIENTS {
                break;
            }
        }
    }
    out
}

/// What `substring(s FROM '<([^>]+)>')` finds: the text after the first `<` that a `>`
/// follows with something in between.
fn bracketed(s: &str) -> Option<&str> {
    let mut from = 0;
    while let Some(open) = s[from..].find('<').map(|i| from + i) {
        let close = open + 1 + s[open + 1..].find('>')?;
        if close > open + 1 {
            return Some(&s[open + 1..close]);
        }
        from = open + 1;
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn event_recipients_as_sql_substring_and_trim_find_them() {
        let r = |v: Value| event_recipients(&v);
        assert_eq!(r(json!("a@x.io")), vec!["a@x.io"]);
        assert_eq!(r(json!("  John <John@X.io>  ")), vec!["John@X.io"]);
        assert_eq!(
            r(json!([
                "a@x.io",
                " a@x.io ",
                "B <b@x.io>",
                null,
                "c<>d<e@x.io>"
            ])),
            vec!["a@x.io", "b@x.io", "e@x.io"]
        );
        assert_eq!(r(json!(["x<a<b>y"])), vec!["a<b"]);
        assert_eq!(
            r(json!(["<>", "no close <here"])),
            vec!["<>", "no close <here"]
        );
        assert_eq!(r(json!({"to": "a@x.io"})), Vec::<String>::new());
        assert_eq!(r(json!(null)), Vec::<String>::new());
        let many: Vec<String> = (0..80).map(|i| format!("r{i}@x.io")).collect();
        assert_eq!(r(json!(many)).len(), MAX_EVENT_RECIPIENTS);
    }

    fn sample() -> Outgoing {
        Outgoing {
            from: "CRM <noreply@317plumber.com>".into(),
            to: vec!["john@example.com".into()],
            cc: vec![],
            bcc: vec!["audit@317plumber.com".into()],
            reply_to: Some("help@317plumber.com".into()),
            subject: "Invoice INV-1".into(),
            html: Some("<p>Hi</p>".into()),
            text: Some("Hi".into()),
            headers: json!({"X-Entity-Ref-ID": "inv-1"}),
            attachments: json!([{"filename": "inv.pdf", "content_base64": "JVBERi0=", "content_type": "application/pdf"}]),
        }
    }

    #[test]
    fn wire_format() {
        assert_eq!(
            email_json(&sample()),
            json!({"from": "CRM <noreply@317plumber.com>", "to": ["john@example.com"], "subject": "Invoice INV-1",
                   "bcc": ["audit@317plumber.com"], "reply_to": "help@317plumber.com", "html": "<p>Hi</p>", "text": "Hi",
                   "headers": {"X-Entity-Ref-ID": "inv-1"},
                   "attachments": [{"filename": "inv.pdf", "content": "JVBERi0=", "content_type": "application/pdf"}]})
        );
        assert!(!can_batch(&sample()));
    }

    #[test]
    fn answers() {
        assert_eq!(
            message_id(r#"{"id":"49a3999c-0ce1-4ea6-ab68-afcd6dc2e794"}"#).as_deref(),
            Some("49a3999c-0ce1-4ea6-ab68-afcd6dc2e794")
        );
        assert_eq!(message_id("oops"), None);
        assert_eq!(
            batch_message_ids(r#"{"data":[{"id":"a"},{"id":"b"}]}"#),
            Some(vec![Some("a".into()), Some("b".into())])
        );
    }
}
