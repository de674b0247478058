//! The template engine behind `crm.render_template`: handlebars (the original system's engine)
//! plus the reference document's date syntax, a money helper, limits and a compile cache.
//!
//! Nothing here knows about Postgres; `src/templates.rs` maps [`TemplateError`] to SQLSTATEs.

pub mod budget;
pub mod dates;
pub mod money;
pub mod parse;
pub mod syntax;
pub mod text;

mod cache;
mod helpers;
mod variables;

use budget::{Budget, Checkpoint};
use chrono_tz::Tz;
use handlebars::template::TemplateElement;
use handlebars::{Handlebars, Output, RenderContext, RenderErrorReason, Renderable, Template};
use std::fmt;
use std::rc::Rc;
use std::sync::{Arc, Mutex};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// Variables are HTML-escaped unless written `{{{raw}}}`.
    Html,
    /// Nothing is escaped (subjects, plain-text bodies).
    Text,
}

impl Format {
    pub fn parse(s: &str) -> Option<Format> {
        match s.trim().to_ascii_lowercase().as_str() {
            "html" => Some(Format::Html),
            "text" | "plain" => Some(Format::Text),
            _ => None,
        }
    }
}

#[derive(Debug, Clone, Copy)]
pub struct Limits {
    pub max_template_bytes: usize,
    pub max_output_bytes: usize,
    /// Work budget of one render, in evaluated template elements (see `budget.rs`).
    pub max_steps: u64,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_template_bytes: 256 * 1024,
            max_output_bytes: 1024 * 1024,
            max_steps: 1_000_000,
        }
    }
}

#[derive(Debug, Clone, Copy)]
pub struct Options {
    pub format: Format,
    pub strict: bool,
    /// Wall clock for dates when the variables carry no `_timezone`.
    pub timezone: Tz,
    pub limits: Limits,
    /// Called as rendering goes (at least once per loop iteration): may raise (a backend's
    /// interrupt check) or return true to stop the render with [`TemplateError::Interrupted`].
    pub checkpoint: Checkpoint,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            format: Format::Html,
            strict: false,
            timezone: Tz::UTC,
            limits: Limits::default(),
            checkpoint: budget::never_interrupted,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TemplateError {
    /// The template does not parse. Line and column are 1-based, in the text as written.
    Syntax {
        line: usize,
        column: usize,
        reason: String,
    },
    /// Partials and decorators: there is no partial store, and they allow unbounded recursion.
    Unsupported(&'static str),
    TemplateTooLarge {
        bytes: usize,
        limit: usize,
    },
    OutputTooLarge {
        limit: usize,
    },
    VariablesNotAnObject(&'static str),
    /// Strict mode only.
    MissingVariable {
        name: String,
        line: Option<usize>,
        column: Option<usize>,
    },
    BadTimezone(String),
    /// A helper refused its input (e.g. `{{money "abc"}}`).
    Render(String),
    /// Blocks or subexpressions nest deeper than the parser's limits.
    TooDeep {
        what: &'static str,
        limit: usize,
        line: Option<usize>,
        column: Option<usize>,
    },
    /// More `(` than can be parsed with the stack we are willing to reserve.
    TooManyParens {
        count: usize,
        limit: usize,
    },
    /// The render evaluated more than `Limits::max_steps` elements.
    StepLimit {
        limit: u64,
    },
    /// The checkpoint asked to stop (a worker shutting down).
    Interrupted,
    /// The parser could not run (no thread) or failed unexpectedly.
    Internal(String),
}

impl fmt::Display for TemplateError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            TemplateError::Syntax {
                line,
                column,
                reason,
            } => {
                write!(
                    f,
                    "template syntax error at line {line}, column {column}: {reason}"
                )
            }
            TemplateError::Unsupported(what) => write!(f, "templates cannot use {what}"),
            TemplateError::TemplateTooLarge { bytes, limit } => {
                write!(
                    f,
                    "template of {bytes} bytes exceeds crm.template_max_bytes ({limit})"
                )
            }
            TemplateError::OutputTooLarge { limit } => {
                write!(
                    f,
                    "rendered output exceeds crm.template_max_output_bytes ({limit})"
                )
            }
            TemplateError::VariablesNotAnObject(kind) => {
                write!(f, "template variables must be a JSON object, not {kind}")
            }
            TemplateError::MissingVariable { name, line, column } => {
                write!(f, "missing template variable \"{name}\" (strict mode)")?;
                if let (Some(l), Some(c)) = (line, column) {
                    write!(f, " at line {l}, column {c}")?;
                }
                Ok(())
            }
            TemplateError::BadTimezone(tz) => {
                write!(
                    f,
                    "unknown time zone \"{}\" (use an IANA name such as America/New_York)",
                    truncate(tz, 64)
                )
            }
            TemplateError::Render(msg) => write!(f, "template rendering failed: {msg}"),
            TemplateError::TooDeep {
                what,
                limit,
                line,
                column,
            } => {
                write!(f, "template {what} nest deeper than {limit} levels")?;
                if let (Some(l), Some(c)) = (line, column) {
                    write!(f, " at line {l}, column {c}")?;
                }
                Ok(())
            }
            TemplateError::TooManyParens { count, limit } => {
                write!(
                    f,
                    "template has {count} \"(\" characters; at most {limit} can be parsed safely"
                )
            }
            TemplateError::StepLimit { limit } => {
                write!(f, "rendering exceeds crm.template_max_steps ({limit} template elements evaluated)")
            }
            TemplateError::Interrupted => write!(f, "rendering was interrupted"),
            TemplateError::Internal(msg) => write!(f, "template engine error: {msg}"),
        }
    }
}

