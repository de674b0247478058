//! The Routes API's `computeRouteMatrix` (`POST /distanceMatrix/v2:computeRouteMatrix`): the
//! request body, the field mask, splitting a large matrix into requests of at most 625
//! elements, and reading the answer (a JSON array of elements; proto3 JSON leaves out a
//! field at its default, so `originIndex` 0 may be absent).

use super::geo::LatLng;
use chrono::{DateTime, SecondsFormat, Utc};
use serde::Deserialize;
use serde_json::{json, Value};
use std::ops::Range;

/// Google's limit on origins × destinations for a driving matrix.
pub const MAX_ELEMENTS: usize = 625;

/// What we ask for (`X-Goog-FieldMask`); status and condition so that a missing route is
/// told apart from a zero-length one.
pub const FIELD_MASK: &str =
    "originIndex,destinationIndex,status,condition,distanceMeters,duration";

/// The request body. `departure` only when it is in the future (Google refuses a past
/// departure time; without one it uses now).
pub fn matrix_body(
    origins: &[LatLng],
    destinations: &[LatLng],
    departure: Option<DateTime<Utc>>,
    now: DateTime<Utc>,
) -> Value {
    let waypoint = |p: &LatLng| json!({"waypoint": {"location": {"latLng": {"latitude": p.latitude, "longitude": p.longitude}}}});
    let mut body = json!({
        "origins": origins.iter().map(waypoint).collect::<Vec<_>>(),
        "destinations": destinations.iter().map(waypoint).collect::<Vec<_>>(),
        "travelMode": "DRIVE",
        "routingPreference": "TRAFFIC_AWARE",
    });
    if let Some(t) = departure.filter(|t| *t > now) {
        body["departureTime"] = json!(t.to_rfc3339_opts(SecondsFormat::Secs, true));
    }
    body
}

/// The requests a `n_origins` × `n_destinations` matrix takes, each at most `MAX_ELEMENTS`:
/// blocks of `rows` origins × `cols` destinations, the block shape chosen for the fewest
/// requests (50 × 50 is four 25 × 25 blocks, not five 12 × 50 ones).
pub fn split(n_origins: usize, n_destinations: usize) -> Vec<(Range<usize>, Range<usize>)> {
    if n_origins == 0 || n_destinations == 0 {
        return Vec::new();
    }
    let (rows, cols) = (1..=n_destinations.min(MAX_ELEMENTS))
        .map(|cols| ((MAX_ELEMENTS / cols).min(n_origins), cols))
        .min_by_key(|&(rows, cols)| {
            (
                n_origins.div_ceil(rows) * n_destinations.div_ceil(cols),
                usize::MAX - rows * cols,
            )
        })
        .unwrap_or((1, 1));
    let mut out = Vec::new();
    let mut o = 0;
    while o < n_origins {
        let o_end = (o + rows).min(n_origins);
        let mut d = 0;
        while d < n_destinations {
            let d_end = (d + cols).min(n_destinations);
            out.push((o..o_end, d..d_end));
            d = d_end;
        }
        o = o_end;
    }
    out
}

