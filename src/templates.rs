//! SQL face of the template engine (`crm_core::template`): `crm.render_template`,
//! `crm.template_variables` and `crm.html_to_text`. The template store and the default
//! templates are SQL (sql/templates.sql).
//!
//! | condition | SQLSTATE |
//! |---|---|
//! | template does not parse (message names line and column) | 22023 |
//! | variables not a JSON object, unknown format or time zone | 22023 |
//! | strict mode: a variable is missing (message names it) | 22023 |
//! | a helper refuses its input (`{{money "abc"}}`) | 22023 |
//! | partials or decorators | 0A000 |
//! | template over crm.template_max_bytes, output over crm.template_max_output_bytes | 54000 |
//! | nesting over the parser's limits, work over crm.template_max_steps | 54000 |
//! | variables jsonb over crm.max_json_argument_bytes | 54000 |
//! | variables nested deeper than 128 levels | 22023 |
//!
//! Rendering checks for interrupts at every loop iteration, so statement_timeout and
//! pg_cancel_backend stop it.

use crate::guc;
use crate::json_arg::JsonbArg;
use crm_core::template::{dates, text, EmailParts, Engine, Format, Limits, Options, TemplateError};
use pgrx::prelude::*;
use std::cell::RefCell;

thread_local! {
    // Per backend: compiled templates are cached across calls and statements.
    static ENGINE: RefCell<Engine> = RefCell::new(Engine::new());
}

fn raise(code: PgSqlErrorCode, message: String) -> ! {
    crate::errors::raise(code, message, None, "crm.templates")
}

fn raise_template_error(err: &TemplateError, part: Option<&str>) -> ! {
    let code = match err {
        TemplateError::TemplateTooLarge { .. }
        | TemplateError::OutputTooLarge { .. }
        | TemplateError::TooDeep { .. }
        | TemplateError::TooManyParens { .. }
        | TemplateError::StepLimit { .. } => PgSqlErrorCode::ERRCODE_PROGRAM_LIMIT_EXCEEDED,
        TemplateError::Interrupted => PgSqlErrorCode::ERRCODE_QUERY_CANCELED,
        TemplateError::Internal(_) => PgSqlErrorCode::ERRCODE_INSUFFICIENT_RESOURCES,
        TemplateError::Unsupported(_) => PgSqlErrorCode::ERRCODE_FEATURE_NOT_SUPPORTED,
        _ => PgSqlErrorCode::ERRCODE_INVALID_PARAMETER_VALUE,
    };
    match part {
        Some(p) => raise(code, format!("{p}: {err}")),
        None => raise(code, err.to_string()),
    }
}

fn limits() -> Limits {
    Limits {
        max_template_bytes: guc::TEMPLATE_MAX_BYTES.get().max(0) as usize,
        max_output_bytes: guc::TEMPLATE_MAX_OUTPUT_BYTES.get().max(0) as usize,
        max_steps: guc::TEMPLATE_MAX_STEPS.get().max(0) as u64,
    }
}

/// The render checkpoint in a backend: a pending cancel or timeout raises from here (pgrx
/// turns Postgres' longjmp into an unwind through the renderer, which holds nothing that
/// needs more than dropping).
pub(crate) fn check_interrupts() -> bool {
    pg_sys::check_for_interrupts!();
    false
}

/// Variables from a jsonb argument: NULL is `{}`; too large or too deep raises.
fn variables_arg(variables: Option<JsonbArg>) -> serde_json::Value {
    variables.map_or_else(
        || serde_json::Value::Object(Default::default()),
        |v| {
            v.parse(
                "variables",
                guc::MAX_JSON_ARGUMENT_BYTES.get().max(0) as usize,
                "crm.templates",
            )
        },
    )
}

pub(crate) fn options(format: Option<&str>, strict: Option<bool>) -> Options {
    let format = match format {
        None => Format::Html,
        Some(f) => Format::parse(f).unwrap_or_else(|| {
            raise(
                PgSqlErrorCode::ERRCODE_INVALID_PARAMETER_VALUE,
                "format must be 'html' or 'text'".to_string(),
            )
        }),
    };
    let tz_name = guc::text(&guc::TEMPLATE_TIMEZONE);
    let timezone = dates::parse_timezone(&tz_name).unwrap_or_else(|| {
        raise_template_error(
            &TemplateError::BadTimezone(tz_name.clone()),
            Some("crm.template_timezone"),
        )
    });
    Options {
        format,
        strict: strict.unwrap_or(false),
        timezone,
        limits: limits(),
        checkpoint: check_interrupts,
    }
}