fn truncate(s: &str, max: usize) -> &str {
    match s.char_indices().nth(max) {
        Some((i, _)) => &s[..i],
        None => s,
    }
}

/// A template compiled once and kept in the cache.
pub struct Compiled {
    template: Template,
    /// Variable paths the template reads, as written (`customer.first_name`), sorted, unique.
    pub variables: Vec<String>,
    /// Present when the date syntax was rewritten: maps render-error positions back.
    rewritten: Option<syntax::Prepared>,
    /// Elements at the top level and in blocks, charged once per render (`budget.rs`).
    weight: u64,
}

/// Compile template text: size limit, rewrite, parse (bounded in depth: `parse.rs`), refuse
/// partials/decorators, instrument loops for the work budget.
pub fn compile(src: &str, limits: &Limits) -> Result<Compiled, TemplateError> {
    if src.len() > limits.max_template_bytes {
        return Err(TemplateError::TemplateTooLarge {
            bytes: src.len(),
            limit: limits.max_template_bytes,
        });
    }
    let prepared = syntax::prepare(src).map_err(|p| TemplateError::Syntax {
        line: p.line,
        column: p.column,
        reason: p.reason,
    })?;
    let mut template = parse::parse(&prepared.source).map_err(|e| match e {
        parse::ParseError::Syntax {
            line,
            column,
            reason,
        } => {
            let (line, column) = prepared.original_position(src, line, column);
            TemplateError::Syntax {
                line,
                column,
                reason,
            }
        }
        parse::ParseError::TooDeep { what, limit, at } => {
            let at = at.map(|(l, c)| prepared.original_position(src, l, c));
            TemplateError::TooDeep {
                what,
                limit,
                line: at.map(|p| p.0),
                column: at.map(|p| p.1),
            }
        }
        parse::ParseError::TooManyParens { count } => TemplateError::TooManyParens {
            count,
            limit: parse::MAX_PARENS,
        },
        parse::ParseError::Internal(msg) => TemplateError::Internal(msg),
    })?;
    reject_unsupported(&template)?;
    let variables = variables::collect(&template);
    budget::instrument(&mut template);
    let weight = budget::weight(&template);
    let rewritten = prepared.has_rewrites().then_some(prepared);
    Ok(Compiled {
        template,
        variables,
        rewritten,
        weight,
    })
}

