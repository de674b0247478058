//! Resend's API, as data: the JSON of `POST /emails` and `POST /emails/batch`, and the message
//! ids in their answers. (The HTTP call itself is in the SQL shell's provider module.)
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

#[cfg(test)]
mod tests {
    use super::*;

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
