//! The send-email capability's settings: retries, the lease of a claimed row, attachment size.

use pgrx::guc::*;

pub static EMAIL_RETRY_BASE: GucSetting<i32> = GucSetting::<i32>::new(300);
pub static EMAIL_RETRY_FACTOR: GucSetting<f64> = GucSetting::<f64>::new(2.0);
pub static EMAIL_LEASE_SECONDS: GucSetting<i32> = GucSetting::<i32>::new(120);
pub static EMAIL_MAX_ATTACHMENT_BYTES: GucSetting<i32> = GucSetting::<i32>::new(10 * 1024 * 1024);

pub static EMAIL_DRAFTS_RETENTION_SECONDS: GucSetting<i32> = GucSetting::<i32>::new(90 * 86400);

pub fn register() {
    GucRegistry::define_int_guc(
        c"crm.email_drafts_retention",
        c"How long crm.email_drafts remembers a draft (and its idempotency key); the mailbox keeps the draft itself.",
        c"",
        &EMAIL_DRAFTS_RETENTION_SECONDS,
        3600,
        10 * 365 * 86400,
        GucContext::Suset,
        GucFlags::UNIT_S,
    );
    GucRegistry::define_int_guc(
        c"crm.email_retry_base",
        c"First retry delay (the reference: 5 minutes).",
        c"",
        &EMAIL_RETRY_BASE,
        0,
        86400,
        GucContext::Suset,
        GucFlags::UNIT_S,
    );
    GucRegistry::define_float_guc(
        c"crm.email_retry_factor",
        c"Growth of the retry delay per attempt (the reference: 2).",
        c"",
        &EMAIL_RETRY_FACTOR,
        1.0,
        10.0,
        GucContext::Suset,
        GucFlags::default(),
    );
    GucRegistry::define_int_guc(
        c"crm.email_lease",
        c"How long a claimed row is reserved for its sender before others may claim it.",
        c"",
        &EMAIL_LEASE_SECONDS,
        5,
        86400,
        GucContext::Suset,
        GucFlags::UNIT_S,
    );
    GucRegistry::define_int_guc(
        c"crm.email_max_attachment_bytes",
        c"Largest total attachment size of one message.",
        c"",
        &EMAIL_MAX_ATTACHMENT_BYTES,
        0,
        64 * 1024 * 1024,
        GucContext::Suset,
        GucFlags::UNIT_BYTE,
    );
}
