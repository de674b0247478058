//! Connecting a Google or Microsoft account: the OAuth 2.0 authorization-code flow (RFC 6749
//! §4.1) with PKCE `S256` (RFC 7636; never `plain`), as data. The authorization URL the browser
//! goes to, the code exchange form, what the token endpoint's answer and the address lookup
//! mean, whether the granted scopes cover what the connection is for, and the troubleshooting
//! hint for each error the providers give.
//!
//! Google: <https://developers.google.com/identity/protocols/oauth2/web-server>;
//! Microsoft: <https://learn.microsoft.com/entra/identity-platform/v2-oauth2-auth-code-flow>.

use super::outcome::Answer;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use serde_json::Value;
use sha2::{Digest, Sha256};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Provider {
    Google,
    Microsoft,
}

impl Provider {
    pub fn parse(s: &str) -> Option<Provider> {
        match s {
            "google" => Some(Provider::Google),
            "microsoft" => Some(Provider::Microsoft),
            _ => None,
        }
    }
    pub fn name(self) -> &'static str {
        match self {
            Provider::Google => "google",
            Provider::Microsoft => "microsoft",
        }
    }
}

/// What a connection is for: which table it lands in and which scopes it needs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Purpose {
    Email,
    Calendar,
    Contacts,
}

impl Purpose {
    pub fn parse(s: &str) -> Option<Purpose> {
        match s {
            "email" => Some(Purpose::Email),
            "calendar" => Some(Purpose::Calendar),
            "contacts" => Some(Purpose::Contacts),
            _ => None,
        }
    }
    pub fn name(self) -> &'static str {
        match self {
            Purpose::Email => "email",
            Purpose::Calendar => "calendar",
            Purpose::Contacts => "contacts",
        }
    }
}

/// The scopes asked for: the address lookup's, then the purpose's, then the optional ones.
/// Google's sign-in scopes (`openid email`) give the address; Microsoft's `offline_access`
/// gives a refresh token and `User.Read` the address (Graph `GET /me`).
pub fn scopes(provider: Provider, purpose: Purpose) -> Vec<&'static str> {
    let mut s = match provider {
        Provider::Google => vec!["openid", "email"],
        Provider::Microsoft => vec!["openid", "email", "offline_access", "User.Read"],
    };
    s.extend(needed_scopes(provider, purpose));
    s.extend(optional_scopes(provider, purpose));
    s
}

/// Scopes asked for that a purpose works without, for what it does when they are granted:
/// drafts in a mailbox (Gmail's compose, Graph's Mail.ReadWrite), Gmail's "other contacts" in
/// the contact sync. A user who unticks them still connects.
pub fn optional_scopes(provider: Provider, purpose: Purpose) -> &'static [&'static str] {
    match (provider, purpose) {
        (Provider::Google, Purpose::Email) => &["https://www.googleapis.com/auth/gmail.compose"],
        (Provider::Microsoft, Purpose::Email) => &["Mail.ReadWrite"],
        (Provider::Google, Purpose::Contacts) => {
            &["https://www.googleapis.com/auth/contacts.other.readonly"]
        }
        _ => &[],
    }
}

/// The scopes a purpose cannot work without (what must be granted).
pub fn needed_scopes(provider: Provider, purpose: Purpose) -> &'static [&'static str] {
    match (provider, purpose) {
        (Provider::Google, Purpose::Email) => &["https://www.googleapis.com/auth/gmail.send"],
        (Provider::Google, Purpose::Calendar) => {
            &["https://www.googleapis.com/auth/calendar.events"]
        }
        (Provider::Google, Purpose::Contacts) => &["https://www.googleapis.com/auth/contacts"],
        (Provider::Microsoft, Purpose::Email) => &["Mail.Send"],
        (Provider::Microsoft, Purpose::Calendar) => &["Calendars.ReadWrite"],
        (Provider::Microsoft, Purpose::Contacts) => &["Contacts.ReadWrite"],
    }
}

/// Microsoft's token answer names Graph scopes in full (`https://graph.microsoft.com/Mail.Send`)
/// or short (`Mail.Send`), in any case: compare the short form, case-insensitively.
fn scope_key(provider: Provider, scope: &str) -> String {
    match provider {
        Provider::Google => scope.to_string(),
        Provider::Microsoft => scope
            .trim_start_matches("https://graph.microsoft.com/")
            .to_ascii_lowercase(),
    }
}

