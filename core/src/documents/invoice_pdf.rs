//! A one-page invoice PDF (US Letter): the company, the customer, the invoice number and
//! dates, the line items, the totals in the invoice's currency (formatted as the templates'
//! `{{money}}` does), the pay link, and a PAID mark once paid.
//!
//! The font is DejaVu Sans, embedded in the library (`core/assets/fonts`, its licence next
//! to it) and subset into each PDF by krilla, so a PDF renders the same everywhere and stays
//! small; it covers Latin, Greek, Cyrillic, Armenian, Georgian, Hebrew and Arabic letters
//! (not CJK: those glyphs come out as boxes).

use crate::template::money::format_money;
use krilla::action::LinkAction;
use krilla::annotation::{LinkAnnotation, Target};
use krilla::color::rgb;
use krilla::geom::{PathBuilder, Point, Rect};
use krilla::num::NormalizedF32;
use krilla::page::PageSettings;
use krilla::paint::Fill;
use krilla::surface::Surface;
use krilla::text::{Font, TextDirection};
use krilla::Document;
use serde::Deserialize;
use skrifa::instance::{LocationRef, Size};
use skrifa::MetadataProvider;
use std::sync::{Arc, OnceLock};

static REGULAR: &[u8] = include_bytes!("../../assets/fonts/DejaVuSans.ttf");
static BOLD: &[u8] = include_bytes!("../../assets/fonts/DejaVuSans-Bold.ttf");

/// Lines shown on the page; more are summed into one "and N more items" line.
pub const MAX_LINES: usize = 18;

#[derive(Debug, Clone, Deserialize)]
pub struct Line {
    pub description: String,
    pub quantity: f64,
    pub unit_amount: i64,
}

/// What the page shows, as `crm.invoice_pdf` reads it from the database.
#[derive(Debug, Clone, Deserialize)]
pub struct Invoice {
    pub company: String,
    pub number: String,
    pub issued: String,
    pub due: Option<String>,
    pub status: String,
    pub currency: String,
    /// The amount due (the invoice's amount), in minor units.
    pub amount: i64,
    pub customer_name: Option<String>,
    pub customer_email: Option<String>,
    pub customer_address: Option<String>,
    pub job_title: Option<String>,
    pub pay_url: Option<String>,
    #[serde(default)]
    pub lines: Vec<Line>,
}

struct Fonts {
    regular: Font,
    bold: Font,
}

fn fonts() -> &'static Fonts {
    static FONTS: OnceLock<Fonts> = OnceLock::new();
    FONTS.get_or_init(|| Fonts {
        regular: Font::new(Arc::new(REGULAR.to_vec()).into(), 0)
            .expect("the embedded regular font parses"),
        bold: Font::new(Arc::new(BOLD.to_vec()).into(), 0).expect("the embedded bold font parses"),
    })
}

/// Width of `text` in points at `size` (advance widths; DejaVu has no kerning that matters
/// for right-aligned numbers).
pub fn text_width(text: &str, size: f32, bold: bool) -> f32 {
    let Ok(font) = skrifa::FontRef::new(if bold { BOLD } else { REGULAR }) else {
        return 0.0;
    };
    let charmap = font.charmap();
    let metrics = font.glyph_metrics(Size::new(size), LocationRef::default());
    text.chars()
        .map(|c| {
            let gid = charmap.map(c).unwrap_or_default();
            metrics.advance_width(gid).unwrap_or(size * 0.5)
        })
        .sum()
}

/// `text` cut to fit `width` points, with an ellipsis when cut. Nothing on the page is wider
/// than 200 characters, so longer text is cut to that first (the fitting is quadratic).
fn fit(text: &str, size: f32, bold: bool, width: f32) -> String {
    let text: String = text
        .chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .take(200)
        .collect();
    if text_width(&text, size, bold) <= width {
        return text;
    }
    let mut out = String::new();
    for c in text.chars() {
        out.push(c);
        if text_width(&out, size, bold) + text_width("…", size, bold) > width {
            out.pop();
            break;
        }
    }
    out.push('…');
    out
}

