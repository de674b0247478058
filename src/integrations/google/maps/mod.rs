//! Google Maps: geocoding (interactive and the `maps.geocode` task), travel times through the
//! Routes API with a cache, and the route planner. The SQL entry points (crm.geocode,
//! crm.travel_times, crm.report_location, crm.job_eta, crm.suggest_technicians,
//! crm.plan_route) and the tables are in sql/maps.sql; the wire formats and the planner in
//! `crm_core::integrations::google::maps`; the emulator in tests/emulator/maps.py.

pub mod geocode;
pub mod plan;
pub mod routes;
pub mod settings;
