//! What happens to template text before handlebars sees it.
//!
//! 1. The reference's date syntax `{{when:MM/DD/YYYY}}` is not handlebars; it is rewritten to
//!    the helper call `{{__crm_date when "MM/DD/YYYY"}}`. The rewrite shifts columns, so the
//!    shifts are recorded and error positions are mapped back to the text the user wrote.
//! 2. Unbalanced blocks are named ("{{/each}} does not close {{#if}} opened at line 2"), which
//!    handlebars' own messages do not do. This is for messages only: nesting limits are
//!    checked on the parsed tree (`parse.rs`), never on this reading of the text.

pub const DATE_HELPER: &str = "__crm_date";

pub struct Prepared {
    pub source: String,
    /// (end offset of a rewritten mustache in `source`, its length change)
    shifts: Vec<(usize, isize)>,
}

#[derive(Debug, PartialEq, Eq)]
pub struct Problem {
    pub reason: String,
    pub line: usize,
    pub column: usize,
}

pub fn prepare(src: &str) -> Result<Prepared, Problem> {
    let mut out = String::with_capacity(src.len() + 32);
    let mut shifts = Vec::new();
    let mut copied = 0; // src[..copied] is already in out
    let mut i = 0;
    // Open blocks: (name, offset of their `{{`), to name the culprit of a mismatch.
    let mut open: Vec<(&str, usize)> = Vec::new();
    while let Some(rel) = src[i..].find("{{") {
        let start = i + rel;
        if start > 0 && src.as_bytes()[start - 1] == b'\\' {
            i = start + 2; // \{{ is literal text
            continue;
        }
        let tail = &src[start..];
        if tail.starts_with("{{!--") {
            i = tail.find("--}}").map_or(src.len(), |e| start + e + 4);
            continue;
        }
        if tail.starts_with("{{!") {
            i = tail.find("}}").map_or(src.len(), |e| start + e + 2);
            continue;
        }
        let triple = tail.starts_with("{{{");
        let (open_len, close) = if triple { (3, "}}}") } else { (2, "}}") };
        let inner_start = start + open_len;
        let Some(end_rel) = src[inner_start..].find(close) else {
            break; // unterminated: handlebars reports it with its position
        };
        let inner = &src[inner_start..inner_start + end_rel];
        let end = inner_start + end_rel + close.len();
        let head = inner.trim_start_matches('~').trim_start();

        let opens = head.starts_with('#')
            || (head.starts_with('^')
                && head[1..]
                    .trim_start()
                    .chars()
                    .next()
                    .is_some_and(|c| c != '~'));
        if opens {
            open.push((block_name(&head[1..]), start));
        } else if let Some(closing) = head.strip_prefix('/') {
            let name = block_name(closing);
            match open.pop() {
                Some((opened, at)) if opened != name => {
                    let (l, c) = position_of(src, at);
                    return Err(problem_at(
                        src,
                        start,
                        format!("{{{{/{name}}}}} does not close {{{{#{opened}}}}} opened at line {l}, column {c}"),
                    ));
                }
                Some(_) => {}
                None => {
                    return Err(problem_at(
                        src,
                        start,
                        format!("{{{{/{name}}}}} closes no open block"),
                    ))
                }
            }
        }
        if !triple {
            if let Some(call) = date_call(inner) {
                out.push_str(&src[copied..start]);
                out.push_str(&call);
                shifts.push((out.len(), call.len() as isize - (end - start) as isize));
                copied = end;
            }
        }
        i = end;
    }
    if let Some(&(name, at)) = open.last() {
        return Err(problem_at(
            src,
            at,
            format!("{{{{#{name}}}}} is never closed"),
        ));
    }
    out.push_str(&src[copied..]);
    Ok(Prepared {
        source: out,
        shifts,
    })
}

/// The helper name of a block tag: `#each items` → `each`, `#> layout` → `>`… as written.
fn block_name(after_sigil: &str) -> &str {
    let t = after_sigil.trim_start_matches(['>', '*']).trim_start();
    let end = t
        .find(|c: char| c.is_whitespace() || c == '~' || c == '}')
        .unwrap_or(t.len());
    &t[..end]
}

/// `when:PATTERN` → `{{__crm_date when "PATTERN"}}`, if `inner` has that shape.
fn date_call(inner: &str) -> Option<String> {
    let colon = inner.find(':')?;
    let path = inner[..colon].trim();
    let pattern = inner[colon + 1..].trim();
    let valid_path = !path.is_empty()
        && path.starts_with(|c: char| c.is_ascii_alphabetic() || c == '_' || c == '@' || c == '.')
        && path
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "_.-/@[]".contains(c))
        && path != "else";
    if !valid_path || pattern.is_empty() || pattern.len() > super::dates::MAX_PATTERN_LEN {
        return None;
    }
    let quote = if !pattern.contains('"') {
        '"'
    } else if !pattern.contains('\'') {
        '\''
    } else {
        return None;
    };
    if pattern.contains('\\') {
        return None;
    }
    Some(format!(
        "{{{{{DATE_HELPER} {path} {quote}{pattern}{quote}}}}}"
    ))
}

