//! RFC 5322 / MIME messages, for the providers that take a whole message rather than JSON
//! fields: Gmail (`users.messages.send`, base64url `raw`) and SMTP.
//!
//! Shape: `multipart/mixed` (only with attachments) around `multipart/alternative` (text then
//! HTML, so clients that can show HTML pick the last part) or the one body there is. Every body
//! part is base64 in 76-character lines, so no line is too long and no content can collide with
//! a boundary (boundaries start with `=_`, which base64 never produces). Non-ASCII header text
//! is RFC 2047 encoded-words; non-ASCII attachment names are RFC 2231 parameters.

use super::message::split_mailbox;
use super::Outgoing;
use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use chrono::{DateTime, Utc};

const CRLF: &str = "\r\n";

/// What the message needs besides the email itself.
pub struct Envelope<'a> {
    /// The queue row's id: it becomes the Message-ID's local part and seeds the boundaries,
    /// so the same row always yields the same message.
    pub id: &'a str,
    pub date: DateTime<Utc>,
    /// Gmail reads Bcc from the message (and removes it before delivery); over SMTP the
    /// envelope carries Bcc and the header must not appear.
    pub include_bcc: bool,
}

/// `<id@domain of the sender>`: unique per queue row, and a reply's In-Reply-To finds it.
pub fn message_id(id: &str, from: &str) -> String {
    let domain = address_of(from)
        .rsplit_once('@')
        .map_or("crm.invalid", |(_, d)| d)
        .to_string();
    format!("<{id}@{domain}>")
}

/// The bare address of `Name <addr>` or `addr` (queued mailboxes were validated at enqueue).
pub fn address_of(mailbox: &str) -> &str {
    split_mailbox(mailbox).map_or(mailbox.trim(), |(_, addr)| addr)
}

/// The display name of `Name <addr>`, unquoted; None for a bare address.
pub fn display_name_of(mailbox: &str) -> Option<&str> {
    split_mailbox(mailbox).and_then(|(name, _)| name)
}

/// `Name <addr>` from a display name and an address, the name quoted when it holds characters
/// that would otherwise end it (a comma, a bracket): what providers' JSON APIs accept.
pub fn mailbox(name: &str, addr: &str) -> String {
    let name = name.trim();
    if name.is_empty() {
        addr.to_string()
    } else if name.chars().any(|c| "\",;:<>()[]@\\".contains(c)) {
        format!(
            "\"{}\" <{addr}>",
            name.replace('\\', "\\\\").replace('"', "\\\"")
        )
    } else {
        format!("{name} <{addr}>")
    }
}

/// A mailbox as a header wants it: the name quoted or encoded as needed, the address in <>.
pub fn format_mailbox(mailbox: &str) -> String {
    let addr = address_of(mailbox);
    match display_name_of(mailbox) {
        None => addr.to_string(),
        Some(name) if !name.is_ascii() => format!("{} <{addr}>", encoded_words(name)),
        Some(name)
            if name
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || " !#$%&'*+-/=?^_`{|}~".contains(c)) =>
        {
            format!("{name} <{addr}>")
        }
        Some(name) => format!(
            "\"{}\" <{addr}>",
            name.replace('\\', "\\\\").replace('"', "\\\"")
        ),
    }
}

/// Header text: as is when it is printable ASCII, else RFC 2047 B encoded-words of at most
/// 75 characters each, split between whole UTF-8 characters.
pub fn header_text(s: &str) -> String {
    if s.chars().all(|c| (' '..='~').contains(&c)) {
        s.to_string()
    } else {
        encoded_words(s)
    }
}

fn encoded_words(s: &str) -> String {
    // "=?UTF-8?B?" + "?=" is 12 characters; 45 bytes of input encode to 60.
    let mut words = Vec::new();
    let mut chunk = String::new();
    for c in s.chars() {
        if chunk.len() + c.len_utf8() > 45 {
            words.push(format!("=?UTF-8?B?{}?=", STANDARD.encode(&chunk)));
            chunk.clear();
        }
        chunk.push(c);
    }
    if !chunk.is_empty() {
        words.push(format!("=?UTF-8?B?{}?=", STANDARD.encode(&chunk)));
    }
    words.join("\r\n ")
}

