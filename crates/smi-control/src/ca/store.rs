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

/// The CA's roots, newest first: `ca.json` in a state directory, the sealed `ca` key in etcd.
#[derive(Debug, Default, Serialize, Deserialize)]
pub(crate) struct CaFile {
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
pub(crate) const TOKEN_KEY_LEN: usize = 32;

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
            let file = CaFile::new(trust_domain)?;
            // Another process (`smictl token create` beside a first `serve`) may have created
            // it since we looked; then its root is the one, and its bundle.pem stays.
            if write_new(&path, &file.to_json(&path)?, 0o600)? {
                self.write_bundle(&file)?;
                tracing::info!(path = %path.display(), "created a new root CA");
            }
        }
        self.load(trust_domain)
    }

    /// Loads the CA as it is on disk; retired roots are left out of the bundle.
    pub fn load(&self, trust_domain: &str) -> Result<Authority, StoreError> {
        self.read()?.authority(trust_domain, &self.ca_file())
    }

    /// When the next root in the bundle retires, if any (the control reloads then).
    pub fn next_retirement(&self) -> Option<SystemTime> {
        self.read().ok()?.next_retirement()
    }

    /// Starts signing with a new root; the previous ones stay trusted for `overlap`, so that
    /// certificates they signed keep working until workloads have renewed.
    pub fn rotate(&self, trust_domain: &str, overlap: Duration) -> Result<(), StoreError> {
        let mut file = self.read()?;
        file.rotate(trust_domain, overlap)?;
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
        CaFile::parse(text.as_bytes(), &path)
    }

    fn save(&self, file: &CaFile) -> Result<(), StoreError> {
        let path = self.ca_file();
        write_atomic(&path, &file.to_json(&path)?, 0o600)?;
        self.write_bundle(file)
    }

    fn write_bundle(&self, file: &CaFile) -> Result<(), StoreError> {
        write_atomic(&self.bundle_file(), file.bundle_pem().as_bytes(), 0o644)
    }
}

impl CaFile {
    /// A CA with one new P-256 root.
    pub fn new(trust_domain: &str) -> Result<Self, StoreError> {
        Ok(Self {
            roots: vec![new_root(trust_domain)?],
        })
    }

    /// The CA as stored at `origin` (a path, or an etcd key), which errors name.
    pub fn parse(bytes: &[u8], origin: &Path) -> Result<Self, StoreError> {
        serde_json::from_slice(bytes).map_err(|e| invalid(origin, e.to_string()))
    }

    pub fn to_json(&self, origin: &Path) -> Result<Vec<u8>, StoreError> {
        serde_json::to_vec_pretty(self).map_err(|e| invalid(origin, e.to_string()))
    }

    /// The authority: the newest root signs; retired roots are left out of the bundle.
    pub fn authority(&self, trust_domain: &str, origin: &Path) -> Result<Authority, StoreError> {
        let invalid = |message: String| invalid(origin, message);
        let signer = self
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
        for root in &self.roots {
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

    /// When the next root in the bundle retires, if any.
    pub fn next_retirement(&self) -> Option<SystemTime> {
        let now = unix_now();
        self.roots
            .iter()
            .filter_map(|r| r.retire_after_unix)
            .filter(|&t| t > now)
            .min()
            .map(|t| UNIX_EPOCH + Duration::from_secs(t))
    }

    /// A new root signs from now on; the others stay trusted for `overlap` (at most), without
    /// their keys.
    pub fn rotate(&mut self, trust_domain: &str, overlap: Duration) -> Result<(), StoreError> {
        let now = unix_now();
        let retire = now + overlap.as_secs();
        self.roots
            .retain(|r| r.retire_after_unix.is_none_or(|t| t > now));
        for old in &mut self.roots {
            old.key_pem = None;
            old.retire_after_unix = Some(old.retire_after_unix.map_or(retire, |t| t.min(retire)));
        }
        self.roots.insert(0, new_root(trust_domain)?);
        Ok(())
    }

    /// The roots still trusted, PEM.
    pub fn bundle_pem(&self) -> String {
        let now = unix_now();
        self.roots
            .iter()
            .filter(|r| r.retire_after_unix.is_none_or(|t| t > now))
            .map(|r| r.cert_pem.as_str())
            .collect()
    }
}

pub(crate) fn decode_token_key(path: &Path, text: &str) -> Result<Vec<u8>, StoreError> {
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
