//! Parsing untrusted template text without risking the stack of the process that asks.
//!
//! handlebars parses in two recursive stages. pest's grammar checks the remaining stack itself
//! and fails with "stack limit reached"; handlebars' own tree building for subexpressions
//! `(f (g (h …)))` does not check, and in a Postgres backend an overflow is a SIGSEGV that
//! restarts the whole server. Dropping a deeply nested tree recurses too. So:
//!
//! 1. The parse runs on a thread of its own, with every signal blocked (Postgres' handlers
//!    belong to the backend's thread), whose stack is sized for *this* text: each
//!    subexpression level needs a `(` of its own, so the count of `(` bounds the depth of
//!    handlebars' recursion however the grammar reads the text. No second reading of the
//!    grammar is involved, only that upper bound.
//! 2. The nesting that rendering will recurse through is measured on the parsed tree — the
//!    parser's own structure — iteratively, and a tree deeper than [`MAX_BLOCK_DEPTH`] blocks
//!    or [`MAX_SUBEXPRESSION_DEPTH`] subexpressions is refused.
//! 3. A refused tree is taken apart iteratively on that thread, never dropped recursively.
//!
//! What comes back is at most 64 blocks deep, so rendering it (on the caller's stack, where
//! interrupts can be checked) recurses a bounded amount.

use crate::runtime::signals::SignalsBlocked;
use handlebars::template::{Parameter, Subexpression, TemplateElement, TemplateMapping};
use handlebars::Template;

pub const MAX_BLOCK_DEPTH: usize = 64;
pub const MAX_SUBEXPRESSION_DEPTH: usize = 16;

/// Stack for the parse thread before any `(`: pest's block nesting is bounded by what fits
/// here (it refuses deeper text with "stack limit reached", reported as too deep).
const BASE_STACK: usize = 2 << 20;
/// Stack per `(`: handlebars' subexpression recursion measured at about 1.6 KiB a level in
/// release builds and 5.5 KiB in debug builds; four times the larger with margin.
const STACK_PER_PAREN: usize = 24 << 10;
/// The largest parse stack we reserve (address space; only touched pages cost memory).
const MAX_STACK: usize = 256 << 20;
pub const MAX_PARENS: usize = (MAX_STACK - BASE_STACK) / STACK_PER_PAREN;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ParseError {
    /// handlebars refused the text: (line, column) in the text it was given, 1-based.
    Syntax {
        line: usize,
        column: usize,
        reason: String,
    },
    /// Nested deeper than the limits: what, the limit, and where (line, column) when known.
    TooDeep {
        what: &'static str,
        limit: usize,
        at: Option<(usize, usize)>,
    },
    /// More `(` than [`MAX_PARENS`]: parsing could need more stack than we reserve.
    TooManyParens { count: usize },
    /// No thread could be started, or the parser panicked.
    Internal(String),
}

/// Parse `src` (already rewritten by `syntax::prepare`) into a tree at most
/// [`MAX_BLOCK_DEPTH`] blocks and [`MAX_SUBEXPRESSION_DEPTH`] subexpressions deep.
pub fn parse(src: &str) -> Result<Template, ParseError> {
    let parens = src.bytes().filter(|&b| b == b'(').count();
    if parens > MAX_PARENS {
        return Err(ParseError::TooManyParens { count: parens });
    }
    let stack = BASE_STACK + parens * STACK_PER_PAREN;
    let _blocked = SignalsBlocked::new();
    std::thread::scope(|scope| {
        let worker = std::thread::Builder::new()
            .name("crm-template-parse".into())
            .stack_size(stack)
            .spawn_scoped(scope, || parse_here(src))
            .map_err(|e| ParseError::Internal(format!("cannot start the template parser: {e}")))?;
        worker
            .join()
            .unwrap_or_else(|_| Err(ParseError::Internal("the template parser failed".into())))
    })
}

/// The parse itself, on whatever stack the caller provides (the parse thread).
fn parse_here(src: &str) -> Result<Template, ParseError> {
    let template = Template::compile(src).map_err(|e| {
        let reason = e.reason().to_string();
        if reason.contains("stack limit reached") || reason.contains("call limit reached") {
            return ParseError::TooDeep {
                what: "blocks",
                limit: MAX_BLOCK_DEPTH,
                at: None,
            };
        }
        let (line, column) = e.pos().unwrap_or((1, 1));
        ParseError::Syntax {
            line,
            column,
            reason,
        }
    })?;
    if let Some(err) = too_deep(&template) {
        dismantle(template);
        return Err(err);
    }
    Ok(template)
}

