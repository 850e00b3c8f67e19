//! [`EtcdMesh`]: control replicas sharing one prefix of an etcd cluster, in this process, each as
//! `smi-control serve --etcd` runs it: its own etcd connection (made before its runtime) and its
//! own tokio runtime (`Runtime::new()`: one worker per core), on a thread of its own. A replica
//! answers Certify with blocking store calls (the token-use ledger is read and written in etcd),
//! so replicas sharing one runtime would share its workers too, which separate processes do not.
//!
//! The mesh's policy comes in as an operator puts it: `smictl apply -f` once, then each
//! TrafficSplit change as one key put of the object's JSON. Join tokens are minted as
//! `smictl token create --etcd` mints them: with the token key and CA in etcd.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

use serde_json::Value;
use smi_client::control::ControlAddr;
use smi_control::ca::Authority;
use smi_control::enroll::JoinTokens;
use smi_control::etcd::keys::Keys;
use smi_control::etcd::{Etcd, EtcdClient, EtcdConfig, SealKey};
use smi_control::serve::{ControlBuilder, ServeConfig};
use smi_control::store_runtime::StoreRuntime;
use smi_control::traits::StateStore;
use smi_core::ServiceAccount;
use tokio::sync::oneshot;

use crate::Error;
use crate::service::{TRUST_DOMAIN, Target, write_policy};

/// One replica: its thread, and the signal that stops it.
struct Replica {
    stop: oneshot::Sender<()>,
    thread: JoinHandle<()>,
}

pub struct EtcdMesh {
    pub prefix: String,
    addrs: Vec<ControlAddr>,
    replicas: Vec<Replica>,
    /// The load generator's own client (an operator's `smictl`), on a runtime of its own.
    runtime: Arc<StoreRuntime>,
    client: EtcdClient,
    tokens: JoinTokens,
    ca: Authority,
    /// The TrafficSplit's key, and its object as `smictl apply` stored it.
    split_key: String,
    split: Value,
}

impl EtcdMesh {
    /// Applies the bookstore policy under `prefix` (written to `dir` first), then starts
    /// `count` replicas over `endpoints` (`url,url`), one after the other, all with `seal_key`.
    pub async fn start(
        endpoints: &str,
        prefix: &str,
        seal_key: &Path,
        count: usize,
        dir: &Path,
    ) -> Result<Self, Error> {
        write_policy(dir)?;
        apply(endpoints, prefix, dir).await?;
        let config = {
            let mut config = EtcdConfig::new(endpoints.split(',').map(str::to_owned).collect());
            config.prefix = prefix.to_owned();
            config
        };
        let mut addrs = Vec::new();
        let mut replicas = Vec::new();
        for _ in 0..count {
            let (replica, api) = start_replica(config.clone(), seal_key.to_owned()).await?;
            addrs.push(ControlAddr::parse(&api.to_string())?);
            replicas.push(replica);
        }
        // After the replicas: the first of them made the CA and the token key. Read once, as
        // `smictl token create --etcd` reads them; the connection (and its watch) then goes.
        let seal = SealKey::from_file(seal_key)?;
        let (tokens, ca, split_key, split) = {
            let config = config.clone();
            tokio::task::spawn_blocking(move || -> Result<_, Error> {
                let etcd = Etcd::connect(config, Some(seal))?;
                let store = etcd.store();
                let ca = store.authority(TRUST_DOMAIN)?;
                let tokens = JoinTokens::new(&store.token_key()?, TRUST_DOMAIN);
                let key =
                    Keys::new(etcd.prefix()).policy("TrafficSplit", "bookstore", "bookstore-split");
                let stored = etcd
                    .mirror()
                    .get(&key)
                    .ok_or_else(|| format!("smictl apply stored nothing at {key}"))?;
                let split: Value = serde_json::from_slice(&stored.value)?;
                Ok((tokens, ca, key, split))
            })
            .await??
        };
        // The operator's writes: a client without a mirror, so that it watches nothing.
        let runtime = Arc::new(StoreRuntime::new()?);
        let client = runtime.enter(|| EtcdClient::new(&config))?;
        Ok(Self {
            prefix: prefix.to_owned(),
            addrs,
            replicas,
            runtime,
            client,
            tokens,
            ca,
            split_key,
            split,
        })
    }

    pub fn replicas(&self) -> usize {
        self.replicas.len()
    }

    /// The load generator's etcd client and its runtime (for measuring what a put costs).
    pub fn client(&self) -> (&StoreRuntime, &EtcdClient) {
        (&self.runtime, &self.client)
    }

