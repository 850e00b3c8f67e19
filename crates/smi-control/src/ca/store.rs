//! The CA's state on disk, in the control's state directory:
//!
//! - `ca.json` (0600): the trusted roots, newest first; the newest carries its private key and
//!   signs; older ones stay in the trust bundle until their `retire_after` time (rotation).
//! - `bundle.pem` (0644): the current trust bundle, for tools (curl, openssl) and operators.
//! - `token.key` (0600): the key join tokens are signed with.
//! - `revoked.json` and `token-uses/` (0600, 0700): the deny list and the join tokens' use
//!   counts ([`crate::revocation`], written with the helpers here).
//!
//! The directory is created 0700. Every write goes to a new temporary file with a random name,
//! created exclusively (`O_EXCL`, `O_NOFOLLOW`) with its final mode, and is then renamed into
//! place (or, for a file made on first use, linked: whoever creates it first wins), so a reader
//! never sees half a file, a key readable by others, or a file reached through a planted link.
//!
//! Secrets are read with `O_NOFOLLOW` and refused when their mode lets the group or others in.
//! A secret that exists but cannot be used (a symbolic link, unreadable, not UTF-8, corrupt) is
//! an error naming the file: replacing it silently would change the CA or invalidate every join
//! token issued, so it is left as it is for the operator.

use std::fs;
use std::io::{self, Read, Write};
use std::os::unix::fs::{DirBuilderExt, MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use rcgen::{
    BasicConstraints, CertificateParams, DistinguishedName, DnType, IsCa, Issuer, KeyPair,
    KeyUsagePurpose,
};
use rustls::pki_types::CertificateDer;
use rustls::pki_types::pem::PemObject;
use serde::{Deserialize, Serialize};

use super::{Authority, random_serial};

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{path}: {message}")]
    Invalid { path: PathBuf, message: String },
    #[error("generating a root: {0}")]
    Generate(#[from] rcgen::Error),
}

#[derive(Debug, Default, Serialize, Deserialize)]
struct CaFile {
    roots: Vec<Root>,
}

#[derive(Debug, Serialize, Deserialize)]
struct Root {
    cert_pem: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    key_pem: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    retire_after_unix: Option<u64>,
}

/// The CA state directory.
#[derive(Clone, Debug)]
pub struct CaStore {
    dir: PathBuf,
}

const ROOT_VALIDITY_DAYS: i64 = 3650;

/// The length of the join-token key, in bytes (before base64).
const TOKEN_KEY_LEN: usize = 32;

/// Mode bits that let the group or others in; a secret must have none of them.
const GROUP_OTHER: u32 = 0o077;

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

fn new_root(trust_domain: &str) -> Result<Root, StoreError> {
    let key = KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256)?;
    let mut params = CertificateParams::default();
    let mut dn = DistinguishedName::new();
    dn.push(DnType::OrganizationName, "smi-mesh");
    // Distinct subjects per root: OpenSSL mistakes certificates with equal subjects for each other.
    let serial = random_serial();
    dn.push(
        DnType::CommonName,
        format!(
            "smi-mesh root {trust_domain} {:02x}{:02x}{:02x}{:02x}",
            serial[1], serial[2], serial[3], serial[4]
        ),
    );
    params.distinguished_name = dn;
    // pathLen 0: the root signs only leaves (workloads, the API), never another CA.
    params.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
    params.key_usages = vec![
        KeyUsagePurpose::KeyCertSign,
        KeyUsagePurpose::CrlSign,
        KeyUsagePurpose::DigitalSignature,
    ];
    let now = time::OffsetDateTime::now_utc();
    params.not_before = now - time::Duration::minutes(1);
    params.not_after = now + time::Duration::days(ROOT_VALIDITY_DAYS);
    params.serial_number = Some(rcgen::SerialNumber::from_slice(&serial));
    let cert = params.self_signed(&key)?;
    Ok(Root {
        cert_pem: cert.pem(),
        key_pem: Some(key.serialize_pem()),
        retire_after_unix: None,
    })
}

/// Reads a secret file: `None` when it does not exist; an error when it is a symbolic link
/// (`O_NOFOLLOW`), not a regular file, readable by the group or others, or not UTF-8.
pub(crate) fn read_secret(path: &Path) -> Result<Option<String>, StoreError> {
    // O_NONBLOCK: a FIFO planted here must not hang the open; it is refused below. (It changes
    // nothing for regular files.)
    let opened = fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NOFOLLOW | libc::O_NONBLOCK)
        .open(path);
    let mut file = match opened {
        Ok(f) => f,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
        // ELOOP (Linux, macOS) or EMLINK (FreeBSD): the last component is a symbolic link.
        Err(e) if matches!(e.raw_os_error(), Some(libc::ELOOP | libc::EMLINK)) => {
            return Err(invalid(
                path,
                "is a symbolic link; secrets are only read from regular files (replace the link with the file)".into(),
            ));
        }
        Err(e) => return Err(io(path, e)),
    };
    let meta = file.metadata().map_err(|e| io(path, e))?;
    if !meta.is_file() {
        return Err(invalid(path, "not a regular file".into()));
    }
    let mode = meta.mode() & 0o7777;
    if mode & GROUP_OTHER != 0 {
        return Err(invalid(
            path,
            format!(
                "mode {mode:04o} lets the group or others read this secret; run `chmod 600 {}`",
                path.display()
            ),
        ));
    }
    let mut bytes = Vec::new();
    file.read_to_end(&mut bytes).map_err(|e| io(path, e))?;
    String::from_utf8(bytes)
        .map(Some)
        .map_err(|_| invalid(path, "not UTF-8 text".into()))
}

