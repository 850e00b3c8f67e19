//! Control replicas sharing state in a real etcd cluster: each a `smi-test-control` process run
//! as `smi-control serve --etcd` runs, all with one seal key and prefix. The test kills and
//! starts them one by one, and reaches etcd itself to mint join tokens and read keys.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::OnceLock;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use serde_json::Value;
use smi_client::control::ControlAddr;
use smi_client::{Mesh, MeshConfig};
use smi_control::enroll::JoinTokens;
use smi_control::etcd::{Etcd, EtcdConfig, EtcdStore, SealKey};
use smi_control::traits::StateStore;
use smi_core::{ServiceAccount, ServiceRef};

use crate::Process;
use crate::admin::get_text;
use crate::control::{START, smictl};
use crate::etcd::EtcdCluster;
use crate::token::{TRUST_DOMAIN, TokenSpec};

/// The key prefix of the replicas (one cluster per test, so one prefix suffices).
pub const PREFIX: &str = "/smi-test/";

#[derive(Debug)]
pub struct Replicas {
    dir: tempfile::TempDir,
    pub seal_key: PathBuf,
    endpoints: String,
    ttl: Duration,
    env: Vec<(String, String)>,
    /// `None` while killed.
    pub processes: Vec<Option<Process>>,
    /// Each replica's API address (kept when killed, so it comes back on the same one).
    pub api: Vec<SocketAddr>,
    pub admin: Vec<SocketAddr>,
    etcd: OnceLock<Etcd>,
}

impl Replicas {
    /// `count` replicas over `cluster`, issuing certificates that live `ttl`, with `env`
    /// (`SMI_TEST_*` settings) besides the etcd ones.
    pub async fn start(
        cluster: &EtcdCluster,
        count: usize,
        ttl: Duration,
        env: &[(&str, &str)],
    ) -> Replicas {
        Replicas::start_on(&cluster.endpoints_arg(), count, ttl, env).await
    }

    /// [`Replicas::start`], the replicas told only the members `endpoints` (`url,url`).
    pub async fn start_on(
        endpoints: &str,
        count: usize,
        ttl: Duration,
        env: &[(&str, &str)],
    ) -> Replicas {
        let dir = tempfile::tempdir().expect("a temporary directory");
        let seal_key = dir.path().join("seal.key");
        SealKey::create_file(&seal_key).expect("a seal key");
        Replicas::with_key(dir, seal_key, endpoints, count, ttl, env).await
    }

