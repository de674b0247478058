//! A plain-text alternative from rendered HTML, for templates that have no text body: mail
//! clients that show text, and spam filters, want one. Not a general HTML parser: it keeps the
//! words, turns block ends into line breaks and links into "text (url)", and drops `<head>`,
//! `<style>` and `<script>`.

pub fn html_to_text(html: &str) -> String {
    html_to_text_checked(html, &mut || {})
}

/// [`html_to_text`] calling `checkpoint` every few thousand tags, so a caller can stop a long
/// conversion (a backend checks for a cancel there). Linear in the input.
pub fn html_to_text_checked(html: &str, checkpoint: &mut dyn FnMut()) -> String {
    let mut out = String::with_capacity(html.len() / 2);
    let mut rest = html;
    let mut pending_href: Vec<Option<String>> = Vec::new();
    let mut tags = 0u32;
    while let Some(lt) = rest.find('<') {
        tags = tags.wrapping_add(1);
        if tags.is_multiple_of(4096) {
            checkpoint();
        }
        push_text(checkpoint, &mut out, &rest[..lt]);
        let after = &rest[lt..];
        // "<" not starting a tag ("a < b") is text.
        if !after[1..].starts_with(|c: char| c.is_ascii_alphabetic() || c == '/' || c == '!') {
            push_text(checkpoint, &mut out, "<");
            rest = &after[1..];
            continue;
        }
        if let Some(comment) = after.strip_prefix("<!--") {
            rest = comment.find("-->").map_or("", |e| &comment[e + 3..]);
            continue;
        }
        let Some(gt) = after.find('>') else {
            push_text(checkpoint, &mut out, after);
            rest = "";
            break;
        };
        let tag = &after[1..gt];
        rest = &after[gt + 1..];
        let name: String = tag
            .trim_start_matches('/')
            .chars()
            .take_while(|c| c.is_ascii_alphanumeric())
            .collect::<String>()
            .to_ascii_lowercase();
        let closing = tag.starts_with('/');
        if !closing && matches!(name.as_str(), "head" | "style" | "script" | "title") {
            // skip to the matching end tag
            match find_end_tag(rest, &name, checkpoint) {
                Some(pos) => {
                    rest = &rest[pos..];
                    rest = rest.find('>').map_or("", |g| &rest[g + 1..]);
                }
                None => rest = "",
            }
            continue;
        }
        match (name.as_str(), closing) {
            ("br", _) => newline(&mut out, 1),
            ("p" | "div" | "table" | "h1" | "h2" | "h3" | "h4" | "h5" | "h6" | "ul" | "ol", _) => {
                newline(&mut out, 2)
            }
            ("tr", true) => newline(&mut out, 1),
            ("td" | "th", true) => push_text(checkpoint, &mut out, " "),
            ("li", false) => {
                newline(&mut out, 1);
                out.push_str("- ");
            }
            ("a", false) => pending_href.push(attr(tag, "href")),
            ("a", true) => {
                if let Some(Some(href)) = pending_href.pop() {
                    if !href.starts_with("mailto:") && !out.trim_end().ends_with(&href) {
                        out.push_str(&format!(" ({href})"));
                    }
                }
            }
            _ => {}
        }
    }
    push_text(checkpoint, &mut out, rest);
    let lines: Vec<&str> = out.lines().map(str::trim).collect();
    let mut text = String::with_capacity(out.len());
    let mut blank = 0;
    for line in lines {
        if line.is_empty() {
            blank += 1;
            continue;
        }
        if !text.is_empty() {
            text.push_str(if blank > 0 { "\n\n" } else { "\n" });
        }
        blank = 0;
        text.push_str(line);
    }
    text
}

/// Where `</name` starts in `rest`, ASCII case ignored. Scans `rest` once without copying
/// it: lowercasing the rest of the document at every `<style>` made this quadratic.
fn find_end_tag(rest: &str, name: &str, checkpoint: &mut dyn FnMut()) -> Option<usize> {
    let mut from = 0;
    let mut seen = 0u32;
    while let Some(rel) = rest[from..].find("</") {
        seen = seen.wrapping_add(1);
        if seen.is_multiple_of(4096) {
            checkpoint();
        }
        let at = from + rel;
        let candidate = &rest.as_bytes()[at + 2..];
        if candidate.len() >= name.len()
            && candidate[..name.len()].eq_ignore_ascii_case(name.as_bytes())
        {
            return Some(at);
        }
        from = at + 2;
    }
    None
}

fn newline(out: &mut String, n: usize) {
    for _ in 0..n {
        out.push('\n');
    }
}

/// Append text with HTML whitespace folding and entity decoding.
fn push_text(checkpoint: &mut dyn FnMut(), out: &mut String, raw: &str) {
    let decoded = decode_entities(raw);
    for (i, c) in decoded.chars().enumerate() {
        if i % 65536 == 65535 {
            checkpoint();
        }
        if c.is_whitespace() {
            if !out.ends_with([' ', '\n']) && !out.is_empty() {
                out.push(' ');
            }
        } else {
            out.push(c);
        }
    }
}

