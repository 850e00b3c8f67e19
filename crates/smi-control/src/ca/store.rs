//! The CA's state on disk, in the control's state directory:
//!
//! - `ca.json` (0600): the trusted roots, newest first; the newest carries its private key and
//!   signs; older ones stay in the trust bundle until their `retire_after` time (rotation).
//! - `bundle.pem` (0644): the current trust bundle, for tools (curl, openssl) and operators.
//! - `token.key` (0600): the key join tokens are signed with.
//!
//! The directory is created 0700, and every file is read and written as
//! [`crate::files::state_files`] says (temporary file, then rename or link; secrets read with
//! `O_NOFOLLOW`, refused when open to others). A secret that exists but cannot be used (a
//! symbolic link, unreadable, not UTF-8, corrupt) is an error naming the file: replacing it
//! silently would change the CA or invalidate every join token issued, so it is left as it is
//! for the operator. The rest of the state directory (the deny list, the token-use ledger,
//! the versions) is [`crate::files::StateDir`]'s.

use std::fs;
use std::io;
use std::os::unix::fs::DirBuilderExt;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use rcgen::{Issuer, KeyPair};
use rustls::pki_types::CertificateDer;
use rustls::pki_types::pem::PemObject;
use serde::{Deserialize, Serialize};

use super::Authority;
use super::root::new_root;
use crate::files::state_files::{invalid, io, no_randomness, read_secret, write_atomic, write_new};
use crate::traits::StoreError;

#[derive(Debug, Default, Serialize, Deserialize)]
struct CaFile {
    roots: Vec<Root>,
}

#[derive(Debug, Serialize, Deserialize)]
pub(super) struct Root {
    pub cert_pem: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key_pem: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retire_after_unix: Option<u64>,
}

/// The CA state directory.
#[derive(Clone, Debug)]
pub struct CaStore {
    dir: PathBuf,
}

/// The length of the join-token key, in bytes (before base64).
const TOKEN_KEY_LEN: usize = 32;

impl CaStore {
    pub fn new(dir: impl Into<PathBuf>) -> Self {
        Self { dir: dir.into() }
    }

    pub fn ca_file(&self) -> PathBuf {
        self.dir.join("ca.json")
    }

    pub fn bundle_file(&self) -> PathBuf {
        self.dir.join("bundle.pem")
    }

    pub fn token_file(&self) -> PathBuf {
        self.dir.join("token.key")
    }

    /// Loads the CA, creating a new P-256 root on first start (only when `ca.json` does not
    /// exist: one that cannot be read or parsed is an error).
    pub fn open_or_init(&self, trust_domain: &str) -> Result<Authority, StoreError> {
        let path = self.ca_file();
        if read_secret(&path)?.is_none() {
            self.create_dir()?;
            let file = CaFile {
                roots: vec![new_root(trust_domain)?],
            };
            // Another process (`smictl token create` beside a first `serve`) may have created
            // it since we looked; then its root is the one, and its bundle.pem stays.
            if write_new(&path, &self.ca_json(&file)?, 0o600)? {
                self.write_bundle(&file)?;
                tracing::info!(path = %path.display(), "created a new root CA");
            }
        }
        self.load(trust_domain)
    }

    /// Loads the CA as it is on disk; retired roots are left out of the bundle.
    pub fn load(&self, trust_domain: &str) -> Result<Authority, StoreError> {
        let path = self.ca_file();
        let file = self.read()?;
        let invalid = |message: String| StoreError::Invalid {
            path: path.clone(),
            message,
        };
        let signer = file
            .roots
            .first()
            .ok_or_else(|| invalid("no roots".into()))?;
        let key_pem = signer
            .key_pem
            .as_deref()
            .ok_or_else(|| invalid("the newest root has no key".into()))?;
        let key = KeyPair::from_pem(key_pem).map_err(|e| invalid(format!("root key: {e}")))?;
        let issuer = Issuer::from_ca_cert_pem(&signer.cert_pem, key)
            .map_err(|e| invalid(format!("root certificate: {e}")))?;
        let now = unix_now();
        let mut bundle = Vec::new();
        for root in &file.roots {
            if root.retire_after_unix.is_some_and(|t| t <= now) {
                continue;
            }
            bundle.push(
                CertificateDer::from_pem_slice(root.cert_pem.as_bytes())
                    .map_err(|e| invalid(format!("root certificate: {e}")))?,
            );
        }
        Ok(Authority::new(issuer, Vec::new(), bundle, trust_domain))
    }

