//! Stripe: `Stripe-Signature: t=<unix time>,v1=<hex HMAC-SHA256>[,v1=…][,v0=…]`, the HMAC
//! keyed with the endpoint secret (`whsec_…`, used as is) over `"<t>.<raw body>"`. Several
//! `v1` entries are allowed (Stripe sends one per active secret while rolling a secret), and
//! several secrets may be configured for the same reason. Comparison is constant-time.
//! Algorithm as in Stripe's official libraries (stripe-python `WebhookSignature`).

use super::{
    any_signature_matches, check_tolerance, decode_hex, VerifyError, MAX_SIGNATURES,
    MAX_SIGNATURE_HEADER,
};
use hmac::{Hmac, Mac};
use sha2::Sha256;

pub const HEADER: &str = "Stripe-Signature";

/// Verify and return the signed timestamp. `secrets`: the endpoint secrets' bytes, as is.
pub fn verify<K: AsRef<[u8]>>(
    header: Option<&str>,
    body: &[u8],
    secrets: &[K],
    now: i64,
    tolerance: i64,
) -> Result<i64, VerifyError> {
    let header = header.ok_or(VerifyError::MissingHeader(HEADER))?;
    if header.len() > MAX_SIGNATURE_HEADER {
        return Err(VerifyError::MalformedHeader(HEADER));
    }
    let mut timestamp = None;
    let mut signatures = Vec::new();
    let mut v1_entries = 0;
    for item in header.split(',') {
        let (k, v) = item
            .trim()
            .split_once('=')
            .ok_or(VerifyError::MalformedHeader(HEADER))?;
        match k {
            "t" => {
                timestamp = Some(
                    v.parse::<i64>()
                        .map_err(|_| VerifyError::MalformedHeader(HEADER))?,
                )
            }
            "v1" => {
                v1_entries += 1;
                if v1_entries > MAX_SIGNATURES {
                    return Err(VerifyError::MalformedHeader(HEADER));
                }
                // A v1 that is not 32 bytes of hex can never match; skip it, as Stripe does.
                if let Some(sig) = decode_hex(v).filter(|s| s.len() == 32) {
                    signatures.push(sig);
                }
            }
            _ => {} // v0 (test mode legacy) and future schemes are ignored
        }
    }
    let timestamp = timestamp.ok_or(VerifyError::MalformedHeader(HEADER))?;
    if signatures.is_empty() {
        return Err(VerifyError::NoMatchingSignature);
    }
    if !any_signature_matches(
        secrets,
        format!("{timestamp}.").as_bytes(),
        body,
        &signatures,
    ) {
        return Err(VerifyError::NoMatchingSignature);
    }
    // Checked after the signature, as Stripe does: an unsigned request learns nothing about
    // our clock.
    check_tolerance(timestamp, now, tolerance)?;
    Ok(timestamp)
}

/// The header value Stripe would send (for tests, the demo and the benchmark).
pub fn sign(body: &[u8], secret: &str, timestamp: i64) -> String {
    let mut mac = Hmac::<Sha256>::new_from_slice(secret.as_bytes()).expect("any key length");
    mac.update(format!("{timestamp}.").as_bytes());
    mac.update(body);
    let hex: String = mac
        .finalize()
        .into_bytes()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    format!("t={timestamp},v1={hex}")
}

#[cfg(test)]
mod tests {
    use super::*;

    // Generated with stripe-python 11.4.1's WebhookSignature._compute_signature (the official
    // library), secret "whsec_test_secret", timestamp 1700000000.
    const BODY: &str = "{\n  \"id\": \"evt_test_webhook\",\n  \"object\": \"event\"\n}";
    const OFFICIAL: &str =
        "t=1700000000,v1=4f1cd7feda9826e746b7d482c4badebb657398df1099e1046364f6196a230150";

    #[test]
    fn official_library_vector() {
        assert_eq!(
            verify(
                Some(OFFICIAL),
                BODY.as_bytes(),
                &["whsec_test_secret"],
                1700000000,
                300
            ),
            Ok(1700000000)
        );
        assert_eq!(
            sign(BODY.as_bytes(), "whsec_test_secret", 1700000000),
            OFFICIAL
        );
    }

    #[test]
    fn byte_for_byte_body() {
        let altered = BODY.replace("  ", " ");
        assert_eq!(
            verify(
                Some(OFFICIAL),
                altered.as_bytes(),
                &["whsec_test_secret"],
                1700000000,
                300
            ),
            Err(VerifyError::NoMatchingSignature)
        );
    }

    #[test]
    fn several_signatures_and_secrets() {
        let h = format!(
            "t=1700000000,v1={},v0=abc,{}",
            "00".repeat(32),
            &OFFICIAL[13..]
        );
        assert!(verify(
            Some(&h),
            BODY.as_bytes(),
            &["whsec_old", "whsec_test_secret"],
            1700000000,
            300
        )
        .is_ok());
        assert_eq!(
            verify(Some(&h), BODY.as_bytes(), &["whsec_other"], 1700000000, 300),
            Err(VerifyError::NoMatchingSignature)
        );
    }

    #[test]
    fn tolerance_both_ways() {
        let ok = |now| {
            verify(
                Some(OFFICIAL),
                BODY.as_bytes(),
                &["whsec_test_secret"],
                now,
                300,
            )
        };
        assert!(ok(1700000300).is_ok());
        assert!(matches!(
            ok(1700000301),
            Err(VerifyError::StaleTimestamp { .. })
        ));
        assert!(matches!(
            ok(1699999699),
            Err(VerifyError::StaleTimestamp { .. })
        ));
        // tolerance 0 disables the check
        assert!(verify(
            Some(OFFICIAL),
            BODY.as_bytes(),
            &["whsec_test_secret"],
            0,
            0
        )
        .is_ok());
    }

    #[test]
    fn malformed_headers() {
        let v = |h: &str| {
            verify(
                Some(h),
                BODY.as_bytes(),
                &["whsec_test_secret"],
                1700000000,
                300,
            )
        };
        assert_eq!(
            verify(None, b"", &["s"], 0, 300),
            Err(VerifyError::MissingHeader(HEADER))
        );
        assert_eq!(v(""), Err(VerifyError::MalformedHeader(HEADER)));
        assert_eq!(v("v1=abc"), Err(VerifyError::MalformedHeader(HEADER)));
        assert_eq!(v("t=abc,v1=00"), Err(VerifyError::MalformedHeader(HEADER)));
        assert_eq!(v("t=1700000000"), Err(VerifyError::NoMatchingSignature));
        assert_eq!(
            v("t=1700000000,v1=zz"),
            Err(VerifyError::NoMatchingSignature)
        );
        assert_eq!(
            v(&format!("t=1,{}", "v1=00,".repeat(3000))),
            Err(VerifyError::MalformedHeader(HEADER))
        );
        assert_eq!(
            v(&format!("t=1{}", ",v1=00".repeat(17))),
            Err(VerifyError::MalformedHeader(HEADER))
        );
    }
}
