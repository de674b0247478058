//! Resend delivers webhooks through Svix (the Standard Webhooks scheme): headers `svix-id`,
//! `svix-timestamp` (unix seconds) and `svix-signature` (space-separated `v1,<base64>`), the
//! HMAC-SHA256 keyed with the base64-decoded part of the `whsec_…` secret over
//! `"<id>.<timestamp>.<raw body>"`. The `webhook-*` header names of Standard Webhooks are
//! accepted too. Comparison is constant-time.

use super::{
    any_signature_matches, check_tolerance, VerifyError, MAX_SIGNATURES, MAX_SIGNATURE_HEADER,
};
use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use hmac::{Hmac, Mac};
use sha2::Sha256;

pub struct Headers<'a> {
    pub id: Option<&'a str>,
    pub timestamp: Option<&'a str>,
    pub signature: Option<&'a str>,
}

/// Decode a `whsec_<base64>` secret (the prefix is optional).
pub fn decode_secret(secret: &str) -> Option<Vec<u8>> {
    let b64 = secret
        .trim()
        .strip_prefix("whsec_")
        .unwrap_or(secret.trim());
    STANDARD.decode(b64).ok().filter(|k| !k.is_empty())
}

/// Verify; returns the message id (the event's identity for deduplication).
pub fn verify<'a>(
    h: &Headers<'a>,
    body: &[u8],
    secrets: &[Vec<u8>],
    now: i64,
    tolerance: i64,
) -> Result<&'a str, VerifyError> {
    let id = h.id.ok_or(VerifyError::MissingHeader("svix-id"))?;
    let ts_text = h
        .timestamp
        .ok_or(VerifyError::MissingHeader("svix-timestamp"))?;
    let sig_header = h
        .signature
        .ok_or(VerifyError::MissingHeader("svix-signature"))?;
    if id.is_empty() || id.len() > 256 || id.contains('.') {
        return Err(VerifyError::MalformedHeader("svix-id"));
    }
    let timestamp = ts_text
        .trim()
        .parse::<i64>()
        .map_err(|_| VerifyError::MalformedHeader("svix-timestamp"))?;
    if sig_header.len() > MAX_SIGNATURE_HEADER {
        return Err(VerifyError::MalformedHeader("svix-signature"));
    }
    let mut signatures = Vec::new();
    for entry in sig_header.split_whitespace() {
        let (version, sig) = entry
            .split_once(',')
            .ok_or(VerifyError::MalformedHeader("svix-signature"))?;
        if signatures.len() >= MAX_SIGNATURES {
            return Err(VerifyError::MalformedHeader("svix-signature"));
        }
        if version == "v1" {
            if let Ok(bytes) = STANDARD.decode(sig) {
                signatures.push(bytes);
            }
        }
    }
    if signatures.is_empty() {
        return Err(VerifyError::NoMatchingSignature);
    }
    if !any_signature_matches(
        secrets,
        format!("{id}.{timestamp}.").as_bytes(),
        body,
        &signatures,
    ) {
        return Err(VerifyError::NoMatchingSignature);
    }
    check_tolerance(timestamp, now, tolerance)?;
    Ok(id)
}

/// The `svix-signature` value Svix would send.
pub fn sign(id: &str, timestamp: i64, body: &[u8], key: &[u8]) -> String {
    let mut mac = Hmac::<Sha256>::new_from_slice(key).expect("any key length");
    mac.update(format!("{id}.{timestamp}.").as_bytes());
    mac.update(body);
    format!("v1,{}", STANDARD.encode(mac.finalize().into_bytes()))
}

#[cfg(test)]
mod tests {
    use super::*;

    // Svix's published test vector (svix-webhooks libraries' tests and docs).
    const SECRET: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
    const ID: &str = "msg_p5jXN8AQM9LWM0D4loKWxJek";
    const TS: &str = "1614265330";
    const BODY: &str = r#"{"test": 2432232314}"#;
    const SIG: &str = "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=";

    fn h(sig: &'static str) -> Headers<'static> {
        Headers {
            id: Some(ID),
            timestamp: Some(TS),
            signature: Some(sig),
        }
    }

    #[test]
    fn published_vector() {
        let key = decode_secret(SECRET).unwrap();
        assert_eq!(
            verify(
                &h(SIG),
                BODY.as_bytes(),
                std::slice::from_ref(&key),
                1614265330,
                300
            ),
            Ok(ID)
        );
        assert_eq!(sign(ID, 1614265330, BODY.as_bytes(), &key), SIG);
    }

    #[test]
    fn space_separated_list_and_other_versions() {
        let key = decode_secret(SECRET).unwrap();
        let list = format!("v1a,AAAA v1,Zm9v {SIG}");
        let hd = Headers {
            id: Some(ID),
            timestamp: Some(TS),
            signature: Some(&list),
        };
        assert!(verify(&hd, BODY.as_bytes(), &[key], 1614265330, 300).is_ok());
    }

    #[test]
    fn failures() {
        let key = decode_secret(SECRET).unwrap();
        let v = |hd: Headers<'static>, body: &str, now| {
            verify(&hd, body.as_bytes(), std::slice::from_ref(&key), now, 300).map(str::to_owned)
        };
        assert_eq!(
            v(h(SIG), r#"{"test": 2432232315}"#, 1614265330),
            Err(VerifyError::NoMatchingSignature)
        );
        assert!(matches!(
            v(h(SIG), BODY, 1614265331 + 300),
            Err(VerifyError::StaleTimestamp { .. })
        ));
        assert_eq!(
            v(Headers { id: None, ..h(SIG) }, BODY, 1614265330),
            Err(VerifyError::MissingHeader("svix-id"))
        );
        assert_eq!(
            v(
                Headers {
                    timestamp: Some("soon"),
                    ..h(SIG)
                },
                BODY,
                1614265330
            ),
            Err(VerifyError::MalformedHeader("svix-timestamp"))
        );
        assert_eq!(
            v(h("garbage"), BODY, 1614265330),
            Err(VerifyError::MalformedHeader("svix-signature"))
        );
        assert_eq!(
            v(h("v2,abc"), BODY, 1614265330),
            Err(VerifyError::NoMatchingSignature)
        );
        // the id is part of what is signed
        assert_eq!(
            v(
                Headers {
                    id: Some("msg_other"),
                    ..h(SIG)
                },
                BODY,
                1614265330
            ),
            Err(VerifyError::NoMatchingSignature)
        );
        assert_eq!(decode_secret("whsec_!!!"), None);
    }
}
