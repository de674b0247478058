//! Microsoft Graph, as data: the body of `POST /v1.0/me/sendMail` (answered 202 with no body,
//! so there is no message id to keep). <https://learn.microsoft.com/graph/api/user-sendmail>
//!
//! Graph takes one body (HTML when there is one, else text) and only custom headers whose
//! names start with `X-`; other headers (In-Reply-To, References) are left out, since Graph
//! answers 400 to them. Threading a reply in Outlook goes through createReply, not sendMail.

use crate::email::mime::{address_of, display_name_of};
use crate::email::Outgoing;
use serde_json::{json, Value};

fn recipient(mailbox: &str) -> Value {
    match display_name_of(mailbox) {
        Some(name) => json!({"emailAddress": {"address": address_of(mailbox), "name": name}}),
        None => json!({"emailAddress": {"address": address_of(mailbox)}}),
    }
}

pub fn send_json(e: &Outgoing, queue_id: &str) -> Value {
    let list = |v: &[String]| Value::Array(v.iter().map(|a| recipient(a)).collect());
    let body = match (&e.html, &e.text) {
        (Some(h), _) => json!({"contentType": "HTML", "content": h}),
        (None, Some(t)) => json!({"contentType": "Text", "content": t}),
        (None, None) => json!({"contentType": "Text", "content": ""}),
    };
    let mut headers: Vec<Value> = vec![json!({"name": "X-CRM-Queue-Id", "value": queue_id})];
    if let Some(h) = e.headers.as_object() {
        headers.extend(
            h.iter()
                .filter(|(k, _)| k.len() > 2 && k[..2].eq_ignore_ascii_case("x-"))
                .filter_map(|(k, v)| v.as_str().map(|v| json!({"name": k, "value": v}))),
        );
    }
    let mut message = json!({
        "subject": e.subject,
        "body": body,
        "toRecipients": list(&e.to),
        "internetMessageHeaders": headers,
    });
    let m = message.as_object_mut().expect("object");
    if !e.cc.is_empty() {
        m.insert("ccRecipients".into(), list(&e.cc));
    }
    if !e.bcc.is_empty() {
        m.insert("bccRecipients".into(), list(&e.bcc));
    }
    if let Some(r) = &e.reply_to {
        m.insert("replyTo".into(), json!([recipient(r)]));
    }
    if let Some(atts) = e.attachments.as_array().filter(|a| !a.is_empty()) {
        let list: Vec<Value> = atts
            .iter()
            .map(|a| {
                json!({"@odata.type": "#microsoft.graph.fileAttachment", "name": a["filename"],
                       "contentType": a.get("content_type").and_then(Value::as_str).unwrap_or("application/octet-stream"),
                       "contentBytes": a["content_base64"]})
            })
            .collect();
        m.insert("attachments".into(), json!(list));
    }
    json!({"message": message, "saveToSentItems": true})
}

/// The body of `POST /v1.0/me/messages` (a draft in the mailbox's Drafts folder): the
/// message `send_json` would send. <https://learn.microsoft.com/graph/api/user-post-messages>
pub fn draft_json(e: &Outgoing, queue_id: &str) -> Value {
    send_json(e, queue_id)["message"].clone()
}

/// What `POST /me/messages` answered (the draft message): its id, conversation and webLink.
pub fn draft_answer(body: &str) -> Option<Value> {
    let v: Value = serde_json::from_str(body).ok()?;
    let id = v.get("id")?.as_str()?;
    Some(json!({
        "draft_id": id,
        "message_id": id,
        "thread_id": v.get("conversationId").and_then(Value::as_str),
        "link": v.get("webLink").and_then(Value::as_str),
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wire_format() {
        let e = Outgoing {
            from: "Office <office@northside.example>".into(),
            to: vec!["Jo <jo@example.com>".into()],
            cc: vec![],
            bcc: vec!["audit@northside.example".into()],
            reply_to: Some("help@northside.example".into()),
            subject: "Estimate".into(),
            html: Some("<p>Hi</p>".into()),
            text: Some("Hi".into()),
            headers: json!({"X-Job": "J-7", "In-Reply-To": "<a@b.c>"}),
            attachments: json!([{"filename": "e.pdf", "content_base64": "JVBERi0="}]),
        };
        assert_eq!(
            send_json(&e, "q1"),
            json!({"message": {
                "subject": "Estimate",
                "body": {"contentType": "HTML", "content": "<p>Hi</p>"},
                "toRecipients": [{"emailAddress": {"address": "jo@example.com", "name": "Jo"}}],
                "bccRecipients": [{"emailAddress": {"address": "audit@northside.example"}}],
                "replyTo": [{"emailAddress": {"address": "help@northside.example"}}],
                "internetMessageHeaders": [{"name": "X-CRM-Queue-Id", "value": "q1"}, {"name": "X-Job", "value": "J-7"}],
                "attachments": [{"@odata.type": "#microsoft.graph.fileAttachment", "name": "e.pdf",
                                 "contentType": "application/octet-stream", "contentBytes": "JVBERi0="}]},
                   "saveToSentItems": true})
        );
    }

    #[test]
    fn drafts() {
        let e = Outgoing {
            from: "office@northside.example".into(),
            to: vec!["jo@example.com".into()],
            cc: vec![],
            bcc: vec![],
            reply_to: None,
            subject: "Estimate".into(),
            html: None,
            text: Some("Hi".into()),
            headers: json!({}),
            attachments: json!([]),
        };
        let d = draft_json(&e, "q1");
        assert_eq!(d["subject"], "Estimate");
        assert!(d.get("saveToSentItems").is_none());
        assert_eq!(
            draft_answer(
                r#"{"id":"AAMk","conversationId":"AAQk","webLink":"https://outlook.office365.com/owa/?ItemID=AAMk"}"#
            ),
            Some(
                json!({"draft_id": "AAMk", "message_id": "AAMk", "thread_id": "AAQk",
                        "link": "https://outlook.office365.com/owa/?ItemID=AAMk"})
            )
        );
    }
}
