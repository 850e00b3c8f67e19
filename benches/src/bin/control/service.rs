//! The control service under load: this binary re-executed in the `serve` role, and the handle
//! the load generator holds on it (tokens, enrollment, the child's resident memory, its admin API);
//! and [`Target`], what the phases need of any control (this one, or replicas on etcd).

use std::future::Future;
use std::io::{BufRead, BufReader, Write};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use smi_client::control::{ControlAddr, Credentials, connect, enroll};
use smi_control::ca::CaStore;
use smi_core::ServiceAccount;
use smi_test_util::{TokenSpec, mint_token};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tonic::transport::Channel;

use crate::{Error, ROLE};

pub const TRUST_DOMAIN: &str = "cluster.local";
const ACCESS: &str = include_str!("../../../../examples/bookstore/policy/bookstore-access.yaml");

/// A control service as the phases drive it: where workloads connect, how they get a token, and
/// how an operator changes the policy. One process on files ([`Control`]), or replicas sharing
/// etcd ([`crate::replicas::EtcdMesh`]).
pub trait Target {
    /// The API addresses; the `i`th connection goes to `addrs()[i % len]` (round robin).
    fn addrs(&self) -> &[ControlAddr];

    /// A join token for `identity` that enrolls without limit. Concurrent enrollments each use
    /// their own: a token's uses are counted one at a time.
    fn token(&self, identity: &str) -> Result<String, Error>;

    /// Sets the TrafficSplit `bookstore/bookstore-split` to `v1_weight`% bookstore-v1, as an
    /// operator would (a file rewritten, a key put); returns once that write is done.
    fn set_split(&self, v1_weight: u64) -> impl Future<Output = Result<(), Error>> + Send;
}

/// Enrolls `identity` at the target's `i`th address (round robin), and connects there.
pub async fn channel(
    target: &impl Target,
    identity: &str,
    i: usize,
) -> Result<(Credentials, Channel), Error> {
    let addrs = target.addrs();
    let addr = addrs.get(i % addrs.len().max(1)).ok_or("no API address")?;
    let creds = enroll(addr, &target.token(identity)?).await?;
    let channel = connect(addr, &creds).await?;
    Ok((creds, channel))
}

/// `GET path` over HTTP/1.0 (so that the body is never chunked): the whole response, head and
/// body, or an error naming the status if it was not 200.
pub async fn http_get(addr: SocketAddr, path: &str) -> Result<String, Error> {
    let mut stream = tokio::net::TcpStream::connect(addr).await?;
    let request = format!("GET {path} HTTP/1.0\r\nHost: {}\r\n\r\n", addr.ip());
    stream.write_all(request.as_bytes()).await?;
    let mut text = String::new();
    stream.read_to_string(&mut text).await?;
    let status = text.lines().next().unwrap_or_default();
    if status.split_whitespace().nth(1) != Some("200") {
        return Err(format!("GET {path} on {addr}: {status}").into());
    }
    Ok(text)
}

/// The child: one control service; prints its address, stops when stdin closes.
pub async fn serve_role() -> Result<(), Error> {
    let mut args = std::env::args().skip(1);
    let (Some(policy), Some(state)) = (args.next(), args.next()) else {
        return Err("serve role: expected <policy-dir> <state-dir>".into());
    };
    let running = smi_control::serve::start(smi_control::serve::ServeConfig {
        policy_dir: policy.into(),
        state_dir: state.into(),
        listen: "127.0.0.1:0".parse()?,
        admin: "127.0.0.1:0".parse()?,
        ..Default::default()
    })
    .await?;
    println!("ready {} {}", running.api_addr, running.admin_addr);
    tokio::task::spawn_blocking(|| {
        let mut line = String::new();
        let _ = std::io::stdin().read_line(&mut line);
    })
    .await?;
    running.shutdown().await;
    Ok(())
}

pub struct Control {
    child: Child,
    /// The one API address (a list, for [`Target::addrs`]).
    addr: [ControlAddr; 1],
    admin: SocketAddr,
    pub policy: PathBuf,
    state: PathBuf,
    pub ca: smi_control::ca::Authority,
}

