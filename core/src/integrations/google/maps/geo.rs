//! Points on the earth: validation, great-circle distance, the straight-line estimate used
//! when Maps is not configured (and to pick a short list before paying for a route matrix),
//! and the rounding that makes nearby points share a cache entry.

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct LatLng {
    pub latitude: f64,
    pub longitude: f64,
}

impl LatLng {
    /// A point, if both coordinates are finite and in range.
    pub fn new(latitude: f64, longitude: f64) -> Result<LatLng, String> {
        if !latitude.is_finite() || !(-90.0..=90.0).contains(&latitude) {
            return Err(format!(
                "latitude must be between -90 and 90, not {latitude}"
            ));
        }
        if !longitude.is_finite() || !(-180.0..=180.0).contains(&longitude) {
            return Err(format!(
                "longitude must be between -180 and 180, not {longitude}"
            ));
        }
        Ok(LatLng {
            latitude,
            longitude,
        })
    }

    /// Rounded to `decimals` places (4: about 11 m), for cache keys: two technicians parked
    /// a few metres apart share one travel time.
    pub fn rounded(self, decimals: i32) -> LatLng {
        let f = 10f64.powi(decimals);
        LatLng {
            latitude: (self.latitude * f).round() / f,
            longitude: (self.longitude * f).round() / f,
        }
    }
}

const EARTH_RADIUS_M: f64 = 6_371_008.8;

/// Great-circle distance in metres (haversine).
pub fn distance_m(a: LatLng, b: LatLng) -> f64 {
    let (la1, la2) = (a.latitude.to_radians(), b.latitude.to_radians());
    let dla = la2 - la1;
    let dlo = (b.longitude - a.longitude).to_radians();
    let h = (dla / 2.0).sin().powi(2) + la1.cos() * la2.cos() * (dlo / 2.0).sin().powi(2);
    2.0 * EARTH_RADIUS_M * h.sqrt().min(1.0).asin()
}

/// Roads are longer than the straight line: a common rule of thumb for urban driving is
/// 1.2–1.4 times; 1.3 is used for the estimate.
pub const DETOUR_FACTOR: f64 = 1.3;

/// A straight-line estimate: (driving metres, seconds) at `speed_kmh`.
pub fn estimate(a: LatLng, b: LatLng, speed_kmh: f64) -> (f64, f64) {
    let metres = distance_m(a, b) * DETOUR_FACTOR;
    let speed = speed_kmh.max(1.0) / 3.6;
    (metres, metres / speed)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn validates_ranges() {
        assert!(LatLng::new(90.0, 180.0).is_ok());
        assert!(LatLng::new(90.01, 0.0).is_err());
        assert!(LatLng::new(0.0, -180.5).is_err());
        assert!(LatLng::new(f64::NAN, 0.0).is_err());
        assert!(LatLng::new(0.0, f64::INFINITY).is_err());
    }

    #[test]
    fn haversine_matches_known_distances() {
        // Paris - London, about 344 km
        let paris = LatLng::new(48.8566, 2.3522).unwrap();
        let london = LatLng::new(51.5074, -0.1278).unwrap();
        let d = distance_m(paris, london);
        assert!((d - 343_900.0).abs() < 1_500.0, "{d}");
        assert_eq!(distance_m(paris, paris), 0.0);
        // antipodes do not produce NaN
        let a = LatLng::new(0.0, 0.0).unwrap();
        let b = LatLng::new(0.0, 180.0).unwrap();
        assert!((distance_m(a, b) - std::f64::consts::PI * EARTH_RADIUS_M).abs() < 1.0);
    }

    #[test]
    fn estimate_uses_detour_and_speed() {
        let a = LatLng::new(30.0, -97.0).unwrap();
        let b = LatLng::new(30.01, -97.0).unwrap();
        let (m, s) = estimate(a, b, 36.0);
        assert!((m - distance_m(a, b) * 1.3).abs() < 1e-6);
        assert!((s - m / 10.0).abs() < 1e-6);
    }

    #[test]
    fn rounding_merges_nearby_points() {
        let a = LatLng::new(30.26721, -97.74312).unwrap().rounded(4);
        let b = LatLng::new(30.26718, -97.74309).unwrap().rounded(4);
        assert_eq!(a, b);
    }
}
