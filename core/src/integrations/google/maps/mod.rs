//! Google Maps: the Geocoding API's and the Routes API's wire formats, the geometry the
//! fallbacks and the prefilter use, and the route planner. Pure: no Postgres, no network.

pub mod geo;
pub mod geocode;
pub mod plan;
pub mod routes;
