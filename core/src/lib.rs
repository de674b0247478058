//! The pure core of crm_integrations: no Postgres, no network. Everything here is plain data in,
//! plain data out, unit-tested with `#[test]`; the extension crate is its SQL shell.
//!
//! - `runtime`: what every outbound integration shares (outcome rules, backoff, OAuth refresh,
//!   task payloads).
//! - `email`: the send-email capability (message validation, MIME).
//! - `integrations/<provider>`: each provider's wire formats.
//! - `template`, `vault`, `webhooks`: templates, the token vault, webhook signatures.

pub mod contacts;
pub mod documents;
pub mod email;
pub mod ids;
pub mod integrations;
pub mod runtime;
pub mod template;
pub mod vault;
pub mod voice;
pub mod webhooks;
