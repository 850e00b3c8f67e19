//! The arguments that name an etcd cluster, shared by `smi-control serve --etcd` and the
//! `smictl` commands that read or write it.

use std::path::PathBuf;

use clap::Args;

use crate::etcd::{DEFAULT_PREFIX, Etcd, EtcdConfig, EtcdTls, SealKey};

#[derive(Clone, Debug, Default, Args)]
pub struct EtcdArgs {
    /// Keep the policy and the state in etcd, shared with other replicas: the client URLs of
    /// its members, comma-separated (`http://10.0.0.1:2379,http://10.0.0.2:2379`).
    #[arg(long = "etcd", value_name = "URL,...", value_delimiter = ',')]
    pub endpoints: Vec<String>,
    /// The prefix of every key (several meshes can share one cluster).
    #[arg(long, default_value = DEFAULT_PREFIX, requires = "endpoints")]
    pub etcd_prefix: String,
    /// The key (base64 of 32 bytes, mode 0600) the CA and the token key are sealed with in etcd;
    /// every replica needs the same file (`smictl etcd seal-key --out FILE` makes one).
    #[arg(long, value_name = "FILE", requires = "endpoints")]
    pub seal_key: Option<PathBuf>,
    /// The CA of the etcd members' certificates (PEM), for TLS to etcd.
    #[arg(long, value_name = "FILE", requires = "endpoints")]
    pub etcd_ca: Option<PathBuf>,
    /// A client certificate for etcd (PEM), with --etcd-key.
    #[arg(long, value_name = "FILE", requires = "etcd_ca", requires = "etcd_key")]
    pub etcd_cert: Option<PathBuf>,
    #[arg(long, value_name = "FILE", requires = "etcd_cert")]
    pub etcd_key: Option<PathBuf>,
}

impl EtcdArgs {
    /// Connected to etcd when `--etcd` is given (`None` when not); the error says why not.
    pub fn connect(&self) -> Result<Option<Etcd>, String> {
        if self.endpoints.is_empty() {
            return Ok(None);
        }
        let seal = self
            .seal_key
            .as_deref()
            .map(SealKey::from_file)
            .transpose()
            .map_err(|e| format!("--seal-key: {e}"))?;
        let mut config = EtcdConfig::new(self.endpoints.clone());
        config.prefix = self.etcd_prefix.clone();
        config.tls = self.etcd_ca.clone().map(|ca| EtcdTls {
            ca,
            cert: self.etcd_cert.clone(),
            key: self.etcd_key.clone(),
        });
        Etcd::connect(config, seal)
            .map(Some)
            .map_err(|e| e.to_string())
    }

    /// [`connect`](Self::connect), for a command that needs etcd.
    pub fn require(&self) -> Result<Etcd, String> {
        self.connect()?
            .ok_or_else(|| "--etcd URL[,URL...] is required".to_owned())
    }
}
