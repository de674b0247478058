//! SMTP's settings (lettre's transport).

use crate::guc::SECRET;
use pgrx::guc::*;
use std::ffi::CString;

pub static SMTP_HOST: GucSetting<Option<CString>> = GucSetting::<Option<CString>>::new(None);
pub static SMTP_PORT: GucSetting<i32> = GucSetting::<i32>::new(587);
pub static SMTP_TLS: GucSetting<Option<CString>> =
    GucSetting::<Option<CString>>::new(Some(c"starttls"));
pub static SMTP_USERNAME: GucSetting<Option<CString>> = GucSetting::<Option<CString>>::new(None);
pub static SMTP_PASSWORD: GucSetting<Option<CString>> = GucSetting::<Option<CString>>::new(None);
pub static SMTP_RATE_LIMIT: GucSetting<f64> = GucSetting::<f64>::new(0.0);

pub fn register() {
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
}
