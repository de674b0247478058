//! The configuration check (`crm.config_check()`, the reference's `npm run env:check`): the
//! form of each setting, judged without ever repeating a secret's value. A detail may say how
//! long a value is or what it starts with when that prefix is public (`re_`, `whsec_`), never
//! more.

use crate::vault;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Status {
    Ok,
    Missing,
    Invalid,
    Unreachable,
}

impl Status {
    pub fn name(self) -> &'static str {
        match self {
            Status::Ok => "ok",
            Status::Missing => "missing",
            Status::Invalid => "invalid",
            Status::Unreachable => "unreachable",
        }
    }
}

/// What form a setting must have.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Form {
    /// 32 bytes, base64 or 64 hex digits (the vault key).
    VaultKey,
    /// Comma-separated vault keys (may be empty).
    VaultKeys,
    /// A public prefix, then at least `min` more characters (`re_`, `whsec_`).
    Prefixed(&'static str, usize),
    /// Anything non-empty (a client secret, a password).
    Present,
    /// An http(s) URL with a host.
    Url,
    /// A Google OAuth client id: `<digits>-<id>.apps.googleusercontent.com`.
    GoogleClientId,
    /// A GUID (a Microsoft application id).
    Guid,
    /// common, organizations, consumers, a GUID or a domain.
    MicrosoftTenant,
    /// A domain, or an address.
    DomainOrAddress,
}

fn is_guid(s: &str) -> bool {
    let parts: Vec<&str> = s.split('-').collect();
    parts.iter().map(|p| p.len()).eq([8, 4, 4, 4, 12])
        && parts
            .iter()
            .all(|p| p.chars().all(|c| c.is_ascii_hexdigit()))
}

fn is_domain(s: &str) -> bool {
    s.len() <= 253
        && s.contains('.')
        && s.split('.').all(|l| {
            !l.is_empty()
                && l.len() <= 63
                && l.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
                && !l.starts_with('-')
                && !l.ends_with('-')
        })
}

/// Judge `value` (None or blank: missing). `secret`: the detail never quotes the value.
pub fn check(form: Form, value: Option<&str>, secret: bool) -> (Status, String) {
    let Some(v) = value.map(str::trim).filter(|v| !v.is_empty()) else {
        return (Status::Missing, "not set".into());
    };
    let shown = |v: &str| -> String {
        if secret {
            format!("{} characters", v.chars().count())
        } else {
            v.chars().take(80).collect()
        }
    };
    let verdict: Result<String, String> = match form {
        Form::VaultKey => vault::parse_key(v)
            .map(|_| "32 bytes".into())
            .map_err(|e| e.to_string()),
        Form::VaultKeys => v
            .split(',')
            .map(str::trim)
            .filter(|k| !k.is_empty())
            .try_fold(0, |n, k| vault::parse_key(k).map(|_| n + 1))
            .map(|n| format!("{n} previous key(s), each 32 bytes"))
            .map_err(|e| format!("a previous key is not valid: {e}")),
        Form::Prefixed(prefix, min) => {
            if v.starts_with(prefix) && v.len() >= prefix.len() + min {
                Ok(format!("{prefix}… ({} characters)", v.chars().count()))
            } else {
                Err(format!(
                    "must start with {prefix} (as the provider's dashboard shows it)"
                ))
            }
        }
        Form::Present => Ok(shown(v)),
        Form::Url => {
            let rest = v
                .strip_prefix("https://")
                .or_else(|| v.strip_prefix("http://"));
            match rest.map(|r| r.split(['/', '?', '#']).next().unwrap_or("")) {
                Some(host) if !host.is_empty() && !host.contains('@') => Ok(shown(v)),
                _ => Err("must be an http(s) URL with a host".into()),
            }
        }
        Form::GoogleClientId => {
            if v.ends_with(".apps.googleusercontent.com")
                && v.len() > ".apps.googleusercontent.com".len()
            {
                Ok(shown(v))
            } else {
                Err("a Google OAuth client id ends with .apps.googleusercontent.com".into())
            }
        }
        Form::Guid => {
            if is_guid(v) {
                Ok(shown(v))
            } else {
                Err(
                    "an application (client) id is a GUID (xxxxxxxx-xxxx-xxxx-xxxx-xxxxxxxxxxxx)"
                        .into(),
                )
            }
        }
        Form::MicrosoftTenant => {
            if matches!(v, "common" | "organizations" | "consumers") || is_guid(v) || is_domain(v) {
                Ok(shown(v))
            } else {
                Err("common, organizations, consumers, a tenant id (GUID) or a domain".into())
            }
        }
        Form::DomainOrAddress => {
            let domain = v
                .rsplit_once('@')
                .map_or(v, |(local, d)| if local.is_empty() { "" } else { d });
            if is_domain(domain) {
                Ok(shown(v))
            } else {
                Err("a domain (example.com) or an address (noreply@example.com)".into())
            }
        }
    };
    match verdict {
        Ok(detail) => (Status::Ok, detail),
        Err(detail) => (Status::Invalid, detail),
    }
}

