//! OAuth 2.0 refresh-token grant (RFC 6749 §6) for the Gmail and Microsoft connections in
//! `email_providers`: the form to post and what the token endpoint's answer means.
//! Google: `POST https://oauth2.googleapis.com/token`; Microsoft:
//! `POST https://login.microsoftonline.com/{tenant}/oauth2/v2.0/token` (it may rotate the
//! refresh token, so a new one in the answer replaces the stored one).

use super::outcome::Answer;
use serde_json::Value;

/// Graph's scope for sending; Google's refresh keeps the scopes of the original consent.
pub const MICROSOFT_SCOPE: &str = "offline_access https://graph.microsoft.com/Mail.Send";

/// Refresh this many seconds before the recorded expiry, so a token does not lapse in flight.
pub const EXPIRY_MARGIN_SECS: i64 = 60;

/// Microsoft's refresh must ask for the scopes of the original consent (or fewer): those
/// stored with the connection, else (a mailbox stored before 0.4.0 recorded scopes) Mail.Send.
pub fn microsoft_refresh_scope(stored: &[String]) -> String {
    let graph: Vec<&str> = stored
        .iter()
        .map(String::as_str)
        .filter(|s| !matches!(*s, "openid" | "email" | "profile" | "offline_access"))
        .collect();
    if graph.is_empty() {
        MICROSOFT_SCOPE.to_string()
    } else {
        format!("offline_access {}", graph.join(" "))
    }
}

/// `microsoft_scope`: see `microsoft_refresh_scope` (ignored for Google, whose refresh keeps
/// the scopes of the consent).
pub fn refresh_form<'a>(
    provider: &str,
    client_id: &'a str,
    client_secret: &'a str,
    refresh_token: &'a str,
    microsoft_scope: &'a str,
) -> Vec<(&'static str, &'a str)> {
    let mut form = vec![
        ("grant_type", "refresh_token"),
        ("refresh_token", refresh_token),
        ("client_id", client_id),
        ("client_secret", client_secret),
    ];
    if provider == "microsoft" {
        form.push(("scope", microsoft_scope));
    }
    form
}

#[derive(Debug, Clone, PartialEq)]
pub struct Token {
    pub access_token: String,
    pub expires_in: i64,
    pub refresh_token: Option<String>,
}

#[derive(Debug, Clone, PartialEq)]
pub enum RefreshError {
    /// `invalid_grant`: the refresh token was revoked or expired. Only the user can fix this
    /// (by connecting again): the connection is marked inactive.
    Revoked(String),
    /// Anything else (network, 5xx, a misconfigured client): handled like a failed send.
    Failed(Answer),
}

pub fn parse_answer(answer: Answer) -> Result<Token, RefreshError> {
    let json: Option<Value> = serde_json::from_str(&answer.body).ok();
    match answer.status {
        Some(200..=299) => {
            let j = json.ok_or_else(|| RefreshError::Failed(answer.clone()))?;
            let access = j
                .get("access_token")
                .and_then(Value::as_str)
                .filter(|s| !s.is_empty());
            match access {
                Some(a) => Ok(Token {
                    access_token: a.to_string(),
                    expires_in: j
                        .get("expires_in")
                        .and_then(Value::as_i64)
                        .unwrap_or(3600)
                        .clamp(0, 86400 * 30),
                    refresh_token: j
                        .get("refresh_token")
                        .and_then(Value::as_str)
                        .map(str::to_owned),
                }),
                None => Err(RefreshError::Failed(Answer {
                    status: Some(502),
                    ..answer
                })),
            }
        }
        Some(_)
            if json
                .as_ref()
                .and_then(|j| j.get("error"))
                .and_then(Value::as_str)
                == Some("invalid_grant") =>
        {
            let j = json.expect("checked");
            let desc = j
                .get("error_description")
                .and_then(Value::as_str)
                .unwrap_or("");
            let desc: String = desc.chars().filter(|c| !c.is_control()).take(300).collect();
            Err(RefreshError::Revoked(format!("invalid_grant: {desc}")))
        }
        _ => Err(RefreshError::Failed(answer)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn answer(status: u16, body: &str) -> Answer {
        Answer {
            status: Some(status),
            body: body.into(),
            ..Answer::default()
        }
    }

    #[test]
    fn answers() {
        assert_eq!(
            parse_answer(answer(
                200,
                r#"{"access_token":"ya29.a","expires_in":3599,"scope":"s","token_type":"Bearer"}"#
            )),
            Ok(Token {
                access_token: "ya29.a".into(),
                expires_in: 3599,
                refresh_token: None
            })
        );
        assert_eq!(
            parse_answer(answer(
                200,
                r#"{"access_token":"EwB","expires_in":4000,"refresh_token":"M.R3"}"#
            ))
            .unwrap()
            .refresh_token
            .as_deref(),
            Some("M.R3")
        );
        assert_eq!(
            parse_answer(answer(
                400,
                r#"{"error":"invalid_grant","error_description":"Token has been expired or revoked."}"#
            )),
            Err(RefreshError::Revoked(
                "invalid_grant: Token has been expired or revoked.".into()
            ))
        );
        assert!(matches!(
            parse_answer(answer(401, r#"{"error":"invalid_client"}"#)),
            Err(RefreshError::Failed(_))
        ));
        assert!(matches!(
            parse_answer(answer(503, "")),
            Err(RefreshError::Failed(_))
        ));
        assert!(
            matches!(parse_answer(answer(200, "{}")), Err(RefreshError::Failed(a)) if a.status == Some(502))
        );
        let form = refresh_form("microsoft", "cid", "sec", "rt", MICROSOFT_SCOPE);
        assert!(
            form.contains(&("grant_type", "refresh_token"))
                && form.contains(&("scope", MICROSOFT_SCOPE))
        );
        assert_eq!(microsoft_refresh_scope(&[]), MICROSOFT_SCOPE);
        assert_eq!(
            microsoft_refresh_scope(&[
                "openid".into(),
                "offline_access".into(),
                "https://graph.microsoft.com/Calendars.ReadWrite".into()
            ]),
            "offline_access https://graph.microsoft.com/Calendars.ReadWrite"
        );
        assert!(!refresh_form("gmail", "cid", "sec", "rt", MICROSOFT_SCOPE)
            .iter()
            .any(|(k, _)| *k == "scope"));
    }
}
