//! Secrets at rest: the AES-256-GCM key file, sealing of personal fields, and the keyed
//! hashes that let the store index phone numbers without decrypting anything.
//!
//! One 32-byte master key lives in the key file. Two subkeys are derived from it with
//! HMAC-SHA256 under fixed labels: one seals personal data, one keys the phone index,
//! so an index entry reveals nothing to someone who does not hold the key.

use std::fmt;
use std::io::Write;
use std::path::Path;

use aes_gcm::aead::{Aead, AeadInPlace, KeyInit, OsRng, Payload};
use aes_gcm::{Aes256Gcm, Key, Nonce};
use hmac::{Hmac, Mac};
use sha2::Sha256;

type HmacSha256 = Hmac<Sha256>;

const NONCE_LEN: usize = 12;
const TAG_LEN: usize = 16;
const SEAL_LABEL: &[u8] = b"dialhound seal v1";
const INDEX_LABEL: &[u8] = b"dialhound phone index v1";
const CHECK_LABEL: &[u8] = b"dialhound key check v1";

/// What can go wrong with the key or a sealed value.
#[derive(Debug, thiserror::Error)]
pub enum VaultError {
    #[error("cannot read key file `{path}`: {source}")]
    ReadKey {
        path: String,
        source: std::io::Error,
    },
    #[error("cannot create key file `{path}`: {source}")]
    CreateKey {
        path: String,
        source: std::io::Error,
    },
    #[error("key file `{path}` must hold 64 hexadecimal characters (a 256-bit key)")]
    MalformedKey { path: String },
    #[error("key file `{path}` is readable by other users (mode {mode:o}); run `chmod 600` on it")]
    KeyTooOpen { path: String, mode: u32 },
    #[error("a sealed value failed authentication: wrong key, or the data was altered")]
    Unseal,
}

/// The daemon's keys. `Debug` shows nothing secret.
#[derive(Clone)]
pub struct Vault {
    cipher: Aes256Gcm,
    index_mac: HmacSha256,
}

impl fmt::Debug for Vault {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Vault(..)")
    }
}

/// A keyed hash of a phone number: the phone index and DNC list key.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct PhoneKey(pub [u8; 32]);

/// A keyed hash of a record's plain contents, so re-importing the same row is seen
/// as unchanged without decrypting the stored copy.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Fingerprint(pub [u8; 16]);

impl Vault {
    /// Opens the key file, creating it with a fresh random key and mode 0600 when it
    /// does not exist yet.
    pub fn open_or_create(path: &Path) -> Result<Vault, VaultError> {
        let shown = path.display().to_string();
        match std::fs::read_to_string(path) {
            Ok(text) => {
                check_permissions(path, &shown)?;
                let master =
                    decode_hex_key(text.trim()).ok_or(VaultError::MalformedKey { path: shown })?;
                Ok(Vault::from_master_key(&master))
            }
            Err(error) if error.kind() == std::io::ErrorKind::NotFound => {
                let master: [u8; 32] = Aes256Gcm::generate_key(OsRng).into();
                write_key_file(path, &master).map_err(|source| VaultError::CreateKey {
                    path: shown,
                    source,
                })?;
                Ok(Vault::from_master_key(&master))
            }
            Err(source) => Err(VaultError::ReadKey {
                path: shown,
                source,
            }),
        }
    }

    pub fn from_master_key(master: &[u8; 32]) -> Vault {
        let seal_key = derive(master, SEAL_LABEL);
        let index_key = derive(master, INDEX_LABEL);
        Vault {
            cipher: Aes256Gcm::new(Key::<Aes256Gcm>::from_slice(&seal_key)),
            index_mac: <HmacSha256 as Mac>::new_from_slice(&index_key)
                .expect("HMAC takes keys of any length"),
        }
    }

    /// Encrypts `plain`, binding it to `context` (the record's key), as
    /// `nonce || ciphertext || tag`.
    pub fn seal(&self, plain: &[u8], context: &[u8]) -> Vec<u8> {
        // A fresh random nonce from the thread's CSPRNG (ChaCha, seeded and
        // reseeded from the operating system), so sealing a row costs no system call.
        let mut out = Vec::with_capacity(NONCE_LEN + plain.len() + TAG_LEN);
        out.resize(NONCE_LEN, 0);
        rand::RngCore::fill_bytes(&mut rand::rng(), &mut out[..NONCE_LEN]);
        out.extend_from_slice(plain);
        let (nonce, body) = out.split_at_mut(NONCE_LEN);
        let tag = self
            .cipher
            .encrypt_in_place_detached(Nonce::from_slice(nonce), context, body)
            .expect("AES-GCM encryption fails only for inputs over 64 GiB");
        out.extend_from_slice(&tag);
        out
    }

    pub fn unseal(&self, sealed: &[u8], context: &[u8]) -> Result<Vec<u8>, VaultError> {
        if sealed.len() < NONCE_LEN {
            return Err(VaultError::Unseal);
        }
        let (nonce, body) = sealed.split_at(NONCE_LEN);
        self.cipher
            .decrypt(
                Nonce::from_slice(nonce),
                Payload {
                    msg: body,
                    aad: context,
                },
            )
            .map_err(|_| VaultError::Unseal)
    }

    pub fn phone_key(&self, e164: &str) -> PhoneKey {
        let mut mac = self.index_mac.clone();
        mac.update(e164.as_bytes());
        PhoneKey(mac.finalize().into_bytes().into())
    }