/// A parameter waiting to be looked at: it, its subexpression depth, and the (line, column)
/// of the element holding it.
type PendingParam<'a> = (&'a Parameter, usize, Option<(usize, usize)>);

/// The first place where `t` nests too deeply, found without recursion.
fn too_deep(t: &Template) -> Option<ParseError> {
    // (template, its block depth, where it starts)
    let mut templates: Vec<(&Template, usize)> = vec![(t, 0)];
    // (parameter, subexpression depth, position of the element holding it)
    let mut params: Vec<PendingParam> = Vec::new();
    while let Some((t, depth)) = templates.pop() {
        for (i, el) in t.elements.iter().enumerate() {
            let at = t.mapping.get(i).map(|m: &TemplateMapping| (m.0, m.1));
            match el {
                TemplateElement::HelperBlock(ht) => {
                    if depth + 1 > MAX_BLOCK_DEPTH {
                        return Some(ParseError::TooDeep {
                            what: "blocks",
                            limit: MAX_BLOCK_DEPTH,
                            at,
                        });
                    }
                    templates.extend(
                        [&ht.template, &ht.inverse]
                            .into_iter()
                            .flatten()
                            .map(|t| (t, depth + 1)),
                    );
                    params.extend(
                        helper_params(&ht.name, &ht.params, ht.hash.values()).map(|p| (p, 0, at)),
                    );
                }
                TemplateElement::Expression(ht) | TemplateElement::HtmlExpression(ht) => {
                    params.extend(
                        helper_params(&ht.name, &ht.params, ht.hash.values()).map(|p| (p, 0, at)),
                    );
                }
                TemplateElement::DecoratorBlock(dt) | TemplateElement::PartialBlock(dt) => {
                    if depth + 1 > MAX_BLOCK_DEPTH {
                        return Some(ParseError::TooDeep {
                            what: "blocks",
                            limit: MAX_BLOCK_DEPTH,
                            at,
                        });
                    }
                    templates.extend(dt.template.iter().map(|t| (t, depth + 1)));
                    params.extend(
                        helper_params(&dt.name, &dt.params, dt.hash.values()).map(|p| (p, 0, at)),
                    );
                }
                TemplateElement::DecoratorExpression(dt)
                | TemplateElement::PartialExpression(dt) => {
                    params.extend(
                        helper_params(&dt.name, &dt.params, dt.hash.values()).map(|p| (p, 0, at)),
                    );
                }
                _ => {}
            }
        }
    }
    while let Some((p, depth, at)) = params.pop() {
        if let Parameter::Subexpression(s) = p {
            if depth + 1 > MAX_SUBEXPRESSION_DEPTH {
                return Some(ParseError::TooDeep {
                    what: "subexpressions",
                    limit: MAX_SUBEXPRESSION_DEPTH,
                    at,
                });
            }
            if let TemplateElement::Expression(ht) | TemplateElement::HtmlExpression(ht) =
                s.element.as_ref()
            {
                params.extend(
                    helper_params(&ht.name, &ht.params, ht.hash.values())
                        .map(|p| (p, depth + 1, at)),
                );
            }
        }
    }
    None
}

fn helper_params<'a>(
    name: &'a Parameter,
    params: &'a [Parameter],
    hash: impl Iterator<Item = &'a Parameter>,
) -> impl Iterator<Item = &'a Parameter> {
    std::iter::once(name).chain(params).chain(hash)
}

