//! A technician's day: the order of their jobs that drives the least while arriving at each
//! job inside its window (waiting when early is allowed), with arrival times.
//!
//! Exact for up to `EXACT_MAX_JOBS` jobs: a dynamic program over (jobs visited, last job)
//! whose states keep every label (driving so far, time free) that no other label beats on
//! both counts — with windows, the cheapest way to a state can be too late for what comes
//! next, so one number per state is not enough. Larger days (rare for one technician) get a
//! heuristic: jobs by deadline, then relocation and 2-opt moves while they shorten the
//! drive and keep every window. When no order keeps every window, the jobs go by deadline and
//! the late ones are marked.
//!
//! Why not a solver crate: `vrp-core` brings a multi-threaded metaheuristic with its own
//! thread pool (not something to start inside a Postgres backend) and is built for fleets, not
//! one route of a dozen stops, where the exact program is faster than its start-up.

/// Exact up to this many jobs (2^12 × 12 states).
pub const EXACT_MAX_JOBS: usize = 12;

/// Most labels kept per state: bounds the program's memory (2^12 × 12 × 32 labels × 24 bytes
/// = 38 MB at worst) whatever the windows. A state that would need more drops the extra ones
/// and the plan is no longer called exact.
pub const MAX_LABELS_PER_STATE: usize = 32;

#[derive(Debug, Clone, Copy, PartialEq, serde::Deserialize)]
pub struct Window {
    /// Earliest arrival (seconds on any common clock); arriving before means waiting.
    pub earliest: f64,
    /// Latest arrival.
    pub latest: f64,
    /// Time spent at the job.
    pub service: f64,
}

/// `travel[i][j]`: driving seconds from node i to node j; node 0 is the start (the
/// technician's position at `start_time`), node k + 1 is job k. Without a start position,
/// row 0 is all zeros and `start_time` is -infinity (the day begins at the first job).
pub struct Problem<'a> {
    pub travel: &'a [Vec<f64>],
    pub windows: &'a [Window],
    pub start_time: f64,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Plan {
    /// Job indexes in visiting order.
    pub order: Vec<usize>,
    /// Arrival at each job of `order` (after any wait: when the work starts).
    pub arrivals: Vec<f64>,
    /// Driving seconds of the leg into each job of `order`.
    pub legs: Vec<f64>,
    pub total_travel: f64,
    /// Every job reached inside its window.
    pub feasible: bool,
    /// Proven optimal (the exact program ran and found a feasible order).
    pub exact: bool,
}

/// Follow `order`: (arrivals, legs, total driving, every window kept).
pub fn simulate(p: &Problem, order: &[usize]) -> (Vec<f64>, Vec<f64>, f64, bool) {
    let mut time = p.start_time;
    let mut at = 0usize;
    let (mut arrivals, mut legs) = (Vec::new(), Vec::new());
    let mut total = 0.0;
    let mut ok = true;
    for &j in order {
        let leg = p.travel[at][j + 1];
        let w = p.windows[j];
        let arrive = (time + leg).max(w.earliest);
        ok &= arrive <= w.latest;
        arrivals.push(arrive);
        legs.push(leg);
        total += leg;
        time = arrive + w.service;
        at = j + 1;
    }
    (arrivals, legs, total, ok)
}

fn plan_of(p: &Problem, order: Vec<usize>, exact: bool) -> Plan {
    let (arrivals, legs, total_travel, feasible) = simulate(p, &order);
    Plan {
        order,
        arrivals,
        legs,
        total_travel,
        feasible,
        exact: exact && feasible,
    }
}

/// Jobs by deadline, then by earliest start.
fn by_deadline(p: &Problem) -> Vec<usize> {
    let mut order: Vec<usize> = (0..p.windows.len()).collect();
    order.sort_by(|&a, &b| {
        let (wa, wb) = (p.windows[a], p.windows[b]);
        wa.latest
            .total_cmp(&wb.latest)
            .then(wa.earliest.total_cmp(&wb.earliest))
            .then(a.cmp(&b))
    });
    order
}

