//! ElevenLabs: `ElevenLabs-Signature: t=<unix time>,v0=<hex HMAC-SHA256>`, the HMAC keyed with
//! the webhook's shared secret (`wsec_…`, used as is) over `"<t>.<raw body>"`, compared in
//! constant time; the timestamp must be within the tolerance on either side of now. As the
//! official SDKs' `constructEvent` verifies it.

use super::{
    any_signature_matches, check_tolerance, decode_hex, VerifyError, MAX_SIGNATURES,
    MAX_SIGNATURE_HEADER,
};
use hmac::{Hmac, Mac};
use sha2::Sha256;

pub const HEADER: &str = "ElevenLabs-Signature";

/// Verify and return the signed timestamp.
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
            "v0" => {
                if signatures.len() >= MAX_SIGNATURES {
                    return Err(VerifyError::MalformedHeader(HEADER));
                }
                if let Some(sig) = decode_hex(v).filter(|s| s.len() == 32) {
                    signatures.push(sig);
                }
            }
            _ => {}
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
    check_tolerance(timestamp, now, tolerance)?;
    Ok(timestamp)
}

/// The header value ElevenLabs would send (tests, demo).
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
    format!("t={timestamp},v0={hex}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signed_and_refused() {
        let body = br#"{"type":"post_call_transcription"}"#;
        let h = sign(body, "wsec_test", 1_800_000_000);
        let keys = [b"wsec_test".to_vec()];
        assert_eq!(
            verify(Some(&h), body, &keys, 1_800_000_100, 1800),
            Ok(1_800_000_000)
        );
        // both directions of the window
        assert!(matches!(
            verify(Some(&h), body, &keys, 1_800_002_000, 1800),
            Err(VerifyError::StaleTimestamp { .. })
        ));
        assert!(matches!(
            verify(Some(&h), body, &keys, 1_799_998_000, 1800),
            Err(VerifyError::StaleTimestamp { .. })
        ));
        assert_eq!(
            verify(Some(&h), b"{}", &keys, 1_800_000_000, 1800),
            Err(VerifyError::NoMatchingSignature)
        );
        assert_eq!(
            verify(None, body, &keys, 0, 1800),
            Err(VerifyError::MissingHeader(HEADER))
        );
        assert_eq!(
            verify(Some("t=x,v0=00"), body, &keys, 0, 1800),
            Err(VerifyError::MalformedHeader(HEADER))
        );
        assert_eq!(
            verify(Some("garbage"), body, &keys, 0, 1800),
            Err(VerifyError::MalformedHeader(HEADER))
        );
        let wrong = [b"other".to_vec()];
        assert_eq!(
            verify(Some(&h), body, &wrong, 1_800_000_000, 1800),
            Err(VerifyError::NoMatchingSignature)
        );
    }
}