/// Take a tree apart without recursion: dropping a 40,000-level tree the ordinary way would
/// recurse 40,000 levels.
fn dismantle(t: Template) {
    let mut templates = vec![t];
    let mut elements: Vec<TemplateElement> = Vec::new();
    loop {
        if let Some(el) = elements.pop() {
            match el {
                TemplateElement::HelperBlock(mut ht)
                | TemplateElement::Expression(mut ht)
                | TemplateElement::HtmlExpression(mut ht) => {
                    templates.extend(
                        [ht.template.take(), ht.inverse.take()]
                            .into_iter()
                            .flatten(),
                    );
                    let params = std::mem::take(&mut ht.params)
                        .into_iter()
                        .chain(std::mem::take(&mut ht.hash).into_values());
                    elements.extend(
                        params
                            .chain([placeholder_swap(&mut ht.name)])
                            .filter_map(subexpression_body),
                    );
                }
                TemplateElement::DecoratorBlock(mut dt)
                | TemplateElement::PartialBlock(mut dt)
                | TemplateElement::DecoratorExpression(mut dt)
                | TemplateElement::PartialExpression(mut dt) => {
                    templates.extend(dt.template.take());
                    let params = std::mem::take(&mut dt.params)
                        .into_iter()
                        .chain(std::mem::take(&mut dt.hash).into_values());
                    elements.extend(
                        params
                            .chain([placeholder_swap(&mut dt.name)])
                            .filter_map(subexpression_body),
                    );
                }
                _ => {}
            }
        } else if let Some(mut t) = templates.pop() {
            elements.append(&mut t.elements);
        } else {
            break;
        }
    }
}

fn placeholder_swap(name: &mut Parameter) -> Parameter {
    std::mem::replace(name, Parameter::Name(String::new()))
}

fn subexpression_body(p: Parameter) -> Option<TemplateElement> {
    match p {
        Parameter::Subexpression(mut s) => Some(take_element(&mut s)),
        _ => None,
    }
}

fn take_element(s: &mut Subexpression) -> TemplateElement {
    std::mem::replace(s.element.as_mut(), TemplateElement::Comment(String::new()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn nested(open: &str, close: &str, n: usize) -> String {
        open.repeat(n) + &close.repeat(n)
    }

    #[test]
    fn accepts_the_limit_and_refuses_one_more() {
        assert!(parse(&nested("{{#if a}}", "{{/if}}", MAX_BLOCK_DEPTH)).is_ok());
        let err = parse(&nested("{{#if a}}", "{{/if}}", MAX_BLOCK_DEPTH + 1)).unwrap_err();
        assert_eq!(
            err,
            ParseError::TooDeep {
                what: "blocks",
                limit: MAX_BLOCK_DEPTH,
                at: Some((1, 9 * MAX_BLOCK_DEPTH + 1))
            }
        );
        let sub = |n| format!("{{{{x {}a{}}}}}", "(f ".repeat(n), ")".repeat(n));
        assert!(parse(&sub(MAX_SUBEXPRESSION_DEPTH)).is_ok());
        assert!(matches!(
            parse(&sub(MAX_SUBEXPRESSION_DEPTH + 1)),
            Err(ParseError::TooDeep {
                what: "subexpressions",
                ..
            })
        ));
    }

    #[test]
    fn depth_is_the_parsers_whatever_the_escapes_and_tildes() {
        // Escaped mustaches are text to handlebars; tildes and else-chains still nest.
        let escaped = nested("\\{{#if a}}", "", 500);
        assert!(parse(&escaped).is_ok());
        let tilde = nested("{{~#if a~}}", "{{~/if~}}", MAX_BLOCK_DEPTH + 1);
        assert!(matches!(parse(&tilde), Err(ParseError::TooDeep { .. })));
        let chained = nested("{{#if a}}x{{else if b}}", "{{/if}}", MAX_BLOCK_DEPTH + 1);
        assert!(matches!(parse(&chained), Err(ParseError::TooDeep { .. })));
    }

    #[test]
    fn survives_what_would_overflow_a_stack() {
        // Tens of thousands of levels: pest's own guard, or our tree check, refuses them; a
        // crash would abort this test process.
        for (open, close) in [
            ("{{#if a}}", "{{/if}}"),
            ("{{#each a}}", "{{/each}}"),
            ("{{~#each a~}}", "{{~/each~}}"),
            ("{{#with a}}x{{else}}", "{{/with}}"),
        ] {
            assert!(
                matches!(
                    parse(&nested(open, close, 40_000)),
                    Err(ParseError::TooDeep { .. })
                ),
                "{open}"
            );
        }
        for n in [5_000, 10_000, MAX_PARENS] {
            let sub = format!("{{{{x {}a{}}}}}", "(f ".repeat(n), ")".repeat(n));
            assert!(
                matches!(
                    parse(&sub),
                    Err(ParseError::TooDeep { .. } | ParseError::Syntax { .. })
                ),
                "{n}"
            );
        }
        let too_many = "(".repeat(MAX_PARENS + 1);
        assert_eq!(
            parse(&too_many).unwrap_err(),
            ParseError::TooManyParens {
                count: MAX_PARENS + 1
            }
        );
    }
}
