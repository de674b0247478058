//! The connect flow's Rust side (the SQL is sql/connections.sql; the protocol as data is
//! `crm_core::runtime::connect`): `crm._oauth_begin` builds the state, PKCE pair and
//! authorization URL; `crm._oauth_connect` exchanges the code, reads the address, checks the
//! scopes and stores the connection with its tokens sealed in the vault; `crm._oauth_revoke`
//! revokes at Google on disconnect.
//!
//! These are interactive calls a frontend waits for: one short HTTP exchange inside the
//! caller's transaction, bounded by crm.http_timeout. A provider that cannot be reached fails
//! the call with a clear message and nothing is stored (the transaction rolls back).

use super::http;
use crate::errors::raise;
use crate::guc;
use crate::integrations::google::settings as google;
use crate::integrations::microsoft::settings as microsoft;
use crm_core::runtime::connect::{self, Provider, Purpose, Refusal};
use pgrx::prelude::*;
use pgrx::JsonB;
use rand_core::{OsRng, RngCore};
use serde_json::json;

const DOMAIN: &str = "crm.connect";

fn invalid(msg: impl Into<String>) -> ! {
    raise(
        PgSqlErrorCode::ERRCODE_INVALID_PARAMETER_VALUE,
        msg,
        None,
        DOMAIN,
    )
}

fn not_configured(msg: impl Into<String>) -> ! {
    raise(
        PgSqlErrorCode::ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE,
        msg,
        Some("a superuser sets the app's client id and secret (see the README's Connections section)"),
        DOMAIN,
    )
}

fn refused(provider: Provider, what: &str, r: &Refusal) -> ! {
    let msg = format!(
        "{} refused {what}: {}: {}",
        provider.name(),
        r.error,
        r.description
    );
    if r.error == "unreachable" {
        raise(
            PgSqlErrorCode::ERRCODE_SQLCLIENT_UNABLE_TO_ESTABLISH_SQLCONNECTION,
            format!("{} could not be reached for {what}: {}", provider.name(), r.description),
            Some("nothing was stored; try again when the provider answers (crm.http_timeout bounds the wait)"),
            DOMAIN,
        );
    }
    raise(
        PgSqlErrorCode::ERRCODE_INVALID_AUTHORIZATION_SPECIFICATION,
        msg,
        r.hint,
        DOMAIN,
    )
}

fn random32() -> [u8; 32] {
    let mut b = [0u8; 32];
    OsRng.fill_bytes(&mut b);
    b
}

/// The tenant for Microsoft's URLs: a name or id only (it goes into a path).
fn tenant() -> String {
    let t = guc::text(&microsoft::MICROSOFT_TENANT).trim().to_string();
    if t.is_empty()
        || t.len() > 100
        || !t
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '.' || c == '-')
    {
        not_configured("crm.microsoft_tenant must be common, organizations, consumers, a tenant id or a domain");
    }
    t
}

struct App {
    client_id: String,
    client_secret: String,
}

fn app(provider: Provider) -> App {
    let (id, secret) = match provider {
        Provider::Google => (
            guc::text(&google::GOOGLE_CLIENT_ID),
            guc::text(&google::GOOGLE_CLIENT_SECRET),
        ),
        Provider::Microsoft => (
            guc::text(&microsoft::MICROSOFT_CLIENT_ID),
            guc::text(&microsoft::MICROSOFT_CLIENT_SECRET),
        ),
    };
    if id.trim().is_empty() {
        not_configured(format!("crm.{}_client_id is not set", provider.name()));
    }
    App {
        client_id: id,
        client_secret: secret,
    }
}

fn parse_provider(s: &str) -> Provider {
    Provider::parse(s).unwrap_or_else(|| invalid("provider must be google or microsoft"))
}

fn parse_purpose(s: &str) -> Purpose {
    Purpose::parse(s).unwrap_or_else(|| invalid("purpose must be email, calendar or contacts"))
}

