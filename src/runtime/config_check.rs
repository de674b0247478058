//! `crm.config_check(live boolean default false)`: one row per setting — its integration, ok /
//! missing / invalid / unreachable, a detail that never repeats a secret, and what needs it.
//! `live` makes one cheap call per configured provider that has one (Resend `GET /domains`:
//! is `crm.resend_verified_domain` verified?). Superuser or service_role only (REVOKEd from
//! PUBLIC in sql/security.sql): even without values, which secrets are set is the server's.

use super::http;
use crate::guc;
use crate::integrations::{google, microsoft, resend, smtp};
use crm_core::runtime::config::{check, resend_domain_verified, Form, Status};
use pgrx::prelude::*;
use std::ffi::CString;

type Setting = pgrx::guc::GucSetting<Option<CString>>;

struct Item {
    setting: &'static str,
    integration: &'static str,
    value: &'static Setting,
    form: Form,
    secret: bool,
    needed_for: &'static str,
}

fn items() -> Vec<Item> {
    let item = |setting, integration, value, form, secret, needed_for| Item {
        setting,
        integration,
        value,
        form,
        secret,
        needed_for,
    };
    vec![
        item(
            "crm.encryption_key",
            "vault",
            &guc::ENCRYPTION_KEY,
            Form::VaultKey,
            true,
            "every stored token (encrypt_token, connections)",
        ),
        item(
            "crm.encryption_key_previous",
            "vault",
            &guc::ENCRYPTION_KEY_PREVIOUS,
            Form::VaultKeys,
            true,
            "decrypting tokens sealed before a key rotation (optional)",
        ),
        item(
            "crm.resend_api_key",
            "resend",
            &resend::settings::RESEND_API_KEY,
            Form::Prefixed("re_", 8),
            true,
            "sending email through Resend",
        ),
        item(
            "crm.resend_base_url",
            "resend",
            &resend::settings::RESEND_BASE_URL,
            Form::Url,
            false,
            "sending email through Resend",
        ),
        item(
            "crm.resend_verified_domain",
            "resend",
            &resend::settings::RESEND_VERIFIED_DOMAIN,
            Form::DomainOrAddress,
            false,
            "the default sender (CRM <noreply@domain>)",
        ),
        item(
            "crm.resend_webhook_secret",
            "resend",
            &guc::RESEND_WEBHOOK_SECRET,
            Form::Prefixed("whsec_", 8),
            true,
            "verifying Resend's webhooks (crm.resend_webhook)",
        ),
        item(
            "crm.stripe_webhook_secret",
            "stripe",
            &guc::STRIPE_WEBHOOK_SECRET,
            Form::Prefixed("whsec_", 8),
            true,
            "verifying Stripe's webhooks (crm.stripe_webhook)",
        ),
        item(
            "crm.google_client_id",
            "google",
            &google::settings::GOOGLE_CLIENT_ID,
            Form::GoogleClientId,
            false,
            "connecting Gmail, Google Calendar, contacts; refreshing their tokens",
        ),
        item(
            "crm.google_client_secret",
            "google",
            &google::settings::GOOGLE_CLIENT_SECRET,
            Form::Present,
            true,
            "connecting Google accounts; refreshing their tokens",
        ),
        item(
            "crm.google_accounts_base_url",
            "google",
            &google::settings::GOOGLE_ACCOUNTS_BASE_URL,
            Form::Url,
            false,
            "the consent screen of the connect flow",
        ),
        item(
            "crm.google_oauth_base_url",
            "google",
            &google::settings::GOOGLE_OAUTH_BASE_URL,
            Form::Url,
            false,
            "token exchange, refresh and revocation",
        ),
        item(
            "crm.google_userinfo_base_url",
            "google",
            &google::settings::GOOGLE_USERINFO_BASE_URL,
            Form::Url,
            false,
            "the connected address",
        ),
        item(
            "crm.gmail_base_url",
            "google",
            &google::settings::GMAIL_BASE_URL,
            Form::Url,
            false,
            "sending as a Gmail mailbox",
        ),
        item(
            "crm.microsoft_client_id",
            "microsoft",
            &microsoft::settings::MICROSOFT_CLIENT_ID,
            Form::Guid,
            false,
            "connecting Microsoft 365 accounts; refreshing their tokens",
        ),
        item(
            "crm.microsoft_client_secret",
            "microsoft",
            &microsoft::settings::MICROSOFT_CLIENT_SECRET,
            Form::Present,
            true,
            "connecting Microsoft 365 accounts; refreshing their tokens",
        ),
        item(
            "crm.microsoft_tenant",
            "microsoft",
            &microsoft::settings::MICROSOFT_TENANT,
            Form::MicrosoftTenant,
            false,
            "Microsoft's authorize and token URLs",
        ),
        item(
            "crm.microsoft_login_base_url",
            "microsoft",
            &microsoft::settings::MICROSOFT_LOGIN_BASE_URL,
            Form::Url,
            false,
            "the consent screen, token exchange and refresh",
        ),
        item(
            "crm.microsoft_graph_base_url",
            "microsoft",
            &microsoft::settings::MICROSOFT_GRAPH_BASE_URL,
            Form::Url,
            false,
            "sending as a Microsoft 365 mailbox; the connected address",
        ),
        item(
            "crm.smtp_host",
            "smtp",
            &smtp::settings::SMTP_HOST,
            Form::Present,
            false,
            "sending through an SMTP relay (optional)",
        ),
    ]
}

