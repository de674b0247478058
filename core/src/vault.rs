//! Token vault: AES-256-GCM with a versioned, self-describing ciphertext format.
//!
//! A stored token is `base64(version || fingerprint || nonce || ciphertext || tag)`:
//!
//! | bytes | field |
//! |---|---|
//! | 1  | format version, `1` |
//! | 8  | key fingerprint: first 8 bytes of SHA-256(domain tag || key) |
//! | 12 | random nonce, fresh for every encryption |
//! | n  | ciphertext (same length as the plaintext) |
//! | 16 | GCM tag |
//!
//! The version and fingerprint are authenticated (they are the start of the associated data),
//! followed by the caller's context string, so a ciphertext copied to another row or column
//! (another context) fails authentication instead of decrypting.
//!
//! The fingerprint tells decryption which key of the keyring to use, which is what makes key
//! rotation possible without a flag day. It reveals nothing useful about a random 256-bit key.
//!
//! Nothing in here knows about Postgres: the SQL shell (`src/vault.rs`) maps the errors to
//! SQLSTATEs and reads the keys from settings.

use aes_gcm::aead::{AeadInPlace, KeyInit};
use aes_gcm::{Aes256Gcm, Nonce, Tag};
use base64::engine::general_purpose::{STANDARD, STANDARD_NO_PAD, URL_SAFE, URL_SAFE_NO_PAD};
use base64::Engine;
use rand_chacha::ChaCha20Rng;
use rand_core::{OsRng, RngCore, SeedableRng};
use sha2::{Digest, Sha256};
use std::fmt;
use zeroize::Zeroize;

pub const FORMAT_VERSION: u8 = 1;
pub const FINGERPRINT_LEN: usize = 8;
pub const NONCE_LEN: usize = 12;
pub const TAG_LEN: usize = 16;
pub const HEADER_LEN: usize = 1 + FINGERPRINT_LEN;
/// Smallest possible token: header, nonce and tag around an empty plaintext.
pub const MIN_TOKEN_BYTES: usize = HEADER_LEN + NONCE_LEN + TAG_LEN;
/// Largest plaintext accepted. OAuth tokens are a few KiB at most; the cap keeps a mistaken
/// call (a whole document) from producing a huge value in a token column.
pub const MAX_PLAINTEXT_BYTES: usize = 64 * 1024;

const FINGERPRINT_DOMAIN: &[u8] = b"crm_integrations/vault/key-fingerprint/v1";

pub type Fingerprint = [u8; FINGERPRINT_LEN];

/// Why a key setting could not be used. Never carries the key material itself.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KeyError {
    /// `crm.encryption_key` is empty or unset.
    Missing,
    /// A key did not decode to exactly 32 bytes. `setting` names the setting, `position` the
    /// 1-based entry in a comma-separated list.
    Malformed {
        setting: &'static str,
        position: usize,
        reason: &'static str,
    },
}

impl fmt::Display for KeyError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            KeyError::Missing => write!(f, "crm.encryption_key is not set"),
            KeyError::Malformed {
                setting,
                position,
                reason,
            } => {
                write!(
                    f,
                    "{setting} entry {position} is not a usable key: {reason}"
                )
            }
        }
    }
}

/// Why a ciphertext could not be decrypted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DecryptError {
    /// Not base64, wrong version, or too short to hold header, nonce and tag.
    Malformed(&'static str),
    /// Well-formed, but made with a key that is neither current nor previous.
    UnknownKey(Fingerprint),
    /// The tag did not verify: tampered bytes, wrong key or wrong context.
    AuthenticationFailed,
    /// The plaintext is too large to encrypt (only from `encrypt`).
    PlaintextTooLarge(usize),
}

