//! [`SealKey`]: the key that every replica is given as a file, with which the CA's roots and the
//! join-token key are encrypted in etcd (AES-256-GCM, a random nonce per value, the key's name
//! as associated data so that one sealed value cannot be moved to another key).
//!
//! Why a shared key rather than an intermediate CA per replica: workloads trust one root and a
//! rotation is one change for every replica (`smictl ca rotate --etcd`); an intermediate per
//! replica would add a chain element to every handshake and a CA per replica to rotate. The
//! cost is that every replica can sign as the root, which every replica of one control service
//! can anyway (they issue the same identities).

use std::path::Path;

use aws_lc_rs::aead::{AES_256_GCM, Aad, LessSafeKey, NONCE_LEN, Nonce, UnboundKey};
use base64::Engine;
use base64::engine::general_purpose::STANDARD;

use crate::files::state_files::{invalid, no_randomness, read_secret, write_new};
use crate::traits::StoreError;

/// What a sealed value starts with: the format, so that a later one can be told apart.
const FORMAT: &str = "smi-sealed-v1:";
const KEY_LEN: usize = 32;

pub struct SealKey {
    key: LessSafeKey,
}

impl std::fmt::Debug for SealKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SealKey(..)")
    }
}

/// A sealed value that cannot be opened: the key is another, or the value was changed.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct Unseal(String);

impl SealKey {
    /// Reads the key from `path` (base64 of 32 bytes; mode 0600 or stricter, not a link).
    pub fn from_file(path: &Path) -> Result<Self, StoreError> {
        let text = read_secret(path)?.ok_or_else(|| {
            invalid(
                path,
                "no such file; make one with `smictl etcd seal-key --out FILE` and give the same file to every replica".into(),
            )
        })?;
        let bytes = STANDARD
            .decode(text.trim())
            .map_err(|e| invalid(path, format!("not base64: {e}")))?;
        Self::from_bytes(&bytes).map_err(|message| invalid(path, message))
    }

    /// Makes a new key file at `path` (mode 0600); refuses to replace one.
    pub fn create_file(path: &Path) -> Result<(), StoreError> {
        let mut key = [0u8; KEY_LEN];
        aws_lc_rs::rand::fill(&mut key).map_err(|_| no_randomness(path))?;
        if write_new(path, STANDARD.encode(key).as_bytes(), 0o600)? {
            Ok(())
        } else {
            Err(invalid(
                path,
                "exists already; a new key would make what is sealed with it unreadable".into(),
            ))
        }
    }

    pub fn from_bytes(bytes: &[u8]) -> Result<Self, String> {
        if bytes.len() != KEY_LEN {
            return Err(format!("a {} byte key, expected {KEY_LEN}", bytes.len()));
        }
        let key = UnboundKey::new(&AES_256_GCM, bytes).map_err(|_| "not an AES-256 key")?;
        Ok(Self {
            key: LessSafeKey::new(key),
        })
    }

    /// `plaintext`, encrypted for the etcd key `name`.
    pub fn seal(&self, name: &str, plaintext: &[u8]) -> Result<Vec<u8>, Unseal> {
        let mut nonce = [0u8; NONCE_LEN];
        aws_lc_rs::rand::fill(&mut nonce).map_err(|_| Unseal("no randomness".into()))?;
        let mut sealed = plaintext.to_vec();
        self.key
            .seal_in_place_append_tag(
                Nonce::assume_unique_for_key(nonce),
                Aad::from(name.as_bytes()),
                &mut sealed,
            )
            .map_err(|_| Unseal("cannot encrypt".into()))?;
        let mut out = nonce.to_vec();
        out.extend_from_slice(&sealed);
        Ok(format!("{FORMAT}{}", STANDARD.encode(out)).into_bytes())
    }

    /// What `sealed` (the value of the etcd key `name`) holds.
    pub fn open(&self, name: &str, sealed: &[u8]) -> Result<Vec<u8>, Unseal> {
        let text = std::str::from_utf8(sealed)
            .ok()
            .and_then(|t| t.strip_prefix(FORMAT))
            .ok_or_else(|| Unseal(format!("not a sealed value (expected {FORMAT}...)")))?;
        let bytes = STANDARD
            .decode(text.trim())
            .map_err(|e| Unseal(format!("not base64: {e}")))?;
        if bytes.len() < NONCE_LEN {
            return Err(Unseal("too short".into()));
        }
        let (nonce, ciphertext) = bytes.split_at(NONCE_LEN);
        let nonce =
            Nonce::try_assume_unique_for_key(nonce).map_err(|_| Unseal("bad nonce".into()))?;
        let mut buffer = ciphertext.to_vec();
        let plaintext = self
            .key
            .open_in_place(nonce, Aad::from(name.as_bytes()), &mut buffer)
            .map_err(|_| {
                Unseal(
                    "cannot decrypt: sealed with another key (every replica needs the same --seal-key file), or changed".into(),
                )
            })?;
        Ok(plaintext.to_vec())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(byte: u8) -> SealKey {
        SealKey::from_bytes(&[byte; KEY_LEN]).unwrap()
    }

    #[test]
    fn a_sealed_value_opens_with_its_key_and_name_only() {
        let sealed = key(1).seal("/m/ca", b"secret").unwrap();
        assert!(!String::from_utf8_lossy(&sealed).contains("secret"));
        assert_eq!(key(1).open("/m/ca", &sealed).unwrap(), b"secret");
        assert!(key(2).open("/m/ca", &sealed).is_err());
        assert!(key(1).open("/m/token-key", &sealed).is_err());
        let mut changed = sealed.clone();
        let last = changed.len() - 2;
        changed[last] = if changed[last] == b'A' { b'B' } else { b'A' };
        assert!(key(1).open("/m/ca", &changed).is_err());
        assert!(key(1).open("/m/ca", b"plain").is_err());
    }

    #[test]
    fn a_key_file_is_made_once_and_read_back() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("seal.key");
        SealKey::create_file(&path).unwrap();
        let sealed = SealKey::from_file(&path).unwrap().seal("k", b"v").unwrap();
        assert_eq!(
            SealKey::from_file(&path)
                .unwrap()
                .open("k", &sealed)
                .unwrap(),
            b"v"
        );
        assert!(SealKey::create_file(&path).is_err());
        let error = SealKey::from_file(&dir.path().join("none"))
            .unwrap_err()
            .to_string();
        assert!(error.contains("smictl etcd seal-key"), "{error}");
    }
}
