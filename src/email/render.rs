//! A claimed queue row made ready to send: its template rendered (as the template is now, so a
//! template fixed before sending is the one used), or its own subject and bodies.

use super::queue::ClaimedEmail;
use crm_core::email::Outgoing;
use crm_core::template::{EmailParts, Options, TemplateError};

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
pub fn prepare(job: &ClaimedEmail, base: &Options) -> Result<Outgoing, NotReady> {
    let (subject, html, text) = match &job.template {
        None => (
            job.subject.clone().unwrap_or_default(),
            job.html.clone(),
            job.text.clone(),
        ),
        Some(t) => {
            let templates = EmailParts {
                subject: t.subject.as_deref(),
                html: t.html.as_deref(),
                text: t.text.as_deref(),
            };
            let out =
                crate::templates::with_engine(|e| e.render_email(templates, &job.variables, base))
                    .map_err(|e| match e {
                        TemplateError::Interrupted => NotReady::Interrupted,
                        e => NotReady::Invalid(format!("template: {e}")),
                    })?;
            (out.subject.unwrap_or_default(), out.html, out.text)
        }
    };
    // to_name is the display name of the first recipient (the reference's recipient_name).
    let mut to = job.to.clone();
    if let (Some(name), Some(first)) = (job.to_name.as_deref(), to.first_mut()) {
        *first = crm_core::email::mime::mailbox(name, first);
    }
    Ok(Outgoing {
        from: job.from.clone().ok_or("no sender")?,
        to,
        cc: job.cc.clone(),
        bcc: job.bcc.clone(),
        reply_to: job.reply_to.clone(),
        subject,
        html,
        text,
        headers: job.headers.clone(),
        attachments: job.attachments.clone(),
    })
}