/// Run `f` with this backend's engine (its compile cache is shared with crm.render_template).
pub(crate) fn with_engine<R>(f: impl FnOnce(&mut Engine) -> R) -> R {
    ENGINE.with(|e| f(&mut e.borrow_mut()))
}

/// Render a handlebars template with `variables` (a JSON object).
/// `format => 'text'` turns HTML escaping off; `strict => true` makes a missing variable an
/// error. NULL template gives NULL; NULL variables count as `{}`.
#[pg_extern(stable, parallel_safe)]
fn render_template(
    template: Option<&str>,
    variables: default!(Option<JsonbArg>, "'{}'"),
    format: default!(Option<&str>, "'html'"),
    strict: default!(Option<bool>, false),
) -> Option<String> {
    let template = template?;
    let opts = options(format, strict);
    let vars = variables_arg(variables);
    Some(
        ENGINE
            .with(|e| e.borrow_mut().render(template, vars, &opts))
            .unwrap_or_else(|e| raise_template_error(&e, None)),
    )
}

/// The three parts of a stored email template rendered in one call, so the variables go from
/// jsonb to JSON once instead of once per part (crm.render_email_template). See
/// `Engine::render_email` for the formats and the order.
#[pg_extern(stable, parallel_safe)]
fn _render_email_parts(
    subject_template: Option<&str>,
    html_template: Option<&str>,
    text_template: Option<&str>,
    variables: default!(Option<JsonbArg>, "'{}'"),
    strict: default!(Option<bool>, false),
) -> TableIterator<
    'static,
    (
        name!(subject, Option<String>),
        name!(html, Option<String>),
        name!(text, Option<String>),
    ),
> {
    let opts = options(None, strict);
    let vars = variables_arg(variables);
    let templates = EmailParts {
        subject: subject_template,
        html: html_template,
        text: text_template,
    };
    let out = with_engine(|e| e.render_email(templates, &vars, &opts))
        .unwrap_or_else(|e| raise_template_error(&e, None));
    TableIterator::once((out.subject, out.html, out.text))
}

/// Compile a template (raising on any error, prefixed with `part`) and list the variable paths
/// it reads. Used by the email_templates trigger.
#[pg_extern(stable, parallel_safe)]
fn template_variables(
    template: Option<&str>,
    part: default!(Option<&str>, "'template'"),
) -> Option<Vec<String>> {
    let template = template?;
    // a NULL part (a caller's, not the trigger's) names the template generically
    let part = part.unwrap_or("template");
    let limits = limits();
    let compiled = ENGINE
        .with(|e| e.borrow_mut().compiled(template, &limits))
        .unwrap_or_else(|e| raise_template_error(&e, Some(part)));
    Some(compiled.variables.clone())
}

/// A plain-text rendering of HTML: block ends become line breaks, links "text (url)".
#[pg_extern(immutable, parallel_safe, strict)]
fn html_to_text(html: &str) -> String {
    text::html_to_text_checked(html, &mut || {
        check_interrupts();
    })
}

#[cfg(any(test, feature = "pg_test"))]
#[pg_schema]
mod tests {
    use pgrx::prelude::*;

    #[pg_test]
    fn renders_through_sql() {
        let out = Spi::get_one::<String>(
            r#"SELECT crm.render_template('Hi {{name}} <{{tag}}>', '{"name": "Jo", "tag": "<b>"}')"#,
        );
        assert_eq!(out, Ok(Some("Hi Jo <&lt;b&gt;>".to_string())));
    }

    #[pg_test]
    fn timezone_setting_is_used() {
        Spi::run("SET crm.template_timezone = 'America/Chicago'").unwrap();
        let out = Spi::get_one::<String>(
            r#"SELECT crm.render_template('{{t:HH:mm}}', '{"t": "2025-01-15T18:00:00Z"}')"#,
        );
        assert_eq!(out, Ok(Some("12:00".to_string())));
    }

    #[pg_test(error = "template variables must be a JSON object, not an array")]
    fn array_variables_are_refused() {
        Spi::run("SELECT crm.render_template('x', '[1]')").unwrap();
    }
}