fn reject_unsupported(t: &Template) -> Result<(), TemplateError> {
    for el in &t.elements {
        match el {
            TemplateElement::PartialExpression(_) | TemplateElement::PartialBlock(_) => {
                return Err(TemplateError::Unsupported("partials ({{> name}})"));
            }
            TemplateElement::DecoratorExpression(_) | TemplateElement::DecoratorBlock(_) => {
                return Err(TemplateError::Unsupported("decorators ({{* name}})"));
            }
            TemplateElement::HelperBlock(ht) => {
                for inner in [&ht.template, &ht.inverse].into_iter().flatten() {
                    reject_unsupported(inner)?;
                }
            }
            _ => {}
        }
    }
    Ok(())
}

/// Output that refuses to grow past a limit, so a `{{#each}}` over a large array cannot build
/// an unbounded string in backend memory.
struct LimitedOutput {
    buf: String,
    limit: usize,
    exceeded: bool,
}

impl Output for LimitedOutput {
    fn write(&mut self, seg: &str) -> Result<(), std::io::Error> {
        if self.buf.len() + seg.len() > self.limit {
            self.exceeded = true;
            return Err(std::io::Error::other("output limit"));
        }
        self.buf.push_str(seg);
        Ok(())
    }
}

/// The subject, HTML and text of an email: templates in, rendered text out.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct EmailParts<T> {
    pub subject: Option<T>,
    pub html: Option<T>,
    pub text: Option<T>,
}

/// Compiles (with a cache) and renders. One per backend.
pub struct Engine {
    cache: cache::Cache,
    html: Handlebars<'static>,
    text: Handlebars<'static>,
    /// The time zone of the render in progress, read by the date helper.
    timezone: Arc<Mutex<Tz>>,
    /// The work budget of the render in progress, charged by the step helper.
    budget: Arc<Budget>,
}

impl Default for Engine {
    fn default() -> Self {
        Self::new()
    }
}

impl Engine {
    pub fn new() -> Self {
        let timezone = Arc::new(Mutex::new(Tz::UTC));
        let budget = Budget::new();
        let mut html = Handlebars::new();
        let mut text = Handlebars::new();
        text.register_escape_fn(handlebars::no_escape);
        for reg in [&mut html, &mut text] {
            reg.set_prevent_indent(true);
            helpers::register(reg, timezone.clone());
            budget::register(reg, budget.clone());
        }
        Engine {
            cache: cache::Cache::new(),
            html,
            text,
            timezone,
            budget,
        }
    }

    /// The compiled form of `src`, from the cache or freshly compiled (and then cached).
    pub fn compiled(&mut self, src: &str, limits: &Limits) -> Result<Rc<Compiled>, TemplateError> {
        if src.len() > limits.max_template_bytes {
            return Err(TemplateError::TemplateTooLarge {
                bytes: src.len(),
                limit: limits.max_template_bytes,
            });
        }
        if let Some(hit) = self.cache.get(src) {
            return Ok(hit);
        }
        let compiled = Rc::new(compile(src, limits)?);
        self.cache.insert(src, compiled.clone());
        Ok(compiled)
    }

    pub fn cache_stats(&self) -> (usize, u64, u64) {
        self.cache.stats()
    }

