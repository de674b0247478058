//! Travel times: `crm._travel_times` (behind `crm.travel_times`, `crm.job_eta`,
//! `crm.suggest_technicians` and `crm.plan_route`). Pairs already in the travel-time cache
//! (points rounded to 4 decimals, about 11 m, and a time-of-day bucket) cost nothing; the
//! rest go to the Routes API's `computeRouteMatrix` in requests of at most 625 elements,
//! each answer cached and counted. Without an API key every pair is a straight-line estimate,
//! marked as such.

use super::geocode::{api_key, lane, scrub};
use super::settings::{
    GOOGLE_ROUTES_BASE_URL, MAPS_FALLBACK_SPEED_KMH, MAPS_MAX_ELEMENTS, MAPS_RATE_LIMIT,
};
use crate::errors::raise;
use crate::guc;
use crate::json_arg::JsonbArg;
use crate::runtime::http;
use crate::runtime::limiter;
use chrono::{DateTime, Datelike, Timelike, Utc};
use crm_core::integrations::google::maps::geo::{self, LatLng};
use crm_core::integrations::google::maps::routes as wire;
use pgrx::prelude::*;
use pgrx::JsonB;
use serde_json::{json, Value};
use std::collections::HashMap;

const DOMAIN: &str = "crm_integrations.maps";

fn invalid(message: String) -> ! {
    raise(
        PgSqlErrorCode::ERRCODE_INVALID_PARAMETER_VALUE,
        message,
        None,
        DOMAIN,
    )
}

/// A point from `{"latitude": …, "longitude": …}` or `[latitude, longitude]`.
fn point(v: &Value, what: &str, i: usize) -> LatLng {
    let (lat, lng) = match v {
        Value::Array(a) if a.len() == 2 => (a[0].as_f64(), a[1].as_f64()),
        Value::Object(o) => (
            o.get("latitude").and_then(Value::as_f64),
            o.get("longitude").and_then(Value::as_f64),
        ),
        _ => (None, None),
    };
    let (Some(lat), Some(lng)) = (lat, lng) else {
        invalid(format!(
            "{what}[{i}] must be {{\"latitude\": number, \"longitude\": number}} or [latitude, longitude]"
        ))
    };
    LatLng::new(lat, lng).unwrap_or_else(|e| invalid(format!("{what}[{i}]: {e}")))
}

fn points(arg: Option<JsonbArg>, what: &str) -> Vec<LatLng> {
    let Some(arg) = arg else {
        invalid(format!("{what} must be a JSON array of points"))
    };
    let v = arg.parse(
        what,
        guc::MAX_JSON_ARGUMENT_BYTES.get().max(0) as usize,
        DOMAIN,
    );
    let Value::Array(items) = v else {
        invalid(format!("{what} must be a JSON array of points"))
    };
    items
        .iter()
        .enumerate()
        .map(|(i, p)| point(p, what, i))
        .collect()
}

/// The time-of-day bucket of a departure: its UTC hour, plus 24 on weekends (traffic differs).
pub fn bucket(t: DateTime<Utc>) -> i32 {
    let weekend = t.weekday().number_from_monday() >= 6;
    t.hour() as i32 + if weekend { 24 } else { 0 }
}

#[derive(Clone, Copy)]
struct Leg {
    distance_m: Option<f64>,
    duration_s: Option<f64>,
}

type Key = (i64, i64, i64, i64);

fn key(o: LatLng, d: LatLng) -> Key {
    let (o, d) = (o.rounded(4), d.rounded(4));
    let q = |x: f64| (x * 10_000.0).round() as i64;
    (q(o.latitude), q(o.longitude), q(d.latitude), q(d.longitude))
}

fn unkey(k: i64) -> f64 {
    k as f64 / 10_000.0
}

/// The cached legs among `pairs` (one SPI query).
fn cached(pairs: &[Key], bucket: i32) -> HashMap<Key, (Leg, String)> {
    let rows: Vec<Value> = pairs
        .iter()
        .map(|k| json!([unkey(k.0), unkey(k.1), unkey(k.2), unkey(k.3)]))
        .collect();
    let found: Option<JsonB> = Spi::get_one_with_args(
        "SELECT crm._travel_cache_get($1, $2)",
        &[JsonB(Value::Array(rows)).into(), bucket.into()],
    )
    .unwrap_or_else(|e| pgrx::error!("travel-time cache: {e}"));
    let mut out = HashMap::new();
    for row in found
        .map(|j| j.0)
        .and_then(|v| v.as_array().cloned())
        .unwrap_or_default()
    {
        let f = |i: usize| row[i].as_f64().unwrap_or(f64::NAN);
        let k = key(
            LatLng {
                latitude: f(0),
                longitude: f(1),
            },
            LatLng {
                latitude: f(2),
                longitude: f(3),
            },
        );
        out.insert(
            k,
            (
                Leg {
                    distance_m: row[4].as_f64(),
                    duration_s: row[5].as_f64(),
                },
                row[6].as_str().unwrap_or("ROUTE_EXISTS").to_string(),
            ),
        );
    }
    out
}

