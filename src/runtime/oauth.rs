//! Mailbox tokens for Gmail and Microsoft rows: decrypt the connection's access token (in
//! process, never in SQL), refresh it at the provider's token endpoint when it is about to
//! expire (or was just refused with 401), and remember what changed so the record step stores
//! it: the new tokens encrypted, or the connection marked inactive after `invalid_grant`.
//!
//! Runs with no transaction open in the worker, so nothing in here may raise an ERROR.

use super::http;
use crate::guc;
use crate::vault::TokenError;
use chrono::Utc;
use crm_core::runtime::oauth::{self, RefreshError, EXPIRY_MARGIN_SECS};
use crm_core::runtime::outcome::Answer;
use serde::{Deserialize, Serialize};
use std::collections::HashMap;

/// A mailbox connection (`email_providers`) as the claim hands it over: tokens still
/// encrypted (the vault's ciphertext, bound to the row).
#[derive(Debug, Clone, Deserialize)]
pub struct Connection {
    pub id: String,
    /// gmail / google, or microsoft / outlook
    pub provider: String,
    /// Which table it is a row of (the vault context of its tokens).
    #[serde(default = "email_providers")]
    pub table: String,
    /// The scopes of its consent (Microsoft's refresh asks for them again).
    #[serde(default)]
    pub scopes: Vec<String>,
    pub access_token: Option<String>,
    pub refresh_token: Option<String>,
    /// Unix seconds.
    pub expires_at: Option<f64>,
}

fn email_providers() -> String {
    "email_providers".to_string()
}

/// What a round learnt about a connection, for `crm._record_email_outcomes`' `connections`:
/// new tokens (encrypted) after a refresh, or the reason it was revoked.
#[derive(Debug, Clone, Serialize)]
pub struct ConnectionUpdate {
    pub id: String,
    /// The connection's table: ids are unique within a table, not across the three (a tenant
    /// may choose a row's id), so an update names both.
    pub table: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub access_token: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub refresh_token: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub expires_in: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub revoked: Option<String>,
}

/// Why no token: `Revoked` fails the message (the user must connect again); `Failed` is
/// judged like a failed send (a token endpoint outage, missing vault keys: retried);
/// `Unusable` (a token that does not decrypt, an expired one with no refresh token) fails the
/// message.
pub enum NoToken {
    Revoked(String),
    /// The answer, and which step gave it ("token refresh: ", "mailbox token: ").
    Failed(Answer, &'static str),
    Unusable(String),
}

/// The connections met in one send round, so rows sharing a mailbox decrypt and refresh once.
#[derive(Default)]
pub struct Mailboxes {
    tokens: HashMap<String, String>,
    revoked: HashMap<String, String>,
    refreshed: HashMap<String, bool>,
    failures: HashMap<String, Answer>,
    updates: Vec<ConnectionUpdate>,
    /// A caller waits (crm.create_draft): refreshes run on the interruptible path.
    interactive: bool,
}

/// `crm.microsoft_tenant` goes into the token URL's path: only a tenant name or id (letters,
/// digits, dots, hyphens) may, so a stray `/` or `?` cannot point the request elsewhere.
fn tenant() -> Result<String, NoToken> {
    let t = guc::text(&crate::integrations::microsoft::settings::MICROSOFT_TENANT)
        .trim()
        .to_string();
    if t.is_empty()
        || t.len() > 100
        || !t
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '.' || c == '-')
    {
        // Retried like an outage: the setting can be fixed before the attempts run out.
        let error = "crm.microsoft_tenant must be common, organizations, consumers, a tenant id or a domain".to_string();
        return Err(NoToken::Failed(
            Answer {
                error: Some(error),
                ..Answer::default()
            },
            "token refresh: ",
        ));
    }
    Ok(t)
}

/// Key settings missing or malformed: retried (an admin can fix them before the attempts run
/// out), like a missing API key. A token that does not decrypt: the message fails.
fn no_token(e: TokenError) -> NoToken {
    match e {
        TokenError::Keys(msg) => NoToken::Failed(
            Answer {
                error: Some(msg),
                ..Answer::default()
            },
            "mailbox token: ",
        ),
        TokenError::Token(msg) => NoToken::Unusable(msg),
    }
}

fn context(table: &str, id: &str, which: &str) -> String {
    format!("{table}:{id}:{which}")
}

impl Mailboxes {
    /// For a backend whose caller waits: a token refresh stays cancellable
    /// (statement_timeout, pg_cancel_backend).
    pub fn interactive() -> Mailboxes {
        Mailboxes {
            interactive: true,
            ..Mailboxes::default()
        }
    }