fn attr(tag: &str, name: &str) -> Option<String> {
    let lower = tag.to_ascii_lowercase();
    let pos = lower.find(&format!("{name}="))?;
    let v = &tag[pos + name.len() + 1..];
    let (quote, body) = match v.chars().next()? {
        q @ ('"' | '\'') => (Some(q), &v[1..]),
        _ => (None, v),
    };
    let end = match quote {
        Some(q) => body.find(q)?,
        None => body.find(char::is_whitespace).unwrap_or(body.len()),
    };
    Some(decode_entities(&body[..end]))
}

pub fn decode_entities(s: &str) -> String {
    if !s.contains('&') {
        return s.to_string();
    }
    let mut out = String::with_capacity(s.len());
    let mut rest = s;
    while let Some(amp) = rest.find('&') {
        out.push_str(&rest[..amp]);
        let after = &rest[amp..];
        // Only the next 11 bytes can hold an entity's ';' (searching the whole rest at every
        // '&' was quadratic in a text of many '&').
        let semi = after.as_bytes().iter().take(11).position(|&b| b == b';');
        let decoded = semi.and_then(|p| {
            let ent = &after[1..p];
            let c = match ent {
                "amp" => Some('&'),
                "lt" => Some('<'),
                "gt" => Some('>'),
                "quot" => Some('"'),
                "apos" | "#39" | "#x27" => Some('\''),
                "nbsp" => Some(' '),
                "#x3D" | "#61" => Some('='),
                "#x60" | "#96" => Some('`'),
                _ if ent.starts_with("#x") || ent.starts_with("#X") => {
                    u32::from_str_radix(&ent[2..], 16)
                        .ok()
                        .and_then(char::from_u32)
                }
                _ if ent.starts_with('#') => ent[1..].parse::<u32>().ok().and_then(char::from_u32),
                _ => None,
            };
            c.map(|c| (c, p))
        });
        match decoded {
            Some((c, p)) => {
                out.push(c);
                rest = &after[p + 1..];
            }
            None => {
                out.push('&');
                rest = &after[1..];
            }
        }
    }
    out.push_str(rest);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn converts_an_email() {
        let html = r#"<html><head><title>x</title><style>p{color:red}</style></head><body>
            <table><tr><td><h1>Hi John,</h1></td></tr></table>
            <p>Your job is <b>scheduled</b>&nbsp;for&nbsp;Monday.<br>See you &amp; thanks!</p>
            <ul><li>One</li><li>Two</li></ul>
            <p><a href="https://x.example/pay?a=1&amp;b=2">Pay now</a></p></body></html>"#;
        assert_eq!(
            html_to_text(html),
            "Hi John,\n\nYour job is scheduled for Monday.\nSee you & thanks!\n\n- One\n- Two\n\nPay now (https://x.example/pay?a=1&b=2)"
        );
    }

    #[test]
    fn hostile_input_does_not_break_it() {
        assert_eq!(html_to_text("a < b and c > d"), "a < b and c > d");
        assert_eq!(html_to_text("<script>alert(1)"), "");
        assert_eq!(
            html_to_text("&#xFFFFFFFF; &bogus; &#65;"),
            "&#xFFFFFFFF; &bogus; A"
        );
        assert_eq!(html_to_text(""), "");
    }
}

#[cfg(test)]
mod linear_tests {
    use super::*;

    /// Quadratic behaviour shows as a ratio: 8× the input must cost far less than 64× the time.
    fn ratio(make: impl Fn(usize) -> String) -> f64 {
        let time = |n| {
            let s = make(n);
            let t = std::time::Instant::now();
            std::hint::black_box(html_to_text(&s));
            t.elapsed().as_secs_f64()
        };
        let small = time(20_000);
        let large = time(160_000);
        large / small.max(1e-6)
    }

    #[test]
    fn is_linear_in_skipped_tags_and_ampersands() {
        for (name, make) in [
            (
                "style tags",
                (|n| "<style>".repeat(n)) as fn(usize) -> String,
            ),
            ("script with other end tags", |n| "<script></b>".repeat(n)),
            ("ampersands", |n| "&".repeat(n * 8)),
        ] {
            let r = ratio(make);
            assert!(r < 30.0, "{name}: 8x the input took {r:.1}x the time");
        }
    }

    #[test]
    fn end_tags_match_case_insensitively() {
        assert_eq!(html_to_text("a<STYLE>p{}</StYlE>b"), "ab");
        assert_eq!(html_to_text("a<script>x</b></SCRIPT >c"), "ac");
        assert_eq!(html_to_text("a &amp b &amp; c"), "a &amp b & c");
    }
}