/// The best order. `checkpoint` is called now and then; true stops the search (the best
/// order found so far is returned).
pub fn plan(p: &Problem, checkpoint: &mut dyn FnMut() -> bool) -> Plan {
    let n = p.windows.len();
    if n == 0 {
        return plan_of(p, Vec::new(), true);
    }
    if n <= EXACT_MAX_JOBS {
        if let Some((order, complete)) = exact(p, checkpoint) {
            return plan_of(p, order, complete);
        }
        return plan_of(p, by_deadline(p), false);
    }
    plan_of(p, improve(p, by_deadline(p), checkpoint), false)
}

#[derive(Clone, Copy)]
struct Label {
    travel: f64,
    free_at: f64,
    /// (previous last job, index of its label); usize::MAX at the first job
    prev: (usize, usize),
}

/// The dynamic program: None when no order keeps every window (or when stopped); the flag
/// is false when a state hit `MAX_LABELS_PER_STATE` (the order is then the best found, not
/// proven optimal).
fn exact(p: &Problem, checkpoint: &mut dyn FnMut() -> bool) -> Option<(Vec<usize>, bool)> {
    let mut complete = true;
    let n = p.windows.len();
    let full = (1usize << n) - 1;
    // labels[mask * n + last]
    let mut labels: Vec<Vec<Label>> = vec![Vec::new(); (full + 1) * n];
    for j in 0..n {
        let w = p.windows[j];
        let arrive = (p.start_time + p.travel[0][j + 1]).max(w.earliest);
        if arrive <= w.latest {
            labels[(1 << j) * n + j].push(Label {
                travel: p.travel[0][j + 1],
                free_at: arrive + w.service,
                prev: (usize::MAX, usize::MAX),
            });
        }
    }
    for mask in 1..=full {
        if mask & 0xff == 0 && checkpoint() {
            return None;
        }
        for last in 0..n {
            if mask & (1 << last) == 0 || labels[mask * n + last].is_empty() {
                continue;
            }
            for next in 0..n {
                if mask & (1 << next) != 0 {
                    continue;
                }
                let w = p.windows[next];
                let leg = p.travel[last + 1][next + 1];
                let to = (mask | (1 << next)) * n + next;
                for li in 0..labels[mask * n + last].len() {
                    let l = labels[mask * n + last][li];
                    let arrive = (l.free_at + leg).max(w.earliest);
                    if arrive > w.latest {
                        continue;
                    }
                    let cand = Label {
                        travel: l.travel + leg,
                        free_at: arrive + w.service,
                        prev: (last, li),
                    };
                    let here = &mut labels[to];
                    if here
                        .iter()
                        .any(|o| o.travel <= cand.travel && o.free_at <= cand.free_at)
                    {
                        continue;
                    }
                    // Labels the new one beats go: no later state points at this one's
                    // labels yet (states are extended in order of growing sets), so the
                    // indexes kept for the way back stay valid.
                    here.retain(|o| !(cand.travel <= o.travel && cand.free_at <= o.free_at));
                    if here.len() >= MAX_LABELS_PER_STATE {
                        complete = false;
                        continue;
                    }
                    here.push(cand);
                }
            }
        }
    }
    let (mut last, mut li) = (0..n)
        .flat_map(|j| {
            labels[full * n + j]
                .iter()
                .enumerate()
                .map(move |(i, l)| (l.travel, j, i))
        })
        .min_by(|a, b| a.0.total_cmp(&b.0))
        .map(|(_, j, i)| (j, i))?;
    let mut mask = full;
    let mut order = Vec::with_capacity(n);
    loop {
        order.push(last);
        let (pl, pi) = labels[mask * n + last][li].prev;
        if pl == usize::MAX {
            break;
        }
        mask &= !(1 << last);
        (last, li) = (pl, pi);
    }
    order.reverse();
    Some((order, complete))
}