/// One element of the answer.
#[derive(Debug, Clone, PartialEq)]
pub struct Element {
    pub origin: usize,
    pub destination: usize,
    /// ROUTE_EXISTS, ROUTE_NOT_FOUND, or the element's error status.
    pub condition: String,
    pub distance_m: Option<f64>,
    pub duration_s: Option<f64>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct WireElement {
    #[serde(default)]
    origin_index: usize,
    #[serde(default)]
    destination_index: usize,
    #[serde(default)]
    status: Option<WireStatus>,
    #[serde(default)]
    condition: Option<String>,
    #[serde(default)]
    distance_meters: Option<f64>,
    #[serde(default)]
    duration: Option<String>,
}

#[derive(Deserialize)]
struct WireStatus {
    #[serde(default)]
    code: i32,
    #[serde(default)]
    message: Option<String>,
}

/// "160s", "0.5s" → seconds.
pub fn parse_duration(s: &str) -> Option<f64> {
    let v: f64 = s.strip_suffix('s')?.parse().ok()?;
    (v.is_finite() && v >= 0.0).then_some(v)
}

/// The elements of a matrix answer for `n_origins` × `n_destinations`; an element outside
/// the request is an error (it would be stored against the wrong pair).
pub fn parse_matrix(
    body: &str,
    n_origins: usize,
    n_destinations: usize,
) -> Result<Vec<Element>, String> {
    let wire: Vec<WireElement> = serde_json::from_str(body)
        .map_err(|e| format!("the route matrix answer is not a list of elements: {e}"))?;
    let mut out = Vec::with_capacity(wire.len());
    for w in wire {
        if w.origin_index >= n_origins || w.destination_index >= n_destinations {
            return Err(format!(
                "the route matrix answered for ({}, {}) outside {n_origins} x {n_destinations}",
                w.origin_index, w.destination_index
            ));
        }
        let failed = w.status.as_ref().filter(|s| s.code != 0);
        let condition = match failed {
            Some(s) => format!(
                "ERROR {}{}",
                s.code,
                s.message
                    .as_deref()
                    .map(|m| format!(": {m}"))
                    .unwrap_or_default()
            ),
            None => w.condition.unwrap_or_else(|| "ROUTE_EXISTS".into()),
        };
        let exists = condition == "ROUTE_EXISTS";
        out.push(Element {
            origin: w.origin_index,
            destination: w.destination_index,
            condition,
            // proto3 leaves out 0: a route that exists with no distance is 0 m
            distance_m: exists.then(|| w.distance_meters.unwrap_or(0.0)),
            duration_s: if exists {
                Some(
                    w.duration
                        .as_deref()
                        .and_then(parse_duration)
                        .unwrap_or(0.0),
                )
            } else {
                None
            },
        });
    }
    Ok(out)
}

/// Google's error body `{"error": {"code", "message", "status"}}` as one line.
pub fn error_message(body: &str) -> String {
    let v: Value = serde_json::from_str(body).unwrap_or(Value::Null);
    let e = &v["error"];
    match (e["status"].as_str(), e["message"].as_str()) {
        (Some(s), Some(m)) => format!("{s}: {m}"),
        (None, Some(m)) => m.to_string(),
        _ => body.chars().take(200).collect(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(a: f64, b: f64) -> LatLng {
        LatLng::new(a, b).unwrap()
    }

    #[test]
    fn body_has_waypoints_and_future_departure_only() {
        let now = Utc::now();
        let b = matrix_body(&[p(1.0, 2.0)], &[p(3.0, 4.0)], Some(now), now);
        assert_eq!(
            b["origins"][0]["waypoint"]["location"]["latLng"]["latitude"],
            1.0
        );
        assert_eq!(
            b["destinations"][0]["waypoint"]["location"]["latLng"]["longitude"],
            4.0
        );
        assert!(b.get("departureTime").is_none());
        let later = now + chrono::Duration::hours(2);
        let b = matrix_body(&[p(1.0, 2.0)], &[p(3.0, 4.0)], Some(later), now);
        assert!(b["departureTime"].as_str().unwrap().ends_with('Z'));
        assert_eq!(b["travelMode"], "DRIVE");
    }

    #[test]
    fn splits_keep_every_pair_once_within_the_limit() {
        for (o, d) in [
            (1, 1),
            (25, 25),
            (26, 25),
            (50, 50),
            (1, 700),
            (700, 1),
            (3, 400),
            (0, 5),
        ] {
            let parts = split(o, d);
            let mut seen = vec![vec![0u8; d]; o];
            for (ro, rd) in &parts {
                assert!(
                    ro.len() * rd.len() <= MAX_ELEMENTS,
                    "{o}x{d}: {ro:?} {rd:?}"
                );
                for i in ro.clone() {
                    for j in rd.clone() {
                        seen[i][j] += 1;
                    }
                }
            }
            assert!(seen.iter().flatten().all(|&n| n == 1), "{o}x{d}");
        }
        assert_eq!(split(25, 25).len(), 1);
        assert_eq!(split(50, 50).len(), 4);
        assert_eq!(split(100, 1).len(), 1);
    }

    #[test]
    fn reads_elements_with_defaults_left_out() {
        let body = r#"[{"destinationIndex":1,"status":{},"distanceMeters":822,"duration":"160s","condition":"ROUTE_EXISTS"},
                      {"originIndex":1,"status":{},"condition":"ROUTE_NOT_FOUND"},
                      {"originIndex":1,"destinationIndex":1,"status":{"code":5,"message":"not found"}},
                      {"status":{},"condition":"ROUTE_EXISTS","duration":"0s"}]"#;
        let e = parse_matrix(body, 2, 2).unwrap();
        assert_eq!((e[0].origin, e[0].destination), (0, 1));
        assert_eq!(e[0].duration_s, Some(160.0));
        assert_eq!(e[0].distance_m, Some(822.0));
        assert_eq!(e[1].condition, "ROUTE_NOT_FOUND");
        assert_eq!(e[1].duration_s, None);
        assert_eq!(e[2].condition, "ERROR 5: not found");
        assert_eq!((e[3].distance_m, e[3].duration_s), (Some(0.0), Some(0.0)));
        assert!(parse_matrix(r#"[{"originIndex":2}]"#, 2, 2).is_err());
        assert!(parse_matrix(r#"{"error":{}}"#, 2, 2).is_err());
        assert_eq!(parse_duration("1.5s"), Some(1.5));
        assert_eq!(parse_duration("-1s"), None);
        assert_eq!(parse_duration("10"), None);
    }

    #[test]
    fn error_bodies_read_as_one_line() {
        assert_eq!(
            error_message(
                r#"{"error":{"code":403,"message":"API key not valid.","status":"PERMISSION_DENIED"}}"#
            ),
            "PERMISSION_DENIED: API key not valid."
        );
        assert_eq!(error_message("oops"), "oops");
    }
}
