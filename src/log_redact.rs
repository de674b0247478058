//! Keeping secret settings out of the server log. Postgres itself writes a setting's new
//! value to the log when a configuration reload changes it — `parameter "crm.resend_api_key"
//! changed to "re_..."` — whatever the setting's flags, so an `ALTER SYSTEM SET` of a secret
//! followed by `pg_reload_conf()` would put the secret in the log. An `emit_log_hook`
//! (installed when the library is preloaded, so the postmaster has it) rewrites that message
//! for our secret settings to `changed (value not shown)`.
//!
//! Only that exact message is touched; a superuser's own statement text (log_statement = all)
//! is not rewritten (see the README's Security section).

use pgrx::pg_sys;
use std::ffi::CStr;

/// Our settings whose values are secrets (SUPERUSER_ONLY | NO_SHOW_ALL in their registration).
const SECRETS: &[&str] = &[
    "crm.encryption_key",
    "crm.encryption_key_previous",
    "crm.resend_api_key",
    "crm.stripe_webhook_secret",
    "crm.resend_webhook_secret",
    "crm.google_client_secret",
    "crm.microsoft_client_secret",
    "crm.smtp_password",
    "crm.google_maps_api_key",
    "crm.stripe_secret_key",
    "crm.elevenlabs_webhook_secret",
];

static mut PREVIOUS_HOOK: pg_sys::emit_log_hook_type = None;

#[pgrx::pg_guard]
unsafe extern "C-unwind" fn redact_hook(edata: *mut pg_sys::ErrorData) {
    // SAFETY: Postgres passes a valid ErrorData whose message is NULL or a palloc'd string in
    // ErrorContext; the replacement is palloc'd in the same context (the current one here).
    unsafe {
        if let Some(e) = edata.as_mut() {
            if !e.message.is_null() {
                let text = CStr::from_ptr(e.message).to_string_lossy();
                if let Some(new) =
                    crm_core::runtime::config::redacted_setting_change(&text, SECRETS)
                {
                    let bytes = new.as_bytes();
                    let copy = pg_sys::palloc(bytes.len() + 1) as *mut u8;
                    std::ptr::copy_nonoverlapping(bytes.as_ptr(), copy, bytes.len());
                    *copy.add(bytes.len()) = 0;
                    e.message = copy as *mut std::ffi::c_char;
                }
            }
        }
        if let Some(previous) = PREVIOUS_HOOK {
            previous(edata);
        }
    }
}

/// In `_PG_init` while preloading.
pub fn install() {
    // SAFETY: _PG_init runs once per process, single-threaded, before any log is emitted
    // through the hook; the previous hook is chained.
    unsafe {
        PREVIOUS_HOOK = pg_sys::emit_log_hook;
        pg_sys::emit_log_hook = Some(redact_hook);
    }
}