    /// What to hand `crm._record_email_outcomes` as its `connections`.
    pub fn updates(self) -> Vec<ConnectionUpdate> {
        self.updates
    }

    /// An access token for the claimed row's `connection`; `force` refreshes even when the
    /// recorded expiry says it is still good (the provider just refused it).
    pub fn token(&mut self, connection: &Connection, force: bool) -> Result<String, NoToken> {
        let id = connection.id.clone();
        if let Some(reason) = self.revoked.get(&id) {
            return Err(NoToken::Revoked(reason.clone()));
        }
        if let Some(answer) = self.failures.get(&id) {
            return Err(NoToken::Failed(answer.clone(), "token refresh: "));
        }
        let already = self.refreshed.get(&id).copied().unwrap_or(false);
        if let Some(t) = self.tokens.get(&id) {
            if !force || already {
                return Ok(t.clone());
            }
        }
        let expires_at = connection.expires_at;
        let due = expires_at
            .is_some_and(|at| at - (Utc::now().timestamp() as f64) < EXPIRY_MARGIN_SECS as f64);
        if !due && !force {
            let t = connection
                .access_token
                .as_deref()
                .ok_or_else(|| NoToken::Unusable("the connection has no access token".into()))?;
            let t = crate::vault::open_token(t, &context(&connection.table, &id, "access_token"))
                .map_err(no_token)?;
            self.tokens.insert(id, t.clone());
            return Ok(t);
        }
        if already {
            return self
                .tokens
                .get(&id)
                .cloned()
                .ok_or_else(|| NoToken::Unusable("the token was refused".into()));
        }
        self.refresh(&id, connection)
    }

    fn refresh(&mut self, id: &str, connection: &Connection) -> Result<String, NoToken> {
        self.refreshed.insert(id.to_string(), true);
        let provider = connection.provider.as_str();
        let Some(sealed) = connection.refresh_token.as_deref() else {
            return Err(NoToken::Unusable(format!(
                "the {provider} access token has expired and the connection has no refresh token"
            )));
        };
        let refresh_token =
            crate::vault::open_token(sealed, &context(&connection.table, id, "refresh_token"))
                .map_err(no_token)?;
        let google = matches!(provider, "gmail" | "google");
        let (url, client_id, secret) = match google {
            true => (
                http::url(
                    &guc::text(&crate::integrations::google::settings::GOOGLE_OAUTH_BASE_URL),
                    "/token",
                ),
                guc::text(&crate::integrations::google::settings::GOOGLE_CLIENT_ID),
                guc::text(&crate::integrations::google::settings::GOOGLE_CLIENT_SECRET),
            ),
            false => (
                http::url(
                    &guc::text(&crate::integrations::microsoft::settings::MICROSOFT_LOGIN_BASE_URL),
                    &format!("/{}/oauth2/v2.0/token", tenant()?),
                ),
                guc::text(&crate::integrations::microsoft::settings::MICROSOFT_CLIENT_ID),
                guc::text(&crate::integrations::microsoft::settings::MICROSOFT_CLIENT_SECRET),
            ),
        };
        let scope = oauth::microsoft_refresh_scope(&connection.scopes);
        let form = oauth::refresh_form(
            if google { "google" } else { "microsoft" },
            &client_id,
            &secret,
            &refresh_token,
            &scope,
        );
        let answer = if self.interactive {
            let owned = form
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect();
            http::post_form_interruptible(url, owned)
        } else {
            http::post_form(&url, &form)
        };
        match oauth::parse_answer(answer) {
            Ok(token) => {
                let seal = |t: &str, which| {
                    crate::vault::seal_token(t, &context(&connection.table, id, which))
                        .map_err(no_token)
                };
                let access = seal(&token.access_token, "access_token")?;
                let refresh = token
                    .refresh_token
                    .as_deref()
                    .map(|t| seal(t, "refresh_token"))
                    .transpose()?;
                self.updates.push(ConnectionUpdate {
                    id: id.to_string(),
                    table: connection.table.clone(),
                    access_token: Some(access),
                    refresh_token: refresh,
                    expires_in: Some(token.expires_in as f64),
                    revoked: None,
                });
                self.tokens
                    .insert(id.to_string(), token.access_token.clone());
                Ok(token.access_token)
            }
            Err(RefreshError::Revoked(reason)) => {
                let reason = format!("{provider} refused the refresh token ({reason}); the connection is now inactive until it is connected again");
                self.updates.push(ConnectionUpdate {
                    id: id.to_string(),
                    table: connection.table.clone(),
                    access_token: None,
                    refresh_token: None,
                    expires_in: None,
                    revoked: Some(reason.clone()),
                });
                self.revoked.insert(id.to_string(), reason.clone());
                Err(NoToken::Revoked(reason))
            }
            Err(RefreshError::Failed(answer)) => {
                self.failures.insert(id.to_string(), answer.clone());
                Err(NoToken::Failed(answer, "token refresh: "))
            }
        }
    }
}

