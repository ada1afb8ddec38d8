//! Encryption of destination secrets at rest.
//!
//! A [`SecretBox`] holds one 32-byte ChaCha20-Poly1305 key. Each value is sealed with a fresh random
//! nonce, so equal passwords do not produce equal ciphertexts, and the Poly1305 tag makes a wrong key or
//! a tampered value fail loudly instead of decrypting to garbage.
//!
//! The text form is `v1:` followed by standard base64 of `nonce ‖ ciphertext ‖ tag`. The version prefix
//! leaves room for another algorithm or key rotation later without guessing what a stored value is.
//!
//! The key comes from `SLUICE_SECRET_KEY` ([`SecretBox::from_base64`]) or from `<data dir>/secret.key`
//! ([`SecretBox::load_or_create`]), created on first start with mode 0600. Losing the key makes the stored
//! passwords unreadable: destinations then have to be given their secrets again.

use std::io::Write;
use std::path::Path;

use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine;
use chacha20poly1305::aead::{Aead, AeadCore, KeyInit, OsRng};
use chacha20poly1305::{ChaCha20Poly1305, Key, Nonce};

use crate::{Result, StoreError};

/// Name of the key file inside the data directory.
pub const KEY_FILE: &str = "secret.key";
/// The new key of a rotation, written before any secret is sealed with it and renamed over [`KEY_FILE`]
/// once all are: while it exists, a rotation was interrupted and the store may hold either key.
pub const NEXT_KEY_FILE: &str = "secret.key.next";

const PREFIX: &str = "v1:";
const NONCE_LEN: usize = 12;
const TAG_LEN: usize = 16;

/// Seals and opens secret strings with one key. Cloning is cheap; `Debug` never shows the key.
#[derive(Clone)]
pub struct SecretBox {
    cipher: ChaCha20Poly1305,
}

impl std::fmt::Debug for SecretBox {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SecretBox(..)")
    }
}

impl SecretBox {
    /// A box with a new random key (tests, and the first start of a data directory).
    pub fn generate() -> SecretBox {
        SecretBox {
            cipher: ChaCha20Poly1305::new(&ChaCha20Poly1305::generate_key(&mut OsRng)),
        }
    }

    pub fn from_key(key: [u8; 32]) -> SecretBox {
        SecretBox {
            cipher: ChaCha20Poly1305::new(Key::from_slice(&key)),
        }
    }

    /// Reads a key written as base64 of 32 bytes (the form of `SLUICE_SECRET_KEY` and of the key file).
    pub fn from_base64(text: &str) -> Result<SecretBox> {
        let bytes = B64.decode(text.trim()).map_err(|_| {
            StoreError::Corrupt(
                "the secret key is not valid base64 (expected 32 bytes in base64)".into(),
            )
        })?;
        let key: [u8; 32] = bytes.try_into().map_err(|b: Vec<u8>| {
            StoreError::Corrupt(format!(
                "the secret key is {} bytes long, expected 32",
                b.len()
            ))
        })?;
        Ok(SecretBox::from_key(key))
    }

    /// Generates a key in the form [`SecretBox::from_base64`] reads, e.g. for `SLUICE_SECRET_KEY`.
    pub fn generate_key_base64() -> String {
        B64.encode(ChaCha20Poly1305::generate_key(&mut OsRng))
    }

    /// Loads `<data_dir>/secret.key`, creating the directory and a new key (mode 0600) when absent.
    /// Refuses while a key rotation was left unfinished (`secret.key.next` exists).
    pub fn load_or_create(data_dir: &Path) -> Result<SecretBox> {
        let next = data_dir.join(NEXT_KEY_FILE);
        if next.exists() {
            return Err(StoreError::Corrupt(format!(
                "{} exists: a key rotation was interrupted, and the stored secrets may be sealed with either \
                 key; run `sluice secrets rotate-key` to finish it",
                next.display()
            )));
        }
        let path = data_dir.join(KEY_FILE);
        match std::fs::read_to_string(&path) {
            Ok(text) => {
                warn_if_readable_by_others(&path);
                return SecretBox::from_base64(&text).map_err(|e| {
                    StoreError::Corrupt(format!("{}: {}", path.display(), message_of(e)))
                });
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(io_error(&path, e)),
        }
        std::fs::create_dir_all(data_dir).map_err(|e| io_error(data_dir, e))?;
        let text = SecretBox::generate_key_base64();
        let mut options = std::fs::OpenOptions::new();
        options.write(true).create_new(true);
        #[cfg(unix)]
        std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
        match options.open(&path) {
            Ok(mut file) => {
                file.write_all(format!("{text}\n").as_bytes())
                    .and_then(|()| file.sync_all())
                    .map_err(|e| io_error(&path, e))?;
                tracing::info!(path = %path.display(), "created a new secret key");
                SecretBox::from_base64(&text)
            }
            // Another process created it between our read and our create: use theirs.
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
                let text = std::fs::read_to_string(&path).map_err(|e| io_error(&path, e))?;
                SecretBox::from_base64(&text)
            }
            Err(e) => Err(io_error(&path, e)),
        }
    }

