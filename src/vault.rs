//! SQL face of the token vault: `crm.encrypt_token`, `crm.decrypt_token` and the helpers that
//! `crm.rotate_encryption_key()` (sql/vault.sql) uses. The cryptography is `crm_core::vault`.
//!
//! | condition | SQLSTATE |
//! |---|---|
//! | `crm.encryption_key` not set | 55000 object_not_in_prerequisite_state |
//! | a key setting is not 32 bytes of base64/hex | 22023 invalid_parameter_value |
//! | ciphertext not base64, unknown version, truncated | 22P02 invalid_text_representation |
//! | ciphertext made with a key that is not configured | 42704 undefined_object |
//! | authentication failed (tampered, wrong key, wrong context) | XX001 data_corrupted |
//! | plaintext over 64 KiB | 54000 program_limit_exceeded |

use crate::guc;
use crm_core::vault::{fingerprint_hex, DecryptError, KeyError, Keyring, NonceSource};
use pgrx::prelude::*;
use std::cell::RefCell;

/// The parsed keyring, cached per backend and keyed by the settings' raw text, so that a
/// `SET` or a configuration reload (SIGHUP) is picked up on the next call while an unchanged
/// setting costs one short byte comparison instead of a base64 decode and AES key expansion.
struct CachedKeyring {
    current: Vec<u8>,
    previous: Vec<u8>,
    ring: Result<Keyring, KeyError>,
}

thread_local! {
    static KEYRING: RefCell<Option<CachedKeyring>> = const { RefCell::new(None) };
    static NONCES: RefCell<Option<NonceSource>> = const { RefCell::new(None) };
}

impl Drop for CachedKeyring {
    fn drop(&mut self) {
        use zeroize_bytes::wipe;
        wipe(&mut self.current);
        wipe(&mut self.previous);
    }
}

mod zeroize_bytes {
    /// Overwrite a copy of key text before its memory is freed (volatile, so not optimised out).
    pub fn wipe(bytes: &mut [u8]) {
        for b in bytes.iter_mut() {
            // SAFETY: `b` is a valid, aligned, exclusive reference.
            unsafe { std::ptr::write_volatile(b, 0) };
        }
    }
}

fn with_keyring<R>(f: impl FnOnce(&Keyring) -> R) -> R {
    try_with_keyring(f).unwrap_or_else(|e| raise_key_error(&e))
}

/// The keyring, or why the settings give none (for callers that must not raise an ERROR).
fn try_with_keyring<R>(f: impl FnOnce(&Keyring) -> R) -> Result<R, KeyError> {
    let current = guc::raw(&guc::ENCRYPTION_KEY);
    let previous = guc::raw(&guc::ENCRYPTION_KEY_PREVIOUS);
    KEYRING.with(|cell| {
        let mut cache = cell.borrow_mut();
        let fresh = matches!(&*cache, Some(c) if c.current == current && c.previous == previous);
        if !fresh {
            // Invalid UTF-8 can only be garbage; treat it like a malformed key.
            let ring = match (std::str::from_utf8(current), std::str::from_utf8(previous)) {
                (Ok(c), Ok(p)) => Keyring::from_settings(Some(c), Some(p)),
                _ => Err(KeyError::Malformed {
                    setting: "crm.encryption_key",
                    position: 1,
                    reason: "not valid UTF-8",
                }),
            };
            *cache = Some(CachedKeyring {
                current: current.to_vec(),
                previous: previous.to_vec(),
                ring,
            });
        }
        match &cache.as_ref().expect("just filled").ring {
            Ok(ring) => Ok(f(ring)),
            Err(err) => Err(err.clone()),
        }
    })
}

fn raise_key_error(err: &KeyError) -> ! {
    let (code, hint) = match err {
        KeyError::Missing => (
            PgSqlErrorCode::ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE,
            "A superuser sets crm.encryption_key (32 random bytes, base64 or hex) in postgresql.conf or with ALTER SYSTEM, then reloads.",
        ),
        KeyError::Malformed { .. } => (
            PgSqlErrorCode::ERRCODE_INVALID_PARAMETER_VALUE,
            "Generate a key with: openssl rand -base64 32",
        ),
    };
    crate::errors::raise(code, err.to_string(), Some(hint), "crm.vault")
}

fn raise_decrypt_error(err: &DecryptError) -> ! {
    let (code, hint) = match err {
        DecryptError::Malformed(_) => (PgSqlErrorCode::ERRCODE_INVALID_TEXT_REPRESENTATION, None),
        DecryptError::UnknownKey(_) => (
            PgSqlErrorCode::ERRCODE_UNDEFINED_OBJECT,
            Some("If this key was rotated out, put it back in crm.encryption_key_previous and run crm.rotate_encryption_key()."),
        ),
        DecryptError::AuthenticationFailed => (PgSqlErrorCode::ERRCODE_DATA_CORRUPTED, None),
        DecryptError::PlaintextTooLarge(_) => (PgSqlErrorCode::ERRCODE_PROGRAM_LIMIT_EXCEEDED, None),
    };
    crate::errors::raise(code, err.to_string(), hint, "crm.vault")
}

