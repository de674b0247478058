//! Geocoding: `crm._geocode_request` (the interactive lookup behind `crm.geocode` and
//! `crm.reverse_geocode`, sql/maps.sql, which own the cache and the usage count) and the
//! `maps.geocode` task (background: the coordinates of jobs and contacts, one request per
//! distinct address and account, within the daily budget).

use super::settings::{GOOGLE_MAPS_API_KEY, GOOGLE_MAPS_BASE_URL, MAPS_RATE_LIMIT};
use crate::errors::raise;
use crate::guc;
use crate::runtime::http;
use crate::runtime::limiter::{self, Lane};
use crate::runtime::tasks::{Ran, Step, Task, TaskKind};
use crm_core::integrations::google::maps::geocode::{self as wire, Geocoded, Place};
use crm_core::runtime::outcome::Answer;
use crm_core::template::budget::Checkpoint;
use pgrx::prelude::*;
use pgrx::JsonB;
use serde::Deserialize;
use serde_json::{json, Value};

const DOMAIN: &str = "crm_integrations.maps";

/// The cache key of an address (normalised: case, white space, punctuation). IMMUTABLE: it
/// is the expression of the pending-geocode indexes.
#[pg_extern(immutable, parallel_safe, strict)]
fn _address_key(address: &str) -> String {
    wire::address_key(address)
}

pub fn api_key() -> Option<String> {
    let key = guc::text(&GOOGLE_MAPS_API_KEY);
    (!key.is_empty()).then_some(key)
}

/// One lane for the whole Maps platform: Google's quotas are per project (per key).
pub fn lane() -> Lane {
    Lane::provider("google_maps")
}

