//! Every `crm.*` setting, registered once in `_PG_init`.
//!
//! Secrets are `SUSET` + `SUPERUSER_ONLY` + `NO_SHOW_ALL`: only a superuser can set them, and a
//! non-superuser cannot read them through `SHOW`, `current_setting()` or `pg_settings`.
//! Secrets get no check hook on purpose: Postgres quotes a rejected value in the error it logs
//! ("invalid value for parameter ...: <value>"), which would put the key in the server log.
//! Keys are validated where they are used, with errors that never quote them.

use pgrx::guc::{GucContext, GucFlags, GucRegistry, GucSetting};
use std::ffi::{CStr, CString};

pub static ENCRYPTION_KEY: GucSetting<Option<CString>> = GucSetting::<Option<CString>>::new(None);
pub static ENCRYPTION_KEY_PREVIOUS: GucSetting<Option<CString>> =
    GucSetting::<Option<CString>>::new(None);

pub static TEMPLATE_TIMEZONE: GucSetting<Option<CString>> =
    GucSetting::<Option<CString>>::new(Some(c"UTC"));
pub static TEMPLATE_MAX_BYTES: GucSetting<i32> = GucSetting::<i32>::new(256 * 1024);
pub static TEMPLATE_MAX_OUTPUT_BYTES: GucSetting<i32> = GucSetting::<i32>::new(1024 * 1024);
pub static TEMPLATE_MAX_STEPS: GucSetting<i32> = GucSetting::<i32>::new(1_000_000);
pub static MAX_JSON_ARGUMENT_BYTES: GucSetting<i32> = GucSetting::<i32>::new(1024 * 1024);

pub static STRIPE_WEBHOOK_SECRET: GucSetting<Option<CString>> =
    GucSetting::<Option<CString>>::new(None);
pub static RESEND_WEBHOOK_SECRET: GucSetting<Option<CString>> =
    GucSetting::<Option<CString>>::new(None);
pub static STRIPE_WEBHOOK_TOLERANCE: GucSetting<i32> = GucSetting::<i32>::new(300);
pub static RESEND_WEBHOOK_TOLERANCE: GucSetting<i32> = GucSetting::<i32>::new(300);
pub static WEBHOOK_MAX_BODY: GucSetting<i32> = GucSetting::<i32>::new(1024 * 1024);

pub static RESEND_API_KEY: GucSetting<Option<CString>> = GucSetting::<Option<CString>>::new(None);
pub static RESEND_BASE_URL: GucSetting<Option<CString>> =
    GucSetting::<Option<CString>>::new(Some(c"https://api.resend.com"));
pub static RESEND_VERIFIED_DOMAIN: GucSetting<Option<CString>> =
    GucSetting::<Option<CString>>::new(None);
pub static RESEND_RATE_LIMIT: GucSetting<f64> = GucSetting::<f64>::new(2.0);
pub static EMAIL_RETRY_BASE: GucSetting<i32> = GucSetting::<i32>::new(300);
pub static EMAIL_RETRY_FACTOR: GucSetting<f64> = GucSetting::<f64>::new(2.0);
pub static EMAIL_LEASE_SECONDS: GucSetting<i32> = GucSetting::<i32>::new(120);
pub static EMAIL_HTTP_TIMEOUT_MS: GucSetting<i32> = GucSetting::<i32>::new(10_000);
pub static EMAIL_MAX_ATTACHMENT_BYTES: GucSetting<i32> = GucSetting::<i32>::new(10 * 1024 * 1024);

pub static RESEND_BATCH: GucSetting<bool> = GucSetting::<bool>::new(true);

pub static GMAIL_BASE_URL: GucSetting<Option<CString>> =
    GucSetting::<Option<CString>>::new(Some(c"https://gmail.googleapis.com"));
pub static GMAIL_RATE_LIMIT: GucSetting<f64> = GucSetting::<f64>::new(2.5);
pub static GOOGLE_OAUTH_BASE_URL: GucSetting<Option<CString>> =
    GucSetting::<Option<CString>>::new(Some(c"https://oauth2.googleapis.com"));
pub static GOOGLE_CLIENT_ID: GucSetting<Option<CString>> = GucSetting::<Option<CString>>::new(None);
pub static GOOGLE_CLIENT_SECRET: GucSetting<Option<CString>> =
    GucSetting::<Option<CString>>::new(None);