/// Relocation and 2-opt moves from `order` while they shorten the drive and keep every window
/// that the starting order kept (a feasible order stays feasible).
fn improve(p: &Problem, mut order: Vec<usize>, checkpoint: &mut dyn FnMut() -> bool) -> Vec<usize> {
    let (_, _, mut best, ok) = simulate(p, &order);
    if !ok {
        return order;
    }
    let n = order.len();
    let mut improved = true;
    let mut rounds = 0;
    while improved && rounds < 100 {
        improved = false;
        rounds += 1;
        for i in 0..n {
            if checkpoint() {
                return order;
            }
            for j in 0..n {
                if i == j {
                    continue;
                }
                // relocate order[i] to position j
                let mut cand = order.clone();
                let job = cand.remove(i);
                cand.insert(j, job);
                let (_, _, t, ok) = simulate(p, &cand);
                if ok && t + 1e-9 < best {
                    (order, best, improved) = (cand, t, true);
                    continue;
                }
                // reverse order[i..=j]
                if i < j {
                    let mut cand = order.clone();
                    cand[i..=j].reverse();
                    let (_, _, t, ok) = simulate(p, &cand);
                    if ok && t + 1e-9 < best {
                        (order, best, improved) = (cand, t, true);
                    }
                }
            }
        }
    }
    order
}