impl fmt::Display for DecryptError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DecryptError::Malformed(why) => write!(f, "malformed ciphertext: {why}"),
            DecryptError::UnknownKey(fp) => {
                write!(
                    f,
                    "ciphertext was encrypted with unknown key {}",
                    fingerprint_hex(fp)
                )
            }
            DecryptError::AuthenticationFailed => write!(
                f,
                "ciphertext failed authentication (tampered, wrong key or wrong context)"
            ),
            DecryptError::PlaintextTooLarge(n) => {
                write!(
                    f,
                    "plaintext of {n} bytes exceeds the {MAX_PLAINTEXT_BYTES}-byte limit"
                )
            }
        }
    }
}

pub fn fingerprint_hex(fp: &Fingerprint) -> String {
    fp.iter().map(|b| format!("{b:02x}")).collect()
}

/// Decode one key: 64 hex digits, or base64 (standard or URL-safe, padded or not) of 32 bytes.
pub fn parse_key(text: &str) -> Result<[u8; 32], &'static str> {
    let text = text.trim();
    if text.is_empty() {
        return Err("empty");
    }
    let mut bytes = if text.len() == 64 && text.bytes().all(|b| b.is_ascii_hexdigit()) {
        (0..32)
            .map(|i| u8::from_str_radix(&text[2 * i..2 * i + 2], 16).expect("checked hex"))
            .collect::<Vec<u8>>()
    } else {
        [&STANDARD, &STANDARD_NO_PAD, &URL_SAFE, &URL_SAFE_NO_PAD]
            .iter()
            .find_map(|engine| engine.decode(text).ok())
            .ok_or("neither 64 hex digits nor base64")?
    };
    if bytes.len() != 32 {
        bytes.zeroize();
        return Err("does not decode to 32 bytes");
    }
    let mut key = [0u8; 32];
    key.copy_from_slice(&bytes);
    bytes.zeroize();
    Ok(key)
}

/// One key, ready to use: the AES key schedule is computed once.
pub struct VaultKey {
    cipher: Aes256Gcm,
    fingerprint: Fingerprint,
}

impl VaultKey {
    pub fn new(mut key: [u8; 32]) -> Self {
        let mut hasher = Sha256::new();
        hasher.update(FINGERPRINT_DOMAIN);
        hasher.update(key);
        let digest = hasher.finalize();
        let mut fingerprint = [0u8; FINGERPRINT_LEN];
        fingerprint.copy_from_slice(&digest[..FINGERPRINT_LEN]);
        let cipher = Aes256Gcm::new(&key.into());
        key.zeroize();
        VaultKey {
            cipher,
            fingerprint,
        }
    }

    pub fn fingerprint(&self) -> &Fingerprint {
        &self.fingerprint
    }
}

/// The current key (used to encrypt) and the previous ones (still accepted to decrypt).
pub struct Keyring {
    current: VaultKey,
    previous: Vec<VaultKey>,
}

/// Upper bound on previous keys: each one is tried only by fingerprint, but a runaway list in a
/// configuration file should be an error, not a slow decrypt.
pub const MAX_PREVIOUS_KEYS: usize = 16;

impl Keyring {
    /// Build from the two settings' texts. `previous` is a comma-separated list; empty entries
    /// are ignored so a trailing comma is harmless.
    pub fn from_settings(
        current: Option<&str>,
        previous: Option<&str>,
    ) -> Result<Keyring, KeyError> {
        let current = match current.map(str::trim) {
            None | Some("") => return Err(KeyError::Missing),
            Some(text) => VaultKey::new(parse_key(text).map_err(|reason| KeyError::Malformed {
                setting: "crm.encryption_key",
                position: 1,
                reason,
            })?),
        };
        let mut keys = Vec::new();
        for (i, entry) in previous.unwrap_or("").split(',').enumerate() {
            if entry.trim().is_empty() {
                continue;
            }
            let key = parse_key(entry).map_err(|reason| KeyError::Malformed {
                setting: "crm.encryption_key_previous",
                position: i + 1,
                reason,
            })?;
            keys.push(VaultKey::new(key));
        }
        if keys.len() > MAX_PREVIOUS_KEYS {
            return Err(KeyError::Malformed {
                setting: "crm.encryption_key_previous",
                position: keys.len(),
                reason: "more than 16 previous keys",
            });
        }
        Ok(Keyring {
            current,
            previous: keys,
        })
    }