/// The needed scopes the user did not grant (Google lets users untick scopes on its consent
/// screen, so a successful exchange may still lack one).
pub fn missing_scopes(
    provider: Provider,
    purpose: Purpose,
    granted: &[String],
) -> Vec<&'static str> {
    let granted: Vec<String> = granted.iter().map(|g| scope_key(provider, g)).collect();
    needed_scopes(provider, purpose)
        .iter()
        .copied()
        .filter(|need| !granted.contains(&scope_key(provider, need)))
        .collect()
}

/// A PKCE pair: the verifier (kept, encrypted, until the callback) and its S256 challenge (in
/// the authorization URL).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Pkce {
    pub verifier: String,
    pub challenge: String,
}

/// PKCE from 32 random bytes: the verifier is their base64url (43 characters, within RFC
/// 7636's 43–128 of the unreserved set), the challenge `BASE64URL(SHA256(verifier))`.
pub fn pkce(random: &[u8; 32]) -> Pkce {
    let verifier = URL_SAFE_NO_PAD.encode(random);
    let challenge = URL_SAFE_NO_PAD.encode(Sha256::digest(verifier.as_bytes()));
    Pkce {
        verifier,
        challenge,
    }
}

/// A `state` from 32 random bytes (base64url), and the hash it is stored under (hex SHA-256:
/// a leaked table row cannot be replayed as a state).
pub fn state(random: &[u8; 32]) -> (String, String) {
    let state = URL_SAFE_NO_PAD.encode(random);
    let hash = state_hash(&state);
    (state, hash)
}

pub fn state_hash(state: &str) -> String {
    Sha256::digest(state.as_bytes())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// Everything the authorization URL carries.
pub struct Authorization<'a> {
    pub provider: Provider,
    pub purpose: Purpose,
    /// Google: `https://accounts.google.com` (crm.google_accounts_base_url); Microsoft:
    /// `https://login.microsoftonline.com` (crm.microsoft_login_base_url).
    pub base_url: &'a str,
    /// Microsoft's tenant (crm.microsoft_tenant).
    pub tenant: &'a str,
    pub client_id: &'a str,
    pub redirect_uri: &'a str,
    pub state: &'a str,
    pub code_challenge: &'a str,
    pub login_hint: Option<&'a str>,
}

pub fn authorization_url(a: &Authorization) -> String {
    let base = a.base_url.trim_end_matches('/');
    let scope = scopes(a.provider, a.purpose).join(" ");
    let mut q = form_urlencoded::Serializer::new(String::new());
    q.append_pair("client_id", a.client_id)
        .append_pair("redirect_uri", a.redirect_uri)
        .append_pair("response_type", "code")
        .append_pair("scope", &scope)
        .append_pair("state", a.state)
        .append_pair("code_challenge", a.code_challenge)
        .append_pair("code_challenge_method", "S256");
    let path = match a.provider {
        Provider::Google => {
            // offline + consent: a refresh token every time; granted scopes accumulate, so
            // adding Calendar keeps Gmail.
            q.append_pair("access_type", "offline")
                .append_pair("prompt", "consent")
                .append_pair("include_granted_scopes", "true");
            "/o/oauth2/v2/auth".to_string()
        }
        Provider::Microsoft => {
            q.append_pair("response_mode", "query");
            format!("/{}/oauth2/v2.0/authorize", a.tenant)
        }
    };
    if let Some(hint) = a.login_hint.filter(|h| !h.is_empty()) {
        q.append_pair("login_hint", hint);
    }
    format!("{base}{path}?{}", q.finish())
}

/// The form of the code exchange (`grant_type=authorization_code`).
pub fn code_exchange_form<'a>(
    provider: Provider,
    purpose: Purpose,
    code: &'a str,
    redirect_uri: &'a str,
    code_verifier: &'a str,
    client_id: &'a str,
    client_secret: &'a str,
) -> Vec<(&'static str, String)> {
    let mut form = vec![
        ("grant_type", "authorization_code".to_string()),
        ("code", code.to_string()),
        ("redirect_uri", redirect_uri.to_string()),
        ("code_verifier", code_verifier.to_string()),
        ("client_id", client_id.to_string()),
        ("client_secret", client_secret.to_string()),
    ];
    if provider == Provider::Microsoft {
        form.push(("scope", scopes(provider, purpose).join(" ")));
    }
    form
}