/// `text` broken into at most `max_lines` lines of `width` points (anywhere: a URL has no
/// spaces to break at); the last line ends in an ellipsis if it does not all fit.
fn wrap(text: &str, size: f32, width: f32, max_lines: usize) -> Vec<String> {
    let mut lines: Vec<String> = Vec::new();
    let mut current = String::new();
    for c in text.chars().filter(|c| !c.is_control()).take(2000) {
        current.push(c);
        if text_width(&current, size, false) > width {
            current.pop();
            if lines.len() + 1 == max_lines {
                current.pop();
                current.push('…');
                lines.push(current);
                return lines;
            }
            lines.push(std::mem::replace(&mut current, c.to_string()));
        }
    }
    lines.push(current);
    lines
}

fn money(amount: i64, currency: &str) -> String {
    format_money(amount, currency).unwrap_or_else(|| format!("{amount} {currency}"))
}

fn quantity(q: f64) -> String {
    if q.fract() == 0.0 {
        format!("{q:.0}")
    } else {
        let s = format!("{q:.3}");
        s.trim_end_matches('0').to_string()
    }
}

struct Page<'a, 'b> {
    surface: &'a mut Surface<'b>,
}

const GREY: (u8, u8, u8) = (82, 96, 109);
const DARK: (u8, u8, u8) = (31, 41, 51);
const LIGHT: (u8, u8, u8) = (228, 231, 235);
const WIDTH: f32 = 612.0;
const HEIGHT: f32 = 792.0;
const MARGIN: f32 = 54.0;

impl Page<'_, '_> {
    fn color(&mut self, (r, g, b): (u8, u8, u8)) {
        self.surface.set_fill(Some(Fill {
            paint: rgb::Color::new(r, g, b).into(),
            opacity: NormalizedF32::ONE,
            rule: Default::default(),
        }));
    }
    fn text(&mut self, x: f32, y: f32, size: f32, bold: bool, color: (u8, u8, u8), text: &str) {
        self.color(color);
        let f = fonts();
        let font = if bold {
            f.bold.clone()
        } else {
            f.regular.clone()
        };
        self.surface.draw_text(
            Point::from_xy(x, y),
            font,
            size,
            text,
            false,
            TextDirection::Auto,
        );
    }
    fn right(
        &mut self,
        x_right: f32,
        y: f32,
        size: f32,
        bold: bool,
        color: (u8, u8, u8),
        text: &str,
    ) {
        let w = text_width(text, size, bold);
        self.text(x_right - w, y, size, bold, color, text);
    }
    fn rect(&mut self, x: f32, y: f32, w: f32, h: f32, color: (u8, u8, u8)) {
        let mut pb = PathBuilder::new();
        pb.move_to(x, y);
        pb.line_to(x + w, y);
        pb.line_to(x + w, y + h);
        pb.line_to(x, y + h);
        pb.close();
        if let Some(path) = pb.finish() {
            self.color(color);
            self.surface.draw_path(&path);
        }
    }
}

