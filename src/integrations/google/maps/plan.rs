//! `crm._plan_order`: the route planner of crm_core (exact up to 12 jobs) over a travel
//! matrix that `crm.plan_route` (sql/maps.sql) builds from `crm._travel_times`.

use super::settings::ROUTE_MAX_JOBS;
use crate::errors::raise;
use crate::json_arg::parse_json_as;
use crm_core::integrations::google::maps::plan::{self, Problem, Window};
use pgrx::prelude::*;
use pgrx::JsonB;
use serde::Deserialize;
use serde_json::json;

/// The problem as `crm.plan_route` writes it.
#[derive(Deserialize)]
struct Input {
    /// (n + 1) × (n + 1) driving seconds; node 0 is the start.
    travel: Vec<Vec<f64>>,
    windows: Vec<Window>,
    /// Epoch seconds the technician leaves the start; null: the day begins at the first job.
    start_time: Option<f64>,
}

fn read(text: &str) -> Result<Input, String> {
    let input: Input = parse_json_as(text)?;
    let n = input.windows.len();
    if input.travel.len() != n + 1 || input.travel.iter().any(|r| r.len() != n + 1) {
        return Err(format!("travel must be {} x {}", n + 1, n + 1));
    }
    let finite = input
        .travel
        .iter()
        .flatten()
        .all(|t| t.is_finite() && *t >= 0.0)
        && input
            .windows
            .iter()
            .all(|w| w.earliest.is_finite() && w.latest.is_finite() && w.service.is_finite());
    if !finite {
        return Err("travel times and windows must be finite (travel >= 0)".into());
    }
    Ok(input)
}

/// The best visiting order: `{order, arrivals, legs, total_travel, feasible, exact}`.
#[pg_extern(immutable, parallel_safe, strict)]
fn _plan_order(problem: crate::json_arg::JsonbArg) -> JsonB {
    let input = read(&problem.text()).unwrap_or_else(|e| {
        raise(
            PgSqlErrorCode::ERRCODE_INVALID_PARAMETER_VALUE,
            format!("route problem: {e}"),
            None,
            "crm_integrations.maps",
        )
    });
    let max = ROUTE_MAX_JOBS.get().max(1) as usize;
    if input.windows.len() > max {
        raise(
            PgSqlErrorCode::ERRCODE_PROGRAM_LIMIT_EXCEEDED,
            format!(
                "{} jobs in one day, more than crm.route_max_jobs ({max})",
                input.windows.len()
            ),
            None,
            "crm_integrations.maps",
        );
    }
    let p = Problem {
        travel: &input.travel,
        windows: &input.windows,
        start_time: input.start_time.unwrap_or(f64::NEG_INFINITY),
    };
    let out = plan::plan(&p, &mut || {
        pg_sys::check_for_interrupts!();
        false
    });
    JsonB(
        json!({"order": out.order, "arrivals": out.arrivals, "legs": out.legs,
                 "total_travel": out.total_travel, "feasible": out.feasible, "exact": out.exact}),
    )
}
