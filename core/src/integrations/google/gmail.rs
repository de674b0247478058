//! Gmail's API, as data: the body of `POST /gmail/v1/users/me/messages/send` and the id in its
//! answer. <https://developers.google.com/gmail/api/reference/rest/v1/users.messages/send>
//!
//! The message is the RFC 5322 text of `mime::build`, base64url in `raw`. A reply names its
//! thread: `threadId` (from the queued message's `metadata.thread_id`) plus the In-Reply-To and
//! References headers, which Gmail requires to match for the reply to join the thread.

use crate::email::mime::{self, Envelope};
use crate::email::Outgoing;
use base64::engine::general_purpose::URL_SAFE;
use base64::Engine;
use serde_json::{json, Value};

pub fn send_json(e: &Outgoing, env: &Envelope, thread_id: Option<&str>) -> Value {
    let raw = URL_SAFE.encode(mime::build(e, env));
    match thread_id {
        Some(t) => json!({"raw": raw, "threadId": t}),
        None => json!({"raw": raw}),
    }
}

/// The body of `POST /gmail/v1/users/me/drafts` (users.drafts.create): the same message, as
/// a draft. <https://developers.google.com/gmail/api/reference/rest/v1/users.drafts/create>
pub fn draft_json(e: &Outgoing, env: &Envelope, thread_id: Option<&str>) -> Value {
    json!({"message": send_json(e, env, thread_id)})
}

/// What drafts.create answered (`{"id": "r-…", "message": {"id", "threadId", "labelIds"}}`):
/// the draft's id, its message's id and thread, and where the user opens it.
pub fn draft_answer(body: &str) -> Option<Value> {
    let v: Value = serde_json::from_str(body).ok()?;
    let id = v.get("id")?.as_str()?;
    let message = v.get("message");
    let message_id = message.and_then(|m| m.get("id")).and_then(Value::as_str);
    let thread_id = message
        .and_then(|m| m.get("threadId"))
        .and_then(Value::as_str);
    Some(json!({
        "draft_id": id,
        "message_id": message_id,
        "thread_id": thread_id,
        "link": message_id.map(|m| format!("https://mail.google.com/mail/#drafts?compose={m}")),
    }))
}

/// `{"id": "...", "threadId": "...", "labelIds": ["SENT"]}`.
pub fn message_id(body: &str) -> Option<String> {
    crate::email::id_field(body)
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::DateTime;

    #[test]
    fn raw_is_the_base64url_message() {
        let e = Outgoing {
            from: "dana@317plumber.com".into(),
            to: vec!["john@example.com".into()],
            cc: vec![],
            bcc: vec![],
            reply_to: None,
            subject: "Re: leak ??>".into(),
            html: None,
            text: Some("On my way ??>".into()),
            headers: json!({}),
            attachments: json!([]),
        };
        let env = Envelope {
            id: "r1",
            date: DateTime::from_timestamp(0, 0).unwrap(),
            include_bcc: true,
        };
        let v = send_json(&e, &env, Some("18c2f0a1b2c3d4e5"));
        assert_eq!(v["threadId"], "18c2f0a1b2c3d4e5");
        let raw = v["raw"].as_str().unwrap();
        assert!(!raw.contains(['+', '/']), "base64url alphabet");
        assert_eq!(
            String::from_utf8(URL_SAFE.decode(raw).unwrap()).unwrap(),
            mime::build(&e, &env)
        );
        assert!(send_json(&e, &env, None).get("threadId").is_none());
        assert_eq!(
            draft_json(&e, &env, Some("t1"))["message"]["threadId"],
            "t1"
        );
        assert_eq!(
            draft_answer(
                r#"{"id":"r-5","message":{"id":"18d","threadId":"18c","labelIds":["DRAFT"]}}"#
            ),
            Some(
                json!({"draft_id": "r-5", "message_id": "18d", "thread_id": "18c",
                        "link": "https://mail.google.com/mail/#drafts?compose=18d"})
            )
        );
        assert_eq!(draft_answer(r#"{"message":{}}"#), None);
        assert_eq!(
            message_id(r#"{"id":"18c","threadId":"18c","labelIds":["SENT"]}"#).as_deref(),
            Some("18c")
        );
    }
}