    /// Writes `key` (base64, as [`SecretBox::from_base64`] reads it) to `<data_dir>/secret.key.next`,
    /// mode 0600, flushed to disk: the first step of a rotation.
    pub fn write_next_key(data_dir: &Path, key: &str) -> Result<()> {
        let path = data_dir.join(NEXT_KEY_FILE);
        let mut options = std::fs::OpenOptions::new();
        options.write(true).create(true).truncate(true);
        #[cfg(unix)]
        std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
        let mut file = options.open(&path).map_err(|e| io_error(&path, e))?;
        file.write_all(format!("{}\n", key.trim()).as_bytes())
            .and_then(|()| file.sync_all())
            .map_err(|e| io_error(&path, e))
    }

    /// The key of an unfinished rotation, if one was left.
    pub fn load_next_key(data_dir: &Path) -> Result<Option<SecretBox>> {
        let path = data_dir.join(NEXT_KEY_FILE);
        match std::fs::read_to_string(&path) {
            Ok(text) => SecretBox::from_base64(&text)
                .map(Some)
                .map_err(|e| StoreError::Corrupt(format!("{}: {}", path.display(), message_of(e)))),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(io_error(&path, e)),
        }
    }

    /// Loads `<data_dir>/secret.key` as it is, whatever else is in the directory.
    pub fn load_current_key(data_dir: &Path) -> Result<SecretBox> {
        let path = data_dir.join(KEY_FILE);
        let text = std::fs::read_to_string(&path).map_err(|e| io_error(&path, e))?;
        SecretBox::from_base64(&text)
            .map_err(|e| StoreError::Corrupt(format!("{}: {}", path.display(), message_of(e))))
    }

    /// Puts the rotation's new key in place: `secret.key.next` renamed over `secret.key` (one atomic
    /// step), and the directory flushed so that the rename survives a crash.
    pub fn promote_next_key(data_dir: &Path) -> Result<()> {
        let (next, path) = (data_dir.join(NEXT_KEY_FILE), data_dir.join(KEY_FILE));
        std::fs::rename(&next, &path).map_err(|e| io_error(&path, e))?;
        if let Ok(dir) = std::fs::File::open(data_dir) {
            let _ = dir.sync_all();
        }
        Ok(())
    }

    /// Forgets an unfinished rotation's key (nothing was sealed with it).
    pub fn discard_next_key(data_dir: &Path) -> Result<()> {
        let next = data_dir.join(NEXT_KEY_FILE);
        match std::fs::remove_file(&next) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(io_error(&next, e)),
            _ => Ok(()),
        }
    }

    /// Seals `plain` into its `v1:` text form.
    pub fn encrypt(&self, plain: &str) -> String {
        let nonce = ChaCha20Poly1305::generate_nonce(&mut OsRng);
        let sealed = self
            .cipher
            .encrypt(&nonce, plain.as_bytes())
            .expect("ChaCha20-Poly1305 encryption of an in-memory string cannot fail");
        let mut raw = Vec::with_capacity(NONCE_LEN + sealed.len());
        raw.extend_from_slice(&nonce);
        raw.extend_from_slice(&sealed);
        format!("{PREFIX}{}", B64.encode(raw))
    }

    /// Opens a value made by [`SecretBox::encrypt`]; `Corrupt` when it is malformed or was sealed with
    /// another key.
    pub fn decrypt(&self, sealed: &str) -> Result<String> {
        let body = sealed.strip_prefix(PREFIX).ok_or_else(|| {
            StoreError::Corrupt("a stored secret is not in the encrypted `v1:` form".into())
        })?;
        let raw = B64
            .decode(body)
            .ok()
            .filter(|raw| raw.len() >= NONCE_LEN + TAG_LEN)
            .ok_or_else(|| StoreError::Corrupt("a stored secret is malformed".into()))?;
        let (nonce, ciphertext) = raw.split_at(NONCE_LEN);
        let plain = self.cipher.decrypt(Nonce::from_slice(nonce), ciphertext).map_err(|_| {
            StoreError::Corrupt(
                "a stored secret cannot be decrypted with this secret key: the key (SLUICE_SECRET_KEY or \
                 secret.key in the data directory) is not the one the secret was encrypted with"
                    .into(),
            )
        })?;
        String::from_utf8(plain)
            .map_err(|_| StoreError::Corrupt("a decrypted secret is not valid UTF-8".into()))
    }

    /// Whether `text` looks like a value made by [`SecretBox::encrypt`].
    pub fn is_sealed(text: &str) -> bool {
        text.starts_with(PREFIX)
    }
}