/// What a successful code exchange gave.
#[derive(Debug, Clone, PartialEq)]
pub struct Granted {
    pub access_token: String,
    /// None when the provider sent none (Google, when the user had consented before and
    /// `prompt=consent` was not honoured): the stored one is kept.
    pub refresh_token: Option<String>,
    pub expires_in: i64,
    pub scopes: Vec<String>,
}

/// A provider's refusal, with the reference document's troubleshooting advice.
#[derive(Debug, Clone, PartialEq)]
pub struct Refusal {
    /// The provider's error code (`invalid_client`, `AADSTS700016`, ...), or `http_<status>`.
    pub error: String,
    pub description: String,
    pub hint: Option<&'static str>,
}

impl Refusal {
    pub fn new(error: &str, description: &str) -> Refusal {
        let clean =
            |s: &str| -> String { s.chars().filter(|c| !c.is_control()).take(300).collect() };
        let error = clean(error);
        let description = clean(description);
        let hint = hint_for(&error, &description);
        Refusal {
            error,
            description,
            hint,
        }
    }
}

/// The troubleshooting advice for a provider error (the reference document's table).
pub fn hint_for(error: &str, description: &str) -> Option<&'static str> {
    let aadsts = |code: &str| description.contains(code) || error.contains(code);
    if aadsts("AADSTS700016") {
        return Some("the application was not found in the tenant: for an app that serves any Microsoft account, set crm.microsoft_tenant = 'common' (or use the tenant the app is registered in)");
    }
    if aadsts("AADSTS65004") || aadsts("AADSTS65001") || aadsts("AADSTS90094") {
        return Some("the tenant requires an administrator's consent for these permissions: ask an admin to grant consent for the app in Entra ID, then connect again");
    }
    if aadsts("AADSTS50011") {
        return Some("the redirect URI is not registered for the app: add this exact URI (scheme, host, port, path) under Authentication in the app registration");
    }
    match error {
        "invalid_client" | "unauthorized_client" => Some("the client id or secret (crm.google_client_id/secret, crm.microsoft_client_id/secret) does not match the app in the provider's console, or the secret has expired"),
        "redirect_uri_mismatch" => Some("the redirect URI is not registered for this client: add the exact URI (scheme, host, port, path) to the OAuth client's authorized redirect URIs"),
        "access_denied" | "consent_required" | "interaction_required" => Some("the user declined (or cancelled) the consent screen: ask them to connect again and accept the permissions"),
        "invalid_grant" => Some("the authorization code expired, was already used, or was issued for another redirect URI or PKCE verifier: start the connection again"),
        "invalid_scope" => Some("a requested scope is not enabled for the app: enable the API (Gmail, Calendar, People) in the Google Cloud console, or add the permission in the app registration"),
        "admin_policy_enforced" => Some("the user's organisation does not allow this app: an administrator must allow it"),
        _ => None,
    }
}

/// What the token endpoint's answer to a code exchange means.
pub fn parse_code_answer(answer: &Answer) -> Result<Granted, Refusal> {
    let json: Option<Value> = serde_json::from_str(&answer.body).ok();
    let field = |k: &str| {
        json.as_ref()
            .and_then(|j| j.get(k))
            .and_then(Value::as_str)
            .map(str::to_owned)
    };
    match answer.status {
        Some(200..=299) => {
            let access = field("access_token")
                .filter(|s| !s.is_empty())
                .ok_or_else(|| {
                    Refusal::new(
                        "invalid_response",
                        "the token endpoint answered without an access_token",
                    )
                })?;
            Ok(Granted {
                access_token: access,
                refresh_token: field("refresh_token").filter(|s| !s.is_empty()),
                expires_in: json
                    .as_ref()
                    .and_then(|j| j.get("expires_in"))
                    .and_then(Value::as_i64)
                    .unwrap_or(3600)
                    .clamp(0, 86400 * 30),
                scopes: field("scope")
                    .unwrap_or_default()
                    .split_whitespace()
                    .map(str::to_owned)
                    .collect(),
            })
        }
        Some(status) => Err(match field("error") {
            Some(e) => Refusal::new(&e, &field("error_description").unwrap_or_default()),
            None => Refusal::new(&format!("http_{status}"), &answer.body),
        }),
        None => Err(Refusal::new(
            "unreachable",
            answer.error.as_deref().unwrap_or("no answer"),
        )),
    }
}