/// Resend `GET /domains`: is the verified domain verified there?
fn resend_live(domain: &str) -> (Status, String) {
    let key = guc::text(&resend::settings::RESEND_API_KEY);
    let url = http::url(&guc::text(&resend::settings::RESEND_BASE_URL), "/domains");
    let answer = http::bearer_interruptible("GET", url, key, None);
    match answer.status {
        Some(200..=299) => {
            let domain = domain.rsplit_once('@').map_or(domain, |(_, d)| d);
            match resend_domain_verified(&answer.body, domain) {
                Some(true) => (Status::Ok, format!("{domain} is verified at Resend")),
                Some(false) => (Status::Invalid, format!("{domain} is not a verified domain of this Resend account: add it and its DNS records in Resend's dashboard")),
                None => (Status::Unreachable, "Resend's GET /domains answered something unreadable".into()),
            }
        }
        Some(401 | 403) => (
            Status::Invalid,
            "Resend refused the API key (crm.resend_api_key)".into(),
        ),
        _ => (
            Status::Unreachable,
            format!(
                "Resend's GET /domains: {}",
                crm_core::runtime::outcome::describe(&answer)
            ),
        ),
    }
}

#[pg_extern(volatile)]
fn config_check(
    live: default!(bool, false),
) -> TableIterator<
    'static,
    (
        name!(setting, String),
        name!(integration, String),
        name!(status, String),
        name!(detail, String),
        name!(needed_for, String),
    ),
> {
    let mut rows = Vec::new();
    let mut resend_ready = true;
    let mut domain = None;
    for it in items() {
        let raw = guc::raw(it.value);
        let value = std::str::from_utf8(raw).ok();
        let (status, detail) = check(it.form, value, it.secret);
        if it.integration == "resend"
            && it.setting != "crm.resend_webhook_secret"
            && it.setting != "crm.resend_verified_domain"
            && status != Status::Ok
        {
            resend_ready = false;
        }
        if it.setting == "crm.resend_verified_domain" && status == Status::Ok {
            domain = value.map(|v| v.trim().to_string());
        }
        rows.push((
            it.setting.to_string(),
            it.integration.to_string(),
            status.name().to_string(),
            detail,
            it.needed_for.to_string(),
        ));
    }
    if live {
        let (status, detail) = match (&domain, resend_ready) {
            (Some(d), true) => resend_live(d),
            (None, _) => (
                Status::Missing,
                "no crm.resend_verified_domain to look up".into(),
            ),
            (_, false) => (
                Status::Missing,
                "Resend is not configured (crm.resend_api_key, crm.resend_base_url)".into(),
            ),
        };
        rows.push((
            "resend: GET /domains".into(),
            "resend".into(),
            status.name().into(),
            detail,
            "the default sender's domain, live".into(),
        ));
    }
    TableIterator::new(rows)
}