pub static MICROSOFT_GRAPH_BASE_URL: GucSetting<Option<CString>> =
    GucSetting::<Option<CString>>::new(Some(c"https://graph.microsoft.com"));
pub static MICROSOFT_RATE_LIMIT: GucSetting<f64> = GucSetting::<f64>::new(0.5);
pub static MICROSOFT_LOGIN_BASE_URL: GucSetting<Option<CString>> =
    GucSetting::<Option<CString>>::new(Some(c"https://login.microsoftonline.com"));
pub static MICROSOFT_TENANT: GucSetting<Option<CString>> =
    GucSetting::<Option<CString>>::new(Some(c"common"));
pub static MICROSOFT_CLIENT_ID: GucSetting<Option<CString>> =
    GucSetting::<Option<CString>>::new(None);
pub static MICROSOFT_CLIENT_SECRET: GucSetting<Option<CString>> =
    GucSetting::<Option<CString>>::new(None);

pub static SMTP_HOST: GucSetting<Option<CString>> = GucSetting::<Option<CString>>::new(None);
pub static SMTP_PORT: GucSetting<i32> = GucSetting::<i32>::new(587);
pub static SMTP_TLS: GucSetting<Option<CString>> =
    GucSetting::<Option<CString>>::new(Some(c"starttls"));
pub static SMTP_USERNAME: GucSetting<Option<CString>> = GucSetting::<Option<CString>>::new(None);
pub static SMTP_PASSWORD: GucSetting<Option<CString>> = GucSetting::<Option<CString>>::new(None);
pub static SMTP_RATE_LIMIT: GucSetting<f64> = GucSetting::<f64>::new(0.0);

pub static WORKER_ENABLED: GucSetting<bool> = GucSetting::<bool>::new(true);
pub static WORKER_DATABASE: GucSetting<Option<CString>> =
    GucSetting::<Option<CString>>::new(Some(c"postgres"));
pub static WORKER_COUNT: GucSetting<i32> = GucSetting::<i32>::new(1);
pub static WORKER_BATCH_SIZE: GucSetting<i32> = GucSetting::<i32>::new(100);
pub static WORKER_IDLE_SLEEP_MS: GucSetting<i32> = GucSetting::<i32>::new(10_000);

const SECRET: GucFlags = GucFlags::SUPERUSER_ONLY.union(GucFlags::NO_SHOW_ALL);

pub fn register() {
    GucRegistry::define_string_guc(
        c"crm.encryption_key",
        c"Token vault key: 32 bytes as base64 or 64 hex digits (superuser only).",
        c"Encrypts new tokens. Set it in postgresql.conf or ALTER SYSTEM, never with ALTER DATABASE/ROLE (pg_db_role_setting is world-readable).",
        &ENCRYPTION_KEY,
        GucContext::Suset,
        SECRET,
    );
    GucRegistry::define_string_guc(
        c"crm.encryption_key_previous",
        c"Comma-separated earlier vault keys, still accepted for decryption (superuser only).",
        c"Keep a retired key here until crm.rotate_encryption_key() has re-encrypted every token.",
        &ENCRYPTION_KEY_PREVIOUS,
        GucContext::Suset,
        SECRET,
    );
    // SAFETY: the check hook is #[pg_guard]ed and only reads the proposed value.
    unsafe {
        GucRegistry::define_string_guc_with_hooks(
            c"crm.template_timezone",
            c"IANA time zone for dates in templates, unless the variables carry _timezone.",
            c"",
            &TEMPLATE_TIMEZONE,
            GucContext::Userset,
            GucFlags::default(),
            Some(check_timezone),
            None,
            None,
        );
    }
    // Limits protect the server, so only a superuser may raise them.
    GucRegistry::define_int_guc(
        c"crm.template_max_bytes",
        c"Largest template text crm.render_template accepts.",
        c"",
        &TEMPLATE_MAX_BYTES,
        1024,
        64 * 1024 * 1024,
        GucContext::Suset,
        GucFlags::UNIT_BYTE,
    );
    GucRegistry::define_int_guc(
        c"crm.template_max_output_bytes",
        c"Largest output crm.render_template produces before refusing.",
        c"",
        &TEMPLATE_MAX_OUTPUT_BYTES,
        1024,
        256 * 1024 * 1024,
        GucContext::Suset,
        GucFlags::UNIT_BYTE,
    );
    GucRegistry::define_int_guc(
        c"crm.template_max_steps",
        c"Work budget of one render: template elements evaluated, loop iterations included.",
        c"Nested {{#each}} that writes nothing is bounded by this, not by the output limit.",
        &TEMPLATE_MAX_STEPS,
        1000,
        i32::MAX,
        GucContext::Suset,
        GucFlags::default(),
    );
    GucRegistry::define_int_guc(
        c"crm.max_json_argument_bytes",
        c"Largest jsonb argument (as text) a crm function accepts: template variables, email messages, webhook headers.",
        c"",
        &MAX_JSON_ARGUMENT_BYTES,
        1024,
        i32::MAX,
        GucContext::Suset,
        GucFlags::UNIT_BYTE,
    );
}