/// Why a token could not be sealed or opened: the key settings, or the token itself.
enum VaultError {
    Key(KeyError),
    Crypt(DecryptError),
}

fn raise_vault_error(err: &VaultError) -> ! {
    match err {
        VaultError::Key(e) => raise_key_error(e),
        VaultError::Crypt(e) => raise_decrypt_error(e),
    }
}

/// The one encryption path, for the SQL functions (which raise) and the email sender (which
/// must not).
fn try_encrypt(plaintext: &str, context: &str) -> Result<String, VaultError> {
    try_with_keyring(|ring| {
        NONCES.with(|cell| {
            let mut nonces = cell.borrow_mut();
            let nonces = nonces.get_or_insert_with(NonceSource::new);
            ring.encrypt(plaintext.as_bytes(), context.as_bytes(), nonces)
        })
    })
    .map_err(VaultError::Key)?
    .map_err(VaultError::Crypt)
}

/// The one decryption path (see `try_encrypt`).
fn try_decrypt(ciphertext: &str, context: &str) -> Result<String, VaultError> {
    let bytes = try_with_keyring(|ring| ring.decrypt(ciphertext, context.as_bytes()))
        .map_err(VaultError::Key)?
        .map_err(VaultError::Crypt)?;
    // Only text ever goes in, so only UTF-8 comes out of a ciphertext that authenticated.
    String::from_utf8(bytes).map_err(|_| VaultError::Crypt(DecryptError::AuthenticationFailed))
}

/// A row's token as it was stored: bound to the row's `context`, or (stored by
/// `crm.encrypt_token(plaintext)`) without one. Returns the plaintext and the context that
/// opened it, so a re-encryption keeps the binding.
fn decrypt_as_stored<'c>(
    ciphertext: &str,
    context: &'c str,
) -> Result<(String, &'c str), VaultError> {
    match try_decrypt(ciphertext, context) {
        Ok(plaintext) => Ok((plaintext, context)),
        Err(VaultError::Crypt(DecryptError::AuthenticationFailed)) => {
            try_decrypt(ciphertext, "").map(|p| (p, ""))
        }
        Err(e) => Err(e),
    }
}

fn encrypt(plaintext: &str, context: &str) -> String {
    try_encrypt(plaintext, context).unwrap_or_else(|e| raise_vault_error(&e))
}

fn decrypt(ciphertext: &str, context: &str) -> String {
    try_decrypt(ciphertext, context).unwrap_or_else(|e| raise_vault_error(&e))
}

/// Why the email sender could not open or seal a token.
pub(crate) enum TokenError {
    /// The key settings are missing or malformed: fixable by an admin, so worth retrying.
    Keys(String),
    /// This token cannot be decrypted (tampered, another row's, a key that is gone).
    Token(String),
}

impl std::fmt::Display for TokenError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            TokenError::Keys(m) | TokenError::Token(m) => f.write_str(m),
        }
    }
}

impl From<VaultError> for TokenError {
    fn from(e: VaultError) -> Self {
        match e {
            VaultError::Key(k) => TokenError::Keys(k.to_string()),
            VaultError::Crypt(c) => TokenError::Token(c.to_string()),
        }
    }
}

/// For the email sender, which runs outside any transaction in the worker and so must not
/// raise: a mailbox token bound to `context`, or one stored without a context (the two ways
/// `crm.encrypt_token` stores them). Errors name the problem, never the token.
pub(crate) fn open_token(ciphertext: &str, context: &str) -> Result<String, TokenError> {
    decrypt_as_stored(ciphertext, context)
        .map(|(plaintext, _)| plaintext)
        .map_err(|e| match TokenError::from(e) {
            TokenError::Token(msg) => {
                TokenError::Token(format!("the stored token cannot be decrypted: {msg}"))
            }
            keys => keys,
        })
}

/// Encrypt a token bound to `context`, without raising (see `open_token`).
pub(crate) fn seal_token(plaintext: &str, context: &str) -> Result<String, TokenError> {
    try_encrypt(plaintext, context).map_err(TokenError::from)
}

/// Encrypt a token under the current key. NULL in, NULL out.
#[pg_extern(volatile, parallel_safe)]
fn encrypt_token(plaintext: &str) -> String {
    encrypt(plaintext, "")
}

/// Encrypt a token bound to `context` (e.g. `email_providers:<id>:access_token`): decrypting it
/// under any other context fails.
#[pg_extern(name = "encrypt_token", volatile, parallel_safe)]
fn encrypt_token_in_context(plaintext: &str, context: &str) -> String {
    encrypt(plaintext, context)
}

