//! Google Maps' settings: the API key (secret), the two APIs' base URLs, pacing, the daily
//! budget, the caches' lifetimes and the limits of what one call may ask for.

use crate::guc::SECRET;
use pgrx::guc::*;
use std::ffi::CString;

pub static GOOGLE_MAPS_API_KEY: GucSetting<Option<CString>> =
    GucSetting::<Option<CString>>::new(None);
pub static GOOGLE_MAPS_BASE_URL: GucSetting<Option<CString>> =
    GucSetting::<Option<CString>>::new(Some(c"https://maps.googleapis.com"));
pub static GOOGLE_ROUTES_BASE_URL: GucSetting<Option<CString>> =
    GucSetting::<Option<CString>>::new(Some(c"https://routes.googleapis.com"));
pub static MAPS_RATE_LIMIT: GucSetting<f64> = GucSetting::<f64>::new(50.0);
pub static MAPS_DAILY_BUDGET: GucSetting<i32> = GucSetting::<i32>::new(0);
pub static GEOCODE_CACHE_TTL: GucSetting<i32> = GucSetting::<i32>::new(30 * 86400);
pub static GEOCODE_NOT_FOUND_TTL: GucSetting<i32> = GucSetting::<i32>::new(86400);
pub static TRAVEL_TIME_CACHE_TTL: GucSetting<i32> = GucSetting::<i32>::new(7 * 86400);
pub static LOCATION_RETENTION: GucSetting<i32> = GucSetting::<i32>::new(7 * 86400);
pub static LOCATION_HISTORY_INTERVAL: GucSetting<i32> = GucSetting::<i32>::new(30);
pub static MAPS_FALLBACK_SPEED_KMH: GucSetting<f64> = GucSetting::<f64>::new(40.0);
pub static MAPS_MAX_ELEMENTS: GucSetting<i32> = GucSetting::<i32>::new(1000);
pub static ROUTE_SERVICE_MINUTES: GucSetting<i32> = GucSetting::<i32>::new(60);
pub static ROUTE_MAX_JOBS: GucSetting<i32> = GucSetting::<i32>::new(30);

fn string(
    name: &'static std::ffi::CStr,
    desc: &'static std::ffi::CStr,
    s: &'static GucSetting<Option<CString>>,
    flags: GucFlags,
) {
    GucRegistry::define_string_guc(name, desc, c"", s, GucContext::Suset, flags);
}

fn int(
    name: &'static std::ffi::CStr,
    desc: &'static std::ffi::CStr,
    s: &'static GucSetting<i32>,
    min: i32,
    max: i32,
    flags: GucFlags,
) {
    GucRegistry::define_int_guc(name, desc, c"", s, min, max, GucContext::Suset, flags);
}

pub fn register() {
    string(
        c"crm.google_maps_api_key",
        c"Google Maps Platform API key (Geocoding and Routes), superuser only.",
        &GOOGLE_MAPS_API_KEY,
        SECRET,
    );
    string(
        c"crm.google_maps_base_url",
        c"Base URL of the Geocoding API (GET /maps/api/geocode/json; tests point it at the emulator).",
        &GOOGLE_MAPS_BASE_URL,
        GucFlags::default(),
    );
    string(
        c"crm.google_routes_base_url",
        c"Base URL of the Routes API (POST /distanceMatrix/v2:computeRouteMatrix).",
        &GOOGLE_ROUTES_BASE_URL,
        GucFlags::default(),
    );
    GucRegistry::define_float_guc(
        c"crm.maps_rate_limit",
        c"Maps requests per second from this server (the shared limiter; Google allows 3,000 a minute per API); 0 = unlimited.",
        c"",
        &MAPS_RATE_LIMIT,
        0.0,
        100000.0,
        GucContext::Suset,
        GucFlags::default(),
    );
    int(
        c"crm.maps_daily_budget",
        c"Maps requests per account per UTC day for background geocoding (maps.geocode tasks); 0 = unlimited. Interactive calls are counted, not stopped.",
        &MAPS_DAILY_BUDGET,
        0,
        i32::MAX,
        GucFlags::default(),
    );
    int(
        c"crm.geocode_cache_ttl",
        c"How long a geocoded address is reused (Google's terms allow caching coordinates for 30 days).",
        &GEOCODE_CACHE_TTL,
        0,
        30 * 86400,
        GucFlags::UNIT_S,
    );
    int(
        c"crm.geocode_not_found_ttl",
        c"How long an address Google did not find is remembered as not found.",
        &GEOCODE_NOT_FOUND_TTL,
        0,
        30 * 86400,
        GucFlags::UNIT_S,
    );
    int(
        c"crm.travel_time_cache_ttl",
        c"How long a travel time (by rounded points and time-of-day bucket) is reused.",
        &TRAVEL_TIME_CACHE_TTL,
        0,
        30 * 86400,
        GucFlags::UNIT_S,
    );
    int(
        c"crm.location_retention",
        c"How long technicians' location history is kept (the latest position is kept until replaced).",
        &LOCATION_RETENTION,
        3600,
        365 * 86400,
        GucFlags::UNIT_S,
    );
    int(
        c"crm.location_history_interval",
        c"Least time between two kept history points of one technician (reports in between update only the latest position).",
        &LOCATION_HISTORY_INTERVAL,
        0,
        86400,
        GucFlags::UNIT_S,
    );
    GucRegistry::define_float_guc(
        c"crm.maps_fallback_speed_kmh",
        c"Average driving speed of the straight-line estimate (x1.3 for roads) used without Maps.",
        c"",
        &MAPS_FALLBACK_SPEED_KMH,
        5.0,
        200.0,
        GucContext::Suset,
        GucFlags::default(),
    );
    int(
        c"crm.maps_max_elements",
        c"Most origins x destinations one crm.travel_times call may ask for (54000 beyond): at most $10 of traffic-aware elements per call at list price.",
        &MAPS_MAX_ELEMENTS,
        1,
        100000,
        GucFlags::default(),
    );
    int(
        c"crm.route_service_minutes",
        c"Time spent at a job when planning a technician's day.",
        &ROUTE_SERVICE_MINUTES,
        0,
        1440,
        GucFlags::default(),
    );
    int(
        c"crm.route_max_jobs",
        c"Most jobs crm.plan_route orders in one day (54000 beyond).",
        &ROUTE_MAX_JOBS,
        1,
        200,
        GucFlags::default(),
    );
}
