//! The reviewed SQL under `sql/`, in the order CREATE EXTENSION runs it: the schema first,
//! then row-level security, the template store (after the Rust functions its trigger calls),
//! then (after every generated function) privileges and rotation.

pgrx::extension_sql_file!("../sql/schema.sql", name = "schema", bootstrap);
pgrx::extension_sql_file!("../sql/rls.sql", name = "rls", requires = ["schema"]);
pgrx::extension_sql_file!(
    "../sql/templates.sql",
    name = "templates",
    requires = [
        "rls",
        templates::render_template,
        templates::template_variables,
        templates::html_to_text,
        templates::_render_email_parts
    ]
);
pgrx::extension_sql_file!(
    "../sql/webhooks.sql",
    name = "webhooks",
    requires = ["templates", webhooks::_verify_webhook]
);
pgrx::extension_sql_file!(
    "../sql/delivery.sql",
    name = "delivery",
    requires = [
        "webhooks",
        email::_validate_email_message,
        email::_validate_email_batch,
        email::_validate_email_rows,
        runtime::worker::_wake_email_worker_on_commit
    ]
);
pgrx::extension_sql_file!(
    "../sql/tasks.sql",
    name = "tasks",
    requires = [
        "delivery",
        runtime::tasks::_check_task,
        runtime::worker::_wake_workers_for_tasks_on_commit
    ]
);
pgrx::extension_sql_file!(
    "../sql/connections.sql",
    name = "connections",
    requires = [
        "tasks",
        runtime::connect::_oauth_begin,
        runtime::connect::_oauth_state_hash,
        runtime::connect::_oauth_hint,
        runtime::connect::_oauth_connect,
        runtime::connect::_oauth_revoke,
        runtime::connect::_setting_is_set
    ]
);
pgrx::extension_sql_file!(
    "../sql/calendar.sql",
    name = "calendar",
    requires = ["connections", integrations::google::calendar::_is_time_zone]
);
pgrx::extension_sql_file!(
    "../sql/maps.sql",
    name = "maps",
    requires = [
        "calendar",
        integrations::google::maps::geocode::_address_key,
        integrations::google::maps::geocode::_geocode_request,
        integrations::google::maps::routes::_travel_times,
        integrations::google::maps::plan::_plan_order
    ]
);
pgrx::extension_sql_file!(
    "../sql/payments.sql",
    name = "payments",
    requires = [
        "maps",
        integrations::stripe::_stripe_post,
        integrations::stripe::_stripe_idempotency_key,
        integrations::stripe::invoice_pdf::_invoice_pdf,
        runtime::connect::_setting_is_set
    ]
);
pgrx::extension_sql_file!(
    "../sql/contacts.sql",
    name = "contacts",
    requires = [
        "payments",
        contacts::_email_key,
        contacts::_phone_key,
        contacts::_name_similarity
    ]
);
pgrx::extension_sql_file!(
    "../sql/contacts_sync.sql",
    name = "contacts_sync",
    requires = ["contacts"]
);
pgrx::extension_sql_file!(
    "../sql/drafts.sql",
    name = "drafts",
    requires = ["contacts_sync", email::drafts::_create_draft]
);
pgrx::extension_sql_file!(
    "../sql/voice.sql",
    name = "voice",
    requires = [
        "drafts",
        voice::_tool_check,
        voice::tool_manifest,
        voice::_mcp_tools,
        integrations::elevenlabs::elevenlabs_tools
    ]
);
pgrx::extension_sql_file!("../sql/security.sql", name = "security", finalize);