    /// A fingerprint over several fields; each is length-prefixed so that field
    /// boundaries cannot be confused.
    pub fn fingerprint<'a>(&self, fields: impl IntoIterator<Item = &'a [u8]>) -> Fingerprint {
        let mut mac = self.index_mac.clone();
        mac.update(b"fingerprint");
        for field in fields {
            mac.update(&(field.len() as u64).to_be_bytes());
            mac.update(field);
        }
        let full: [u8; 32] = mac.finalize().into_bytes().into();
        let mut short = [0u8; 16];
        short.copy_from_slice(&full[..16]);
        Fingerprint(short)
    }

    /// A value stored beside the data, so a daemon started with another key file
    /// refuses to run instead of writing records nobody can read.
    pub fn key_check(&self) -> [u8; 32] {
        let mut mac = self.index_mac.clone();
        mac.update(CHECK_LABEL);
        mac.finalize().into_bytes().into()
    }
}

fn derive(master: &[u8; 32], label: &[u8]) -> [u8; 32] {
    let mut mac =
        <HmacSha256 as Mac>::new_from_slice(master).expect("HMAC takes keys of any length");
    mac.update(label);
    mac.finalize().into_bytes().into()
}

fn decode_hex_key(text: &str) -> Option<[u8; 32]> {
    if text.len() != 64 || !text.is_ascii() {
        return None;
    }
    let mut key = [0u8; 32];
    for (slot, pair) in key.iter_mut().zip(text.as_bytes().chunks(2)) {
        let pair = std::str::from_utf8(pair).ok()?;
        *slot = u8::from_str_radix(pair, 16).ok()?;
    }
    Some(key)
}

fn write_key_file(path: &Path, key: &[u8; 32]) -> std::io::Result<()> {
    use std::os::unix::fs::OpenOptionsExt;
    if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
        std::fs::create_dir_all(parent)?;
    }
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)?;
    let hex: String = key.iter().map(|b| format!("{b:02x}")).collect();
    file.write_all(hex.as_bytes())?;
    file.write_all(b"\n")?;
    file.sync_all()
}

fn check_permissions(path: &Path, shown: &str) -> Result<(), VaultError> {
    use std::os::unix::fs::PermissionsExt;
    let mode = std::fs::metadata(path)
        .map_err(|source| VaultError::ReadKey {
            path: shown.to_owned(),
            source,
        })?
        .permissions()
        .mode();
    if mode & 0o077 != 0 {
        return Err(VaultError::KeyTooOpen {
            path: shown.to_owned(),
            mode: mode & 0o777,
        });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn key_file_is_created_private_and_reused() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("keys/dialhound.key");
        let first = Vault::open_or_create(&path).unwrap();
        let mode = std::fs::metadata(&path).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
        let second = Vault::open_or_create(&path).unwrap();
        assert_eq!(first.key_check(), second.key_check());
        let sealed = first.seal(b"+8613800138000", b"c1");
        assert_eq!(second.unseal(&sealed, b"c1").unwrap(), b"+8613800138000");
    }

    #[test]
    fn sealed_value_is_bound_to_its_record() {
        let vault = Vault::from_master_key(&[7; 32]);
        let sealed = vault.seal(b"secret", b"c1");
        assert!(matches!(
            vault.unseal(&sealed, b"c2"),
            Err(VaultError::Unseal)
        ));
        assert!(matches!(
            vault.unseal(&sealed[..5], b"c1"),
            Err(VaultError::Unseal)
        ));
    }

    #[test]
    fn each_seal_has_its_own_nonce() {
        let vault = Vault::from_master_key(&[7; 32]);
        let first = vault.seal(b"+8613800138000", b"c1");
        let second = vault.seal(b"+8613800138000", b"c1");
        assert_eq!(first.len(), NONCE_LEN + 14 + TAG_LEN);
        assert_ne!(first[..NONCE_LEN], second[..NONCE_LEN]);
        assert_ne!(first, second);
        assert_eq!(vault.unseal(&first, b"c1").unwrap(), b"+8613800138000");
        assert_eq!(vault.unseal(&second, b"c1").unwrap(), b"+8613800138000");
    }

    #[test]
    fn other_key_cannot_unseal() {
        let sealed = Vault::from_master_key(&[1; 32]).seal(b"secret", b"c");
        let other = Vault::from_master_key(&[2; 32]);
        assert!(other.unseal(&sealed, b"c").is_err());
    }

    #[test]
    fn open_key_file_is_refused() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("k");
        Vault::open_or_create(&path).unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
        assert!(matches!(
            Vault::open_or_create(&path),
            Err(VaultError::KeyTooOpen { .. })
        ));
    }

    #[test]
    fn malformed_key_is_refused() {
        use std::os::unix::fs::OpenOptionsExt;
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("k");
        let mut file = std::fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(0o600)
            .open(&path)
            .unwrap();
        file.write_all(b"not a key").unwrap();
        assert!(matches!(
            Vault::open_or_create(&path),
            Err(VaultError::MalformedKey { .. })
        ));
    }

    #[test]
    fn fingerprint_separates_fields() {
        let vault = Vault::from_master_key(&[3; 32]);
        let a = vault.fingerprint([b"ab".as_slice(), b"c".as_slice()]);
        let b = vault.fingerprint([b"a".as_slice(), b"bc".as_slice()]);
        assert_ne!(a, b);
    }
}