/// State, its hash, the PKCE verifier and the authorization URL (crm.oauth_start stores the
/// hash and the sealed verifier).
#[pg_extern(volatile)]
fn _oauth_begin(
    provider: Option<&str>,
    purpose: Option<&str>,
    redirect_uri: Option<&str>,
    login_hint: Option<&str>,
) -> JsonB {
    // NULLs come straight from a caller of crm.oauth_start: refused like any bad value (a
    // non-Option argument would make pgrx fail with an internal error instead)
    let provider = parse_provider(provider.unwrap_or_default());
    let purpose = parse_purpose(purpose.unwrap_or_default());
    let redirect_uri = redirect_uri.unwrap_or_else(|| invalid("redirect_uri is required"));
    if let Err(e) = connect::check_redirect_uri(redirect_uri) {
        invalid(e);
    }
    if let Some(h) = login_hint {
        if h.len() > 320 || h.chars().any(char::is_control) {
            invalid("login_hint must be an address of at most 320 characters");
        }
    }
    let app = app(provider);
    let (state, state_hash) = connect::state(&random32());
    let pkce = connect::pkce(&random32());
    let base = match provider {
        Provider::Google => guc::text(&google::GOOGLE_ACCOUNTS_BASE_URL),
        Provider::Microsoft => guc::text(&microsoft::MICROSOFT_LOGIN_BASE_URL),
    };
    let tenant = if provider == Provider::Microsoft {
        tenant()
    } else {
        String::new()
    };
    let url = connect::authorization_url(&connect::Authorization {
        provider,
        purpose,
        base_url: &base,
        tenant: &tenant,
        client_id: &app.client_id,
        redirect_uri,
        state: &state,
        code_challenge: &pkce.challenge,
        login_hint,
    });
    JsonB(
        json!({"state": state, "state_hash": state_hash, "verifier": pkce.verifier, "authorization_url": url}),
    )
}

/// The stored hash of a state.
#[pg_extern(immutable, parallel_safe)]
fn _oauth_state_hash(state: &str) -> String {
    connect::state_hash(state)
}

/// The troubleshooting hint for a provider's error code (NULL when there is none).
#[pg_extern(immutable, parallel_safe)]
fn _oauth_hint(error: &str, description: Option<&str>) -> Option<&'static str> {
    connect::hint_for(error, description.unwrap_or(""))
}

/// The table, and the value of its `provider` column, a connection lands in.
fn destination(provider: Provider, purpose: Purpose) -> (&'static str, &'static str) {
    match (purpose, provider) {
        (Purpose::Email, Provider::Google) => ("email_providers", "gmail"),
        (Purpose::Email, Provider::Microsoft) => ("email_providers", "microsoft"),
        (Purpose::Calendar, Provider::Google) => ("calendar_providers", "google"),
        (Purpose::Calendar, Provider::Microsoft) => ("calendar_providers", "outlook"),
        (Purpose::Contacts, Provider::Google) => ("contact_providers", "google"),
        (Purpose::Contacts, Provider::Microsoft) => ("contact_providers", "microsoft"),
    }
}

fn seal(table: &str, id: &str, which: &str, token: &str) -> String {
    crate::vault::seal_token(token, &format!("{table}:{id}:{which}")).unwrap_or_else(|e| {
        raise(
            PgSqlErrorCode::ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE,
            format!("the token cannot be stored: {e}"),
            None,
            DOMAIN,
        )
    })
}