    pub fn current_fingerprint(&self) -> &Fingerprint {
        &self.current.fingerprint
    }

    fn key_for(&self, fp: &Fingerprint) -> Option<&VaultKey> {
        std::iter::once(&self.current)
            .chain(self.previous.iter())
            .find(|k| &k.fingerprint == fp)
    }

    /// Encrypt under the current key with a nonce from `nonces`.
    pub fn encrypt(
        &self,
        plaintext: &[u8],
        context: &[u8],
        nonces: &mut NonceSource,
    ) -> Result<String, DecryptError> {
        if plaintext.len() > MAX_PLAINTEXT_BYTES {
            return Err(DecryptError::PlaintextTooLarge(plaintext.len()));
        }
        let mut nonce = [0u8; NONCE_LEN];
        nonces.fill(&mut nonce);
        let mut out = Vec::with_capacity(MIN_TOKEN_BYTES + plaintext.len());
        out.push(FORMAT_VERSION);
        out.extend_from_slice(&self.current.fingerprint);
        out.extend_from_slice(&nonce);
        out.extend_from_slice(plaintext);
        let body_start = HEADER_LEN + NONCE_LEN;
        let aad = associated_data(&out[..HEADER_LEN], context);
        let (_, body) = out.split_at_mut(body_start);
        let tag = self
            .current
            .cipher
            .encrypt_in_place_detached(Nonce::from_slice(&nonce), &aad, body)
            .expect("AES-GCM encryption cannot fail below 64 GiB");
        out.extend_from_slice(&tag);
        Ok(STANDARD.encode(&out))
    }

    /// Decrypt a token made by [`Keyring::encrypt`] with the same context.
    pub fn decrypt(&self, token: &str, context: &[u8]) -> Result<Vec<u8>, DecryptError> {
        let mut raw = decode_token(token)?;
        let fp = header_fingerprint(&raw);
        let key = self.key_for(&fp).ok_or(DecryptError::UnknownKey(fp))?;
        let aad = associated_data(&raw[..HEADER_LEN], context);
        let nonce_end = HEADER_LEN + NONCE_LEN;
        let tag_start = raw.len() - TAG_LEN;
        let nonce = *Nonce::from_slice(&raw[HEADER_LEN..nonce_end]);
        let tag = *Tag::from_slice(&raw[tag_start..]);
        key.cipher
            .decrypt_in_place_detached(&nonce, &aad, &mut raw[nonce_end..tag_start], &tag)
            .map_err(|_| DecryptError::AuthenticationFailed)?;
        raw.truncate(tag_start);
        Ok(raw.split_off(nonce_end))
    }

    /// Whether a token is under a key other than the current one (rotation should rewrite it).
    pub fn needs_rotation(&self, token: &str) -> Result<bool, DecryptError> {
        Ok(&token_fingerprint(token)? != self.current_fingerprint())
    }
}

fn associated_data(header: &[u8], context: &[u8]) -> Vec<u8> {
    let mut aad = Vec::with_capacity(header.len() + context.len());
    aad.extend_from_slice(header);
    aad.extend_from_slice(context);
    aad
}

fn decode_token(token: &str) -> Result<Vec<u8>, DecryptError> {
    // A token's base64 is at most ~4/3 of MAX_PLAINTEXT_BYTES plus the fixed parts; refuse
    // anything far larger before allocating for it.
    if token.len() > (MAX_PLAINTEXT_BYTES + MIN_TOKEN_BYTES) * 4 / 3 + 4 {
        return Err(DecryptError::Malformed(
            "longer than any token this vault makes",
        ));
    }
    let raw = STANDARD
        .decode(token.trim())
        .map_err(|_| DecryptError::Malformed("not base64"))?;
    if raw.len() < MIN_TOKEN_BYTES {
        return Err(DecryptError::Malformed(
            "truncated: shorter than header, nonce and tag",
        ));
    }
    if raw[0] != FORMAT_VERSION {
        return Err(DecryptError::Malformed("unknown format version"));
    }
    Ok(raw)
}

