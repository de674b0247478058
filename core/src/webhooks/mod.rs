//! Inbound webhook signature verification, one module per scheme. Pure functions of
//! (headers, body, secrets, now): the SQL shell (`src/webhooks.rs`) reads the secrets from
//! settings and maps [`VerifyError`] to SQLSTATEs; storage and effects are SQL.

pub mod elevenlabs;
pub mod stripe;
pub mod svix;

use std::fmt;

/// Signature headers are short; anything longer is an attack or a mistake, refused before
/// any parsing or hashing.
pub const MAX_SIGNATURE_HEADER: usize = 4096;
/// At most this many candidate signatures per header (rotation sends 2–3).
pub const MAX_SIGNATURES: usize = 16;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum VerifyError {
    /// A required header is absent (its name).
    MissingHeader(&'static str),
    /// A header is present but not of the documented shape.
    MalformedHeader(&'static str),
    /// The timestamp is further from now than the tolerance.
    StaleTimestamp {
        timestamp: i64,
        now: i64,
        tolerance: i64,
    },
    /// No signature matches any configured secret.
    NoMatchingSignature,
    /// A configured secret is unusable (never quoted).
    BadSecret(&'static str),
}

impl fmt::Display for VerifyError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            VerifyError::MissingHeader(h) => write!(f, "missing {h} header"),
            VerifyError::MalformedHeader(h) => write!(f, "malformed {h} header"),
            VerifyError::StaleTimestamp {
                timestamp,
                now,
                tolerance,
            } => write!(
                f,
                "webhook timestamp {timestamp} is {}s from now, outside the {tolerance}s tolerance",
                (now - timestamp).abs()
            ),
            VerifyError::NoMatchingSignature => write!(f, "no signature matches the payload"),
            VerifyError::BadSecret(setting) => {
                write!(f, "{setting} is not a usable webhook secret")
            }
        }
    }
}

pub(crate) fn check_tolerance(timestamp: i64, now: i64, tolerance: i64) -> Result<(), VerifyError> {
    // Symmetric: a timestamp far in the future is as suspect as an old one (replay with a
    // forged clock, or a badly skewed sender).
    if tolerance > 0 && (now - timestamp).abs() > tolerance {
        return Err(VerifyError::StaleTimestamp {
            timestamp,
            now,
            tolerance,
        });
    }
    Ok(())
}

/// Whether any candidate signature is the HMAC-SHA256 of `prefix || body` under any key.
/// `verify_slice` compares in constant time.
pub(crate) fn any_signature_matches<K: AsRef<[u8]>>(
    keys: &[K],
    prefix: &[u8],
    body: &[u8],
    signatures: &[Vec<u8>],
) -> bool {
    use hmac::{Hmac, Mac};
    keys.iter().any(|key| {
        let mut mac =
            Hmac::<sha2::Sha256>::new_from_slice(key.as_ref()).expect("HMAC takes any key length");
        mac.update(prefix);
        mac.update(body);
        signatures
            .iter()
            .any(|sig| mac.clone().verify_slice(sig).is_ok())
    })
}

pub(crate) fn decode_hex(s: &str) -> Option<Vec<u8>> {
    if !s.len().is_multiple_of(2) {
        return None;
    }
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(s.get(i..i + 2)?, 16).ok())
        .collect()
}