    /// When the next root in the bundle retires, if any (the control reloads then).
    pub fn next_retirement(&self) -> Option<SystemTime> {
        let now = unix_now();
        self.read()
            .ok()?
            .roots
            .iter()
            .filter_map(|r| r.retire_after_unix)
            .filter(|&t| t > now)
            .min()
            .map(|t| UNIX_EPOCH + Duration::from_secs(t))
    }

    /// Starts signing with a new root; the previous ones stay trusted for `overlap`, so that
    /// certificates they signed keep working until workloads have renewed.
    pub fn rotate(&self, trust_domain: &str, overlap: Duration) -> Result<(), StoreError> {
        let mut file = self.read()?;
        let retire = unix_now() + overlap.as_secs();
        let now = unix_now();
        file.roots
            .retain(|r| r.retire_after_unix.is_none_or(|t| t > now));
        for old in &mut file.roots {
            old.key_pem = None;
            old.retire_after_unix = Some(old.retire_after_unix.map_or(retire, |t| t.min(retire)));
        }
        file.roots.insert(0, new_root(trust_domain)?);
        self.save(&file)
    }

    /// The join-token signing key, created on first use (only when `token.key` does not exist:
    /// one that cannot be read or decoded is an error, since a new key would invalidate every
    /// token issued).
    pub fn token_key(&self) -> Result<Vec<u8>, StoreError> {
        use base64::Engine;
        let path = self.token_file();
        if let Some(text) = read_secret(&path)? {
            return decode_token_key(&path, &text);
        }
        self.create_dir()?;
        let mut key = vec![0u8; TOKEN_KEY_LEN];
        aws_lc_rs::rand::fill(&mut key).map_err(|_| no_randomness(&path))?;
        let text = base64::engine::general_purpose::STANDARD.encode(&key);
        if write_new(&path, text.as_bytes(), 0o600)? {
            return Ok(key);
        }
        // Created by another process since we looked: its key is the one.
        let text = read_secret(&path)?.ok_or_else(|| io(&path, io::ErrorKind::NotFound.into()))?;
        decode_token_key(&path, &text)
    }

    pub(crate) fn create_dir(&self) -> Result<(), StoreError> {
        fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(&self.dir)
            .map_err(|source| io(&self.dir, source))
    }

    fn read(&self) -> Result<CaFile, StoreError> {
        let path = self.ca_file();
        let text = read_secret(&path)?.ok_or_else(|| io(&path, io::ErrorKind::NotFound.into()))?;
        serde_json::from_str(&text).map_err(|e| invalid(&path, e.to_string()))
    }

    fn ca_json(&self, file: &CaFile) -> Result<Vec<u8>, StoreError> {
        serde_json::to_vec_pretty(file).map_err(|e| invalid(&self.ca_file(), e.to_string()))
    }

    fn save(&self, file: &CaFile) -> Result<(), StoreError> {
        write_atomic(&self.ca_file(), &self.ca_json(file)?, 0o600)?;
        self.write_bundle(file)
    }

    fn write_bundle(&self, file: &CaFile) -> Result<(), StoreError> {
        let now = unix_now();
        let bundle: String = file
            .roots
            .iter()
            .filter(|r| r.retire_after_unix.is_none_or(|t| t > now))
            .map(|r| r.cert_pem.as_str())
            .collect();
        write_atomic(&self.bundle_file(), bundle.as_bytes(), 0o644)
    }
}

fn decode_token_key(path: &Path, text: &str) -> Result<Vec<u8>, StoreError> {
    use base64::Engine;
    let fix = "restore it, or remove it to have a new key made (join tokens already issued then stop working)";
    let key = base64::engine::general_purpose::STANDARD
        .decode(text.trim())
        .map_err(|e| invalid(path, format!("not base64 ({e}); {fix}")))?;
    if key.len() != TOKEN_KEY_LEN {
        return Err(invalid(
            path,
            format!("a {} byte key, expected {TOKEN_KEY_LEN}; {fix}", key.len()),
        ));
    }
    Ok(key)
}

pub(crate) fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

#[cfg(test)]
mod tests;
