//! The helpers templates can call beyond handlebars' built-ins:
//! - `{{when:PATTERN}}` (rewritten to `__crm_date`) and `{{formatDate when "PATTERN"}}`;
//! - `{{money amount_cents currency}}`.
//!
//! Helpers write to the output directly, so they escape for HTML themselves (through the
//! registry's escape function, which is a no-op in text format).

use super::{dates, money, syntax::DATE_HELPER};
use chrono_tz::Tz;
use handlebars::{
    Context, Handlebars, Helper, HelperResult, JsonRender, Output, PathAndJson, RenderContext,
    RenderErrorReason,
};
use std::sync::{Arc, Mutex};

pub fn register(reg: &mut Handlebars<'static>, timezone: Arc<Mutex<Tz>>) {
    let tz = timezone.clone();
    reg.register_helper(
        DATE_HELPER,
        Box::new(
            move |h: &Helper,
                  r: &Handlebars,
                  _: &Context,
                  _: &mut RenderContext,
                  out: &mut dyn Output| { format_date(h, r, out, &tz) },
        ),
    );
    reg.register_helper(
        "formatDate",
        Box::new(
            move |h: &Helper,
                  r: &Handlebars,
                  _: &Context,
                  _: &mut RenderContext,
                  out: &mut dyn Output| { format_date(h, r, out, &timezone) },
        ),
    );
    reg.register_helper("money", Box::new(money_helper));
}

fn write_escaped(r: &Handlebars, out: &mut dyn Output, s: &str) -> HelperResult {
    out.write(&r.get_escape_fn()(s))?;
    Ok(())
}

/// A missing or null value renders as nothing, except that strict mode refuses a missing one.
fn absent(param: &PathAndJson, r: &Handlebars) -> Result<bool, RenderErrorReason> {
    if param.is_value_missing() {
        if r.strict_mode() {
            return Err(RenderErrorReason::MissingVariable(
                param.relative_path().cloned(),
            ));
        }
        return Ok(true);
    }
    Ok(param.value().is_null())
}

fn format_date(h: &Helper, r: &Handlebars, out: &mut dyn Output, tz: &Mutex<Tz>) -> HelperResult {
    let value = h
        .param(0)
        .ok_or(RenderErrorReason::ParamNotFoundForIndex("formatDate", 0))?;
    if absent(value, r)? {
        return Ok(());
    }
    let pattern = match h.param(1).map(|p| p.value()) {
        None => "YYYY-MM-DD",
        Some(serde_json::Value::String(p)) if p.len() <= dates::MAX_PATTERN_LEN => p.as_str(),
        Some(_) => {
            return Err(RenderErrorReason::Other(format!(
                "date pattern must be a string of at most {} bytes",
                dates::MAX_PATTERN_LEN
            ))
            .into())
        }
    };
    match dates::parse_when(value.value()) {
        Some(when) => {
            let zone = *tz.lock().unwrap_or_else(|p| p.into_inner());
            write_escaped(r, out, &dates::format(when, zone, pattern))
        }
        // Not a date ("TBD"): strict mode says so, otherwise the value is shown as it is.
        None if r.strict_mode() => Err(RenderErrorReason::Other(format!(
            "{} is not a date",
            value
                .relative_path()
                .map_or_else(|| "value".to_string(), |p| format!("\"{p}\""))
        ))
        .into()),
        None => write_escaped(r, out, &value.value().render()),
    }
}

fn money_helper(
    h: &Helper,
    r: &Handlebars,
    ctx: &Context,
    _: &mut RenderContext,
    out: &mut dyn Output,
) -> HelperResult {
    // `{{money}}` with no arguments is a variable that happens to be called money.
    let Some(amount) = h.param(0) else {
        return match ctx.data().get("money") {
            Some(v) if !v.is_null() => write_escaped(r, out, &v.render()),
            None if r.strict_mode() => {
                Err(RenderErrorReason::MissingVariable(Some("money".into())).into())
            }
            _ => Ok(()),
        };
    };
    if absent(amount, r)? {
        return Ok(());
    }
    let cents = money::amount_from_json(amount.value()).ok_or_else(|| {
        RenderErrorReason::Other(format!(
            "money: {} is not an integer amount of minor units (cents)",
            amount
                .relative_path()
                .map_or_else(|| amount.value().render(), |p| format!("\"{p}\""))
        ))
    })?;
    let currency = match h.param(1) {
        None => "usd".to_string(),
        Some(c) if c.value().is_null() || c.is_value_missing() => "usd".to_string(),
        Some(c) => c.value().render(),
    };
    let text = money::format_money(cents, &currency).ok_or_else(|| {
        RenderErrorReason::Other("money: currency must be a three-letter ISO 4217 code".to_string())
    })?;
    write_escaped(r, out, &text)
}
