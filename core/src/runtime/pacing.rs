//! The rate limiter's arithmetic, kept apart from the shared memory it lives in
//! (`src/runtime/limiter.rs`) so that it can be tested here.
//!
//! A lane (a provider, a mailbox, an API key) admits one request per `interval`: a request
//! may start when the lane's `next` time has come, and starting books `now + interval` as the
//! next. Time is booked when a request actually starts (not reserved ahead by a waiter), so a
//! sender that is descheduled after waking cannot let two requests through closer than the
//! interval. A 429 closes the lane until its Retry-After, for every sender.
//!
//! Lanes live in a fixed table: a lane's key is a 64-bit hash of its name (0 = empty slot);
//! when the table is full, the least recently used lane's slot is reused (forgetting a lane
//! idle longer than any other costs at most one request sent early).

/// One slot of the lane table, as four words (the shared-memory layout).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Slot {
    /// The lane's key hash; 0: empty.
    pub key: u64,
    /// Monotonic nanoseconds at which the next request may start.
    pub next_ns: i64,
    /// Monotonic nanoseconds until which a 429 closed the lane.
    pub closed_until_ns: i64,
    /// Last use, for least-recently-used replacement.
    pub used_ns: i64,
}

impl Slot {
    pub fn to_words(self) -> [i64; 4] {
        [
            self.key as i64,
            self.next_ns,
            self.closed_until_ns,
            self.used_ns,
        ]
    }
    pub fn from_words(w: [i64; 4]) -> Slot {
        Slot {
            key: w[0] as u64,
            next_ns: w[1],
            closed_until_ns: w[2],
            used_ns: w[3],
        }
    }
}

/// FNV-1a over the lane's name (provider, then its key): stable across processes and builds.
pub fn lane_key(provider: &str, key: Option<&str>) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    let mut eat = |bytes: &[u8]| {
        for b in bytes {
            h ^= u64::from(*b);
            h = h.wrapping_mul(0x0100_0000_01b3);
        }
    };
    eat(provider.as_bytes());
    eat(&[0]);
    eat(key.unwrap_or("").as_bytes());
    h.max(1)
}

/// The index of `key`'s slot in `slots`: its own, else an empty one, else the least recently
/// used one (reset for `key`).
pub fn slot_index(slots: &mut [[i64; 4]], key: u64, now_ns: i64) -> usize {
    let mut empty = None;
    let mut oldest = (i64::MAX, 0);
    for (i, w) in slots.iter().enumerate() {
        let s = Slot::from_words(*w);
        if s.key == key {
            return i;
        }
        if s.key == 0 && empty.is_none() {
            empty = Some(i);
        }
        if s.used_ns < oldest.0 {
            oldest = (s.used_ns, i);
        }
    }
    let i = empty.unwrap_or(oldest.1);
    slots[i] = Slot {
        key,
        used_ns: now_ns,
        ..Slot::default()
    }
    .to_words();
    i
}

/// May a request start in this lane at `now_ns`? Ok: started (the next slot booked). Err:
/// nanoseconds to wait before asking again. `interval_ns` 0: unlimited (a 429 still closes).
pub fn admit(slot: &mut Slot, now_ns: i64, interval_ns: i64) -> Result<(), i64> {
    slot.used_ns = now_ns;
    let earliest = slot.next_ns.max(slot.closed_until_ns);
    if now_ns < earliest {
        return Err(earliest - now_ns);
    }
    slot.next_ns = now_ns.saturating_add(interval_ns.max(0));
    Ok(())
}

/// A 429: close the lane for `secs` from `now_ns` (never shortening an earlier close).
pub fn close(slot: &mut Slot, now_ns: i64, secs: f64) {
    let until = now_ns.saturating_add((secs.clamp(0.0, 3600.0) * 1e9) as i64);
    slot.closed_until_ns = slot.closed_until_ns.max(until);
    slot.used_ns = now_ns;
}

