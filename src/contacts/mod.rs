//! Contacts: the matching keys as SQL functions (sql/contacts.sql uses them to find
//! duplicates, sql/contacts_sync.sql to link incoming people), the sync of address books
//! (`sync`: the task kind and the `AddressBook` capability Google and Microsoft implement), and
//! the settings they share.

pub mod sync;

use crm_core::contacts::keys;
use pgrx::guc::*;
use pgrx::prelude::*;
use std::ffi::CString;

pub static DEFAULT_PHONE_REGION: GucSetting<Option<CString>> =
    GucSetting::<Option<CString>>::new(Some(c"US"));
pub static CONTACTS_SYNC_INTERVAL_SECONDS: GucSetting<i32> = GucSetting::<i32>::new(3600);
pub static CONTACTS_SYNC_MAX_PEOPLE: GucSetting<i32> = GucSetting::<i32>::new(50_000);
pub static CONTACTS_PAGE_SIZE: GucSetting<i32> = GucSetting::<i32>::new(1000);

pub fn register() {
    GucRegistry::define_string_guc(
        c"crm.default_phone_region",
        c"ISO 3166 country (US, DE, ...) of phone numbers written without a country code.",
        c"",
        &DEFAULT_PHONE_REGION,
        GucContext::Userset,
        GucFlags::default(),
    );
    GucRegistry::define_int_guc(
        c"crm.contacts_sync_interval",
        c"How often the workers read each contacts connection's changes (contacts.sync).",
        c"",
        &CONTACTS_SYNC_INTERVAL_SECONDS,
        60,
        7 * 86400,
        GucContext::Suset,
        GucFlags::UNIT_S,
    );
    GucRegistry::define_int_guc(
        c"crm.contacts_sync_max_people",
        c"Most people one contacts.sync run reads; a larger address book goes on in the next run at once.",
        c"",
        &CONTACTS_SYNC_MAX_PEOPLE,
        100,
        1_000_000,
        GucContext::Suset,
        GucFlags::default(),
    );
    GucRegistry::define_int_guc(
        c"crm.contacts_page_size",
        c"People asked for per page of a contact listing (Google and Graph take at most 1000).",
        c"",
        &CONTACTS_PAGE_SIZE,
        1,
        1000,
        GucContext::Suset,
        GucFlags::default(),
    );
}

/// The email matching key (lower case; Gmail without dots and +suffix); NULL if not an address.
#[pg_extern(immutable, parallel_safe, strict)]
fn _email_key(email: &str) -> Option<String> {
    keys::email_key(email)
}

/// The phone matching key (E.164), reading numbers without a country code as `region`'s;
/// NULL if not a valid number.
#[pg_extern(immutable, parallel_safe, strict)]
fn _phone_key(phone: &str, region: &str) -> Option<String> {
    keys::phone_key(phone, region)
}

/// How alike two names are, 0..1.
#[pg_extern(immutable, parallel_safe, strict)]
fn _name_similarity(a: &str, b: &str) -> f64 {
    keys::name_similarity(a, b)
}