impl Prepared {
    pub fn has_rewrites(&self) -> bool {
        !self.shifts.is_empty()
    }

    /// Map a 1-based (line, column) in the rewritten source back to the user's text.
    pub fn original_position(&self, original: &str, line: usize, column: usize) -> (usize, usize) {
        if self.shifts.is_empty() {
            return (line, column);
        }
        let offset = offset_of(&self.source, line, column);
        let mut delta: isize = 0;
        for &(end, d) in &self.shifts {
            if end <= offset {
                delta += d;
            } else if (end as isize - d.max(0)) <= offset as isize {
                // inside a rewritten mustache: point at its start
                delta += d;
            }
        }
        let orig = (offset as isize - delta).clamp(0, original.len() as isize) as usize;
        position_of(original, orig)
    }
}

fn offset_of(s: &str, line: usize, column: usize) -> usize {
    let mut offset = 0;
    for (n, l) in s.split_inclusive('\n').enumerate() {
        if n + 1 == line {
            return offset
                + l.char_indices()
                    .nth(column.saturating_sub(1))
                    .map_or(l.len(), |(i, _)| i);
        }
        offset += l.len();
    }
    s.len()
}

pub fn position_of(s: &str, offset: usize) -> (usize, usize) {
    let mut offset = offset.min(s.len());
    while !s.is_char_boundary(offset) {
        offset -= 1;
    }
    let before = &s[..offset];
    let line = before.matches('\n').count() + 1;
    let col = before.rsplit('\n').next().map_or(0, |l| l.chars().count()) + 1;
    (line, col)
}

fn problem_at(src: &str, offset: usize, reason: String) -> Problem {
    let (line, column) = position_of(src, offset);
    Problem {
        reason,
        line,
        column,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rewrites_the_reference_date_syntax() {
        let p = prepare("Due {{due:MM/DD/YYYY}} at {{due:h:mm A}}.").unwrap();
        assert_eq!(
            p.source,
            r#"Due {{__crm_date due "MM/DD/YYYY"}} at {{__crm_date due "h:mm A"}}."#
        );
    }

    #[test]
    fn leaves_everything_else_alone() {
        for s in [
            "{{name}}",
            "{{{raw:x}}}",
            r"\{{a:b}}",
            "{{!-- {{a:b}} --}}",
            "{{! a:b }}",
            r#"{{lookup m "a:b"}}"#,
            "{{#if a}}x{{else}}y{{/if}}",
            "{{a b:c}}",
            "{{else:x}}",
        ] {
            assert_eq!(prepare(s).unwrap().source, s, "{s}");
        }
    }

    #[test]
    fn quotes_patterns_that_contain_quotes() {
        assert_eq!(
            prepare(r#"{{d:YYYY"x"}}"#).unwrap().source,
            r#"{{__crm_date d 'YYYY"x"'}}"#
        );
        assert_eq!(prepare(r#"{{d:"a'b"}}"#).unwrap().source, r#"{{d:"a'b"}}"#);
    }

    #[test]
    fn names_unbalanced_blocks() {
        let err = |s: &str| prepare(s).err().unwrap();
        let e = err("<p>{{#if paid}}Paid</p>");
        assert_eq!(
            (e.reason.as_str(), e.line, e.column),
            ("{{#if}} is never closed", 1, 4)
        );
        let e = err("{{#each xs}}\n  {{#if a}}x{{/each}}");
        assert_eq!(
            e.reason,
            "{{/each}} does not close {{#if}} opened at line 2, column 3"
        );
        assert_eq!((e.line, e.column), (2, 13));
        assert_eq!(err("x{{/if}}").reason, "{{/if}} closes no open block");
        assert!(prepare("{{#if a}}{{else if b}}{{^}}{{/if}}{{^x}}y{{/x}}").is_ok());
    }

    #[test]
    fn maps_positions_back() {
        let src = "ab {{d:YYYY}} {{foo =}}";
        let p = prepare(src).unwrap();
        // "{{foo" starts at column 15 in src; find it in the rewritten text.
        let rewritten_col = p.source.find("{{foo").unwrap() + 1;
        assert_eq!(p.original_position(src, 1, rewritten_col), (1, 15));
        assert_eq!(p.original_position(src, 1, 2), (1, 2));
    }
}