/// Decrypt a token made by `encrypt_token(plaintext)`.
#[pg_extern(stable, parallel_safe)]
fn decrypt_token(ciphertext: &str) -> String {
    decrypt(ciphertext, "")
}

/// Decrypt a token made by `encrypt_token(plaintext, context)` with the same context.
#[pg_extern(name = "decrypt_token", stable, parallel_safe)]
fn decrypt_token_in_context(ciphertext: &str, context: &str) -> String {
    decrypt(ciphertext, context)
}

/// Hex fingerprint of the key a token was made with (no key needed): shows which tokens still
/// depend on a retired key.
#[pg_extern(immutable, parallel_safe)]
fn token_key_fingerprint(ciphertext: &str) -> String {
    crm_core::vault::token_fingerprint(ciphertext)
        .map(|fp| fingerprint_hex(&fp))
        .unwrap_or_else(|e| raise_decrypt_error(&e))
}

/// Hex fingerprint of the configured current key.
#[pg_extern(stable, parallel_safe)]
fn current_key_fingerprint() -> String {
    with_keyring(|ring| fingerprint_hex(ring.current_fingerprint()))
}

/// Whether a stored token is under a key other than the current one.
#[pg_extern(stable, parallel_safe)]
fn token_needs_rotation(ciphertext: &str) -> bool {
    with_keyring(|ring| ring.needs_rotation(ciphertext)).unwrap_or_else(|e| raise_decrypt_error(&e))
}

/// Re-encrypt one stored token under the current key, keeping its binding: a token bound to
/// `row_context` stays bound to it, one stored without context stays without. Used only by
/// `crm.rotate_encryption_key()`; execute is revoked from PUBLIC.
#[pg_extern(volatile, parallel_unsafe)]
fn _rotate_token(ciphertext: &str, row_context: &str) -> String {
    let (plaintext, context) =
        decrypt_as_stored(ciphertext, row_context).unwrap_or_else(|e| raise_vault_error(&e));
    encrypt(&plaintext, context)
}

#[cfg(any(test, feature = "pg_test"))]
#[pg_schema]
mod tests {
    use pgrx::prelude::*;

    #[pg_test]
    fn round_trip_through_sql() {
        let pt = Spi::get_one::<String>(
            "SELECT crm.decrypt_token(crm.encrypt_token('ya29.token', 'ctx'), 'ctx')",
        );
        assert_eq!(pt, Ok(Some("ya29.token".to_string())));
    }

    #[pg_test]
    fn null_in_null_out() {
        assert_eq!(
            Spi::get_one::<String>("SELECT crm.encrypt_token(NULL)"),
            Ok(None)
        );
        assert_eq!(
            Spi::get_one::<String>("SELECT crm.decrypt_token(NULL, 'x')"),
            Ok(None)
        );
    }

    #[pg_test]
    fn cache_follows_set_within_a_backend() {
        // The keyring is cached per backend; changing the setting must take effect at once.
        let first = Spi::get_one::<String>("SELECT crm.current_key_fingerprint()").unwrap();
        Spi::run("SET crm.encryption_key = 'ISIjJCUmJygpKissLS4vMDEyMzQ1Njc4OTo7PD0+P0A='")
            .unwrap();
        let second = Spi::get_one::<String>("SELECT crm.current_key_fingerprint()").unwrap();
        assert_ne!(first, second);
        Spi::run("RESET crm.encryption_key").unwrap();
        assert_eq!(
            Spi::get_one::<String>("SELECT crm.current_key_fingerprint()").unwrap(),
            first
        );
    }

    #[pg_test(error = "crm.encryption_key is not set")]
    fn missing_key_is_an_error() {
        Spi::run("SET crm.encryption_key = ''").unwrap();
        Spi::run("SELECT crm.encrypt_token('x')").unwrap();
    }

    #[pg_test(error = "ciphertext failed authentication (tampered, wrong key or wrong context)")]
    fn wrong_context_is_an_error() {
        Spi::run("SELECT crm.decrypt_token(crm.encrypt_token('t', 'a'), 'b')").unwrap();
    }

    #[pg_test]
    fn rotate_token_keeps_the_binding() {
        Spi::run("SET crm.encryption_key_previous = '000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f'").unwrap();
        Spi::run("CREATE TEMP TABLE t AS SELECT crm.encrypt_token('bound', 'row:1') AS b, crm.encrypt_token('free') AS f").unwrap();
        Spi::run("SET crm.encryption_key = 'ISIjJCUmJygpKissLS4vMDEyMzQ1Njc4OTo7PD0+P0A='")
            .unwrap();
        let out = Spi::get_two::<String, String>(
            "SELECT crm.decrypt_token(crm._rotate_token(b, 'row:1'), 'row:1'), crm.decrypt_token(crm._rotate_token(f, 'row:1')) FROM t",
        )
        .unwrap();
        assert_eq!(out, (Some("bound".into()), Some("free".into())));
    }
}