fn message_of(e: StoreError) -> String {
    match e {
        StoreError::Corrupt(m)
        | StoreError::Backend(m)
        | StoreError::Conflict(m)
        | StoreError::NotFound(m) => m,
    }
}

fn io_error(path: &Path, e: std::io::Error) -> StoreError {
    StoreError::Backend(format!("{}: {e}", path.display()))
}

#[cfg(unix)]
fn warn_if_readable_by_others(path: &Path) {
    use std::os::unix::fs::PermissionsExt;
    if let Ok(meta) = std::fs::metadata(path) {
        if meta.permissions().mode() & 0o077 != 0 {
            tracing::warn!(path = %path.display(), "the secret key file is readable by other users; chmod 600 it");
        }
    }
}

#[cfg(not(unix))]
fn warn_if_readable_by_others(_path: &Path) {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_with_fresh_nonces() {
        let b = SecretBox::generate();
        let a1 = b.encrypt("hunter2 ✓");
        let a2 = b.encrypt("hunter2 ✓");
        assert_ne!(a1, a2, "each value gets its own nonce");
        assert!(a1.starts_with("v1:") && !a1.contains("hunter2"));
        assert_eq!(b.decrypt(&a1).unwrap(), "hunter2 ✓");
        assert_eq!(b.decrypt(&b.encrypt("")).unwrap(), "");
    }

    #[test]
    fn wrong_key_and_tampering_are_corrupt() {
        let sealed = SecretBox::generate().encrypt("pw");
        let err = SecretBox::generate().decrypt(&sealed).unwrap_err();
        assert!(
            matches!(&err, StoreError::Corrupt(m) if m.contains("secret key")),
            "{err}"
        );
        let mut raw = B64.decode(&sealed[3..]).unwrap();
        let last = raw.len() - 1;
        raw[last] ^= 1;
        let b = SecretBox::generate();
        assert!(b.decrypt(&format!("v1:{}", B64.encode(raw))).is_err());
        assert!(matches!(b.decrypt("pw"), Err(StoreError::Corrupt(_))));
        assert!(matches!(b.decrypt("v1:!!"), Err(StoreError::Corrupt(_))));
        assert!(matches!(b.decrypt("v1:AAAA"), Err(StoreError::Corrupt(_))));
    }

    #[test]
    fn base64_keys() {
        let text = SecretBox::generate_key_base64();
        let a = SecretBox::from_base64(&format!(" {text}\n")).unwrap();
        let b = SecretBox::from_base64(&text).unwrap();
        assert_eq!(b.decrypt(&a.encrypt("x")).unwrap(), "x");
        assert!(SecretBox::from_base64("not base64!").is_err());
        let short = SecretBox::from_base64(&B64.encode([1u8; 16])).unwrap_err();
        assert!(short.to_string().contains("16 bytes"), "{short}");
        assert_eq!(format!("{a:?}"), "SecretBox(..)");
    }

    #[test]
    fn key_file_is_created_once_with_mode_0600() {
        let dir = std::env::temp_dir().join(format!("sluice-secret-test-{}", uuid::Uuid::new_v4()));
        let nested = dir.join("data");
        let a = SecretBox::load_or_create(&nested).unwrap();
        let b = SecretBox::load_or_create(&nested).unwrap();
        assert_eq!(b.decrypt(&a.encrypt("same key")).unwrap(), "same key");
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(nested.join(KEY_FILE))
                .unwrap()
                .permissions()
                .mode();
            assert_eq!(mode & 0o777, 0o600);
        }
        std::fs::write(nested.join(KEY_FILE), "garbage").unwrap();
        let err = SecretBox::load_or_create(&nested).unwrap_err();
        assert!(err.to_string().contains("secret.key"), "{err}");
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
