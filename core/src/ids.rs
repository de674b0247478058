//! Ids for the queue's rows, made here instead of by Postgres' `gen_random_uuid()`.
//!
//! Why: `gen_random_uuid()` asks OpenSSL for 16 random bytes on every call (about 9,000
//! instructions, 4 % of an enqueue), and a random (v4) id lands anywhere in the primary key,
//! so a growing queue touches a different index page for nearly every new row. A UUIDv7
//! (RFC 9562 §5.7) starts with the Unix time in milliseconds: new rows go to the right edge of
//! the index. Its other 74 bits are random, from the vault's fork-safe ChaCha20 generator (the
//! ids are not secrets; row-level security, not the id, guards a row).

use crate::vault::NonceSource;

/// UUIDv7 ids from one generator (keep one per process).
#[derive(Default)]
pub struct UuidV7Source {
    random: NonceSource,
}

impl UuidV7Source {
    pub fn new() -> Self {
        Self::default()
    }

    /// A new id for the time `unix_millis`.
    pub fn next(&mut self, unix_millis: u64) -> [u8; 16] {
        let mut random = [0u8; 10];
        self.random.fill(&mut random);
        *uuid::Builder::from_unix_timestamp_millis(unix_millis, &random)
            .as_uuid()
            .as_bytes()
    }
}

/// The bytes of a UUID written as 32 hex digits or in the hyphenated 8-4-4-4-12 form (either
/// case); `None` for anything else.
pub fn parse_uuid(s: &str) -> Option<[u8; 16]> {
    if s.len() != 32 && s.len() != 36 {
        return None;
    }
    uuid::Uuid::try_parse(s).ok().map(|u| *u.as_bytes())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn v7_layout_time_order_and_uniqueness() {
        let mut ids = UuidV7Source::new();
        let a = ids.next(1_764_000_000_000);
        let b = ids.next(1_764_000_000_001);
        let u = uuid::Uuid::from_bytes(a);
        assert_eq!(u.get_version_num(), 7);
        assert_eq!(u.get_variant(), uuid::Variant::RFC4122);
        assert_eq!(
            u.get_timestamp().map(|t| t.to_unix()),
            Some((1_764_000_000, 0))
        );
        assert!(a < b, "a later millisecond sorts after");
        let same_ms: std::collections::HashSet<_> =
            (0..1000).map(|_| ids.next(1_764_000_000_002)).collect();
        assert_eq!(same_ms.len(), 1000);
    }

    #[test]
    fn parses_the_two_plain_forms_only() {
        let want = Some([
            0xa0, 0xee, 0xbc, 0x99, 0x9c, 0x0b, 0x4e, 0xf8, 0xbb, 0x6d, 0x6b, 0xb9, 0xbd, 0x38,
            0x0a, 0x11,
        ]);
        assert_eq!(parse_uuid("a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11"), want);
        assert_eq!(parse_uuid("A0EEBC999C0B4EF8BB6D6BB9BD380A11"), want);
        for bad in [
            "{a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11}",
            "urn:uuid:a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11",
            "a0eebc999c0b-4ef8-bb6d-6bb9bd380a11-",
            "a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a1g",
            "",
        ] {
            assert_eq!(parse_uuid(bad), None, "{bad}");
        }
    }
}
