//! Microsoft's settings: Graph and the Microsoft identity platform's token endpoint.

use crate::guc::SECRET;
use pgrx::guc::*;
use std::ffi::CString;

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

pub static MICROSOFT_CONTACTS_RATE_LIMIT: GucSetting<f64> = GucSetting::<f64>::new(4.0);

pub fn register() {
    GucRegistry::define_float_guc(
        c"crm.microsoft_contacts_rate_limit",
        c"Graph contact-listing requests per second per connection (Graph: 10,000 per 10 minutes per mailbox, shared); 0 = unlimited.",
        c"",
        &MICROSOFT_CONTACTS_RATE_LIMIT,
        0.0,
        100000.0,
        GucContext::Suset,
        GucFlags::default(),
    );
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
}