    /// A stored email template's three parts rendered with the same variables: the HTML
    /// escaped, subject and text as plain text (`base`'s format is ignored), and without a
    /// text part one made from the rendered HTML. Rendered in the order HTML, subject, text,
    /// so with several broken parts the first error is the HTML's.
    pub fn render_email(
        &mut self,
        parts: EmailParts<&str>,
        variables: &serde_json::Value,
        base: &Options,
    ) -> Result<EmailParts<String>, TemplateError> {
        let mut render = |src: Option<&str>, format| {
            src.map(|src| self.render(src, variables.clone(), &Options { format, ..*base }))
                .transpose()
        };
        let html = render(parts.html, Format::Html)?;
        let subject = render(parts.subject, Format::Text)?;
        let text =
            render(parts.text, Format::Text)?.or_else(|| html.as_deref().map(text::html_to_text));
        Ok(EmailParts {
            subject,
            html,
            text,
        })
    }

    pub fn render(
        &mut self,
        src: &str,
        variables: serde_json::Value,
        opts: &Options,
    ) -> Result<String, TemplateError> {
        let kind = match &variables {
            serde_json::Value::Object(_) => None,
            serde_json::Value::Null => Some("null"),
            serde_json::Value::Bool(_) => Some("a boolean"),
            serde_json::Value::Number(_) => Some("a number"),
            serde_json::Value::String(_) => Some("a string"),
            serde_json::Value::Array(_) => Some("an array"),
        };
        if let Some(kind) = kind {
            return Err(TemplateError::VariablesNotAnObject(kind));
        }
        let tz = match variables.get("_timezone") {
            None | Some(serde_json::Value::Null) => opts.timezone,
            Some(serde_json::Value::String(name)) => dates::parse_timezone(name)
                .ok_or_else(|| TemplateError::BadTimezone(name.clone()))?,
            Some(other) => return Err(TemplateError::BadTimezone(other.to_string())),
        };
        let compiled = self.compiled(src, &opts.limits)?;
        *self.timezone.lock().unwrap_or_else(|p| p.into_inner()) = tz;
        self.budget.reset(opts.limits.max_steps, opts.checkpoint);
        if !self.budget.charge(compiled.weight) {
            return Err(budget_error(&self.budget, opts));
        }

        let registry = match opts.format {
            Format::Html => &mut self.html,
            Format::Text => &mut self.text,
        };
        registry.set_strict_mode(opts.strict);
        let registry = &*registry;
        let budget = &*self.budget;
        let ctx = handlebars::Context::from(variables);
        let mut rc = RenderContext::new(None);
        let mut out = LimitedOutput {
            buf: String::new(),
            limit: opts.limits.max_output_bytes,
            exceeded: false,
        };
        match compiled.template.render(registry, &ctx, &mut rc, &mut out) {
            Ok(()) => Ok(out.buf),
            Err(_) if budget.interrupted() || budget.exceeded() => {
                Err(budget_error(&self.budget, opts))
            }
            Err(_) if out.exceeded => Err(TemplateError::OutputTooLarge {
                limit: opts.limits.max_output_bytes,
            }),
            Err(e) => Err(match e.reason() {
                RenderErrorReason::MissingVariable(name) => {
                    let pos = match (e.line_no, e.column_no, &compiled.rewritten) {
                        (Some(l), Some(c), Some(p)) => Some(p.original_position(src, l, c)),
                        (Some(l), Some(c), None) => Some((l, c)),
                        _ => None,
                    };
                    TemplateError::MissingVariable {
                        name: name.clone().unwrap_or_default(),
                        line: pos.map(|p| p.0),
                        column: pos.map(|p| p.1),
                    }
                }
                RenderErrorReason::Other(msg) => TemplateError::Render(msg.clone()),
                other => TemplateError::Render(other.to_string()),
            }),
        }
    }
}

fn budget_error(budget: &Budget, opts: &Options) -> TemplateError {
    if budget.interrupted() {
        TemplateError::Interrupted
    } else {
        TemplateError::StepLimit {
            limit: opts.limits.max_steps,
        }
    }
}

impl Engine {
    /// Steps the last render used (for tests and tuning the limit).
    pub fn last_render_steps(&self) -> u64 {
        self.budget.used()
    }
}

#[cfg(test)]
mod tests;