/// Replaces `path` with `bytes` in one step (rename of a temporary file created with `mode`).
pub(crate) fn write_atomic(path: &Path, bytes: &[u8], mode: u32) -> Result<(), StoreError> {
    let tmp = write_temp(path, bytes, mode)?;
    let renamed = fs::rename(&tmp, path).map_err(|source| io(path, source));
    if renamed.is_err() {
        let _ = fs::remove_file(&tmp);
    }
    renamed
}

/// Creates `path` with `bytes` unless it exists: `Ok(false)` when it did. The temporary file is
/// hard-linked into place, which fails on any existing entry (a link planted there included),
/// so two processes creating the same file agree on one content.
fn write_new(path: &Path, bytes: &[u8], mode: u32) -> Result<bool, StoreError> {
    let tmp = write_temp(path, bytes, mode)?;
    let linked = fs::hard_link(&tmp, path);
    let _ = fs::remove_file(&tmp);
    match linked {
        Ok(()) => Ok(true),
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists => Ok(false),
        Err(e) => Err(io(path, e)),
    }
}

/// A new file beside `path` (`.name.<random>.tmp`) holding `bytes`, synced; created with
/// `O_EXCL` and `O_NOFOLLOW`, so nothing already at that name (a planted link) is written through.
fn write_temp(path: &Path, bytes: &[u8], mode: u32) -> Result<PathBuf, StoreError> {
    let mut random = [0u8; 8];
    aws_lc_rs::rand::fill(&mut random).map_err(|_| no_randomness(path))?;
    let suffix: String = random.iter().map(|b| format!("{b:02x}")).collect();
    let name = path
        .file_name()
        .map_or_else(|| "state".into(), |n| n.to_string_lossy().into_owned());
    let tmp = path.with_file_name(format!(".{name}.{suffix}.tmp"));
    let mut f = fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(mode)
        .custom_flags(libc::O_NOFOLLOW)
        .open(&tmp)
        .map_err(|source| io(&tmp, source))?;
    let written = f.write_all(bytes).and_then(|()| f.sync_all());
    if let Err(source) = written {
        let _ = fs::remove_file(&tmp);
        return Err(io(&tmp, source));
    }
    Ok(tmp)
}

fn io(path: &Path, source: io::Error) -> StoreError {
    StoreError::Io {
        path: path.to_owned(),
        source,
    }
}

pub(crate) fn invalid(path: &Path, message: String) -> StoreError {
    StoreError::Invalid {
        path: path.to_owned(),
        message,
    }
}

fn no_randomness(path: &Path) -> StoreError {
    invalid(path, "no randomness available".into())
}

pub(crate) fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// A CA the operator provides (`--ca-cert`/`--ca-key`, PEM): a root, or an intermediate with
/// the roots above it in `bundle` (PEM, optional; without it the CA certificate is the anchor).
pub fn load_provided(
    cert: &Path,
    key: &Path,
    bundle: Option<&Path>,
    trust_domain: &str,
) -> Result<Authority, StoreError> {
    let read = |p: &Path| fs::read_to_string(p).map_err(|source| io(p, source));
    let invalid = |p: &Path, message: String| StoreError::Invalid {
        path: p.to_owned(),
        message,
    };
    let cert_pem = read(cert)?;
    let signing_key = KeyPair::from_pem(&read(key)?).map_err(|e| invalid(key, e.to_string()))?;
    let issuer = Issuer::from_ca_cert_pem(&cert_pem, signing_key)
        .map_err(|e| invalid(cert, e.to_string()))?;
    let ca_der = CertificateDer::from_pem_slice(cert_pem.as_bytes())
        .map_err(|e| invalid(cert, e.to_string()))?;
    let roots = match bundle {
        Some(path) => CertificateDer::pem_slice_iter(read(path)?.as_bytes())
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| invalid(path, e.to_string()))?,
        None => vec![ca_der.clone()],
    };
    if roots.is_empty() {
        return Err(invalid(bundle.unwrap_or(cert), "no certificates".into()));
    }
    // An intermediate travels with every leaf so peers can chain up to the roots they trust.
    let intermediates = if roots.contains(&ca_der) {
        Vec::new()
    } else {
        vec![ca_der]
    };
    Ok(Authority::new(issuer, intermediates, roots, trust_domain))
}

#[cfg(test)]
mod tests;
