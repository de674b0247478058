//! SMTP through lettre, to any server: a company relay, or the Inbucket/Mailpit of a local
//! Supabase stack. Host, port, TLS mode and credentials are settings (crm.smtp_*). The message
//! is the same RFC 5322 text Gmail gets, minus the Bcc header (the envelope carries Bcc).
//! One connection per message (lettre's pool is not enabled); SMTP has no idempotency key, so
//! nothing here retries on its own; a repeat after a crash carries the same Message-ID.

pub mod settings;

use crate::email::provider::{Provider, Request};
use crate::guc;
use chrono::Utc;
use crm_core::email::mime::{self, Envelope};
use crm_core::runtime::outcome::Answer;
use lettre::address::{Address, Envelope as SmtpEnvelope};
use lettre::transport::smtp::authentication::Credentials;
use lettre::transport::smtp::client::{Tls, TlsParameters};
use lettre::{SmtpTransport, Transport};
use std::cell::RefCell;
use std::time::Duration;

pub struct Smtp;

fn fail(error: String) -> Answer {
    Answer {
        error: Some(error),
        ..Answer::default()
    }
}

thread_local! {
    // The transport (its TLS configuration included: building that loads the root
    // certificates) is made once per process and settings, not once per message.
    static TRANSPORT: RefCell<Option<(Vec<String>, SmtpTransport)>> = const { RefCell::new(None) };
}

fn transport() -> Result<SmtpTransport, String> {
    let settings = vec![
        guc::text(&settings::SMTP_HOST),
        settings::SMTP_PORT.get().to_string(),
        guc::text(&settings::SMTP_TLS),
        guc::text(&settings::SMTP_USERNAME),
        guc::text(&settings::SMTP_PASSWORD),
        crate::runtime::settings::EMAIL_HTTP_TIMEOUT_MS
            .get()
            .to_string(),
    ];
    TRANSPORT.with(|cache| {
        let mut cache = cache.borrow_mut();
        if let Some((key, t)) = &*cache {
            if *key == settings {
                return Ok(t.clone());
            }
        }
        let t = build_transport()?;
        *cache = Some((settings, t.clone()));
        Ok(t)
    })
}

fn build_transport() -> Result<SmtpTransport, String> {
    let host = guc::text(&settings::SMTP_HOST);
    if host.trim().is_empty() {
        return Err("crm.smtp_host is not set".into());
    }
    let tls_params =
        || TlsParameters::new(host.clone()).map_err(|e| format!("TLS for {host}: {e}"));
    let tls = match guc::text(&settings::SMTP_TLS)
        .trim()
        .to_ascii_lowercase()
        .as_str()
    {
        "none" => Tls::None,
        "tls" => Tls::Wrapper(tls_params()?),
        "starttls" | "" => Tls::Required(tls_params()?),
        other => {
            return Err(format!(
                "crm.smtp_tls must be starttls, tls or none, not \"{other}\""
            ))
        }
    };
    let timeout = Duration::from_millis(crate::runtime::settings::http_timeout_ms() as u64);
    let mut builder = SmtpTransport::builder_dangerous(host.trim())
        .port(settings::SMTP_PORT.get() as u16)
        .tls(tls)
        .timeout(Some(timeout));
    let user = guc::text(&settings::SMTP_USERNAME);
    if !user.is_empty() {
        builder = builder.credentials(Credentials::new(user, guc::text(&settings::SMTP_PASSWORD)));
    }
    Ok(builder.build())
}

fn envelope(req: &Request) -> Result<SmtpEnvelope, String> {
    let parse = |m: &str| {
        mime::address_of(m)
            .parse::<Address>()
            .map_err(|e| format!("address {m}: {e}"))
    };
    let from = parse(&req.email.from)?;
    let to = req
        .email
        .to
        .iter()
        .chain(&req.email.cc)
        .chain(&req.email.bcc)
        .map(|a| parse(a))
        .collect::<Result<Vec<_>, _>>()?;
    SmtpEnvelope::new(Some(from), to).map_err(|e| e.to_string())
}

impl Provider for Smtp {
    fn name(&self) -> &'static str {
        "smtp"
    }
    fn rate_limit(&self) -> f64 {
        settings::SMTP_RATE_LIMIT.get()
    }
    fn send(&self, req: &Request) -> Answer {
        let (transport, envelope) = match (transport(), envelope(req)) {
            (Ok(t), Ok(e)) => (t, e),
            (Err(e), _) | (_, Err(e)) => return fail(e),
        };
        let message = mime::build(
            req.email,
            &Envelope {
                id: req.id,
                date: Utc::now(),
                include_bcc: false,
            },
        );
        match transport.send_raw(&envelope, message.as_bytes()) {
            Ok(reply) => Answer {
                smtp_code: Some(code(&reply.code())),
                body: reply.message().collect::<Vec<_>>().join(" "),
                ..Answer::default()
            },
            // A reply code: the server said no (4yz: later, 5yz: never). None: no conversation.
            Err(e) => match e.status() {
                Some(c) => Answer {
                    smtp_code: Some(code(&c)),
                    body: e.to_string(),
                    ..Answer::default()
                },
                None => fail(e.to_string()),
            },
        }
    }
}

fn code(c: &lettre::transport::smtp::response::Code) -> u16 {
    c.to_string().parse().unwrap_or(0)
}
