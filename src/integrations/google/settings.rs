//! Google's settings: Gmail and Google's OAuth token endpoint.

use crate::guc::SECRET;
use pgrx::guc::*;
use std::ffi::CString;

pub static GMAIL_BASE_URL: GucSetting<Option<CString>> =
    GucSetting::<Option<CString>>::new(Some(c"https://gmail.googleapis.com"));
pub static GMAIL_RATE_LIMIT: GucSetting<f64> = GucSetting::<f64>::new(2.5);
pub static GOOGLE_OAUTH_BASE_URL: GucSetting<Option<CString>> =
    GucSetting::<Option<CString>>::new(Some(c"https://oauth2.googleapis.com"));
pub static GOOGLE_CLIENT_ID: GucSetting<Option<CString>> = GucSetting::<Option<CString>>::new(None);
pub static GOOGLE_CLIENT_SECRET: GucSetting<Option<CString>> =
    GucSetting::<Option<CString>>::new(None);

pub static GOOGLE_ACCOUNTS_BASE_URL: GucSetting<Option<CString>> =
    GucSetting::<Option<CString>>::new(Some(c"https://accounts.google.com"));
pub static GOOGLE_USERINFO_BASE_URL: GucSetting<Option<CString>> =
    GucSetting::<Option<CString>>::new(Some(c"https://openidconnect.googleapis.com"));

pub fn register() {
    GucRegistry::define_string_guc(
        c"crm.google_accounts_base_url",
        c"Where Google's authorization URL points (the consent screen; tests point it at the emulator).",
        c"",
        &GOOGLE_ACCOUNTS_BASE_URL,
        GucContext::Suset,
        GucFlags::default(),
    );
    GucRegistry::define_string_guc(
        c"crm.google_userinfo_base_url",
        c"Base URL of Google's OpenID userinfo endpoint (GET /v1/userinfo: the connected address).",
        c"",
        &GOOGLE_USERINFO_BASE_URL,
        GucContext::Suset,
        GucFlags::default(),
    );
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
}