impl Control {
    pub fn start(dir: &Path) -> Result<Self, Error> {
        let policy = dir.join("policy");
        let state = dir.join("state");
        write_policy(&policy)?;
        let ca = CaStore::new(&state).open_or_init(TRUST_DOMAIN)?;
        let mut child = Command::new(std::env::current_exe()?)
            .env(ROLE, "serve")
            .arg(&policy)
            .arg(&state)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()?;
        let stdout = child.stdout.take().ok_or("child stdout")?;
        let mut line = String::new();
        BufReader::new(stdout).read_line(&mut line)?;
        let (addr, admin) = line
            .strip_prefix("ready ")
            .and_then(|rest| rest.trim().split_once(' '))
            .ok_or_else(|| format!("the control service did not start: {line:?}"))?;
        Ok(Self {
            addr: [ControlAddr::parse(addr)?],
            admin: admin.parse()?,
            child,
            policy,
            state,
            ca,
        })
    }

    /// A token that enrolls without limit: each Certify task reuses its own (each use is
    /// counted, on disk, as in production).
    pub fn token(&self, identity: &str) -> Result<String, Error> {
        let identity: ServiceAccount = identity.parse()?;
        let spec = TokenSpec {
            ttl: Duration::from_secs(3600),
            uses: u32::MAX,
        };
        Ok(mint_token(&self.state, &identity, &[], spec).token)
    }

    pub async fn channel(&self, identity: &str) -> Result<(Credentials, Channel), Error> {
        channel(self, identity, 0).await
    }

    /// The control process's id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Resident memory of the control process, bytes.
    pub fn rss(&self) -> Result<u64, Error> {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.child.id()))?;
        let kib = status
            .lines()
            .find_map(|l| l.strip_prefix("VmRSS:"))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
            .ok_or("VmRSS not found")?;
        Ok(kib * 1024)
    }

    /// `GET path` on the control's admin API: the whole response, head and body.
    pub async fn admin_get(&self, path: &str) -> Result<String, Error> {
        http_get(self.admin, path).await
    }

    /// A gauge or counter of the control's admin `/metrics`.
    pub async fn metric(&self, name: &str) -> Result<u64, Error> {
        let text = self.admin_get("/metrics").await?;
        let prefix = format!("{name} ");
        text.lines()
            .find_map(|l| l.strip_prefix(&prefix))
            .and_then(|v| v.trim().parse().ok())
            .ok_or_else(|| format!("{name} not in /metrics").into())
    }

    pub fn stop(mut self) {
        if let Some(mut stdin) = self.child.stdin.take() {
            let _ = stdin.write_all(b"stop\n");
        }
        let _ = self.child.wait();
    }
}

impl Target for Control {
    fn addrs(&self) -> &[ControlAddr] {
        &self.addr
    }

    fn token(&self, identity: &str) -> Result<String, Error> {
        Control::token(self, identity)
    }

    fn set_split(&self, v1_weight: u64) -> impl Future<Output = Result<(), Error>> + Send {
        std::future::ready(write_split(&self.policy, v1_weight).map_err(Error::from))
    }
}

/// The bookstore's access policy and its TrafficSplit (50% bookstore-v1), as files in `policy`.
pub fn write_policy(policy: &Path) -> std::io::Result<()> {
    std::fs::create_dir_all(policy)?;
    std::fs::write(policy.join("access.yaml"), ACCESS)?;
    write_split(policy, 50)
}

pub fn write_split(policy: &Path, v1_weight: u64) -> std::io::Result<()> {
    let split = format!(
        "apiVersion: split.smi-spec.io/v1alpha4\nkind: TrafficSplit\nmetadata:\n  name: bookstore-split\n  namespace: bookstore\nspec:\n  service: bookstore.bookstore.svc.cluster.local\n  backends:\n  - service: bookstore-v1\n    weight: {v1_weight}\n  - service: bookstore-v2\n    weight: {}\n",
        100 - v1_weight
    );
    // Write and rename, as an editor or a config tool would, so the reload never sees half a file.
    let tmp = policy.join(".split.yaml.tmp");
    std::fs::write(&tmp, split)?;
    std::fs::rename(tmp, policy.join("split.yaml"))
}
