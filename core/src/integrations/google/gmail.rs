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
            message_id(r#"{"id":"18c","threadId":"18c","labelIds":["SENT"]}"#).as_deref(),
            Some("18c")
        );
    }
}