fn header_fingerprint(raw: &[u8]) -> Fingerprint {
    let mut fp = [0u8; FINGERPRINT_LEN];
    fp.copy_from_slice(&raw[1..HEADER_LEN]);
    fp
}

/// The fingerprint of the key a token was made with, without needing any key.
pub fn token_fingerprint(token: &str) -> Result<Fingerprint, DecryptError> {
    Ok(header_fingerprint(&decode_token(token)?))
}

/// Nonces from a ChaCha20 CSPRNG seeded from the OS.
///
/// A syscall per nonce would dominate the cost of encrypting a short token, so the generator is
/// kept in memory. Postgres forks a backend per connection: a generator seeded before a fork
/// would hand the same nonces to every child, which for GCM means key-stream reuse. The source
/// therefore remembers the process id it was seeded in and reseeds from the OS when it finds
/// itself in another process.
pub struct NonceSource {
    rng: ChaCha20Rng,
    pid: u32,
}

impl Default for NonceSource {
    fn default() -> Self {
        Self::new()
    }
}

impl NonceSource {
    pub fn new() -> Self {
        NonceSource {
            rng: Self::seeded(),
            pid: std::process::id(),
        }
    }

    fn seeded() -> ChaCha20Rng {
        let mut seed = [0u8; 32];
        OsRng.fill_bytes(&mut seed);
        let rng = ChaCha20Rng::from_seed(seed);
        seed.zeroize();
        rng
    }