/// The connected account's address: Google's OpenID userinfo (`email`, only when
/// `email_verified` is not false), Graph's `GET /me` (`mail`, else `userPrincipalName`).
pub fn parse_address(provider: Provider, body: &str) -> Option<String> {
    let j: Value = serde_json::from_str(body).ok()?;
    let s = |k: &str| j.get(k).and_then(Value::as_str).filter(|s| !s.is_empty());
    let address = match provider {
        Provider::Google => {
            if j.get("email_verified").and_then(Value::as_bool) == Some(false) {
                return None;
            }
            s("email")
        }
        Provider::Microsoft => s("mail").or_else(|| s("userPrincipalName")),
    }?;
    (address.len() <= 320 && address.contains('@') && !address.chars().any(char::is_control))
        .then(|| address.to_string())
}

/// A redirect URI the flow accepts: absolute https (or http to localhost, for development),
/// no fragment (RFC 6749 §3.1.2), no credentials, at most 2,000 characters.
pub fn check_redirect_uri(uri: &str) -> Result<(), &'static str> {
    if uri.len() > 2000 || uri.chars().any(|c| c.is_control() || c == ' ') {
        return Err(
            "redirect_uri must be at most 2000 characters, without spaces or control characters",
        );
    }
    let rest = if let Some(r) = uri.strip_prefix("https://") {
        r
    } else if let Some(r) = uri.strip_prefix("http://") {
        let host = r.split(['/', '?']).next().unwrap_or("");
        let host = host.rsplit_once(':').map_or(host, |(h, _)| h);
        if !matches!(host, "localhost" | "127.0.0.1" | "[::1]") {
            return Err("redirect_uri must be https (http only to localhost)");
        }
        r
    } else {
        return Err("redirect_uri must be an absolute https URL");
    };
    let authority = rest.split(['/', '?']).next().unwrap_or("");
    if authority.is_empty() || authority.contains('@') {
        return Err("redirect_uri must name a host (and no user:password@)");
    }
    if uri.contains('#') {
        return Err("redirect_uri must not contain a fragment (#)");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pkce_is_s256_of_a_43_character_verifier() {
        // RFC 7636 appendix B's example.
        let bytes: [u8; 32] = [
            116, 24, 223, 180, 151, 153, 224, 37, 79, 250, 96, 125, 216, 173, 187, 186, 22, 212,
            37, 77, 105, 214, 191, 240, 91, 88, 5, 88, 83, 132, 141, 121,
        ];
        let p = pkce(&bytes);
        assert_eq!(p.verifier, "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk");
        assert_eq!(p.challenge, "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM");
    }

    #[test]
    fn google_authorization_url_asks_offline_consent_with_pkce_and_keeps_granted_scopes() {
        let url = authorization_url(&Authorization {
            provider: Provider::Google,
            purpose: Purpose::Calendar,
            base_url: "https://accounts.google.com/",
            tenant: "common",
            client_id: "123.apps.googleusercontent.com",
            redirect_uri: "https://app.example/cb?x=1",
            state: "st",
            code_challenge: "ch",
            login_hint: Some("dana@317plumber.com"),
        });
        assert!(url.starts_with("https://accounts.google.com/o/oauth2/v2/auth?client_id=123.apps.googleusercontent.com&redirect_uri=https%3A%2F%2Fapp.example%2Fcb%3Fx%3D1&response_type=code&scope=openid+email+https%3A%2F%2Fwww.googleapis.com%2Fauth%2Fcalendar.events&state=st&code_challenge=ch&code_challenge_method=S256"), "{url}");
        for part in [
            "access_type=offline",
            "prompt=consent",
            "include_granted_scopes=true",
            "login_hint=dana%40317plumber.com",
        ] {
            assert!(url.contains(part), "{part} in {url}");
        }
        assert!(!url.contains("plain"));
    }

    #[test]
    fn microsoft_authorization_url_uses_the_tenant_and_offline_access() {
        let url = authorization_url(&Authorization {
            provider: Provider::Microsoft,
            purpose: Purpose::Email,
            base_url: "https://login.microsoftonline.com",
            tenant: "organizations",
            client_id: "cid",
            redirect_uri: "http://localhost:3000/cb",
            state: "st",
            code_challenge: "ch",
            login_hint: None,
        });
        assert!(url
            .starts_with("https://login.microsoftonline.com/organizations/oauth2/v2.0/authorize?"));
        assert!(url.contains("scope=openid+email+offline_access+User.Read+Mail.Send"));
        assert!(url.contains("code_challenge_method=S256"));
        assert!(!url.contains("login_hint"));
    }

    #[test]
    fn partial_consent_is_found() {
        let granted = vec!["openid".to_string(), "email".to_string()];
        assert_eq!(
            missing_scopes(Provider::Google, Purpose::Email, &granted),
            vec!["https://www.googleapis.com/auth/gmail.send"]
        );
        let ms = vec![
            "https://graph.microsoft.com/mail.send".to_string(),
            "User.Read".to_string(),
        ];
        assert!(missing_scopes(Provider::Microsoft, Purpose::Email, &ms).is_empty());
        assert_eq!(
            missing_scopes(Provider::Microsoft, Purpose::Calendar, &ms),
            vec!["Calendars.ReadWrite"]
        );
    }

    #[test]
    fn code_answers_and_refusals() {
        let ok = Answer {
            status: Some(200),
            body: r#"{"access_token":"at","expires_in":3599,"refresh_token":"rt","scope":"openid email https://www.googleapis.com/auth/gmail.send"}"#.into(),
            ..Answer::default()
        };
        let g = parse_code_answer(&ok).unwrap();
        assert_eq!(
            (
                g.access_token.as_str(),
                g.refresh_token.as_deref(),
                g.expires_in,
                g.scopes.len()
            ),
            ("at", Some("rt"), 3599, 3)
        );
        let bad = Answer {
            status: Some(400),
            body: r#"{"error":"invalid_grant","error_description":"Bad Request"}"#.into(),
            ..Answer::default()
        };
        let r = parse_code_answer(&bad).unwrap_err();
        assert_eq!(r.error, "invalid_grant");
        assert!(r.hint.unwrap().contains("expired"));
        let tenant = Answer {
            status: Some(400),
            body: r#"{"error":"unauthorized_client","error_description":"AADSTS700016: Application with identifier 'x' was not found in the directory"}"#.into(),
            ..Answer::default()
        };
        assert!(parse_code_answer(&tenant)
            .unwrap_err()
            .hint
            .unwrap()
            .contains("common"));
        let down = Answer {
            error: Some("connection refused".into()),
            ..Answer::default()
        };
        assert_eq!(parse_code_answer(&down).unwrap_err().error, "unreachable");
    }

    #[test]
    fn addresses() {
        assert_eq!(
            parse_address(
                Provider::Google,
                r#"{"sub":"1","email":"a@b.co","email_verified":true}"#
            )
            .as_deref(),
            Some("a@b.co")
        );
        assert_eq!(
            parse_address(
                Provider::Google,
                r#"{"email":"a@b.co","email_verified":false}"#
            ),
            None
        );
        assert_eq!(
            parse_address(
                Provider::Microsoft,
                r#"{"mail":null,"userPrincipalName":"u@t.onmicrosoft.com"}"#
            )
            .as_deref(),
            Some("u@t.onmicrosoft.com")
        );
        assert_eq!(
            parse_address(Provider::Microsoft, r#"{"mail":"not an address"}"#),
            None
        );
    }

    #[test]
    fn redirect_uris() {
        assert!(check_redirect_uri("https://app.example.com/integrations/callback").is_ok());
        assert!(check_redirect_uri("http://localhost:3000/cb").is_ok());
        assert!(check_redirect_uri("http://127.0.0.1:8080/cb").is_ok());
        for bad in [
            "http://evil.example/cb",
            "javascript:alert(1)",
            "https://a.example/cb#frag",
            "https://user:pw@a.example/",
            "https:///x",
            "ftp://a/",
        ] {
            assert!(check_redirect_uri(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn states_hash_and_differ() {
        let (s1, h1) = state(&[1; 32]);
        let (s2, h2) = state(&[2; 32]);
        assert_ne!(s1, s2);
        assert_ne!(h1, h2);
        assert_eq!(h1.len(), 64);
        assert_eq!(state_hash(&s1), h1);
    }
}
