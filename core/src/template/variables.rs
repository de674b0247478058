//! Which variables a template reads: recorded by `crm.create_email_template` and listed by
//! `crm.get_email_templates`, so a caller knows what to pass.
//!
//! Only paths resolved against the root of the variables count: inside `{{#each items}}` and
//! `{{#with x}}`, relative paths name fields of the item and are not listed (the collection
//! itself is); `@root.x` and `../x` are.

use super::syntax::DATE_HELPER;
use handlebars::template::{HelperTemplate, Parameter, TemplateElement};
use handlebars::{Path, Template};
use std::collections::BTreeSet;

const BUILTIN_HELPERS: [&str; 20] = [
    "if",
    "unless",
    "each",
    "with",
    "lookup",
    "log",
    "eq",
    "ne",
    "gt",
    "gte",
    "lt",
    "lte",
    "and",
    "or",
    "not",
    "len",
    "money",
    "formatDate",
    DATE_HELPER,
    "raw",
];

pub fn collect(t: &Template) -> Vec<String> {
    let mut out = BTreeSet::new();
    walk(t, false, &mut out);
    out.into_iter().collect()
}

fn walk(t: &Template, scoped: bool, out: &mut BTreeSet<String>) {
    for el in &t.elements {
        match el {
            TemplateElement::Expression(ht) | TemplateElement::HtmlExpression(ht) => {
                helper(ht, scoped, out)
            }
            TemplateElement::HelperBlock(ht) => {
                helper(ht, scoped, out);
                let name = ht.name.as_name().unwrap_or("");
                let inner_scoped =
                    scoped || matches!(name, "each" | "with") || ht.block_param.is_some();
                if let Some(inner) = &ht.template {
                    walk(inner, inner_scoped, out);
                }
                if let Some(inverse) = &ht.inverse {
                    walk(inverse, scoped, out);
                }
            }
            _ => {}
        }
    }
}

fn helper(ht: &HelperTemplate, scoped: bool, out: &mut BTreeSet<String>) {
    match &ht.name {
        Parameter::Name(n) if ht.params.is_empty() && !BUILTIN_HELPERS.contains(&n.as_str()) => {
            add(n, scoped, out)
        }
        Parameter::Path(p) => path(p, scoped, out),
        _ => {}
    }
    for p in ht.params.iter().chain(ht.hash.values()) {
        param(p, scoped, out);
    }
}

fn param(p: &Parameter, scoped: bool, out: &mut BTreeSet<String>) {
    match p {
        Parameter::Path(path_) => path(path_, scoped, out),
        Parameter::Name(n) => add(n, scoped, out),
        Parameter::Subexpression(sub) => {
            if let TemplateElement::Expression(ht) | TemplateElement::HtmlExpression(ht) =
                &*sub.element
            {
                helper(ht, scoped, out);
            }
        }
        _ => {}
    }
}

fn path(p: &Path, scoped: bool, out: &mut BTreeSet<String>) {
    if let Path::Relative((_, raw)) = p {
        add(raw, scoped, out);
    }
}

fn add(raw: &str, scoped: bool, out: &mut BTreeSet<String>) {
    let raw = raw.trim();
    let (rooted, rest) = if let Some(r) = raw.strip_prefix("@root.") {
        (true, r)
    } else if raw.starts_with("../") {
        (true, raw.trim_start_matches("../"))
    } else {
        (false, raw.strip_prefix("this.").unwrap_or(raw))
    };
    if (scoped && !rooted) || rest.is_empty() || rest == "this" || rest.starts_with('@') {
        return;
    }
    out.insert(rest.replace('/', "."));
}