/// Exchange the code of the (already validated and used-up) state `state_id`, read the
/// account's address, check the granted scopes, store the connection. Returns what
/// crm.oauth_complete returns.
#[pg_extern(volatile)]
fn _oauth_connect(state_id: pgrx::Uuid, code: &str) -> JsonB {
    type Row = (String, Option<String>, String, String, String, String);
    let row: Option<Row> = Spi::connect(|client| {
        let mut rows = client.select(
            "SELECT account_id::text, (SELECT u.id::text FROM crm.users u WHERE u.account_id = s.account_id AND u.id::text = s.user_sub),
                    provider, purpose, redirect_uri, verifier_encrypted
             FROM crm.oauth_states s WHERE id = $1",
            None,
            &[state_id.into()],
        )?;
        Ok::<_, pgrx::spi::Error>(match rows.next() {
            Some(r) => Some((
                r.get::<String>(1)?.unwrap_or_default(),
                r.get::<String>(2)?,
                r.get::<String>(3)?.unwrap_or_default(),
                r.get::<String>(4)?.unwrap_or_default(),
                r.get::<String>(5)?.unwrap_or_default(),
                r.get::<String>(6)?.unwrap_or_default(),
            )),
            None => None,
        })
    })
    .unwrap_or_else(|e| pgrx::error!("reading the OAuth state failed: {e}"));
    let Some((account_id, user_id, provider, purpose, redirect_uri, verifier_sealed)) = row else {
        raise(
            PgSqlErrorCode::ERRCODE_INVALID_AUTHORIZATION_SPECIFICATION,
            "unknown OAuth state",
            None,
            DOMAIN,
        )
    };
    let provider = parse_provider(&provider);
    let purpose = parse_purpose(&purpose);
    let verifier = crate::vault::open_token(
        &verifier_sealed,
        &format!("oauth_states:{state_id}:verifier"),
    )
    .unwrap_or_else(|e| {
        raise(
            PgSqlErrorCode::ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE,
            format!("the PKCE verifier cannot be read: {e}"),
            None,
            DOMAIN,
        )
    });
    let app = app(provider);

    // 1. The code for tokens.
    let token_url = match provider {
        Provider::Google => http::url(&guc::text(&google::GOOGLE_OAUTH_BASE_URL), "/token"),
        Provider::Microsoft => http::url(
            &guc::text(&microsoft::MICROSOFT_LOGIN_BASE_URL),
            &format!("/{}/oauth2/v2.0/token", tenant()),
        ),
    };
    let form = connect::code_exchange_form(
        provider,
        purpose,
        code,
        &redirect_uri,
        &verifier,
        &app.client_id,
        &app.client_secret,
    );
    let form: Vec<(String, String)> = form.into_iter().map(|(k, v)| (k.to_string(), v)).collect();
    let granted = connect::parse_code_answer(&http::post_form_interruptible(token_url, form))
        .unwrap_or_else(|r| refused(provider, "the authorization code", &r));

    // 2. Everything the purpose needs was granted (Google lets users untick scopes).
    let missing = connect::missing_scopes(provider, purpose, &granted.scopes);
    if !missing.is_empty() {
        raise(
            PgSqlErrorCode::ERRCODE_INVALID_AUTHORIZATION_SPECIFICATION,
            format!("the user did not grant what {} needs: {}", purpose.name(), missing.join(", ")),
            Some("ask the user to connect again and leave every permission ticked on the consent screen"),
            DOMAIN,
        );
    }

    // 3. Whose account it is.
    let address_url = match provider {
        Provider::Google => http::url(
            &guc::text(&google::GOOGLE_USERINFO_BASE_URL),
            "/v1/userinfo",
        ),
        Provider::Microsoft => {
            http::url(&guc::text(&microsoft::MICROSOFT_GRAPH_BASE_URL), "/v1.0/me")
        }
    };
    let answer = http::bearer_interruptible("GET", address_url, granted.access_token.clone(), None);
    let email = match answer.status {
        Some(200..=299) => connect::parse_address(provider, &answer.body),
        _ => None,
    }
    .unwrap_or_else(|| {
        refused(
            provider,
            "the address lookup",
            &Refusal::new(
                if answer.status.is_none() {
                    "unreachable"
                } else {
                    "no_address"
                },
                &crm_core::runtime::outcome::describe(&answer),
            ),
        )
    });

    // 4. Store: reconnecting the same address updates its row.
    let (table, provider_value) = destination(provider, purpose);
    let existing: Option<String> = Spi::get_one_with_args(
        &format!(
            "SELECT id::text FROM crm.{table} WHERE account_id = $1::uuid AND provider = $2
               AND lower(provider_email) = lower($3) AND user_id IS NOT DISTINCT FROM $4::uuid
             ORDER BY is_active DESC, created_at LIMIT 1"
        ),
        &[
            account_id.as_str().into(),
            provider_value.into(),
            email.as_str().into(),
            user_id.as_deref().into(),
        ],
    )
    .or_else(|e| match e {
        pgrx::spi::Error::InvalidPosition => Ok(None),
        e => Err(e),
    })
    .unwrap_or_else(|e| pgrx::error!("looking up the connection failed: {e}"));
    let id = existing.clone().unwrap_or_else(|| {
        Spi::get_one::<String>("SELECT gen_random_uuid()::text")
            .ok()
            .flatten()
            .unwrap_or_else(|| pgrx::error!("gen_random_uuid failed"))
    });
    let access = seal(table, &id, "access_token", &granted.access_token);
    let refresh = granted
        .refresh_token
        .as_deref()
        .map(|t| seal(table, &id, "refresh_token", t));
    let scopes: Vec<String> = granted.scopes.clone();
    let sql = format!(
        "INSERT INTO crm.{table} AS p (id, account_id, user_id, provider, provider_email, access_token_encrypted,
                                      refresh_token_encrypted, token_expires_at, is_active, is_default, scopes,
                                      connected_at, last_refresh_at, last_error, needs_reconnect)
         VALUES ($1::uuid, $2::uuid, $3::uuid, $4, $5, $6, $7, now() + make_interval(secs => $8), true,
                 NOT EXISTS (SELECT 1 FROM crm.{table} d WHERE d.account_id = $2::uuid AND d.user_id IS NOT DISTINCT FROM $3::uuid
                               AND d.is_default AND d.is_active AND d.id <> $1::uuid),
                 $9, now(), now(), NULL, false)
         ON CONFLICT (id) DO UPDATE SET
             provider_email = EXCLUDED.provider_email,
             access_token_encrypted = EXCLUDED.access_token_encrypted,
             -- Google may send no refresh token on a reconnect: keep the stored one
             refresh_token_encrypted = coalesce(EXCLUDED.refresh_token_encrypted, p.refresh_token_encrypted),
             token_expires_at = EXCLUDED.token_expires_at, is_active = true,
             is_default = p.is_default OR EXCLUDED.is_default, scopes = EXCLUDED.scopes,
             connected_at = now(), last_refresh_at = now(), last_error = NULL, needs_reconnect = false
         RETURNING is_default"
    );
    let is_default: bool = Spi::get_one_with_args(
        &sql,
        &[
            id.as_str().into(),
            account_id.as_str().into(),
            user_id.as_deref().into(),
            provider_value.into(),
            email.as_str().into(),
            access.as_str().into(),
            refresh.as_deref().into(),
            (granted.expires_in as f64).into(),
            scopes.clone().into(),
        ],
    )
    .unwrap_or_else(|e| pgrx::error!("storing the connection failed: {e}"))
    .unwrap_or(false);
    JsonB(json!({
        "connection_id": id, "provider": provider.name(), "purpose": purpose.name(), "email": email,
        "scopes": scopes, "is_default": is_default, "reconnected": existing.is_some()
    }))
}

