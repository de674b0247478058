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

pub const SECRET: GucFlags = GucFlags::SUPERUSER_ONLY.union(GucFlags::NO_SHOW_ALL);

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
