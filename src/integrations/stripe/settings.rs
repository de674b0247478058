//! Stripe's outbound settings (the webhook secret is in src/guc.rs with the other webhooks').

use crate::guc::SECRET;
use pgrx::guc::*;
use std::ffi::CString;

pub static STRIPE_SECRET_KEY: GucSetting<Option<CString>> =
    GucSetting::<Option<CString>>::new(None);
pub static STRIPE_BASE_URL: GucSetting<Option<CString>> =
    GucSetting::<Option<CString>>::new(Some(c"https://api.stripe.com"));
pub static STRIPE_RATE_LIMIT: GucSetting<f64> = GucSetting::<f64>::new(25.0);

pub fn register() {
    GucRegistry::define_string_guc(
        c"crm.stripe_secret_key",
        c"Stripe secret API key (sk_live_... or a restricted rk_...), superuser only.",
        c"",
        &STRIPE_SECRET_KEY,
        GucContext::Suset,
        SECRET,
    );
    GucRegistry::define_string_guc(
        c"crm.stripe_base_url",
        c"Base URL of Stripe's API (tests point it at the emulator).",
        c"",
        &STRIPE_BASE_URL,
        GucContext::Suset,
        GucFlags::default(),
    );
    GucRegistry::define_float_guc(
        c"crm.stripe_rate_limit",
        c"Stripe requests per second from this server (the shared limiter; Stripe allows 25/s in test mode, 100/s live); 0 = unlimited.",
        c"",
        &STRIPE_RATE_LIMIT,
        0.0,
        100000.0,
        GucContext::Suset,
        GucFlags::default(),
    );
}
