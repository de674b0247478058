//! Matching keys. Two contacts with the same email key or the same phone key are the same
//! person (merged automatically by the sync); a similar name at the same address only makes
//! them candidates.

/// The email key: trimmed and lower-cased; for Gmail (gmail.com, googlemail.com) also without
/// the dots and the +suffix of the local part, which Gmail ignores ("John.Smith+crm@gmail.com"
/// is johnsmith@gmail.com). Other providers' local parts are kept: for them a dot or a plus
/// may be a different mailbox. None when it is not an address.
pub fn email_key(email: &str) -> Option<String> {
    let email = email.trim().to_lowercase();
    let (local, domain) = email.rsplit_once('@')?;
    if local.is_empty()
        || domain.is_empty()
        || local.contains('@')
        || email.chars().any(char::is_whitespace)
    {
        return None;
    }
    if domain == "gmail.com" || domain == "googlemail.com" {
        let local = local.split('+').next().unwrap_or_default().replace('.', "");
        if local.is_empty() {
            return None;
        }
        return Some(format!("{local}@gmail.com"));
    }
    Some(email)
}

/// The phone key: E.164 ("+13175550123"), read with `region` (ISO 3166 alpha-2, e.g. "US")
/// for numbers written without a country code. None when it is not a valid number.
pub fn phone_key(phone: &str, region: &str) -> Option<String> {
    let phone = phone.trim();
    if phone.is_empty() || phone.len() > 64 {
        return None;
    }
    let country = region
        .trim()
        .to_ascii_uppercase()
        .parse::<phonenumber::country::Id>()
        .ok();
    let number = phonenumber::parse(country, phone).ok()?;
    if !phonenumber::is_valid(&number) {
        return None;
    }
    Some(number.format().mode(phonenumber::Mode::E164).to_string())
}

/// Longest name compared: Jaro-Winkler is quadratic in the length, and no person's name needs
/// more (a tenant's 500,000-character name would otherwise cost minutes per pair).
pub const MAX_NAME_CHARS: usize = 100;

/// How alike two names are, 0..1 (Jaro-Winkler over the lower-cased names with spacing
/// folded, the first `MAX_NAME_CHARS` characters: "Jon Smith" / "John  smith" ≈ 0.97).
pub fn name_similarity(a: &str, b: &str) -> f64 {
    let norm = |s: &str| {
        let head: String = s.chars().take(MAX_NAME_CHARS * 4).collect();
        let folded = head
            .split_whitespace()
            .collect::<Vec<_>>()
            .join(" ")
            .to_lowercase();
        folded.chars().take(MAX_NAME_CHARS).collect::<String>()
    };
    let (a, b) = (norm(a), norm(b));
    if a.is_empty() || b.is_empty() {
        return 0.0;
    }
    strsim::jaro_winkler(&a, &b)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn emails_fold_case_and_gmail_dots_and_plus() {
        assert_eq!(
            email_key(" John.Smith+crm@GMail.com ").as_deref(),
            Some("johnsmith@gmail.com")
        );
        assert_eq!(
            email_key("johnsmith@googlemail.com").as_deref(),
            Some("johnsmith@gmail.com")
        );
        assert_eq!(
            email_key("John.Smith+x@Example.com").as_deref(),
            Some("john.smith+x@example.com")
        );
        assert_ne!(
            email_key("john.smith@example.com"),
            email_key("johnsmith@example.com")
        );
        assert_eq!(email_key("not an email"), None);
        assert_eq!(email_key("a@b@c"), None);
        assert_eq!(email_key("+tag@gmail.com"), None);
    }

    #[test]
    fn phones_become_e164() {
        assert_eq!(
            phone_key("(317) 232-4567", "US").as_deref(),
            Some("+13172324567")
        );
        assert_eq!(
            phone_key("+1 317-232-4567", "DE").as_deref(),
            Some("+13172324567")
        );
        assert_eq!(
            phone_key("317.232.4567", "us").as_deref(),
            Some("+13172324567")
        );
        assert_eq!(
            phone_key("030 1234567", "DE").as_deref(),
            Some("+49301234567")
        );
        assert_eq!(
            phone_key("+49 30 1234567", "US").as_deref(),
            Some("+49301234567")
        );
        assert_eq!(phone_key("hello", "US"), None);
        assert_eq!(phone_key("", "US"), None);
        assert_eq!(phone_key(&"9".repeat(100), "US"), None);
    }

    #[test]
    fn names_compare_loosely() {
        assert!(name_similarity("Jon Smith", "John  smith") > 0.9);
        assert!(name_similarity("John Smith", "Ana Lopez") < 0.7);
        assert_eq!(name_similarity("", "x"), 0.0);
        // long names are compared on their first 100 characters, quickly
        let t = std::time::Instant::now();
        let (a, b) = ("a".repeat(500_000), "b".repeat(500_000));
        assert!(name_similarity(&a, &b) < 0.5);
        assert!(t.elapsed().as_millis() < 1000);
    }
}
