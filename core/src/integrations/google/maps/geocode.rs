//! The Geocoding API (`GET /maps/api/geocode/json?address=…|latlng=…&key=…`): the cache key of
//! an address, and what an answer means. Google answers HTTP 200 with a `status` field for
//! its own errors, so the HTTP status alone says little.

use serde::{Deserialize, Serialize};

/// Longest address accepted (Google's URL limit is 16 KiB; no street address comes near).
pub const MAX_ADDRESS_CHARS: usize = 500;

/// The cache key of an address: lower case, every run of punctuation and white space one
/// space, trimmed. "12 Elm St." and " 12  elm st" share a key; "12 Elm Street" does not (no
/// abbreviation expansion: a wrong guess would merge two places). Used in an expression index
/// (sql/maps.sql), so a change here needs a REINDEX in the update script.
pub fn address_key(address: &str) -> String {
    let mut key = String::with_capacity(address.len());
    let mut gap = false;
    for c in address.chars() {
        if c.is_alphanumeric() {
            if gap && !key.is_empty() {
                key.push(' ');
            }
            gap = false;
            key.extend(c.to_lowercase());
        } else {
            gap = true;
        }
    }
    key
}

/// One geocoding result, as we store and return it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Place {
    pub latitude: f64,
    pub longitude: f64,
    pub formatted_address: Option<String>,
    pub place_id: Option<String>,
    pub location_type: Option<String>,
    pub partial_match: bool,
}

/// What an answer means.
#[derive(Debug, Clone, PartialEq)]
pub enum Geocoded {
    Found(Place),
    /// ZERO_RESULTS: cached as `not_found`.
    NotFound,
    /// OVER_QUERY_LIMIT, UNKNOWN_ERROR, 5xx, 429, network: try again later.
    Retry(String),
    /// REQUEST_DENIED, OVER_DAILY_LIMIT, 401/403: the key or the billing account (55000).
    Denied(String),
    /// INVALID_REQUEST: the query itself (22023).
    Invalid(String),
}

#[derive(Deserialize)]
struct Answer {
    status: String,
    #[serde(default)]
    error_message: Option<String>,
    #[serde(default)]
    results: Vec<ResultItem>,
}

#[derive(Deserialize)]
struct ResultItem {
    formatted_address: Option<String>,
    place_id: Option<String>,
    #[serde(default)]
    partial_match: bool,
    geometry: Geometry,
}

#[derive(Deserialize)]
struct Geometry {
    location: Location,
    location_type: Option<String>,
}

#[derive(Deserialize)]
struct Location {
    lat: f64,
    lng: f64,
}

fn with_message(status: &str, message: Option<String>) -> String {
    match message {
        Some(m) if !m.is_empty() => format!("{status}: {m}"),
        _ => status.to_string(),
    }
}

/// Read an answer: `http_status` None when the request got no answer (`error` says why).
pub fn classify(http_status: Option<u16>, body: &str, error: Option<&str>) -> Geocoded {
    let Some(code) = http_status else {
        return Geocoded::Retry(format!(
            "no answer from the Geocoding API: {}",
            error.unwrap_or("unknown error")
        ));
    };
    let parsed: Option<Answer> = serde_json::from_str(body).ok();
    if !(200..300).contains(&code) {
        let detail = parsed
            .map(|a| with_message(&a.status, a.error_message))
            .unwrap_or_else(|| format!("HTTP {code}"));
        return match code {
            429 | 500..=599 => Geocoded::Retry(detail),
            401 | 403 => Geocoded::Denied(detail),
            _ => Geocoded::Invalid(detail),
        };
    }
    let Some(answer) = parsed else {
        return Geocoded::Retry("the Geocoding API's answer is not its JSON".into());
    };
    match answer.status.as_str() {
        "OK" => match answer.results.into_iter().next() {
            Some(r) => {
                let (lat, lng) = (r.geometry.location.lat, r.geometry.location.lng);
                if super::geo::LatLng::new(lat, lng).is_err() {
                    return Geocoded::Retry(format!("the Geocoding API answered ({lat}, {lng})"));
                }
                Geocoded::Found(Place {
                    latitude: lat,
                    longitude: lng,
                    formatted_address: r.formatted_address,
                    place_id: r.place_id,
                    location_type: r.geometry.location_type,
                    partial_match: r.partial_match,
                })
            }
            None => Geocoded::NotFound,
        },
        "ZERO_RESULTS" => Geocoded::NotFound,
        "OVER_QUERY_LIMIT" | "UNKNOWN_ERROR" => {
            Geocoded::Retry(with_message(&answer.status, answer.error_message))
        }
        "REQUEST_DENIED" | "OVER_DAILY_LIMIT" => {
            Geocoded::Denied(with_message(&answer.status, answer.error_message))
        }
        "INVALID_REQUEST" => Geocoded::Invalid(with_message(&answer.status, answer.error_message)),
        other => Geocoded::Retry(with_message(other, answer.error_message)),
    }
}