/// base64 in lines of 76 characters.
fn base64_lines(bytes: &[u8]) -> String {
    let encoded = STANDARD.encode(bytes);
    let mut out = String::with_capacity(encoded.len() + encoded.len() / 38);
    for (i, chunk) in encoded.as_bytes().chunks(76).enumerate() {
        if i > 0 {
            out.push_str(CRLF);
        }
        out.push_str(std::str::from_utf8(chunk).expect("base64 is ASCII"));
    }
    out
}

/// An already-base64 attachment, re-wrapped (callers may send it in one long line).
fn rewrap_base64(b64: &str) -> String {
    let compact: String = b64.chars().filter(|c| !c.is_ascii_whitespace()).collect();
    compact
        .as_bytes()
        .chunks(76)
        .map(|c| std::str::from_utf8(c).expect("ASCII"))
        .collect::<Vec<_>>()
        .join(CRLF)
}

/// `filename="a.pdf"`, or RFC 2231 `filename*=UTF-8''%C3%A9.pdf` when the name is not ASCII.
fn file_param(key: &str, name: &str) -> String {
    if name
        .chars()
        .all(|c| (' '..='~').contains(&c) && c != '"' && c != '\\')
    {
        format!("{key}=\"{name}\"")
    } else {
        let pct: String = name
            .bytes()
            .map(|b| {
                if b.is_ascii_alphanumeric() || b"!#$&+-.^_`|~".contains(&b) {
                    (b as char).to_string()
                } else {
                    format!("%{b:02X}")
                }
            })
            .collect();
        format!("{key}*=UTF-8''{pct}")
    }
}

fn boundary(id: &str, kind: &str) -> String {
    let seed: String = id
        .chars()
        .filter(char::is_ascii_alphanumeric)
        .take(32)
        .collect();
    format!("=_crm_{kind}_{seed}")
}

fn text_part(content_type: &str, body: &str) -> String {
    format!(
        "Content-Type: {content_type}; charset=UTF-8{CRLF}Content-Transfer-Encoding: base64{CRLF}{CRLF}{}{CRLF}",
        base64_lines(body.as_bytes())
    )
}

fn body_part(e: &Outgoing, id: &str) -> String {
    match (&e.text, &e.html) {
        (Some(text), Some(html)) => {
            let b = boundary(id, "alt");
            format!(
                "Content-Type: multipart/alternative; boundary=\"{b}\"{CRLF}{CRLF}--{b}{CRLF}{}--{b}{CRLF}{}--{b}--{CRLF}",
                text_part("text/plain", text),
                text_part("text/html", html)
            )
        }
        (None, Some(html)) => text_part("text/html", html),
        (Some(text), None) => text_part("text/plain", text),
        (None, None) => text_part("text/plain", ""),
    }
}