/// An error text without the key (ureq's transport errors quote the URL, which carries it).
pub fn scrub(text: &str, key: &str) -> String {
    // as the query string carries it (Google's keys are [A-Za-z0-9_-]: usually the same)
    let encoded: String = key
        .bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() || b"-_.*".contains(&b) {
                (b as char).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect();
    text.replace(key, "[api key]")
        .replace(&encoded, "[api key]")
}

fn answer_for(query: &[(&'static str, String)], key: &str, interactive: bool) -> Answer {
    let url = http::url(&guc::text(&GOOGLE_MAPS_BASE_URL), "/maps/api/geocode/json");
    let mut q = query.to_vec();
    q.push(("key", key.to_string()));
    let mut answer = if interactive {
        http::get_query_interruptible(url, q)
    } else {
        http::get_query(&url, &q)
    };
    answer.error = answer.error.map(|e| scrub(&e, key));
    answer
}

/// What an answer means; a 429 or OVER_QUERY_LIMIT also closes the lane for every process.
fn read(answer: &Answer) -> Geocoded {
    let judged = wire::classify(answer.status, &answer.body, answer.error.as_deref());
    let over = answer.status == Some(429)
        || matches!(&judged, Geocoded::Retry(m) if m.starts_with("OVER_QUERY_LIMIT"));
    if over {
        limiter::slow_down(&lane(), answer.retry_after.as_deref());
    }
    judged
}

fn place_json(p: &Place) -> Value {
    json!({"status": "ok", "latitude": p.latitude, "longitude": p.longitude,
           "formatted_address": p.formatted_address, "place_id": p.place_id,
           "location_type": p.location_type, "partial_match": p.partial_match})
}

/// One Geocoding request for a caller who waits (cancellable), by address or by point:
/// `{"status": "ok", latitude, …}` or `{"status": "not_found"}`; Google's errors raise
/// (53400 retry later, 55000 key or billing, 22023 the query).
#[pg_extern(volatile, parallel_unsafe)]
fn _geocode_request(address: Option<&str>, latitude: Option<f64>, longitude: Option<f64>) -> JsonB {
    let Some(key) = api_key() else {
        raise(
            PgSqlErrorCode::ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE,
            "Google Maps is not configured: crm.google_maps_api_key is not set",
            Some("a superuser sets crm.google_maps_api_key (ALTER SYSTEM SET ...; SELECT pg_reload_conf())"),
            DOMAIN,
        )
    };
    let query = match (address, latitude, longitude) {
        (Some(a), None, None) => wire::address_query(a),
        (None, Some(lat), Some(lng)) => wire::latlng_query(lat, lng),
        _ => raise(
            PgSqlErrorCode::ERRCODE_INVALID_PARAMETER_VALUE,
            "geocode needs an address, or a latitude and a longitude",
            None,
            DOMAIN,
        ),
    };
    if !limiter::pace(
        &lane(),
        MAPS_RATE_LIMIT.get(),
        crate::templates::check_interrupts,
    ) {
        raise(
            PgSqlErrorCode::ERRCODE_QUERY_CANCELED,
            "canceled while waiting for the Maps rate limit",
            None,
            DOMAIN,
        );
    }
    let answer = answer_for(&query, &key, true);
    match read(&answer) {
        Geocoded::Found(p) => JsonB(place_json(&p)),
        Geocoded::NotFound => JsonB(json!({"status": "not_found"})),
        Geocoded::Retry(m) => raise(
            PgSqlErrorCode::ERRCODE_CONFIGURATION_LIMIT_EXCEEDED,
            format!("the Geocoding API is busy or failed, try again later: {m}"),
            Some("background geocoding (maps.geocode tasks) retries this by itself"),
            DOMAIN,
        ),
        Geocoded::Denied(m) => raise(
            PgSqlErrorCode::ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE,
            format!("the Geocoding API refused the request: {m}"),
            Some("check crm.google_maps_api_key, its API restrictions and the project's billing"),
            DOMAIN,
        ),
        Geocoded::Invalid(m) => raise(
            PgSqlErrorCode::ERRCODE_INVALID_PARAMETER_VALUE,
            format!("the Geocoding API refused the query: {m}"),
            None,
            DOMAIN,
        ),
    }
}

/// `maps.geocode`: the coordinates of every job and contact of the account at one address.
pub struct Geocode;

#[derive(Debug, Deserialize)]
struct Context {
    /// A fresh cache entry for the address (another account's request may have filled it).
    cached: Option<Value>,
    /// The account's daily budget allowed this request (and counted it).
    budget_ok: bool,
    /// Seconds until the budget renews (UTC midnight).
    renews_in: f64,
}

impl TaskKind for Geocode {
    fn name(&self) -> &'static str {
        "maps.geocode"
    }
    fn description(&self) -> &'static str {
        "geocode one address of an account's jobs and contacts (payload {\"address\": text}; coalesced per normalised address)"
    }
    fn check(&self, payload: &Value) -> Result<(), String> {
        let address = payload
            .get("address")
            .and_then(Value::as_str)
            .ok_or("the payload needs address (text)")?;
        if wire::address_key(address).is_empty() {
            return Err("the address has no letters or digits".into());
        }
        if address.chars().count() > wire::MAX_ADDRESS_CHARS {
            return Err(format!(
                "the address is longer than {} characters",
                wire::MAX_ADDRESS_CHARS
            ));
        }
        Ok(())
    }
    fn context_sql(&self) -> Option<&'static str> {
        Some("SELECT crm._geocode_task_context($1::uuid, $2)")
    }
    fn apply_sql(&self) -> Option<&'static str> {
        Some("SELECT crm._apply_geocode($1::uuid, $2, $3)")
    }
    fn run(&self, task: &Task, checkpoint: Checkpoint) -> Ran {
        let ctx: Context = match serde_json::from_value(task.context.clone()) {
            Ok(c) => c,
            Err(e) => {
                return Step::Failed(format!("the geocode context cannot be read: {e}")).into()
            }
        };
        if let Some(cached) = ctx.cached {
            return Ran {
                step: Step::Done(json!({"from": "cache"})),
                apply: Some(cached),
            };
        }
        if !ctx.budget_ok {
            return Step::Deferred {
                secs: ctx.renews_in,
                why: "crm.maps_daily_budget is spent for today: geocoding resumes when it renews (UTC midnight)".into(),
            }
            .into();
        }
        let Some(key) = api_key() else {
            return Step::Failed("crm.google_maps_api_key is not set".into()).into();
        };
        let address = task.payload["address"].as_str().unwrap_or_default();
        if !limiter::pace(&lane(), MAPS_RATE_LIMIT.get(), checkpoint) {
            let stop = Answer {
                error: Some("the runner stopped while waiting for the rate limit".into()),
                ..Answer::default()
            };
            return Step::Answered(stop, "geocode: ").into();
        }
        let answer = answer_for(&wire::address_query(address), &key, false);
        match read(&answer) {
            Geocoded::Found(p) => Ran {
                step: Step::Done(json!({"from": "google", "status": "ok"})),
                apply: Some(place_json(&p)),
            },
            Geocoded::NotFound => Ran {
                step: Step::Done(json!({"from": "google", "status": "not_found"})),
                apply: Some(json!({"status": "not_found"})),
            },
            Geocoded::Retry(m) => {
                // Google's OVER_QUERY_LIMIT comes as HTTP 200: judged as the 429 it means.
                let as_answer = Answer {
                    status: answer.status.map(|s| if s >= 400 { s } else { 429 }),
                    body: m,
                    ..answer
                };
                Step::Answered(as_answer, "geocode: ").into()
            }
            Geocoded::Denied(m) | Geocoded::Invalid(m) => Ran {
                step: Step::Failed(format!("geocode: {m}")),
                apply: Some(json!({"status": "failed", "error": m})),
            },
        }
    }
}