fn matrix_request(
    key: &str,
    origins: &[LatLng],
    destinations: &[LatLng],
    departure: Option<DateTime<Utc>>,
) -> Vec<wire::Element> {
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
    let url = http::url(
        &guc::text(&GOOGLE_ROUTES_BASE_URL),
        "/distanceMatrix/v2:computeRouteMatrix",
    );
    let body = wire::matrix_body(origins, destinations, departure, Utc::now());
    let answer = http::post_json_interruptible(
        url,
        vec![
            ("X-Goog-Api-Key", key.to_string()),
            ("X-Goog-FieldMask", wire::FIELD_MASK.to_string()),
        ],
        body,
    );
    match answer.status {
        Some(200..=299) => wire::parse_matrix(&answer.body, origins.len(), destinations.len())
            .unwrap_or_else(|e| {
                raise(
                    PgSqlErrorCode::ERRCODE_CONFIGURATION_LIMIT_EXCEEDED,
                    format!("the Routes API answered something unexpected, try again later: {e}"),
                    None,
                    DOMAIN,
                )
            }),
        Some(status) => {
            let m = wire::error_message(&answer.body);
            if status == 429 {
                limiter::slow_down(&lane(), answer.retry_after.as_deref());
            }
            match status {
                429 | 500..=599 => raise(
                    PgSqlErrorCode::ERRCODE_CONFIGURATION_LIMIT_EXCEEDED,
                    format!("the Routes API is busy or failed (HTTP {status}), try again later: {m}"),
                    None,
                    DOMAIN,
                ),
                401 | 403 => raise(
                    PgSqlErrorCode::ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE,
                    format!("the Routes API refused the request (HTTP {status}): {m}"),
                    Some("check crm.google_maps_api_key, that the Routes API is enabled for it, and billing"),
                    DOMAIN,
                ),
                _ => invalid(format!("the Routes API refused the request (HTTP {status}): {m}")),
            }
        }
        None => raise(
            PgSqlErrorCode::ERRCODE_CONFIGURATION_LIMIT_EXCEEDED,
            format!(
                "no answer from the Routes API, try again later: {}",
                scrub(answer.error.as_deref().unwrap_or("unknown error"), key)
            ),
            None,
            DOMAIN,
        ),
    }
}

