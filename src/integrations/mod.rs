//! The integrations, one folder per provider: its settings, its SQL functions, its task
//! handlers, its implementations of the capabilities (`crate::email::provider::Provider`,
//! `crate::runtime::tasks::TaskKind`). Wire formats are in `crm_core::integrations::<provider>`.
//!
//! Adding an integration: a folder here, a line in `register_settings`, and its email
//! providers or task kinds in the lists below.

pub mod elevenlabs;
pub mod google;
pub mod microsoft;
pub mod noop;
pub mod resend;
pub mod smtp;
pub mod stripe;

use crate::email::provider::Provider;
use crate::runtime::tasks::TaskKind;

/// Every email provider (`email_queue.provider`).
pub static EMAIL_PROVIDERS: &[&dyn Provider] = &[
    &resend::Resend,
    &google::gmail::Gmail,
    &microsoft::mail::Microsoft,
    &smtp::Smtp,
];

/// Every mailbox that keeps drafts (`crm.create_draft`).
pub static DRAFT_BOXES: &[&dyn crate::email::drafts::DraftBox] =
    &[&google::gmail::Gmail, &microsoft::mail::Microsoft];

/// Every task kind (`integration_tasks.kind`).
pub static TASK_KINDS: &[&dyn TaskKind] = &[
    &noop::Noop,
    &crate::runtime::oauth::RefreshConnection,
    &google::calendar::SyncJob,
    &google::calendar_sync::SyncConnection,
    &google::calendar_sync::Watch,
    &google::maps::geocode::Geocode,
    &crate::contacts::sync::SyncContacts,
];

/// Every address book the contact sync reads (`contact_providers.provider`).
pub static ADDRESS_BOOKS: &[&dyn crate::contacts::sync::AddressBook] = &[
    &google::people::GooglePeople,
    &microsoft::contacts::GraphContacts,
];

/// Register every integration's settings (`_PG_init`).
pub fn register_settings() {
    resend::settings::register();
    google::settings::register();
    google::maps::settings::register();
    microsoft::settings::register();
    smtp::settings::register();
    stripe::settings::register();
    elevenlabs::register();
}