/// `oauth.refresh`: refresh a connected mailbox's access token now (payload
/// `{"connection_id": uuid}`), so a connection that sends rarely stays alive and a revoked
/// one is found before a user's email fails. A refused refresh token (invalid_grant) marks
/// the connection inactive and fails the task; a token endpoint outage or 429 is retried by
/// the shared rules. Refreshing twice is harmless, so a repeat after a crash is too.
pub struct RefreshConnection;

impl crate::runtime::tasks::TaskKind for RefreshConnection {
    fn name(&self) -> &'static str {
        "oauth.refresh"
    }
    fn description(&self) -> &'static str {
        "refresh a connection's OAuth access token now (payload {\"connection_id\": uuid}); scheduled ahead of expiry by the workers"
    }
    fn check(&self, payload: &serde_json::Value) -> Result<(), String> {
        let id = payload
            .get("connection_id")
            .and_then(serde_json::Value::as_str)
            .ok_or("the payload needs connection_id (an email_providers id)")?;
        crm_core::email::message::is_uuid(id)
            .then_some(())
            .ok_or_else(|| "connection_id must be a uuid".to_string())
    }
    fn context_sql(&self) -> Option<&'static str> {
        Some(
            "SELECT json_build_object('id', p.id, 'provider', p.provider, 'table', p.t, 'scopes', p.scopes,
                    'is_active', p.is_active AND NOT p.needs_reconnect,
                    'access_token', p.access_token_encrypted, 'refresh_token', p.refresh_token_encrypted,
                    'expires_at', extract(epoch FROM p.token_expires_at))
             FROM (SELECT 'email_providers' AS t, id, account_id, provider, access_token_encrypted, refresh_token_encrypted, token_expires_at, is_active, needs_reconnect, scopes FROM crm.email_providers WHERE provider IN ('gmail', 'microsoft')
                   UNION ALL SELECT 'calendar_providers', id, account_id, provider, access_token_encrypted, refresh_token_encrypted, token_expires_at, is_active, needs_reconnect, scopes FROM crm.calendar_providers
                   UNION ALL SELECT 'contact_providers', id, account_id, provider, access_token_encrypted, refresh_token_encrypted, token_expires_at, is_active, needs_reconnect, scopes FROM crm.contact_providers) p
             WHERE p.id = ($2 ->> 'connection_id')::uuid AND p.account_id = $1::uuid",
        )
    }
    fn run(
        &self,
        task: &crate::runtime::tasks::Task,
        _checkpoint: crm_core::template::budget::Checkpoint,
    ) -> crate::runtime::tasks::Ran {
        use crate::runtime::tasks::{Ran, Step};
        #[derive(Deserialize)]
        struct Found {
            #[serde(flatten)]
            connection: Connection,
            is_active: bool,
        }
        let found = match serde_json::from_value::<Option<Found>>(task.context.clone()) {
            Ok(Some(found)) => found,
            Ok(None) => {
                return Step::Failed("the connection does not exist (any more)".into()).into()
            }
            Err(e) => return Step::Failed(format!("the connection cannot be read: {e}")).into(),
        };
        if !found.is_active {
            return Step::Failed("the connection is inactive: the user must connect again".into())
                .into();
        }
        let mut mailboxes = Mailboxes::default();
        let result = mailboxes.token(&found.connection, true);
        let apply = mailboxes
            .updates()
            .into_iter()
            .next()
            .and_then(|u| serde_json::to_value(u).ok());
        let step = match result {
            Ok(_) => Step::Done(serde_json::json!({"refreshed": true})),
            Err(NoToken::Revoked(reason) | NoToken::Unusable(reason)) => Step::Failed(reason),
            Err(NoToken::Failed(answer, what)) => Step::Answered(answer, what),
        };
        Ran { step, apply }
    }
    fn apply_sql(&self) -> Option<&'static str> {
        Some("SELECT crm._record_connection_updates(json_build_array($3::json))")
    }
}