/// Every origin × destination: `[{origin_index, destination_index, distance_m, duration_s,
/// condition, source}]`, `source` cache, routes or straight_line. Requests made are stored in
/// the cache and counted for `account_id` (crm.maps_usage).
#[pg_extern(volatile, parallel_unsafe)]
fn _travel_times(
    origins: Option<JsonbArg>,
    destinations: Option<JsonbArg>,
    departure_time: Option<pgrx::datum::TimestampWithTimeZone>,
    account_id: Option<pgrx::Uuid>,
) -> JsonB {
    let origins = points(origins, "origins");
    let destinations = points(destinations, "destinations");
    let elements = origins.len() * destinations.len();
    let max = MAPS_MAX_ELEMENTS.get().max(1) as usize;
    if elements > max {
        raise(
            PgSqlErrorCode::ERRCODE_PROGRAM_LIMIT_EXCEEDED,
            format!(
                "{} origins x {} destinations = {elements} elements, more than crm.maps_max_elements ({max})",
                origins.len(),
                destinations.len()
            ),
            None,
            DOMAIN,
        );
    }
    let departure = departure_time.and_then(|t| {
        DateTime::<Utc>::from_timestamp_micros(t.into_inner().saturating_add(946_684_800_000_000))
    });
    // The bucket of the traffic Google will use: a past (or no) departure is sent without a
    // time, and Google answers for now, so it is cached under now's bucket — never under the
    // past time's (that would store this hour's traffic as another hour's).
    let now = Utc::now();
    let b = bucket(departure.filter(|t| *t > now).unwrap_or(now));
    let out_of = |legs: &dyn Fn(usize, usize) -> (Leg, String, &'static str)| {
        let mut out = Vec::with_capacity(elements);
        for (i, _) in origins.iter().enumerate() {
            for (j, _) in destinations.iter().enumerate() {
                let (leg, condition, source) = legs(i, j);
                out.push(json!({"origin_index": i, "destination_index": j,
                    "distance_m": leg.distance_m.map(f64::round), "duration_s": leg.duration_s.map(f64::round),
                    "condition": condition, "source": source}));
            }
        }
        JsonB(Value::Array(out))
    };
    let Some(api_key) = api_key() else {
        let speed = MAPS_FALLBACK_SPEED_KMH.get();
        return out_of(&|i, j| {
            let (m, s) = geo::estimate(origins[i], destinations[j], speed);
            (
                Leg {
                    distance_m: Some(m),
                    duration_s: Some(s),
                },
                "ESTIMATED".into(),
                "straight_line",
            )
        });
    };
    let keys: Vec<Vec<Key>> = origins
        .iter()
        .map(|o| destinations.iter().map(|d| key(*o, *d)).collect())
        .collect();
    let mut all: Vec<Key> = keys.iter().flatten().copied().collect();
    all.sort_unstable();
    all.dedup();
    let hits = cached(&all, b);
    // The request: the distinct rounded origins and destinations of the pairs not cached.
    let mut ro: Vec<(i64, i64)> = Vec::new();
    let mut rd: Vec<(i64, i64)> = Vec::new();
    for k in all.iter().filter(|k| !hits.contains_key(k)) {
        if !ro.contains(&(k.0, k.1)) {
            ro.push((k.0, k.1));
        }
        if !rd.contains(&(k.2, k.3)) {
            rd.push((k.2, k.3));
        }
    }
    let as_point = |p: &(i64, i64)| LatLng {
        latitude: unkey(p.0),
        longitude: unkey(p.1),
    };
    let (ro_pts, rd_pts): (Vec<LatLng>, Vec<LatLng>) = (
        ro.iter().map(as_point).collect(),
        rd.iter().map(as_point).collect(),
    );
    let mut fresh: HashMap<Key, (Leg, String)> = HashMap::new();
    let mut requests = 0i64;
    let mut requested_elements = 0i64;
    for (o_range, d_range) in wire::split(ro_pts.len(), rd_pts.len()) {
        let (os, ds) = (&ro_pts[o_range.clone()], &rd_pts[d_range.clone()]);
        let answer = matrix_request(&api_key, os, ds, departure);
        requests += 1;
        requested_elements += (os.len() * ds.len()) as i64;
        for e in answer {
            let (o, d) = (
                ro[o_range.start + e.origin],
                rd[d_range.start + e.destination],
            );
            fresh.insert(
                (o.0, o.1, d.0, d.1),
                (
                    Leg {
                        distance_m: e.distance_m,
                        duration_s: e.duration_s,
                    },
                    e.condition,
                ),
            );
        }
    }
    if requests > 0 {
        // in key order: two calls upserting overlapping pairs take the rows' locks in the
        // same order, so they cannot deadlock
        let mut legs: Vec<(&Key, &(Leg, String))> = fresh.iter().collect();
        legs.sort_unstable_by_key(|(k, _)| **k);
        let rows: Vec<Value> = legs
            .into_iter()
            .filter(|(_, (_, c))| c == "ROUTE_EXISTS" || c == "ROUTE_NOT_FOUND")
            .map(|(k, (leg, c))| {
                json!([
                    unkey(k.0),
                    unkey(k.1),
                    unkey(k.2),
                    unkey(k.3),
                    leg.distance_m,
                    leg.duration_s,
                    c
                ])
            })
            .collect();
        Spi::run_with_args(
            "SELECT crm._travel_cache_put($1, $2, $3, $4, $5)",
            &[
                JsonB(Value::Array(rows)).into(),
                b.into(),
                account_id.into(),
                requests.into(),
                requested_elements.into(),
            ],
        )
        .unwrap_or_else(|e| pgrx::error!("travel-time cache: {e}"));
    }
    out_of(&|i, j| {
        let k = keys[i][j];
        if let Some((leg, c)) = hits.get(&k) {
            (*leg, c.clone(), "cache")
        } else if let Some((leg, c)) = fresh.get(&k) {
            (*leg, c.clone(), "routes")
        } else {
            (
                Leg {
                    distance_m: None,
                    duration_s: None,
                },
                "MISSING".into(),
                "routes",
            )
        }
    })
}

#[cfg(any(test, feature = "pg_test"))]
mod tests {
    #[test]
    fn buckets_split_weekends() {
        use chrono::TimeZone;
        let wed = chrono::Utc
            .with_ymd_and_hms(2026, 11, 25, 8, 30, 0)
            .unwrap();
        let sat = chrono::Utc
            .with_ymd_and_hms(2026, 11, 28, 8, 30, 0)
            .unwrap();
        assert_eq!(super::bucket(wed), 8);
        assert_eq!(super::bucket(sat), 32);
    }
}
