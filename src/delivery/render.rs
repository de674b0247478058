//! A claimed queue row made ready to send: its template rendered (as the template is now, so a
//! template fixed before sending is the one used), or its own subject and bodies.

use crm_core::delivery::Outgoing;
use crm_core::template::{EmailParts, Options, TemplateError};
use serde_json::Value;

/// Why a row could not be made ready.
pub enum NotReady {
    /// The render's checkpoint stopped it (the worker is shutting down): send it later.
    Interrupted,
    /// The row cannot be sent as it is (its template fails): fail it with this reason.
    Invalid(String),
}

impl From<&str> for NotReady {
    fn from(reason: &str) -> Self {
        NotReady::Invalid(reason.to_string())
    }
}

/// `base` carries the template settings (time zone, limits, checkpoint), read once per round.
pub fn prepare(job: &Value, base: &Options) -> Result<Outgoing, NotReady> {
    let strs = |k: &str| -> Vec<String> {
        job[k]
            .as_array()
            .map(|a| {
                a.iter()
                    .filter_map(|v| v.as_str().map(str::to_owned))
                    .collect()
            })
            .unwrap_or_default()
    };
    let s = |k: &str| job[k].as_str().map(str::to_owned);
    let (subject, html, text) = match job.get("template").filter(|t| !t.is_null()) {
        None => (s("subject").unwrap_or_default(), s("html"), s("text")),
        Some(t) => {
            let templates = EmailParts {
                subject: t["subject"].as_str(),
                html: t["html"].as_str(),
                text: t["text"].as_str(),
            };
            let out = crate::templates::with_engine(|e| {
                e.render_email(templates, &job["variables"], base)
            })
            .map_err(|e| match e {
                TemplateError::Interrupted => NotReady::Interrupted,
                e => NotReady::Invalid(format!("template: {e}")),
            })?;
            (out.subject.unwrap_or_default(), out.html, out.text)
        }
    };
    // to_name is the display name of the first recipient (the reference's recipient_name).
    let mut to = strs("to");
    if let (Some(name), Some(first)) = (job["to_name"].as_str(), to.first_mut()) {
        *first = crm_core::delivery::mime::mailbox(name, first);
    }
    Ok(Outgoing {
        from: s("from").ok_or("no sender")?,
        to,
        cc: strs("cc"),
        bcc: strs("bcc"),
        reply_to: s("reply_to"),
        subject,
        html,
        text,
        headers: job["headers"].clone(),
        attachments: job["attachments"].clone(),
    })
}