    pub fn fill(&mut self, out: &mut [u8]) {
        let pid = std::process::id();
        if pid != self.pid {
            self.rng = Self::seeded();
            self.pid = pid;
        }
        self.rng.fill_bytes(out);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const K1: &str = "000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f";
    const K2_B64: &str = "ISIjJCUmJygpKissLS4vMDEyMzQ1Njc4OTo7PD0+P0A="; // bytes 0x21..=0x40

    fn ring(current: &str, previous: &str) -> Keyring {
        Keyring::from_settings(Some(current), Some(previous)).unwrap()
    }

    #[test]
    fn round_trip_with_and_without_context() {
        let r = ring(K1, "");
        let mut n = NonceSource::new();
        for pt in ["", "a", "ya29.a0AfH6SMBx-token", &"x".repeat(5000)] {
            let ct = r.encrypt(pt.as_bytes(), b"", &mut n).unwrap();
            assert_eq!(r.decrypt(&ct, b"").unwrap(), pt.as_bytes());
            let ct = r
                .encrypt(pt.as_bytes(), b"email_providers:1:access_token", &mut n)
                .unwrap();
            assert_eq!(
                r.decrypt(&ct, b"email_providers:1:access_token").unwrap(),
                pt.as_bytes()
            );
        }
    }

    #[test]
    fn equal_plaintexts_give_different_ciphertexts() {
        let r = ring(K1, "");
        let mut n = NonceSource::new();
        let a = r.encrypt(b"same", b"", &mut n).unwrap();
        let b = r.encrypt(b"same", b"", &mut n).unwrap();
        assert_ne!(a, b);
        let raw_a = STANDARD.decode(&a).unwrap();
        let raw_b = STANDARD.decode(&b).unwrap();
        assert_ne!(
            raw_a[HEADER_LEN..HEADER_LEN + NONCE_LEN],
            raw_b[HEADER_LEN..HEADER_LEN + NONCE_LEN]
        );
    }

    #[test]
    fn layout_is_version_fingerprint_nonce_body_tag() {
        let r = ring(K1, "");
        let mut n = NonceSource::new();
        let raw = STANDARD
            .decode(r.encrypt(b"hello", b"", &mut n).unwrap())
            .unwrap();
        assert_eq!(raw.len(), MIN_TOKEN_BYTES + 5);
        assert_eq!(raw[0], FORMAT_VERSION);
        assert_eq!(&raw[1..9], r.current_fingerprint());
    }

    #[test]
    fn matches_an_independent_aes_gcm_computation() {
        // NIST SP 800-38D style check: decrypting our body with the plain AES-GCM API and the
        // documented AAD (header || context) must give back the plaintext.
        use aes_gcm::aead::{Aead, Payload};
        let key = parse_key(K1).unwrap();
        let r = ring(K1, "");
        let mut n = NonceSource::new();
        let raw = STANDARD
            .decode(r.encrypt(b"wire format", b"ctx", &mut n).unwrap())
            .unwrap();
        let cipher = Aes256Gcm::new(&key.into());
        let mut aad = raw[..HEADER_LEN].to_vec();
        aad.extend_from_slice(b"ctx");
        let pt = cipher
            .decrypt(
                Nonce::from_slice(&raw[HEADER_LEN..HEADER_LEN + NONCE_LEN]),
                Payload {
                    msg: &raw[HEADER_LEN + NONCE_LEN..],
                    aad: &aad,
                },
            )
            .unwrap();
        assert_eq!(pt, b"wire format");
    }

    #[test]
    fn every_flipped_bit_fails_authentication_or_lookup() {
        let r = ring(K1, "");
        let mut n = NonceSource::new();
        let raw = STANDARD
            .decode(r.encrypt(b"secret token", b"", &mut n).unwrap())
            .unwrap();
        for i in 0..raw.len() {
            for bit in 0..8 {
                let mut t = raw.clone();
                t[i] ^= 1 << bit;
                let err = r.decrypt(&STANDARD.encode(&t), b"").unwrap_err();
                match i {
                    0 => assert!(matches!(err, DecryptError::Malformed(_))),
                    1..=8 => assert!(matches!(err, DecryptError::UnknownKey(_))),
                    _ => assert_eq!(err, DecryptError::AuthenticationFailed),
                }
            }
        }
    }

    #[test]
    fn wrong_context_fails_authentication() {
        let r = ring(K1, "");
        let mut n = NonceSource::new();
        let ct = r
            .encrypt(b"tok", b"email_providers:1:access_token", &mut n)
            .unwrap();
        assert_eq!(
            r.decrypt(&ct, b"email_providers:2:access_token")
                .unwrap_err(),
            DecryptError::AuthenticationFailed
        );
        assert_eq!(
            r.decrypt(&ct, b"").unwrap_err(),
            DecryptError::AuthenticationFailed
        );
    }

    #[test]
    fn truncation_and_garbage_are_malformed() {
        let r = ring(K1, "");
        let mut n = NonceSource::new();
        let ct = r.encrypt(b"tok", b"", &mut n).unwrap();
        assert!(matches!(
            r.decrypt(&ct[..ct.len() - 3], b""),
            Err(DecryptError::Malformed(_))
        ));
        assert!(matches!(
            r.decrypt(&ct[..20], b""),
            Err(DecryptError::Malformed(_))
        ));
        assert!(matches!(
            r.decrypt("", b""),
            Err(DecryptError::Malformed(_))
        ));
        assert!(matches!(
            r.decrypt("not base64 !!", b""),
            Err(DecryptError::Malformed(_))
        ));
        assert!(matches!(
            r.decrypt(&"A".repeat(200_000), b""),
            Err(DecryptError::Malformed(_))
        ));
        // Whole base64 quanta cut off the end: the structure is intact, the tag is not.
        let raw = STANDARD.decode(&ct).unwrap();
        let cut = STANDARD.encode(&raw[..raw.len() - 3]);
        assert_eq!(
            r.decrypt(&cut, b"").unwrap_err(),
            DecryptError::AuthenticationFailed
        );
    }

    #[test]
    fn rotation_keeps_old_tokens_readable_until_previous_is_dropped() {
        let mut n = NonceSource::new();
        let old = ring(K1, "");
        let ct = old.encrypt(b"tok", b"", &mut n).unwrap();
        let rotated = ring(K2_B64, K1);
        assert!(rotated.needs_rotation(&ct).unwrap());
        assert_eq!(rotated.decrypt(&ct, b"").unwrap(), b"tok");
        let ct2 = rotated.encrypt(b"tok", b"", &mut n).unwrap();
        assert!(!rotated.needs_rotation(&ct2).unwrap());
        let only_new = ring(K2_B64, "");
        assert_eq!(only_new.decrypt(&ct2, b"").unwrap(), b"tok");
        assert_eq!(
            only_new.decrypt(&ct, b"").unwrap_err(),
            DecryptError::UnknownKey(*old.current_fingerprint())
        );
    }

    #[test]
    fn key_parsing_accepts_hex_and_base64_and_rejects_the_rest() {
        let hex = parse_key(K1).unwrap();
        assert_eq!(hex[0], 0);
        assert_eq!(hex[31], 0x1f);
        assert_eq!(parse_key(K2_B64).unwrap()[0], 0x21);
        assert_eq!(parse_key(K2_B64.trim_end_matches('=')).unwrap()[31], 0x40);
        assert_eq!(parse_key(&format!("  {K1}\n")).unwrap(), hex);
        assert!(parse_key("").is_err());
        assert!(parse_key("short").is_err());
        assert!(parse_key(&K1[..62]).is_err());
        assert!(parse_key("AAAA").is_err()); // valid base64, 3 bytes
        assert_eq!(
            Keyring::from_settings(None, None).err(),
            Some(KeyError::Missing)
        );
        assert_eq!(
            Keyring::from_settings(Some("  "), None).err(),
            Some(KeyError::Missing)
        );
        let err = Keyring::from_settings(Some(K1), Some(&format!("{K2_B64},bogus")))
            .err()
            .unwrap();
        assert_eq!(
            err,
            KeyError::Malformed {
                setting: "crm.encryption_key_previous",
                position: 2,
                reason: "neither 64 hex digits nor base64"
            }
        );
        // A trailing comma is fine.
        assert!(Keyring::from_settings(Some(K1), Some(&format!("{K2_B64},"))).is_ok());
    }

    #[test]
    fn errors_never_echo_key_material() {
        let secretish = "thisisnotakeybutlookssecret";
        let err = Keyring::from_settings(Some(secretish), None).err().unwrap();
        assert!(!err.to_string().contains(secretish));
    }

    #[test]
    fn oversized_plaintext_is_refused() {
        let r = ring(K1, "");
        let mut n = NonceSource::new();
        let big = vec![b'x'; MAX_PLAINTEXT_BYTES + 1];
        assert_eq!(
            r.encrypt(&big, b"", &mut n).unwrap_err(),
            DecryptError::PlaintextTooLarge(MAX_PLAINTEXT_BYTES + 1)
        );
        let max = vec![b'x'; MAX_PLAINTEXT_BYTES];
        let ct = r.encrypt(&max, b"", &mut n).unwrap();
        assert_eq!(r.decrypt(&ct, b"").unwrap(), max);
    }

    #[test]
    fn nonce_source_reseeds_in_a_new_process() {
        let mut n = NonceSource::new();
        n.pid = n.pid.wrapping_add(1); // pretend we were seeded in a parent before fork()
        let before = n.rng.clone();
        let mut a = [0u8; 12];
        n.fill(&mut a);
        let mut b = [0u8; 12];
        before.clone().fill_bytes(&mut b);
        assert_ne!(a, b, "a forked child must not replay the parent's stream");
        assert_eq!(n.pid, std::process::id());
    }
}
