//! Contacts' matching keys as SQL functions (sql/contacts.sql uses them to find duplicates),
//! and `crm.default_phone_region`.

use crm_core::contacts::keys;
use pgrx::guc::*;
use pgrx::prelude::*;
use std::ffi::CString;

pub static DEFAULT_PHONE_REGION: GucSetting<Option<CString>> =
    GucSetting::<Option<CString>>::new(Some(c"US"));

pub fn register() {
    GucRegistry::define_string_guc(
        c"crm.default_phone_region",
        c"ISO 3166 country (US, DE, ...) of phone numbers written without a country code.",
        c"",
        &DEFAULT_PHONE_REGION,
        GucContext::Userset,
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