pub fn register_webhooks() {
    GucRegistry::define_string_guc(
        c"crm.stripe_webhook_secret",
        c"Stripe endpoint signing secrets (whsec_...), comma-separated while rolling (superuser only).",
        c"",
        &STRIPE_WEBHOOK_SECRET,
        GucContext::Suset,
        SECRET,
    );
    GucRegistry::define_string_guc(
        c"crm.resend_webhook_secret",
        c"Resend (Svix) webhook signing secrets (whsec_<base64>), comma-separated (superuser only).",
        c"",
        &RESEND_WEBHOOK_SECRET,
        GucContext::Suset,
        SECRET,
    );
    GucRegistry::define_int_guc(
        c"crm.stripe_webhook_tolerance",
        c"Largest accepted distance between a Stripe signature's timestamp and now (0 = no check).",
        c"",
        &STRIPE_WEBHOOK_TOLERANCE,
        0,
        86400,
        GucContext::Suset,
        GucFlags::UNIT_S,
    );
    GucRegistry::define_int_guc(
        c"crm.resend_webhook_tolerance",
        c"Largest accepted distance between a Svix timestamp and now (0 = no check).",
        c"",
        &RESEND_WEBHOOK_TOLERANCE,
        0,
        86400,
        GucContext::Suset,
        GucFlags::UNIT_S,
    );
    GucRegistry::define_int_guc(
        c"crm.webhook_max_body",
        c"Largest webhook body crm.ingest_webhook accepts.",
        c"",
        &WEBHOOK_MAX_BODY,
        1024,
        64 * 1024 * 1024,
        GucContext::Suset,
        GucFlags::UNIT_BYTE,
    );
}

