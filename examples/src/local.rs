//! A control service inside the example's own process, with a policy given as text: what the
//! small examples use so that each runs with one command. (The bookstore demo runs the control
//! service as its own process instead.)

use std::path::PathBuf;
use std::time::Duration;

use smi_client::MeshConfig;
use smi_client::control::ControlAddr;
use smi_control::ca::CaStore;
use smi_control::enroll::JoinTokens;
use smi_control::serve::{Running, ServeConfig, start};
use smi_core::{DEFAULT_TRUST_DOMAIN, ServiceRef};

pub type Error = Box<dyn std::error::Error + Send + Sync>;

#[derive(Debug)]
pub struct LocalControl {
    _dir: tempfile::TempDir,
    state: PathBuf,
    running: Running,
}

impl LocalControl {
    /// Starts a control service on 127.0.0.1 whose policy directory holds `policy_yaml`.
    pub async fn start(policy_yaml: &str) -> Result<Self, Error> {
        let dir = tempfile::tempdir()?;
        let policy = dir.path().join("policy");
        let state = dir.path().join("state");
        std::fs::create_dir_all(&policy)?;
        std::fs::write(policy.join("policy.yaml"), policy_yaml)?;
        let running = start(ServeConfig {
            policy_dir: policy,
            state_dir: state.clone(),
            listen: "127.0.0.1:0".parse()?,
            admin: "127.0.0.1:0".parse()?,
            ..ServeConfig::default()
        })
        .await?;
        Ok(Self {
            _dir: dir,
            state,
            running,
        })
    }

    /// Mesh settings for a workload of `identity` (`ns/sa`) that may serve `serves`, named
    /// after its service account (workload and pod, for the metrics).
    pub fn workload(&self, identity: &str, serves: &[&str]) -> Result<MeshConfig, Error> {
        let store = CaStore::new(&self.state);
        let ca = store.load(DEFAULT_TRUST_DOMAIN)?;
        let tokens = JoinTokens::new(&store.token_key()?, DEFAULT_TRUST_DOMAIN);
        let serves: Vec<ServiceRef> = serves.iter().map(|s| s.parse()).collect::<Result<_, _>>()?;
        let token = tokens.create(
            &identity.parse()?,
            &serves,
            Duration::from_secs(3600),
            ca.bundle(),
        );
        let addr = ControlAddr::parse(&self.running.api_addr.to_string())?;
        let name = identity.rsplit('/').next().unwrap_or(identity);
        Ok(MeshConfig::new(addr, token)
            .workload(identity)
            .workload_name(name)
            .pod_name(name))
    }

    pub async fn stop(self) {
        self.running.shutdown().await;
    }
}