/// The query string of a forward lookup (the key is added by the caller, never logged).
pub fn address_query(address: &str) -> Vec<(&'static str, String)> {
    vec![("address", address.to_string())]
}

/// The query string of a reverse lookup.
pub fn latlng_query(latitude: f64, longitude: f64) -> Vec<(&'static str, String)> {
    vec![("latlng", format!("{latitude:.7},{longitude:.7}"))]
}

/// The cache key of a reverse lookup: the point rounded to 5 decimals (about 1 m), marked
/// so that it can never equal an address key (those have no '@').
pub fn latlng_key(latitude: f64, longitude: f64) -> String {
    format!("@{latitude:.5},{longitude:.5}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_ignore_case_space_and_punctuation() {
        assert_eq!(address_key("12 Elm St."), "12 elm st");
        assert_eq!(address_key("  12   elm  st "), "12 elm st");
        assert_eq!(address_key("12, Elm-St"), "12 elm st");
        assert_eq!(address_key("Straße 5"), "straße 5");
        assert_eq!(address_key("ÉLM"), "élm");
        assert_eq!(address_key("..."), "");
        assert_ne!(address_key("12 Elm St"), address_key("12 Elm Street"));
        assert_ne!(address_key("12 Elm St"), address_key("1 2 Elm St"));
    }

    #[test]
    fn ok_gives_the_first_result() {
        let body = r#"{"status":"OK","results":[{"formatted_address":"12 Elm St, Austin, TX","place_id":"p1",
            "partial_match":true,"geometry":{"location":{"lat":30.1,"lng":-97.2},"location_type":"ROOFTOP"}},
            {"formatted_address":"other","place_id":"p2","geometry":{"location":{"lat":1,"lng":2}}}]}"#;
        let Geocoded::Found(p) = classify(Some(200), body, None) else {
            panic!()
        };
        assert_eq!(p.place_id.as_deref(), Some("p1"));
        assert_eq!((p.latitude, p.longitude), (30.1, -97.2));
        assert!(p.partial_match);
        assert_eq!(p.location_type.as_deref(), Some("ROOFTOP"));
    }

    #[test]
    fn statuses_map_to_outcomes() {
        let s = |status: &str| {
            classify(
                Some(200),
                &format!(r#"{{"status":"{status}","results":[],"error_message":"why"}}"#),
                None,
            )
        };
        assert_eq!(s("ZERO_RESULTS"), Geocoded::NotFound);
        assert_eq!(
            s("OVER_QUERY_LIMIT"),
            Geocoded::Retry("OVER_QUERY_LIMIT: why".into())
        );
        assert!(matches!(s("UNKNOWN_ERROR"), Geocoded::Retry(_)));
        assert_eq!(
            s("REQUEST_DENIED"),
            Geocoded::Denied("REQUEST_DENIED: why".into())
        );
        assert!(matches!(s("OVER_DAILY_LIMIT"), Geocoded::Denied(_)));
        assert_eq!(
            s("INVALID_REQUEST"),
            Geocoded::Invalid("INVALID_REQUEST: why".into())
        );
        assert_eq!(s("OK"), Geocoded::NotFound); // OK with no result
        assert!(
            matches!(classify(None, "", Some("refused")), Geocoded::Retry(m) if m.contains("refused"))
        );
        assert!(matches!(classify(Some(503), "", None), Geocoded::Retry(_)));
        assert!(matches!(classify(Some(403), "", None), Geocoded::Denied(_)));
        assert!(matches!(
            classify(Some(200), "<html>", None),
            Geocoded::Retry(_)
        ));
        // coordinates out of range are not believed
        let bad = r#"{"status":"OK","results":[{"geometry":{"location":{"lat":91,"lng":0}}}]}"#;
        assert!(matches!(classify(Some(200), bad, None), Geocoded::Retry(_)));
    }

    #[test]
    fn reverse_keys_cannot_collide_with_address_keys() {
        assert_eq!(latlng_key(30.123456, -97.1), "@30.12346,-97.10000");
        assert!(!address_key("@30.12346,-97.10000").contains('@'));
    }
}
