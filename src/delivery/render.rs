//! A claimed queue row made ready to send: its template rendered (as the template is now, so a
//! template fixed before sending is the one used), or its own subject and bodies.

use crm_core::delivery::Outgoing;
use crm_core::template::{Format, Options};
use serde_json::Value;

/// `base` carries the template settings (time zone, limits), read once per round.
pub fn prepare(job: &Value, base: &Options) -> Result<Outgoing, String> {
    let strs = |k: &str| -> Vec<String> {
        job[k].as_array().map(|a| a.iter().filter_map(|v| v.as_str().map(str::to_owned)).collect()).unwrap_or_default()
    };
    let s = |k: &str| job[k].as_str().map(str::to_owned);
    let (subject, html, text) = match job.get("template").filter(|t| !t.is_null()) {
        None => (s("subject").unwrap_or_default(), s("html"), s("text")),
        Some(t) => {
            let vars = job["variables"].clone();
            let render = |src: Option<&str>, format| -> Result<Option<String>, String> {
                let Some(src) = src else { return Ok(None) };
                let opts = Options { format, ..*base };
                crate::templates::with_engine(|e| e.render(src, vars.clone(), &opts)).map(Some).map_err(|e| format!("template: {e}"))
            };
            let html = render(t["html"].as_str(), Format::Html)?;
            let text = match render(t["text"].as_str(), Format::Text)? {
                Some(t) => Some(t),
                None => html.as_deref().map(crm_core::template::text::html_to_text),
            };
            (render(t["subject"].as_str(), Format::Text)?.unwrap_or_default(), html, text)
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
