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

pub static GOOGLE_CALENDAR_BASE_URL: GucSetting<Option<CString>> =
    GucSetting::<Option<CString>>::new(Some(c"https://www.googleapis.com"));
pub static CALENDAR_TIME_ZONE: GucSetting<Option<CString>> =
    GucSetting::<Option<CString>>::new(Some(c"UTC"));
pub static CALENDAR_SEND_UPDATES: GucSetting<Option<CString>> =
    GucSetting::<Option<CString>>::new(Some(c"none"));
pub static APP_BASE_URL: GucSetting<Option<CString>> = GucSetting::<Option<CString>>::new(None);
pub static CALENDAR_RATE_LIMIT: GucSetting<f64> = GucSetting::<f64>::new(10.0);
pub static CALENDAR_SYNC_INTERVAL_SECONDS: GucSetting<i32> = GucSetting::<i32>::new(300);
pub static CALENDAR_WEBHOOK_URL: GucSetting<Option<CString>> =
    GucSetting::<Option<CString>>::new(None);

pub static GOOGLE_PEOPLE_BASE_URL: GucSetting<Option<CString>> =
    GucSetting::<Option<CString>>::new(Some(c"https://people.googleapis.com"));
pub static GOOGLE_PEOPLE_RATE_LIMIT: GucSetting<f64> = GucSetting::<f64>::new(1.5);

pub fn register() {
    GucRegistry::define_string_guc(
        c"crm.google_people_base_url",
        c"Base URL of Google's People API (contact sync; tests point it at the emulator).",
        c"",
        &GOOGLE_PEOPLE_BASE_URL,
        GucContext::Suset,
        GucFlags::default(),
    );
    GucRegistry::define_float_guc(
        c"crm.google_people_rate_limit",
        c"People API requests per second per connection (Google: 90 reads a minute per user); 0 = unlimited.",
        c"",
        &GOOGLE_PEOPLE_RATE_LIMIT,
        0.0,
        100000.0,
        GucContext::Suset,
        GucFlags::default(),
    );
    GucRegistry::define_string_guc(
        c"crm.google_calendar_base_url",
        c"Base URL of the Google Calendar API (tests point it at the emulator).",
        c"",
        &GOOGLE_CALENDAR_BASE_URL,
        GucContext::Suset,
        GucFlags::default(),
    );
    GucRegistry::define_string_guc(
        c"crm.calendar_time_zone",
        c"IANA time zone jobs' calendar events are written in.",
        c"",
        &CALENDAR_TIME_ZONE,
        GucContext::Suset,
        GucFlags::default(),
    );
    GucRegistry::define_string_guc(
        c"crm.calendar_send_updates",
        c"Calendar's sendUpdates for job events: none, externalOnly or all.",
        c"none: guests get no email from Google when a job's event changes.",
        &CALENDAR_SEND_UPDATES,
        GucContext::Suset,
        GucFlags::default(),
    );
    GucRegistry::define_string_guc(
        c"crm.app_base_url",
        c"The CRM app's URL: event descriptions link to <app_base_url>/jobs/<id>.",
        c"",
        &APP_BASE_URL,
        GucContext::Suset,
        GucFlags::default(),
    );
    GucRegistry::define_string_guc(
        c"crm.calendar_webhook_url",
        c"https URL Google calls on calendar changes: PostgREST's /rest/v1/rpc/google_calendar_webhook.",
        c"",
        &CALENDAR_WEBHOOK_URL,
        GucContext::Suset,
        GucFlags::default(),
    );
    GucRegistry::define_int_guc(
        c"crm.calendar_sync_interval",
        c"How often the workers read each Google calendar's changes (calendar.sync_connection).",
        c"",
        &CALENDAR_SYNC_INTERVAL_SECONDS,
        30,
        86400,
        GucContext::Suset,
        GucFlags::UNIT_S,
    );
    GucRegistry::define_float_guc(
        c"crm.google_calendar_rate_limit",
        c"Calendar API requests per second per connection from this server (Google: 600 a minute per user); 0 = unlimited.",
        c"",
        &CALENDAR_RATE_LIMIT,
        0.0,
        100000.0,
        GucContext::Suset,
        GucFlags::default(),
    );
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