/// The whole message, CRLF line endings.
pub fn build(e: &Outgoing, env: &Envelope) -> String {
    let mut h = Vec::new();
    h.push(format!("From: {}", format_mailbox(&e.from)));
    let list = |v: &[String]| {
        v.iter()
            .map(|a| format_mailbox(a))
            .collect::<Vec<_>>()
            .join(",\r\n ")
    };
    h.push(format!("To: {}", list(&e.to)));
    if !e.cc.is_empty() {
        h.push(format!("Cc: {}", list(&e.cc)));
    }
    if env.include_bcc && !e.bcc.is_empty() {
        h.push(format!("Bcc: {}", list(&e.bcc)));
    }
    if let Some(r) = &e.reply_to {
        h.push(format!("Reply-To: {}", format_mailbox(r)));
    }
    h.push(format!("Subject: {}", header_text(&e.subject)));
    h.push(format!("Date: {}", env.date.to_rfc2822()));
    h.push(format!("Message-ID: {}", message_id(env.id, &e.from)));
    if let Some(extra) = e.headers.as_object() {
        for (name, value) in extra {
            if let Some(v) = value.as_str() {
                h.push(format!("{name}: {}", header_text(v)));
            }
        }
    }
    h.push("MIME-Version: 1.0".into());

    let attachments: Vec<_> = e
        .attachments
        .as_array()
        .map(|a| a.iter().collect())
        .unwrap_or_default();
    let mut out = h.join(CRLF);
    out.push_str(CRLF);
    if attachments.is_empty() {
        out.push_str(&body_part(e, env.id));
        return out;
    }
    let b = boundary(env.id, "mixed");
    out.push_str(&format!(
        "Content-Type: multipart/mixed; boundary=\"{b}\"{CRLF}{CRLF}--{b}{CRLF}"
    ));
    out.push_str(&body_part(e, env.id));
    for a in attachments {
        let name = a["filename"].as_str().unwrap_or("attachment");
        let ct = a["content_type"]
            .as_str()
            .unwrap_or("application/octet-stream");
        out.push_str(&format!(
            "--{b}{CRLF}Content-Type: {ct}; {}{CRLF}Content-Disposition: attachment; {}{CRLF}Content-Transfer-Encoding: base64{CRLF}{CRLF}{}{CRLF}",
            file_param("name", name),
            file_param("filename", name),
            rewrap_base64(a["content_base64"].as_str().unwrap_or(""))
        ));
    }
    out.push_str(&format!("--{b}--{CRLF}"));
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn email() -> Outgoing {
        Outgoing {
            from: "Dana Smith <dana@317plumber.com>".into(),
            to: vec!["john@example.com".into()],
            cc: vec!["office@317plumber.com".into()],
            bcc: vec!["audit@317plumber.com".into()],
            reply_to: Some("help@317plumber.com".into()),
            subject: "Your invoice".into(),
            html: Some("<p>Hi John</p>".into()),
            text: Some("Hi John".into()),
            headers: json!({"In-Reply-To": "<abc@mail.gmail.com>", "References": "<abc@mail.gmail.com>"}),
            attachments: json!([]),
        }
    }

    fn env(include_bcc: bool) -> Envelope<'static> {
        Envelope {
            id: "6f1c0b0e-0000-4000-8000-000000000001",
            date: DateTime::from_timestamp(1_700_000_000, 0).unwrap(),
            include_bcc,
        }
    }

    fn unb64(s: &str) -> String {
        String::from_utf8(STANDARD.decode(s.replace("\r\n", "")).unwrap()).unwrap()
    }

    #[test]
    fn alternative_message() {
        let m = build(&email(), &env(true));
        let (head, body) = m.split_once("\r\n\r\n").unwrap();
        assert!(head.starts_with("From: Dana Smith <dana@317plumber.com>\r\nTo: john@example.com\r\nCc: office@317plumber.com\r\nBcc: audit@317plumber.com\r\nReply-To: help@317plumber.com\r\nSubject: Your invoice\r\n"));
        assert!(head.contains("\r\nDate: Tue, 14 Nov 2023 22:13:20 +0000\r\n"));
        assert!(head
            .contains("\r\nMessage-ID: <6f1c0b0e-0000-4000-8000-000000000001@317plumber.com>\r\n"));
        assert!(head.contains(
            "\r\nIn-Reply-To: <abc@mail.gmail.com>\r\nReferences: <abc@mail.gmail.com>\r\n"
        ));
        assert!(head.ends_with("Content-Type: multipart/alternative; boundary=\"=_crm_alt_6f1c0b0e000040008000000000000001\""));
        let parts: Vec<&str> = body
            .split("--=_crm_alt_6f1c0b0e000040008000000000000001")
            .collect();
        assert_eq!(parts.len(), 4, "preamble, text, html, closing");
        assert!(parts[1].contains("Content-Type: text/plain; charset=UTF-8"));
        assert_eq!(
            unb64(parts[1].split("\r\n\r\n").nth(1).unwrap().trim()),
            "Hi John"
        );
        assert_eq!(
            unb64(parts[2].split("\r\n\r\n").nth(1).unwrap().trim()),
            "<p>Hi John</p>"
        );
        assert_eq!(parts[3], "--\r\n");
        assert!(!m.replace("\r\n", "").contains('\n'), "CRLF only");
        assert!(
            !build(&email(), &env(false)).contains("Bcc:"),
            "no Bcc header for SMTP"
        );
    }

    #[test]
    fn attachments_and_single_bodies() {
        let mut e = email();
        e.text = None;
        e.attachments = json!([{"filename": "Rechnung März.pdf", "content_base64": "JVBERi0xLjQK", "content_type": "application/pdf"},
                               {"filename": "a.txt", "content_base64": "aGk="}]);
        let m = build(&e, &env(true));
        assert!(m.contains("Content-Type: multipart/mixed; boundary=\"=_crm_mixed_"));
        assert!(m.contains("--=_crm_mixed_6f1c0b0e000040008000000000000001\r\nContent-Type: text/html; charset=UTF-8"));
        assert!(m.contains("Content-Type: application/pdf; name*=UTF-8''Rechnung%20M%C3%A4rz.pdf\r\nContent-Disposition: attachment; filename*=UTF-8''Rechnung%20M%C3%A4rz.pdf"));
        assert!(m.contains("Content-Type: application/octet-stream; name=\"a.txt\"\r\nContent-Disposition: attachment; filename=\"a.txt\"\r\nContent-Transfer-Encoding: base64\r\n\r\naGk=\r\n"));
        assert!(m.ends_with("--=_crm_mixed_6f1c0b0e000040008000000000000001--\r\n"));
        assert!(!m.contains("multipart/alternative"));
    }

    #[test]
    fn headers_encode_non_ascii_and_specials() {
        assert_eq!(header_text("Plain"), "Plain");
        assert_eq!(header_text("Grüße"), "=?UTF-8?B?R3LDvMOfZQ==?=");
        let long = "é".repeat(40);
        let words = header_text(&long);
        assert!(
            words
                .split("\r\n ")
                .all(|w| w.len() <= 75 && w.starts_with("=?UTF-8?B?")),
            "{words}"
        );
        assert_eq!(
            format_mailbox("Smith, Dana <d@x.io>"),
            "\"Smith, Dana\" <d@x.io>"
        );
        assert_eq!(format_mailbox("\"Dana\" <d@x.io>"), "Dana <d@x.io>");
        assert_eq!(
            format_mailbox("Zoë <z@x.io>"),
            "=?UTF-8?B?Wm/Dqw==?= <z@x.io>"
        );
        assert_eq!(format_mailbox("d@x.io"), "d@x.io");
        assert_eq!(message_id("r1", "CRM <noreply@x.io>"), "<r1@x.io>");
        assert_eq!(mailbox("Jo Smith", "jo@x.io"), "Jo Smith <jo@x.io>");
        assert_eq!(mailbox("Smith, Jo", "jo@x.io"), "\"Smith, Jo\" <jo@x.io>");
        assert_eq!(
            format_mailbox(&mailbox("Smith, Jo", "jo@x.io")),
            "\"Smith, Jo\" <jo@x.io>"
        );
        assert_eq!(mailbox(" ", "jo@x.io"), "jo@x.io");
    }

    #[test]
    fn long_bodies_are_wrapped() {
        let mut e = email();
        e.html = None;
        e.text = Some("x".repeat(10_000));
        let m = build(&e, &env(true));
        assert!(
            m.split("\r\n").all(|l| l.len() <= 998),
            "no line over RFC 5322's limit"
        );
        let body = m.split("\r\n\r\n").nth(1).unwrap();
        assert!(body.split("\r\n").all(|l| l.len() <= 76));
    }
}