/// The invoice as PDF bytes.
pub fn render(inv: &Invoice) -> Result<Vec<u8>, String> {
    let mut document = Document::new();
    let settings = PageSettings::from_wh(WIDTH, HEIGHT).ok_or("bad page size")?;
    let mut page = document.start_page_with(settings);
    let mut surface = page.surface();
    let mut link: Option<(Rect, String)> = None;
    {
        let mut p = Page {
            surface: &mut surface,
        };
        let right = WIDTH - MARGIN;
        let text_w = right - MARGIN;
        // header: company left, INVOICE and its facts right
        p.rect(0.0, 0.0, WIDTH, 6.0, (47, 128, 237));
        p.text(
            MARGIN,
            78.0,
            20.0,
            true,
            DARK,
            &fit(&inv.company, 20.0, true, text_w * 0.55),
        );
        p.right(right, 78.0, 24.0, true, DARK, "INVOICE");
        let mut y = 100.0;
        for (label, value) in [
            ("Invoice number", Some(inv.number.as_str())),
            ("Issued", Some(inv.issued.as_str())),
            ("Due", inv.due.as_deref()),
        ] {
            if let Some(v) = value {
                p.right(right - 120.0, y, 9.0, false, GREY, label);
                p.right(right, y, 9.0, true, DARK, &fit(v, 9.0, true, 110.0));
                y += 14.0;
            }
        }
        // bill to
        let mut y = 150.0;
        p.text(MARGIN, y, 9.0, true, GREY, "BILL TO");
        y += 16.0;
        for (i, line) in [
            &inv.customer_name,
            &inv.customer_email,
            &inv.customer_address,
        ]
        .into_iter()
        .flatten()
        .enumerate()
        {
            let (size, bold) = if i == 0 { (12.0, true) } else { (10.0, false) };
            p.text(
                MARGIN,
                y,
                size,
                bold,
                DARK,
                &fit(line, size, bold, text_w * 0.6),
            );
            y += 15.0;
        }
        if let Some(job) = &inv.job_title {
            p.text(
                MARGIN,
                y + 4.0,
                9.0,
                false,
                GREY,
                &fit(&format!("For: {job}"), 9.0, false, text_w * 0.6),
            );
        }
        // the table
        let (c_qty, c_unit, c_amount) = (right - 200.0, right - 90.0, right);
        let mut y = 250.0;
        p.rect(MARGIN, y - 14.0, text_w, 20.0, (244, 245, 247));
        p.text(MARGIN + 6.0, y, 9.0, true, GREY, "DESCRIPTION");
        p.right(c_qty, y, 9.0, true, GREY, "QTY");
        p.right(c_unit, y, 9.0, true, GREY, "UNIT PRICE");
        p.right(c_amount - 6.0, y, 9.0, true, GREY, "AMOUNT");
        y += 24.0;
        let mut subtotal: i64 = 0;
        let shown = inv.lines.len().min(MAX_LINES);
        for line in &inv.lines {
            subtotal =
                subtotal.saturating_add((line.quantity * line.unit_amount as f64).round() as i64);
        }
        for line in &inv.lines[..shown] {
            let total = (line.quantity * line.unit_amount as f64).round() as i64;
            p.text(
                MARGIN + 6.0,
                y,
                10.0,
                false,
                DARK,
                &fit(&line.description, 10.0, false, c_qty - MARGIN - 70.0),
            );
            p.right(c_qty, y, 10.0, false, DARK, &quantity(line.quantity));
            p.right(
                c_unit,
                y,
                10.0,
                false,
                DARK,
                &money(line.unit_amount, &inv.currency),
            );
            p.right(
                c_amount - 6.0,
                y,
                10.0,
                false,
                DARK,
                &money(total, &inv.currency),
            );
            p.rect(MARGIN, y + 7.0, text_w, 0.6, LIGHT);
            y += 22.0;
        }
        if inv.lines.len() > shown {
            let rest: i64 = inv.lines[shown..]
                .iter()
                .map(|l| (l.quantity * l.unit_amount as f64).round() as i64)
                .fold(0i64, i64::saturating_add);
            p.text(
                MARGIN + 6.0,
                y,
                10.0,
                false,
                GREY,
                &format!("… and {} more items", inv.lines.len() - shown),
            );
            p.right(
                c_amount - 6.0,
                y,
                10.0,
                false,
                DARK,
                &money(rest, &inv.currency),
            );
            y += 22.0;
        }
        if inv.lines.is_empty() {
            p.text(
                MARGIN + 6.0,
                y,
                10.0,
                false,
                DARK,
                &fit(
                    inv.job_title.as_deref().unwrap_or("Services"),
                    10.0,
                    false,
                    c_qty - MARGIN - 70.0,
                ),
            );
            p.right(
                c_amount - 6.0,
                y,
                10.0,
                false,
                DARK,
                &money(inv.amount, &inv.currency),
            );
            y += 22.0;
            subtotal = inv.amount;
        }
        // totals
        y += 8.0;
        let label_x = c_unit;
        p.right(label_x, y, 10.0, false, GREY, "Subtotal");
        p.right(
            c_amount - 6.0,
            y,
            10.0,
            false,
            DARK,
            &money(subtotal, &inv.currency),
        );
        y += 18.0;
        if subtotal != inv.amount {
            p.right(label_x, y, 10.0, false, GREY, "Adjustments");
            p.right(
                c_amount - 6.0,
                y,
                10.0,
                false,
                DARK,
                &money(inv.amount - subtotal, &inv.currency),
            );
            y += 18.0;
        }
        p.rect(
            label_x - 120.0,
            y - 4.0,
            c_amount - label_x + 120.0,
            1.0,
            DARK,
        );
        y += 16.0;
        p.right(label_x, y, 12.0, true, DARK, "Amount due");
        p.right(
            c_amount - 6.0,
            y,
            12.0,
            true,
            DARK,
            &money(inv.amount, &inv.currency),
        );
        if inv.status == "paid" {
            p.right(c_amount - 6.0, y + 30.0, 22.0, true, (39, 174, 96), "PAID");
        } else if inv.status == "void" {
            p.right(c_amount - 6.0, y + 30.0, 22.0, true, (235, 87, 87), "VOID");
        }
        // the pay link: the whole URL (Checkout's run to a few hundred characters), wrapped,
        // and the box a link annotation to it
        if let (Some(url), "draft" | "sent") = (&inv.pay_url, inv.status.as_str()) {
            let lines = wrap(url, 8.0, text_w - 24.0, 5);
            let top = HEIGHT - 170.0;
            let height = 30.0 + 11.0 * lines.len() as f32;
            p.rect(MARGIN, top, text_w, height, (244, 245, 247));
            p.text(MARGIN + 12.0, top + 18.0, 10.0, true, DARK, "Pay online");
            for (i, line) in lines.iter().enumerate() {
                let y = top + 32.0 + 11.0 * i as f32;
                p.text(MARGIN + 12.0, y, 8.0, false, (47, 128, 237), line);
            }
            link = Rect::from_xywh(MARGIN, top, text_w, height).map(|r| (r, url.clone()));
        }
        p.text(
            MARGIN,
            HEIGHT - 60.0,
            9.0,
            false,
            GREY,
            &fit(
                &format!("Thank you for your business. — {}", inv.company),
                9.0,
                false,
                text_w,
            ),
        );
    }
    surface.finish();
    if let Some((rect, url)) =
        link.filter(|(_, u)| u.starts_with("https://") || u.starts_with("http://"))
    {
        let target = Target::Action(LinkAction::new(url).into());
        page.add_annotation(LinkAnnotation::new(rect, target).into());
    }
    page.finish();
    document
        .finish()
        .map_err(|e| format!("the PDF could not be written: {e:?}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample(lines: usize) -> Invoice {
        Invoice {
            company: "317 Plumber".into(),
            number: "INV-1042".into(),
            issued: "Nov 28, 2026".into(),
            due: Some("Dec 15, 2026".into()),
            status: "sent".into(),
            currency: "usd".into(),
            amount: 123456,
            customer_name: Some("Zoë Ñúñez-Дмитриева".into()),
            customer_email: Some("zoe@example.com".into()),
            customer_address: Some("12 Elm St, Indianapolis".into()),
            job_title: Some("Water heater replacement".into()),
            pay_url: Some("https://checkout.stripe.com/c/pay/cs_test_1".into()),
            lines: (0..lines)
                .map(|i| Line {
                    description: format!("Part {i}"),
                    quantity: 1.0,
                    unit_amount: 1000,
                })
                .collect(),
        }
    }

    #[test]
    fn renders_a_small_pdf() {
        let pdf = render(&sample(10)).unwrap();
        eprintln!("a 10-line invoice: {} bytes", pdf.len());
        assert!(pdf.starts_with(b"%PDF-"));
        assert!(pdf.len() < 100 * 1024, "{} bytes", pdf.len());
        // many lines still fit on one page
        let pdf = render(&sample(40)).unwrap();
        assert!(pdf.len() < 100 * 1024, "{} bytes", pdf.len());
    }

    #[test]
    fn widths_and_fitting() {
        assert!(text_width("WWW", 10.0, false) > text_width("iii", 10.0, false));
        assert!(text_width("abc", 20.0, true) > text_width("abc", 10.0, true));
        let long = "x".repeat(500);
        let cut = fit(&long, 10.0, false, 100.0);
        assert!(cut.ends_with('…') && text_width(&cut, 10.0, false) <= 100.5);
        let url = format!(
            "https://checkout.stripe.com/c/pay/cs_test_{}#fidkdWxOYHwnPyd1blpxYHZxWjA0",
            "a1".repeat(120)
        );
        let lines = wrap(&url, 8.0, 480.0, 5);
        assert!(lines.len() > 1 && lines.len() <= 5);
        assert_eq!(
            lines.concat(),
            url,
            "a URL that fits in five lines is there whole"
        );
        assert!(wrap(&"x".repeat(2000), 8.0, 100.0, 3)
            .last()
            .unwrap()
            .ends_with('…'));
        assert_eq!(quantity(2.0), "2");
        assert_eq!(quantity(1.5), "1.5");
    }
}
