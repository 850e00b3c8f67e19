//! A workload's credentials: its private key (made here), its certificate chain, and the trust
//! bundle it verifies peers against.

use std::fmt;
use std::io::Write;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::SystemTime;

use rcgen::KeyPair;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
use rustls::{ClientConfig, ServerConfig};
use smi_core::SpiffeId;
use smi_tls::{Mtls, OwnCertificate, TlsError};

use super::ClientError;

/// Cheap to clone: the key is shared, never copied out of the process.
#[derive(Clone)]
pub struct Credentials {
    key: Arc<KeyPair>,
    chain: Vec<Vec<u8>>,
    bundle: Vec<Vec<u8>>,
    spiffe_id: SpiffeId,
    not_after: SystemTime,
}

impl fmt::Debug for Credentials {
    // The private key is never printed.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Credentials")
            .field("spiffe_id", &self.spiffe_id.to_string())
            .field("chain", &self.chain.len())
            .field("bundle", &self.bundle.len())
            .field("not_after", &self.not_after)
            .finish_non_exhaustive()
    }
}

impl Credentials {
    pub(crate) fn new(
        key: KeyPair,
        chain: Vec<Vec<u8>>,
        bundle: Vec<Vec<u8>>,
        spiffe_id: &str,
        not_after: SystemTime,
    ) -> Result<Self, ClientError> {
        if chain.is_empty() || bundle.is_empty() {
            return Err(ClientError::Invalid(
                "an empty certificate chain or trust bundle".into(),
            ));
        }
        let spiffe_id = spiffe_id
            .parse()
            .map_err(|e| ClientError::Invalid(format!("spiffe_id: {e}")))?;
        Ok(Self {
            key: Arc::new(key),
            chain,
            bundle,
            spiffe_id,
            not_after,
        })
    }

    /// The same certificate with a newer trust bundle (the control publishes one when a root
    /// rotates; the control's own certificate may already chain to the new root).
    pub fn with_bundle(mut self, bundle: Vec<Vec<u8>>) -> Result<Self, ClientError> {
        if bundle.is_empty() {
            return Err(ClientError::Invalid("an empty trust bundle".into()));
        }
        self.bundle = bundle;
        Ok(self)
    }

    pub fn spiffe_id(&self) -> &SpiffeId {
        &self.spiffe_id
    }

    pub fn not_after(&self) -> SystemTime {
        self.not_after
    }

    /// The certificate chain, leaf first, DER.
    pub fn chain_der(&self) -> &[Vec<u8>] {
        &self.chain
    }

    /// The trust bundle, DER.
    pub fn bundle_der(&self) -> &[Vec<u8>] {
        &self.bundle
    }

    pub fn chain_pem(&self) -> String {
        smi_core::pem::certificates(&self.chain)
    }

    pub fn bundle_pem(&self) -> String {
        smi_core::pem::certificates(&self.bundle)
    }

    /// Writes `<name>.crt` (the chain), `<name>.key` (mode 0600) and `bundle.pem` into `dir`, for
    /// TLS tools outside this process (curl, openssl, grpcio, a proxy).
    pub fn write_pem_files(&self, dir: &Path, name: &str) -> std::io::Result<PemFiles> {
        let files = PemFiles {
            chain: dir.join(format!("{name}.crt")),
            key: dir.join(format!("{name}.key")),
            bundle: dir.join("bundle.pem"),
        };
        std::fs::write(&files.chain, self.chain_pem())?;
        std::fs::write(&files.bundle, self.bundle_pem())?;
        let mut key = std::fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(0o600)
            .open(&files.key)?;
        // `mode` applies only to a new file: make an existing one private too.
        key.set_permissions(std::fs::Permissions::from_mode(0o600))?;
        key.write_all(self.key_pem().as_bytes())?;
        Ok(files)
    }

    /// PKCS#8 PEM of the private key, for TLS libraries in this process.
    pub fn key_pem(&self) -> String {
        self.key.serialize_pem()
    }

    /// PKCS#8 DER of the private key, for TLS libraries in this process.
    pub fn key_der(&self) -> Vec<u8> {
        self.key.serialize_der()
    }

    /// The chain and key, as rustls takes them.
    pub fn own_certificate(&self) -> OwnCertificate {
        OwnCertificate {
            chain: self
                .chain
                .iter()
                .map(|c| CertificateDer::from(c.clone()))
                .collect(),
            key: PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(self.key_der())),
        }
    }

    /// The TLS builder trusting this bundle.
    pub fn mtls(&self) -> Result<Mtls, TlsError> {
        Mtls::new(self.bundle.iter().map(Vec::as_slice))
    }

    /// TLS for inbound mesh connections: a client certificate of the bundle is required.
    pub fn server_config(&self) -> Result<ServerConfig, TlsError> {
        self.mtls()?.workload_server(self.own_certificate())
    }

    /// TLS for outbound mesh connections (the server's SPIFFE ID is checked by the caller).
    pub fn client_config(&self) -> Result<ClientConfig, TlsError> {
        self.mtls()?.workload_client(self.own_certificate())
    }

    /// TLS to the control service of our trust domain, presenting this certificate.
    pub fn control_client_config(&self) -> Result<ClientConfig, TlsError> {
        self.mtls()?
            .control_client(Some(self.own_certificate()), &self.spiffe_id.trust_domain)
    }
}

/// Where [`Credentials::write_pem_files`] wrote.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PemFiles {
    pub chain: PathBuf,
    pub key: PathBuf,
    pub bundle: PathBuf,
}