    /// `count` more replicas of the same mesh as `others` (their seal key and settings), told
    /// every member of `cluster`.
    pub async fn start_sharing(others: &Replicas, cluster: &EtcdCluster, count: usize) -> Replicas {
        let dir = tempfile::tempdir().expect("a temporary directory");
        let seal_key = dir.path().join("seal.key");
        std::fs::copy(&others.seal_key, &seal_key).expect("copying the seal key");
        let env: Vec<(&str, &str)> = others
            .env
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_str()))
            .collect();
        Replicas::with_key(
            dir,
            seal_key,
            &cluster.endpoints_arg(),
            count,
            others.ttl,
            &env,
        )
        .await
    }

    async fn with_key(
        dir: tempfile::TempDir,
        seal_key: PathBuf,
        endpoints: &str,
        count: usize,
        ttl: Duration,
        env: &[(&str, &str)],
    ) -> Replicas {
        let mut replicas = Replicas {
            seal_key,
            endpoints: endpoints.to_owned(),
            ttl,
            env: env
                .iter()
                .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
                .collect(),
            processes: Vec::new(),
            api: Vec::new(),
            admin: Vec::new(),
            etcd: OnceLock::new(),
            dir,
        };
        for _ in 0..count {
            let any_port = "127.0.0.1:0".parse().expect("a socket address");
            let process = replicas.spawn(any_port).await;
            replicas.api.push(process.addrs[0]);
            replicas.admin.push(process.addrs[1]);
            replicas.processes.push(Some(process));
        }
        replicas
    }

    async fn spawn(&self, listen: SocketAddr) -> Process {
        let unused = self.dir.path().join("unused");
        std::fs::create_dir_all(&unused).expect("a directory");
        let mut command = tokio::process::Command::new(crate::process::binary("smi-test-control"));
        command
            .arg(&unused)
            .arg(&unused)
            .arg(listen.to_string())
            .arg(self.ttl.as_millis().to_string())
            .env("SMI_TEST_ETCD", &self.endpoints)
            .env("SMI_TEST_SEAL_KEY", &self.seal_key)
            .env("SMI_TEST_ETCD_PREFIX", PREFIX)
            .envs(self.env.iter().map(|(k, v)| (k.as_str(), v.as_str())));
        Process::spawn(command).await
    }

    /// Kills replica `i` (SIGKILL).
    pub async fn kill(&mut self, i: usize) {
        let mut process = self.processes[i].take().expect("the replica runs");
        process.kill().await;
    }

    /// Starts replica `i` again on its API address (after [`Replicas::kill`]).
    pub async fn start_again(&mut self, i: usize) {
        let process = self.spawn(self.api[i]).await;
        self.admin[i] = process.addrs[1];
        self.processes[i] = Some(process);
    }

    /// Every replica's API, as a workload is told (`a,b,c`).
    pub fn addr(&self) -> ControlAddr {
        let list: Vec<String> = self.api.iter().map(ToString::to_string).collect();
        ControlAddr::parse(&list.join(",")).expect("the replicas' addresses")
    }

    /// Replica `i`'s API only.
    pub fn addr_of(&self, i: usize) -> ControlAddr {
        ControlAddr::parse(&self.api[i].to_string()).expect("a replica's address")
    }

    /// This test's own connection to etcd, as a replica has it.
    pub fn etcd(&self) -> &Etcd {
        self.etcd.get_or_init(|| {
            let mut config =
                EtcdConfig::new(self.endpoints.split(',').map(str::to_owned).collect());
            config.prefix = PREFIX.to_owned();
            let seal = SealKey::from_file(&self.seal_key).expect("the seal key");
            Etcd::connect(config, Some(seal)).expect("connecting to etcd")
        })
    }

    /// A join token for `identity` that may serve `serves`, made with the key in etcd: what
    /// `smictl token create --etcd` makes.
    pub fn token(&self, identity: &str, serves: &[&str], spec: TokenSpec) -> String {
        let store = EtcdStore::new(self.etcd().clone());
        let ca = store.authority(TRUST_DOMAIN).expect("the CA in etcd");
        let key = store.token_key().expect("the token key in etcd");
        let identity: ServiceAccount = identity.parse().expect("an identity ns/name");
        let serves: Vec<ServiceRef> = serves
            .iter()
            .map(|s| s.parse().expect("a service ns/name"))
            .collect();
        JoinTokens::new(&key, TRUST_DOMAIN)
            .create_with_uses(&identity, &serves, spec.ttl, ca.bundle(), spec.uses)
            .token
    }

    /// A workload of `identity` that may serve `serves` and calls `calls`, told every
    /// replica's address, started.
    pub async fn mesh(&self, identity: &str, serves: &[&str], calls: &[&str]) -> Mesh {
        self.start_mesh(self.addr(), identity, serves, calls).await
    }

    /// [`Replicas::mesh`], told only replica `i`'s address.
    pub async fn mesh_on(&self, i: usize, identity: &str, serves: &[&str], calls: &[&str]) -> Mesh {
        self.start_mesh(self.addr_of(i), identity, serves, calls)
            .await
    }

    async fn start_mesh(
        &self,
        addr: ControlAddr,
        identity: &str,
        serves: &[&str],
        calls: &[&str],
    ) -> Mesh {
        let token = self.token(identity, serves, TokenSpec::default());
        let config = MeshConfig::new(addr, token)
            .calls(calls.iter().copied())
            .workload(identity);
        tokio::time::timeout(START, Mesh::start(config))
            .await
            .unwrap_or_else(|_| panic!("{identity} did not start within {START:?}"))
            .unwrap_or_else(|e| panic!("{identity} did not start: {e}"))
    }

    /// `smictl <command> --etcd <members> --etcd-prefix <prefix> <args>`; its exit code.
    pub fn smictl(&self, command: &[&str], args: &[&str]) -> ExitCode {
        let mut argv = vec!["smictl"];
        argv.extend_from_slice(command);
        argv.extend_from_slice(&["--etcd", &self.endpoints, "--etcd-prefix", PREFIX]);
        argv.extend_from_slice(args);
        smictl(&argv)
    }

    /// `smictl apply -f` of `yaml` (written to a file first); panics unless it applied.
    pub fn apply(&self, yaml: &str) {
        static APPLIED: AtomicU32 = AtomicU32::new(0);
        let n = APPLIED.fetch_add(1, Ordering::Relaxed);
        let path = self.dir.path().join(format!("apply-{n}.yaml"));
        std::fs::write(&path, yaml).expect("writing the file to apply");
        let path = path.to_str().expect("a UTF-8 path");
        assert_eq!(self.smictl(&["apply"], &["-f", path]), ExitCode::SUCCESS);
    }

    /// Replica `i`'s `/debug/policy` view (its version, policy, endpoints and store health).
    pub async fn view(&self, i: usize) -> Value {
        let (status, body) = get_text(self.admin[i], "/debug/policy").await;
        assert!(status.is_success(), "replica {i}: {status} {body}");
        serde_json::from_str(&body).expect("a JSON view")
    }

    /// Replica `i`'s published version.
    pub async fn version(&self, i: usize) -> u64 {
        self.view(i)
            .await
            .get("version")
            .and_then(Value::as_u64)
            .expect("a version in the view")
    }
}
