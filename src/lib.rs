//! crm_integrations: a field-service CRM's third-party integrations inside PostgreSQL.
//!
//! The logic lives in the `crm_core` crate (no Postgres there); this crate is the SQL shell:
//! settings, SQL functions and the schema files under `sql/`. `runtime` is what every
//! outbound integration shares (queue cycle, task queue, workers, limiter, HTTP, OAuth);
//! `email` is the send-email capability; `integrations/<provider>` holds each provider.

use pgrx::prelude::*;

mod contacts;
mod email;
mod errors;
mod guc;
mod integrations;
mod json_arg;
mod log_redact;
mod runtime;
mod schema;
mod templates;
mod text_array;
mod vault;
mod voice;
mod webhooks;

::pgrx::pg_module_magic!();

#[pg_guard]
pub extern "C-unwind" fn _PG_init() {
    guc::register();
    guc::register_webhooks();
    runtime::settings::register();
    email::settings::register();
    integrations::register_settings();
    contacts::register();
    voice::register();
    // SAFETY: a plain read of a flag Postgres sets while it loads shared_preload_libraries.
    if unsafe { pg_sys::process_shared_preload_libraries_in_progress } {
        log_redact::install();
        runtime::limiter::init_shared_memory();
        runtime::worker::init();
    }
}

#[cfg(any(test, feature = "pg_test"))]
#[pg_schema]
mod tests {
    // The #[pg_test]s live next to the code they test (vault.rs); this module only has to exist.
}

/// Required by `cargo pgrx test`.
#[cfg(test)]
pub mod pg_test {
    pub fn setup(_options: Vec<&str>) {}

    #[must_use]
    pub fn postgresql_conf_options() -> Vec<&'static str> {
        vec![
            "shared_preload_libraries = 'crm_integrations'",
            "crm.encryption_key = '000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f'",
        ]
    }
}