pub fn register_delivery() {
    GucRegistry::define_bool_guc(
        c"crm.worker_enabled",
        c"Whether the email worker sends (it idles when off).",
        c"",
        &WORKER_ENABLED,
        GucContext::Sighup,
        GucFlags::default(),
    );
    GucRegistry::define_string_guc(
        c"crm.worker_database",
        c"Database the email worker serves (the one with the extension).",
        c"",
        &WORKER_DATABASE,
        GucContext::Sighup,
        GucFlags::default(),
    );
    GucRegistry::define_int_guc(
        c"crm.worker_count",
        c"How many email workers to start (server start only).",
        c"",
        &WORKER_COUNT,
        1,
        8,
        GucContext::Postmaster,
        GucFlags::default(),
    );
    GucRegistry::define_int_guc(
        c"crm.worker_batch_size",
        c"Rows the email worker claims per round.",
        c"",
        &WORKER_BATCH_SIZE,
        1,
        10_000,
        GucContext::Sighup,
        GucFlags::default(),
    );
    GucRegistry::define_int_guc(
        c"crm.worker_idle_sleep",
        c"Longest sleep of an idle email worker (an enqueue wakes it at once).",
        c"",
        &WORKER_IDLE_SLEEP_MS,
        10,
        3_600_000,
        GucContext::Sighup,
        GucFlags::UNIT_MS,
    );
    GucRegistry::define_string_guc(
        c"crm.resend_api_key",
        c"Resend API key (re_...), superuser only.",
        c"",
        &RESEND_API_KEY,
        GucContext::Suset,
        SECRET,
    );
    GucRegistry::define_string_guc(
        c"crm.resend_base_url",
        c"Base URL of the Resend API (tests point it at the emulator).",
        c"",
        &RESEND_BASE_URL,
        GucContext::Suset,
        GucFlags::default(),
    );
    GucRegistry::define_string_guc(c"crm.resend_verified_domain",
        c"Domain of the default sender CRM <noreply@DOMAIN>; a value with an @ is the sender address itself.", c"",
        &RESEND_VERIFIED_DOMAIN, GucContext::Suset, GucFlags::default());
    GucRegistry::define_float_guc(c"crm.resend_rate_limit",
        c"Requests per second to Resend from one process (Resend's documented default: 2); 0 = unlimited.", c"",
        &RESEND_RATE_LIMIT, 0.0, 100000.0, GucContext::Suset, GucFlags::default());
    GucRegistry::define_bool_guc(c"crm.resend_batch",
        c"Send due Resend emails up to 100 per request (POST /emails/batch) when several can share one.", c"",
        &RESEND_BATCH, GucContext::Suset, GucFlags::default());

    // Gmail and Google's token endpoint.
    GucRegistry::define_string_guc(
        c"crm.gmail_base_url",
        c"Base URL of the Gmail API (tests point it at the emulator).",
        c"",
        &GMAIL_BASE_URL,
        GucContext::Suset,
        GucFlags::default(),
    );
    GucRegistry::define_float_guc(c"crm.gmail_rate_limit",
        c"Requests per second to Gmail from one process (Gmail's per-user quota: 250 units/s, 100 per send); 0 = unlimited.", c"",
        &GMAIL_RATE_LIMIT, 0.0, 100000.0, GucContext::Suset, GucFlags::default());
    GucRegistry::define_string_guc(
        c"crm.google_oauth_base_url",
        c"Base URL of Google's OAuth token endpoint (POST /token).",
        c"",
        &GOOGLE_OAUTH_BASE_URL,
        GucContext::Suset,
        GucFlags::default(),
    );
    GucRegistry::define_string_guc(
        c"crm.google_client_id",
        c"OAuth client id of the Google app that connected the Gmail mailboxes.",
        c"",
        &GOOGLE_CLIENT_ID,
        GucContext::Suset,
        GucFlags::default(),
    );
    GucRegistry::define_string_guc(
        c"crm.google_client_secret",
        c"OAuth client secret of the Google app, superuser only.",
        c"",
        &GOOGLE_CLIENT_SECRET,
        GucContext::Suset,
        SECRET,
    );

    // Microsoft Graph and the Microsoft identity platform's token endpoint.
    GucRegistry::define_string_guc(
        c"crm.microsoft_graph_base_url",
        c"Base URL of Microsoft Graph (tests point it at the emulator).",
        c"",
        &MICROSOFT_GRAPH_BASE_URL,
        GucContext::Suset,
        GucFlags::default(),
    );
    GucRegistry::define_float_guc(c"crm.microsoft_rate_limit",
        c"Requests per second to Graph sendMail from one process (Exchange Online: 30 messages a minute); 0 = unlimited.", c"",
        &MICROSOFT_RATE_LIMIT, 0.0, 100000.0, GucContext::Suset, GucFlags::default());
    GucRegistry::define_string_guc(
        c"crm.microsoft_login_base_url",
        c"Base URL of the Microsoft token endpoint (POST /{tenant}/oauth2/v2.0/token).",
        c"",
        &MICROSOFT_LOGIN_BASE_URL,
        GucContext::Suset,
        GucFlags::default(),
    );
    GucRegistry::define_string_guc(
        c"crm.microsoft_tenant",
        c"Tenant of the Microsoft app: common, organizations, or a tenant id.",
        c"",
        &MICROSOFT_TENANT,
        GucContext::Suset,
        GucFlags::default(),
    );
    GucRegistry::define_string_guc(
        c"crm.microsoft_client_id",
        c"Application (client) id of the Microsoft app that connected the mailboxes.",
        c"",
        &MICROSOFT_CLIENT_ID,
        GucContext::Suset,
        GucFlags::default(),
    );
    GucRegistry::define_string_guc(
        c"crm.microsoft_client_secret",
        c"Client secret of the Microsoft app, superuser only.",
        c"",
        &MICROSOFT_CLIENT_SECRET,
        GucContext::Suset,
        SECRET,
    );

    // SMTP.
    GucRegistry::define_string_guc(
        c"crm.smtp_host",
        c"SMTP server for provider smtp (a relay, or a local Supabase stack's Inbucket/Mailpit).",
        c"",
        &SMTP_HOST,
        GucContext::Suset,
        GucFlags::default(),
    );
    GucRegistry::define_int_guc(
        c"crm.smtp_port",
        c"SMTP server port (587 submission, 465 implicit TLS, 25, or 54325 for Inbucket).",
        c"",
        &SMTP_PORT,
        1,
        65535,
        GucContext::Suset,
        GucFlags::default(),
    );
    GucRegistry::define_string_guc(
        c"crm.smtp_tls",
        c"SMTP transport security: starttls (required), tls (implicit, port 465) or none.",
        c"",
        &SMTP_TLS,
        GucContext::Suset,
        GucFlags::default(),
    );
    GucRegistry::define_string_guc(
        c"crm.smtp_username",
        c"SMTP login (empty: no AUTH).",
        c"",
        &SMTP_USERNAME,
        GucContext::Suset,
        GucFlags::default(),
    );
    GucRegistry::define_string_guc(
        c"crm.smtp_password",
        c"SMTP password, superuser only.",
        c"",
        &SMTP_PASSWORD,
        GucContext::Suset,
        SECRET,
    );
    GucRegistry::define_float_guc(
        c"crm.smtp_rate_limit",
        c"Messages per second to the SMTP server from one process; 0 = unlimited.",
        c"",
        &SMTP_RATE_LIMIT,
        0.0,
        100000.0,
        GucContext::Suset,
        GucFlags::default(),
    );

    GucRegistry::define_int_guc(
        c"crm.email_retry_base",
        c"First retry delay (the reference: 5 minutes).",
        c"",
        &EMAIL_RETRY_BASE,
        0,
        86400,
        GucContext::Suset,
        GucFlags::UNIT_S,
    );
    GucRegistry::define_float_guc(
        c"crm.email_retry_factor",
        c"Growth of the retry delay per attempt (the reference: 2).",
        c"",
        &EMAIL_RETRY_FACTOR,
        1.0,
        10.0,
        GucContext::Suset,
        GucFlags::default(),
    );
    GucRegistry::define_int_guc(
        c"crm.email_lease",
        c"How long a claimed row is reserved for its sender before others may claim it.",
        c"",
        &EMAIL_LEASE_SECONDS,
        5,
        86400,
        GucContext::Suset,
        GucFlags::UNIT_S,
    );
    GucRegistry::define_int_guc(
        c"crm.email_http_timeout",
        c"Timeout of one provider request.",
        c"",
        &EMAIL_HTTP_TIMEOUT_MS,
        100,
        300000,
        GucContext::Suset,
        GucFlags::UNIT_MS,
    );
    GucRegistry::define_int_guc(
        c"crm.email_max_attachment_bytes",
        c"Largest total attachment size of one message.",
        c"",
        &EMAIL_MAX_ATTACHMENT_BYTES,
        0,
        64 * 1024 * 1024,
        GucContext::Suset,
        GucFlags::UNIT_BYTE,
    );
}

