//! Resend's settings (sending; its webhook secret is with the webhooks).

use crate::guc::SECRET;
use pgrx::guc::*;
use std::ffi::CString;

pub static RESEND_API_KEY: GucSetting<Option<CString>> = GucSetting::<Option<CString>>::new(None);
pub static RESEND_BASE_URL: GucSetting<Option<CString>> =
    GucSetting::<Option<CString>>::new(Some(c"https://api.resend.com"));
pub static RESEND_VERIFIED_DOMAIN: GucSetting<Option<CString>> =
    GucSetting::<Option<CString>>::new(None);
pub static RESEND_RATE_LIMIT: GucSetting<f64> = GucSetting::<f64>::new(2.0);
pub static RESEND_BATCH: GucSetting<bool> = GucSetting::<bool>::new(true);

pub fn register() {
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
}