/// Revoke a connection's grant at the provider before its tokens are dropped (Google's
/// `POST /revoke`; Microsoft has no token revocation endpoint). Best effort: returns what the
/// provider said, never raises for its answer.
#[pg_extern(volatile)]
fn _oauth_revoke(connection_id: pgrx::Uuid, table_name: &str) -> String {
    if !matches!(
        table_name,
        "email_providers" | "calendar_providers" | "contact_providers"
    ) {
        invalid("unknown connection table");
    }
    let row: Option<(Option<String>, Option<String>, Option<String>)> = Spi::connect(|client| {
        let mut rows = client.select(
            &format!("SELECT provider, access_token_encrypted, refresh_token_encrypted FROM crm.{table_name} WHERE id = $1"),
            None,
            &[connection_id.into()],
        )?;
        Ok::<_, pgrx::spi::Error>(match rows.next() {
            Some(r) => Some((r.get::<String>(1)?, r.get::<String>(2)?, r.get::<String>(3)?)),
            None => None,
        })
    })
    .unwrap_or_else(|e| pgrx::error!("reading the connection failed: {e}"));
    let Some((Some(provider), access, refresh)) = row else {
        return "no such connection".into();
    };
    if !matches!(provider.as_str(), "gmail" | "google") {
        return "the provider has no token revocation endpoint; tokens dropped".into();
    }
    // The refresh token revokes the whole grant; else the access token.
    let (sealed, which) = match (refresh, access) {
        (Some(r), _) => (r, "refresh_token"),
        (None, Some(a)) => (a, "access_token"),
        (None, None) => return "no token to revoke".into(),
    };
    let Ok(token) =
        crate::vault::open_token(&sealed, &format!("{table_name}:{connection_id}:{which}"))
    else {
        return "the stored token does not decrypt; dropped".into();
    };
    let answer = http::post_form_interruptible(
        http::url(&guc::text(&google::GOOGLE_OAUTH_BASE_URL), "/revoke"),
        vec![("token".into(), token)],
    );
    match answer.status {
        Some(200) => "revoked".into(),
        _ => format!(
            "not revoked ({}); tokens dropped",
            crm_core::runtime::outcome::describe(&answer)
        ),
    }
}

/// Whether a secret setting has a value, without revealing it (crm.integration_status).
#[pg_extern(stable)]
fn _setting_is_set(name: &str) -> bool {
    let setting = match name {
        "crm.resend_api_key" => &crate::integrations::resend::settings::RESEND_API_KEY,
        "crm.stripe_webhook_secret" => &guc::STRIPE_WEBHOOK_SECRET,
        "crm.resend_webhook_secret" => &guc::RESEND_WEBHOOK_SECRET,
        "crm.google_client_secret" => &google::GOOGLE_CLIENT_SECRET,
        "crm.microsoft_client_secret" => &microsoft::MICROSOFT_CLIENT_SECRET,
        "crm.stripe_secret_key" => &crate::integrations::stripe::settings::STRIPE_SECRET_KEY,
        "crm.google_maps_api_key" => {
            &crate::integrations::google::maps::settings::GOOGLE_MAPS_API_KEY
        }
        _ => invalid("not a secret setting this function knows"),
    };
    !guc::raw(setting).iter().all(u8::is_ascii_whitespace)
}
