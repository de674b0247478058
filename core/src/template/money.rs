//! `{{money amount_cents currency}}` → `$1,234.56`.
//!
//! Amounts are integers in the currency's minor unit, as Stripe and the `invoices.amount` column
//! store them. Zero-decimal currencies (Stripe's list: JPY, KRW, …) have no minor unit.

/// Stripe's zero-decimal currencies.
const ZERO_DECIMAL: [&str; 16] = [
    "BIF", "CLP", "DJF", "GNF", "JPY", "KMF", "KRW", "MGA", "PYG", "RWF", "UGX", "VND", "VUV",
    "XAF", "XOF", "XPF",
];

fn symbol(code: &str) -> Option<&'static str> {
    Some(match code {
        "USD" => "$",
        "CAD" => "CA$",
        "AUD" => "A$",
        "NZD" => "NZ$",
        "MXN" => "MX$",
        "EUR" => "€",
        "GBP" => "£",
        "JPY" => "¥",
        "INR" => "₹",
        _ => return None,
    })
}

/// Read an amount of minor units from JSON: an integer, an integral float, or a string of digits.
pub fn amount_from_json(v: &serde_json::Value) -> Option<i64> {
    match v {
        serde_json::Value::Number(n) => n.as_i64().or_else(|| {
            let f = n.as_f64()?;
            (f.fract() == 0.0 && f.abs() < 9.0e15).then_some(f as i64)
        }),
        serde_json::Value::String(s) => s.trim().parse::<i64>().ok(),
        _ => None,
    }
}

/// Format `amount` minor units of `currency` (ISO 4217, any case). `None` if the code is not
/// three ASCII letters.
pub fn format_money(amount: i64, currency: &str) -> Option<String> {
    let code = currency.trim().to_ascii_uppercase();
    if code.len() != 3 || !code.bytes().all(|b| b.is_ascii_uppercase()) {
        return None;
    }
    let decimals = if ZERO_DECIMAL.contains(&code.as_str()) {
        0
    } else {
        2
    };
    let negative = amount < 0;
    let abs = amount.unsigned_abs();
    let (units, minor) = if decimals == 0 {
        (abs, 0)
    } else {
        (abs / 100, abs % 100)
    };
    let digits = units.to_string();
    let mut grouped = String::with_capacity(digits.len() + digits.len() / 3 + 4);
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i) % 3 == 0 {
            grouped.push(',');
        }
        grouped.push(c);
    }
    if decimals == 2 {
        grouped.push_str(&format!(".{minor:02}"));
    }
    let sign = if negative { "-" } else { "" };
    Some(match symbol(&code) {
        Some(sym) => format!("{sign}{sym}{grouped}"),
        None => format!("{sign}{grouped} {code}"),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn formats() {
        assert_eq!(format_money(123456, "usd").unwrap(), "$1,234.56");
        assert_eq!(format_money(5, "USD").unwrap(), "$0.05");
        assert_eq!(format_money(0, "usd").unwrap(), "$0.00");
        assert_eq!(format_money(-250000, "usd").unwrap(), "-$2,500.00");
        assert_eq!(format_money(100000000, "eur").unwrap(), "€1,000,000.00");
        assert_eq!(format_money(1500, "jpy").unwrap(), "¥1,500");
        assert_eq!(format_money(999, "chf").unwrap(), "9.99 CHF");
        assert_eq!(
            format_money(i64::MIN, "usd").unwrap(),
            "-$92,233,720,368,547,758.08"
        );
        assert_eq!(format_money(1, "us"), None);
        assert_eq!(format_money(1, "u$d"), None);
    }

    #[test]
    fn amounts() {
        assert_eq!(amount_from_json(&json!(123456)), Some(123456));
        assert_eq!(amount_from_json(&json!(12.0)), Some(12));
        assert_eq!(amount_from_json(&json!(12.5)), None);
        assert_eq!(amount_from_json(&json!("42")), Some(42));
        assert_eq!(amount_from_json(&json!("4.2")), None);
        assert_eq!(amount_from_json(&json!(null)), None);
        assert_eq!(amount_from_json(&json!(1e300)), None);
    }
}