/// A string setting as a Rust string (lossy), for non-secret settings.
pub fn text(setting: &'static GucSetting<Option<CString>>) -> String {
    String::from_utf8_lossy(raw(setting)).into_owned()
}

/// The bytes of a string setting as Postgres holds them, without copying. Postgres replaces
/// the pointer (never the bytes behind it) when the value changes, so the slice is valid until
/// the next SET or configuration reload, which cannot happen while a function call runs.
pub fn raw(setting: &'static GucSetting<Option<CString>>) -> &'static [u8] {
    // SAFETY: the pointer is either null or a NUL-terminated string owned by the GUC machinery.
    unsafe {
        let ptr = *setting.as_ptr();
        if ptr.is_null() {
            &[]
        } else {
            CStr::from_ptr(ptr).to_bytes()
        }
    }
}

/// An unknown time zone is refused when it is set (SET, or a reload: Postgres then keeps the
/// previous value), so no render — least of all the email worker's, which runs with no
/// transaction open and cannot raise an error — ever meets one.
#[pgrx::pg_guard]
unsafe extern "C-unwind" fn check_timezone(
    newval: *mut *mut std::ffi::c_char,
    _extra: *mut *mut std::ffi::c_void,
    _source: pgrx::pg_sys::GucSource::Type,
) -> bool {
    // SAFETY: Postgres passes a valid pointer to the proposed value (NULL only for NULL).
    let value = unsafe {
        newval
            .as_ref()
            .filter(|p| !p.is_null())
            .map(|p| CStr::from_ptr(*p))
    };
    value.is_none_or(|v| {
        v.to_str()
            .ok()
            .and_then(crm_core::template::dates::parse_timezone)
            .is_some()
    })
}