/// Whether Resend's `GET /domains` answer lists `domain` as verified.
pub fn resend_domain_verified(body: &str, domain: &str) -> Option<bool> {
    let j: serde_json::Value = serde_json::from_str(body).ok()?;
    let list = j.get("data")?.as_array()?;
    Some(list.iter().any(|d| {
        d.get("name")
            .and_then(|n| n.as_str())
            .is_some_and(|n| n.eq_ignore_ascii_case(domain))
            && d.get("status").and_then(|s| s.as_str()) == Some("verified")
    }))
}

/// The server log's report of a reload that changed a secret setting, without its value:
/// Postgres logs `parameter "NAME" changed to "VALUE"` for every setting a reload changes.
pub fn redacted_setting_change(message: &str, secrets: &[&str]) -> Option<String> {
    let rest = message.strip_prefix("parameter \"")?;
    let (name, tail) = rest.split_once('"')?;
    (secrets.contains(&name) && tail.starts_with(" changed to "))
        .then(|| format!("parameter \"{name}\" changed (value not shown)"))
}

#[cfg(test)]
mod tests {
    #[test]
    fn only_secret_changes_are_redacted() {
        let secrets = ["crm.google_client_secret"];
        assert_eq!(
            redacted_setting_change(
                "parameter \"crm.google_client_secret\" changed to \"GOCSPX-x\"",
                &secrets
            )
            .as_deref(),
            Some("parameter \"crm.google_client_secret\" changed (value not shown)")
        );
        assert_eq!(
            redacted_setting_change(
                "parameter \"crm.resend_base_url\" changed to \"http://x\"",
                &secrets
            ),
            None
        );
        assert_eq!(
            redacted_setting_change("statement: SELECT 1", &secrets),
            None
        );
    }

    use super::*;

    #[test]
    fn secrets_are_judged_without_being_repeated() {
        let (s, d) = check(Form::Prefixed("re_", 8), Some("re_abcdefghijk"), true);
        assert_eq!(s, Status::Ok);
        assert!(!d.contains("abcdefghijk"), "{d}");
        let (s, d) = check(Form::Prefixed("whsec_", 8), Some("sk_live_oops12345"), true);
        assert_eq!(s, Status::Invalid);
        assert!(!d.contains("oops"), "{d}");
        let (s, d) = check(Form::Present, Some("GOCSPX-verysecret"), true);
        assert_eq!((s, d.as_str()), (Status::Ok, "17 characters"));
        assert_eq!(check(Form::Present, Some("  "), true).0, Status::Missing);
        assert_eq!(check(Form::Present, None, true).0, Status::Missing);
    }

    #[test]
    fn forms() {
        let ok = |f, v| check(f, Some(v), false).0 == Status::Ok;
        assert!(ok(
            Form::VaultKey,
            "000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f"
        ));
        assert!(!ok(Form::VaultKey, "too short"));
        assert!(ok(Form::VaultKeys, "ISIjJCUmJygpKissLS4vMDEyMzQ1Njc4OTo7PD0+P0A=, 000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f"));
        assert!(!ok(
            Form::VaultKeys,
            "ISIjJCUmJygpKissLS4vMDEyMzQ1Njc4OTo7PD0+P0A=, nope"
        ));
        assert!(ok(Form::Url, "https://api.resend.com"));
        assert!(ok(Form::Url, "http://127.0.0.1:18025"));
        assert!(!ok(Form::Url, "api.resend.com"));
        assert!(!ok(Form::Url, "https://user:pw@host"));
        assert!(ok(
            Form::GoogleClientId,
            "1234-abc.apps.googleusercontent.com"
        ));
        assert!(!ok(Form::GoogleClientId, "1234-abc"));
        assert!(ok(Form::Guid, "0f1e2d3c-4b5a-6978-8796-a5b4c3d2e1f0"));
        assert!(!ok(Form::Guid, "not-a-guid"));
        assert!(ok(Form::MicrosoftTenant, "common"));
        assert!(ok(Form::MicrosoftTenant, "contoso.onmicrosoft.com"));
        assert!(!ok(Form::MicrosoftTenant, "../evil"));
        assert!(ok(Form::DomainOrAddress, "317plumber.com"));
        assert!(ok(Form::DomainOrAddress, "noreply@317plumber.com"));
        assert!(!ok(Form::DomainOrAddress, "@317plumber.com"));
        assert!(!ok(Form::DomainOrAddress, "localhost"));
    }

    #[test]
    fn resend_domains() {
        let body = r#"{"data":[{"id":"d1","name":"317plumber.com","status":"verified"},{"name":"other.example","status":"pending"}]}"#;
        assert_eq!(resend_domain_verified(body, "317Plumber.com"), Some(true));
        assert_eq!(resend_domain_verified(body, "other.example"), Some(false));
        assert_eq!(resend_domain_verified("nope", "x"), None);
    }
}