/// Requests per second as an interval in nanoseconds (0: unlimited), 5 % longer than the
/// rate's own: the provider counts arrivals, and a request that reaches it later than the
/// one `rate` after it (network and scheduling jitter between booking and arrival) would
/// otherwise put `rate + 1` arrivals into one of its seconds. 5 % of a second is 50 ms of
/// jitter tolerated at any rate; 1 % (10 ms) was seen exceeded on a loaded 2-core machine.
pub fn interval_ns(rate: f64) -> i64 {
    if rate.is_finite() && rate > 0.0 {
        (1.05e9 / rate).ceil() as i64
    } else {
        0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn admits_one_request_per_interval() {
        let mut s = Slot::default();
        let iv = interval_ns(10.0);
        assert_eq!(iv, 105_000_000);
        assert_eq!(admit(&mut s, 0, iv), Ok(()));
        assert_eq!(admit(&mut s, 50_000_000, iv), Err(55_000_000));
        assert_eq!(admit(&mut s, 105_000_000, iv), Ok(()));
        // idle time earns no burst: after a long pause, still one per interval
        assert_eq!(admit(&mut s, 5_000_000_000, iv), Ok(()));
        assert!(admit(&mut s, 5_000_000_001, iv).is_err());
    }

    #[test]
    fn any_one_second_window_holds_at_most_rate_starts() {
        // Ten senders polling at odd times: the started requests, sorted, are >= interval apart.
        let mut s = Slot::default();
        let iv = interval_ns(10.0);
        let mut starts = Vec::new();
        let mut t = 0i64;
        while t < 3_000_000_000 {
            for sender in 0..10 {
                if admit(&mut s, t + sender * 1_700, iv).is_ok() {
                    starts.push(t + sender * 1_700);
                }
            }
            t += 7_300_000;
        }
        for w in starts.windows(11) {
            assert!(
                w[10] - w[0] >= 1_050_000_000,
                "11 starts within 1.05 s: {w:?}"
            );
        }
        assert!(starts.len() >= 26, "{} starts in 3 s", starts.len());
    }

    #[test]
    fn a_429_closes_the_lane_for_everyone_until_retry_after() {
        let mut s = Slot::default();
        assert_eq!(admit(&mut s, 0, 0), Ok(()));
        close(&mut s, 10, 2.0);
        assert_eq!(admit(&mut s, 1_000_000_000, 0), Err(1_000_000_010));
        close(&mut s, 20, 0.5); // a shorter close does not reopen it
        assert!(admit(&mut s, 1_500_000_000, 0).is_err());
        assert_eq!(admit(&mut s, 2_000_000_010, 0), Ok(()));
    }

    #[test]
    fn a_full_table_reuses_the_least_recently_used_slot() {
        let mut slots = vec![[0i64; 4]; 3];
        let a = slot_index(&mut slots, lane_key("gmail", Some("a")), 1);
        let b = slot_index(&mut slots, lane_key("gmail", Some("b")), 2);
        let c = slot_index(&mut slots, lane_key("gmail", Some("c")), 3);
        assert_eq!((a, b, c), (0, 1, 2));
        assert_eq!(slot_index(&mut slots, lane_key("gmail", Some("b")), 4), 1);
        // a is the least recently used: d takes its slot, fresh
        let mut sa = Slot::from_words(slots[0]);
        sa.next_ns = 99;
        slots[0] = sa.to_words();
        let d = slot_index(&mut slots, lane_key("gmail", Some("d")), 5);
        assert_eq!(d, 0);
        assert_eq!(Slot::from_words(slots[0]).next_ns, 0);
    }

    #[test]
    fn lane_keys_differ_by_provider_and_key() {
        assert_ne!(
            lane_key("gmail", Some("x")),
            lane_key("microsoft", Some("x"))
        );
        assert_ne!(
            lane_key("resend", None),
            lane_key("resend", Some("")).wrapping_add(1)
        );
        assert_ne!(lane_key("ab", Some("c")), lane_key("a", Some("bc")));
        assert_ne!(lane_key("", None), 0);
    }
}