/// Every order (tests: the exact program against it on small days).
pub fn brute_force(p: &Problem) -> Option<(Vec<usize>, f64)> {
    fn permute(
        p: &Problem,
        order: &mut Vec<usize>,
        used: &mut Vec<bool>,
        best: &mut Option<(Vec<usize>, f64)>,
    ) {
        let n = p.windows.len();
        if order.len() == n {
            let (_, _, t, ok) = simulate(p, order);
            if ok && best.as_ref().is_none_or(|b| t < b.1) {
                *best = Some((order.clone(), t));
            }
            return;
        }
        for j in 0..n {
            if !used[j] {
                used[j] = true;
                order.push(j);
                permute(p, order, used, best);
                order.pop();
                used[j] = false;
            }
        }
    }
    let mut best = None;
    permute(
        p,
        &mut Vec::new(),
        &mut vec![false; p.windows.len()],
        &mut best,
    );
    best
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand_chacha::rand_core::{RngCore, SeedableRng};

    /// Jobs on a plane (km), driving at 1 km/min, windows from a seed.
    fn fixture(seed: u64, n: usize, tight: bool) -> (Vec<Vec<f64>>, Vec<Window>) {
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(seed);
        let mut unit = || (rng.next_u32() as f64) / (u32::MAX as f64);
        let pts: Vec<(f64, f64)> = (0..=n).map(|_| (unit() * 30.0, unit() * 30.0)).collect();
        let travel = pts
            .iter()
            .map(|a| {
                pts.iter()
                    .map(|b| ((a.0 - b.0).hypot(a.1 - b.1) * 60.0).round())
                    .collect()
            })
            .collect();
        let windows = (0..n)
            .map(|_| {
                let start = (unit() * 8.0).floor() * 3600.0;
                let width = if tight { 2.0 * 3600.0 } else { 12.0 * 3600.0 };
                Window {
                    earliest: if tight { start } else { 0.0 },
                    latest: if tight { start + width } else { width * 2.0 },
                    service: 1800.0,
                }
            })
            .collect();
        (travel, windows)
    }

    #[test]
    fn exact_equals_brute_force_up_to_8_jobs() {
        let mut compared = 0;
        for n in 1..=8 {
            for seed in 0..12u64 {
                for tight in [false, true] {
                    let (travel, windows) = fixture(seed * 31 + n as u64, n, tight);
                    let p = Problem {
                        travel: &travel,
                        windows: &windows,
                        start_time: 0.0,
                    };
                    let got = plan(&p, &mut || false);
                    match brute_force(&p) {
                        Some((_, best)) => {
                            assert!(got.feasible && got.exact, "n={n} seed={seed}");
                            assert!(
                                (got.total_travel - best).abs() < 1e-6,
                                "n={n} seed={seed}: {} vs {best}",
                                got.total_travel
                            );
                            compared += 1;
                        }
                        None => assert!(!got.feasible, "n={n} seed={seed}"),
                    }
                }
            }
        }
        eprintln!("{compared} feasible fixtures equal to the brute force");
        assert!(compared > 120, "{compared} feasible fixtures compared");
    }

    #[test]
    fn windows_are_kept_even_when_a_shorter_drive_exists() {
        // start at 0; A at 10 min, B at 20 min on a line. B must be reached by 25 min, A may
        // not start before 60 min: the optimum drives past A to B first.
        let travel = vec![
            vec![0.0, 600.0, 1200.0],
            vec![600.0, 0.0, 600.0],
            vec![1200.0, 600.0, 0.0],
        ];
        let windows = vec![
            Window {
                earliest: 3600.0,
                latest: 7200.0,
                service: 600.0,
            },
            Window {
                earliest: 0.0,
                latest: 1500.0,
                service: 600.0,
            },
        ];
        let p = Problem {
            travel: &travel,
            windows: &windows,
            start_time: 0.0,
        };
        let got = plan(&p, &mut || false);
        assert_eq!(got.order, vec![1, 0]);
        assert_eq!(got.arrivals, vec![1200.0, 3600.0]);
        assert!(got.feasible && got.exact);
        assert_eq!(got.total_travel, 1800.0);
    }

    #[test]
    fn infeasible_days_go_by_deadline_and_say_so() {
        let travel = vec![
            vec![0.0, 5000.0, 5000.0],
            vec![5000.0, 0.0, 5000.0],
            vec![5000.0, 5000.0, 0.0],
        ];
        let windows = vec![
            Window {
                earliest: 0.0,
                latest: 100.0,
                service: 0.0,
            },
            Window {
                earliest: 0.0,
                latest: 50.0,
                service: 0.0,
            },
        ];
        let p = Problem {
            travel: &travel,
            windows: &windows,
            start_time: 0.0,
        };
        let got = plan(&p, &mut || false);
        assert!(!got.feasible && !got.exact);
        assert_eq!(got.order, vec![1, 0]);
    }

    #[test]
    fn a_twelve_job_day_with_wide_windows_stays_exact() {
        // wide windows keep many labels alive: with dominated ones pruned, the cap is not hit
        for seed in 0..5 {
            let (travel, windows) = fixture(seed, EXACT_MAX_JOBS, false);
            let p = Problem {
                travel: &travel,
                windows: &windows,
                start_time: 0.0,
            };
            let got = plan(&p, &mut || false);
            assert!(got.feasible && got.exact, "seed {seed}");
        }
    }

    #[test]
    fn large_days_use_the_heuristic_and_stay_feasible() {
        let (travel, windows) = fixture(7, 20, false);
        let p = Problem {
            travel: &travel,
            windows: &windows,
            start_time: 0.0,
        };
        let got = plan(&p, &mut || false);
        assert_eq!(got.order.len(), 20);
        assert!(got.feasible && !got.exact);
        let start = simulate(&p, &by_deadline(&p)).2;
        assert!(got.total_travel <= start);
        // a stop request ends the search with a complete order
        let mut calls = 0;
        let stopped = plan(&p, &mut || {
            calls += 1;
            calls > 3
        });
        assert_eq!(stopped.order.len(), 20);
    }

    #[test]
    fn no_start_position_begins_at_the_first_job() {
        let travel = vec![
            vec![0.0, 0.0, 0.0],
            vec![0.0, 0.0, 900.0],
            vec![0.0, 900.0, 0.0],
        ];
        let windows = vec![
            Window {
                earliest: 1000.0,
                latest: 5000.0,
                service: 100.0,
            },
            Window {
                earliest: 0.0,
                latest: 5000.0,
                service: 100.0,
            },
        ];
        let p = Problem {
            travel: &travel,
            windows: &windows,
            start_time: f64::NEG_INFINITY,
        };
        let got = plan(&p, &mut || false);
        assert_eq!(got.total_travel, 900.0);
        assert_eq!(got.order, vec![1, 0]);
        assert_eq!(got.arrivals, vec![0.0, 1000.0]);
    }
}