    /// Stops every replica (their streams end) and waits for their threads.
    pub async fn stop(self) -> Result<(), Error> {
        for replica in self.replicas {
            let _ = replica.stop.send(());
            tokio::task::spawn_blocking(move || replica.thread.join())
                .await?
                .map_err(|_| "a replica's thread panicked")?;
        }
        Ok(())
    }
}

impl Target for EtcdMesh {
    fn addrs(&self) -> &[ControlAddr] {
        &self.addrs
    }

    fn token(&self, identity: &str) -> Result<String, Error> {
        let identity: ServiceAccount = identity.parse()?;
        let ttl = Duration::from_secs(3600);
        Ok(self
            .tokens
            .create_with_uses(&identity, &[], ttl, self.ca.bundle(), u32::MAX)
            .token)
    }

    /// One put of the TrafficSplit's JSON as `smictl apply` writes it (compact, the object as
    /// given), run on the load generator's etcd runtime; returns when etcd has answered.
    fn set_split(&self, v1_weight: u64) -> impl Future<Output = Result<(), Error>> + Send {
        let value = split_json(&self.split, v1_weight);
        let client = self.client.clone();
        let key = self.split_key.clone();
        let put = self.runtime.spawn(async move {
            let value = value?;
            client.put(key.as_bytes(), &value, 0).await?;
            Ok::<_, Error>(())
        });
        async move { put.await? }
    }
}

/// `split` (a TrafficSplit of bookstore-v1 and another backend) with bookstore-v1 at
/// `v1_weight`% and the other at the rest, as compact JSON.
fn split_json(split: &Value, v1_weight: u64) -> Result<Vec<u8>, Error> {
    let mut split = split.clone();
    let backends = split
        .pointer_mut("/spec/backends")
        .and_then(Value::as_array_mut)
        .ok_or("the stored TrafficSplit has no spec.backends")?;
    for backend in backends {
        let weight = if backend["service"] == "bookstore-v1" {
            v1_weight
        } else {
            100 - v1_weight
        };
        backend["weight"] = weight.into();
    }
    Ok(split.to_string().into_bytes())
}

/// `smictl apply -f dir --etcd endpoints --etcd-prefix prefix`, smictl's own code.
async fn apply(endpoints: &str, prefix: &str, dir: &Path) -> Result<(), Error> {
    let dir = dir.to_str().ok_or("a UTF-8 path")?.to_owned();
    let argv = [
        "smictl",
        "apply",
        "-f",
        &dir,
        "--etcd",
        endpoints,
        "--etcd-prefix",
        prefix,
    ]
    .map(str::to_owned);
    let code = tokio::task::spawn_blocking(move || {
        let argv: Vec<&str> = argv.iter().map(String::as_str).collect();
        smi_test_util::smictl(&argv)
    })
    .await?;
    if code != ExitCode::SUCCESS {
        return Err(format!("smictl apply -f {dir} --etcd-prefix {prefix}: {code:?}").into());
    }
    Ok(())
}

/// Starts one replica on a thread of its own; its API address once it serves.
async fn start_replica(
    config: EtcdConfig,
    seal_key: PathBuf,
) -> Result<(Replica, SocketAddr), Error> {
    let (ready_tx, ready) = oneshot::channel();
    let (stop, stopped) = oneshot::channel();
    let thread = std::thread::Builder::new()
        .name("replica".into())
        .spawn(move || {
            let mut ready = Some(ready_tx);
            if let Err(e) = serve_replica(config, &seal_key, &mut ready, stopped) {
                match ready.take() {
                    Some(ready) => drop(ready.send(Err(e.to_string()))),
                    None => eprintln!("a replica stopped: {e}"),
                }
            }
        })?;
    let api = ready
        .await
        .map_err(|_| "a replica ended before it started")??;
    Ok((Replica { stop, thread }, api))
}

type Ready = oneshot::Sender<Result<SocketAddr, String>>;

/// A replica's thread, as `smi-control serve --etcd` runs: etcd first, then the runtime.
fn serve_replica(
    config: EtcdConfig,
    seal_key: &Path,
    ready: &mut Option<Ready>,
    stopped: oneshot::Receiver<()>,
) -> Result<(), Error> {
    let etcd = Etcd::connect(config, Some(SealKey::from_file(seal_key)?))?;
    let runtime = tokio::runtime::Runtime::new()?;
    runtime.block_on(async {
        let serve = ServeConfig {
            listen: "127.0.0.1:0".parse()?,
            admin: "127.0.0.1:0".parse()?,
            ..Default::default()
        };
        let lease = serve.lease;
        let running = ControlBuilder::new(serve)
            .etcd(&etcd, lease)
            .start()
            .await?;
        if let Some(ready) = ready.take() {
            let _ = ready.send(Ok(running.api_addr));
        }
        let _ = stopped.await;
        running.shutdown().await;
        Ok::<(), Error>(())
    })
}
