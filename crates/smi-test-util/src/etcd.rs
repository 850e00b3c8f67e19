//! A real etcd cluster (Debian's `etcd-server` 3.4, which the README's test command installs)
//! of one or three members on 127.0.0.1, for the end-to-end tests of control replicas that share
//! their state in etcd. Members can be killed and started again, one at a time or all together;
//! the keyspace is read, written and compacted through `etcdctl`, as an operator would.

use std::fs::OpenOptions;
use std::net::{SocketAddr, TcpListener};
use std::path::PathBuf;
use std::process::Stdio;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use http::StatusCode;
use serde_json::Value;

use crate::admin;

/// How long a cluster, or a member started again, may take to become healthy.
const HEALTHY: Duration = Duration::from_secs(10);
/// How often health and leadership are asked again: etcd has no notification to wait on.
const POLL: Duration = Duration::from_millis(20);
/// How long one `/health` request may take (a member without quorum may never answer).
const ASK: Duration = Duration::from_secs(1);
/// How many of the last lines of each member's log a failure message shows.
const LOG_TAIL: usize = 20;

/// Clusters started by this process, for a unique `--initial-cluster-token`.
static CLUSTERS: AtomicUsize = AtomicUsize::new(0);

/// An etcd cluster: each member an `etcd` process (killed when dropped: `kill_on_drop`, as for
/// every process the fixtures start), its data directory and log in a temporary directory that
/// the cluster owns.
#[derive(Debug)]
pub struct EtcdCluster {
    // Before `_dir`: the members are killed before their directories are removed.
    members: Vec<Member>,
    token: String,
    _dir: tempfile::TempDir,
}

#[derive(Debug)]
struct Member {
    name: String,
    client: SocketAddr,
    peer: SocketAddr,
    data: PathBuf,
    log: PathBuf,
    /// `None` once killed or stopped.
    child: Option<tokio::process::Child>,
}

// === impl EtcdCluster ===

impl EtcdCluster {
    /// Starts a new cluster of `members` (1 or 3) on free ports, with fast test timings (a
    /// heartbeat every 50 ms, elections after 500 ms); returns once every member is healthy.
    pub async fn start(members: usize) -> EtcdCluster {
        assert!(members > 0, "an etcd cluster has at least one member");
        let dir = tempfile::tempdir().expect("a temporary directory for etcd");
        let ports = free_ports(2 * members);
        let members = (0..members)
            .map(|i| Member {
                name: format!("m{i}"),
                client: ports[2 * i],
                peer: ports[2 * i + 1],
                data: dir.path().join(format!("m{i}.etcd")),
                log: dir.path().join(format!("m{i}.log")),
                child: None,
            })
            .collect();
        let n = CLUSTERS.fetch_add(1, Ordering::Relaxed);
        let mut cluster = EtcdCluster {
            members,
            token: format!("smi-test-{}-{n}", std::process::id()),
            _dir: dir,
        };
        for i in 0..cluster.members.len() {
            cluster.spawn(i, "new");
        }
        cluster.wait_healthy("a new etcd cluster").await;
        cluster
    }

    /// Each member's client URL (`http://127.0.0.1:PORT`), by member index.
    pub fn client_urls(&self) -> Vec<String> {
        self.members.iter().map(Member::client_url).collect()
    }

    /// The client URLs comma-joined: what `smi-control serve --etcd` takes.
    pub fn endpoints_arg(&self) -> String {
        self.client_urls().join(",")
    }

    /// The index of the current leader, which every running member names; panics if there is
    /// none now (see [`EtcdCluster::wait_for_leader`]).
    pub async fn leader(&self) -> usize {
        self.try_leader()
            .await
            .unwrap_or_else(|e| panic!("no etcd leader: {e}\n{}", self.logs()))
    }

    /// Waits until the running members agree on a running leader, and returns its index;
    /// panics after `timeout`.
    pub async fn wait_for_leader(&self, timeout: Duration) -> usize {
        let deadline = Instant::now() + timeout;
        loop {
            match self.try_leader().await {
                Ok(leader) => return leader,
                Err(e) if Instant::now() >= deadline => {
                    panic!("no etcd leader within {timeout:?}: {e}\n{}", self.logs())
                }
                Err(_) => tokio::time::sleep(POLL).await,
            }
        }
    }

    /// Kills member `i` (SIGKILL) and waits for it to exit.
    pub async fn kill(&mut self, i: usize) {
        let member = &mut self.members[i];
        let Some(mut child) = member.child.take() else {
            panic!(
                "etcd member {} is not running: nothing to kill",
                member.name
            );
        };
        child.kill().await.expect("killing an etcd member");
    }

    /// Starts member `i` again (after [`EtcdCluster::kill`]) on its ports and data directory;
    /// returns once every running member is healthy.
    pub async fn restart(&mut self, i: usize) {
        self.spawn(i, "existing");
        let what = format!("etcd member {} started again", self.members[i].name);
        self.wait_healthy(&what).await;
    }

    /// Kills every running member: etcd entirely unavailable.
    pub async fn stop_all(&mut self) {
        for i in 0..self.members.len() {
            if self.members[i].child.is_some() {
                self.kill(i).await;
            }
        }
    }

    /// Starts every stopped member again on its data; returns once all are healthy.
    pub async fn start_all(&mut self) {
        for i in 0..self.members.len() {
            if self.members[i].child.is_none() {
                self.spawn(i, "existing");
            }
        }
        self.wait_healthy("an etcd cluster started again").await;
    }

    /// Compacts the keyspace to its current revision, and returns that revision.
    pub async fn compact_to_latest(&self) -> i64 {
        // A linearizable read's header: the cluster's revision now, where a member's status
        // could be a follower's that lags behind.
        let read = self
            .etcdctl(&self.running(), &["get", "-w", "json", "--", "/"])
            .await;
        let revision = revision(&read);
        let compact = etcdctl(&self.running(), &["compact", &revision.to_string()]).await;
        match compact {
            Err(e) if !e.contains("required revision has been compacted") => {
                panic!("etcdctl compact {revision}: {e}\n{}", self.logs())
            }
            _ => revision,
        }
    }

    /// Puts `key` = `value` through any running member; returns the revision it made. It needs
    /// a leader: a put made during an election times out, so after killing the leader, wait for
    /// the next ([`EtcdCluster::wait_for_leader`]).
    pub async fn put(&self, key: &str, value: &str) -> i64 {
        self.put_to(&self.running(), key, value).await
    }

    /// The value of `key` (a linearizable read through any running member).
    pub async fn get(&self, key: &str) -> Option<String> {
        self.get_from(&self.running(), key).await
    }

    /// [`EtcdCluster::put`] through member `i`.
    pub async fn put_via(&self, i: usize, key: &str, value: &str) -> i64 {
        self.put_to(&[self.members[i].client_url()], key, value)
            .await
    }

    /// [`EtcdCluster::get`] through member `i`.
    pub async fn get_via(&self, i: usize, key: &str) -> Option<String> {
        self.get_from(&[self.members[i].client_url()], key).await
    }

    /// The tail of each member's log (stdout and stderr), for a failure message.
    pub fn logs(&self) -> String {
        let mut logs = String::new();
        for member in &self.members {
            let log = std::fs::read_to_string(&member.log).unwrap_or_default();
            let lines: Vec<&str> = log.lines().collect();
            let tail = lines[lines.len().saturating_sub(LOG_TAIL)..].join("\n");
            logs.push_str(&format!(
                "== etcd member {} ({}):\n{tail}\n",
                member.name, member.client
            ));
        }
        logs
    }

    /// Starts member `i` with `--initial-cluster-state state`, its output appended to its log.
    fn spawn(&mut self, i: usize, state: &str) {
        let initial_cluster: Vec<String> = self
            .members
            .iter()
            .map(|m| format!("{}={}", m.name, m.peer_url()))
            .collect();
        let member = &mut self.members[i];
        let name = &member.name;
        assert!(
            member.child.is_none(),
            "etcd member {name} is running: kill it first"
        );
        let log = OpenOptions::new()
            .create(true)
            .append(true)
            .open(&member.log)
            .unwrap_or_else(|e| panic!("opening {}: {e}", member.log.display()));
        let stdout = log.try_clone().expect("a second handle on an etcd log");
        let (client, peer) = (member.client_url(), member.peer_url());
        let mut command = tokio::process::Command::new("etcd");
        command
            .arg(format!("--name={}", member.name))
            .arg(format!("--data-dir={}", member.data.display()))
            .arg(format!("--listen-client-urls={client}"))
            .arg(format!("--advertise-client-urls={client}"))
            .arg(format!("--listen-peer-urls={peer}"))
            .arg(format!("--initial-advertise-peer-urls={peer}"))
            .arg(format!("--initial-cluster={}", initial_cluster.join(",")))
            .arg(format!("--initial-cluster-state={state}"))
            .arg(format!("--initial-cluster-token={}", self.token))
            .args(["--heartbeat-interval=50", "--election-timeout=500"])
            // Warnings too: the lost peers and slow applies that explain a failing test.
            .args(["--logger=zap", "--log-outputs=stderr", "--log-level=warn"])
            .stdin(Stdio::null())
            .stdout(stdout)
            .stderr(log)
            .kill_on_drop(true);
        let child = command.spawn().unwrap_or_else(|e| {
            panic!("starting etcd (scripts/test installs Debian's etcd-server): {e}")
        });
        member.child = Some(child);
    }

    /// Waits until every running member answers `/health` with `{"health":"true"}`; panics
    /// naming `what`, with the logs, if one exits or after [`HEALTHY`].
    async fn wait_healthy(&mut self, what: &str) {
        let deadline = Instant::now() + HEALTHY;
        loop {
            let exited = self.members.iter_mut().find_map(|m| {
                let status = m.child.as_mut()?.try_wait().ok()??;
                Some((m.name.clone(), status))
            });
            if let Some((name, status)) = exited {
                panic!(
                    "{what}: etcd member {name} exited with {status}\n{}",
                    self.logs()
                );
            }
            let mut unhealthy = Vec::new();
            for member in self.members.iter().filter(|m| m.child.is_some()) {
                if !member.healthy().await {
                    unhealthy.push(member.name.as_str());
                }
            }
            if unhealthy.is_empty() {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "{what}: etcd members {unhealthy:?} not healthy within {HEALTHY:?}\n{}",
                self.logs()
            );
            tokio::time::sleep(POLL).await;
        }
    }

    /// The leader every running member names, or why there is none.
    async fn try_leader(&self) -> Result<usize, String> {
        let running = self.running();
        let answer = etcdctl(&running, &["endpoint", "status", "-w", "json"]).await?;
        let statuses: Value =
            serde_json::from_str(&answer).map_err(|e| format!("{e}: {answer}"))?;
        let statuses = statuses.as_array().map(Vec::as_slice).unwrap_or_default();
        let leaders: Vec<u64> = statuses
            .iter()
            .filter_map(|s| s["Status"]["leader"].as_u64())
            .collect();
        // 0 is no leader; a status missing is a member that did not answer.
        let agreed =
            |&l: &u64| l != 0 && leaders.len() == running.len() && leaders.iter().all(|&o| o == l);
        let leader = leaders
            .first()
            .copied()
            .filter(agreed)
            .ok_or_else(|| format!("the running members do not agree on a leader: {answer}"))?;
        let endpoint = statuses
            .iter()
            .find(|s| s["Status"]["header"]["member_id"].as_u64() == Some(leader))
            .and_then(|s| s["Endpoint"].as_str())
            .ok_or_else(|| format!("the leader {leader} is not running: {answer}"))?;
        self.members
            .iter()
            .position(|m| m.client_url() == endpoint)
            .ok_or_else(|| format!("the leader's endpoint {endpoint} is no member's"))
    }

    /// The running members' client URLs.
    fn running(&self) -> Vec<String> {
        let running = self.members.iter().filter(|m| m.child.is_some());
        running.map(Member::client_url).collect()
    }

    /// Puts through `endpoints`; the revision the put made.
    async fn put_to(&self, endpoints: &[String], key: &str, value: &str) -> i64 {
        let put = ["put", "-w", "json", "--", key, value];
        revision(&self.etcdctl(endpoints, &put).await)
    }

    async fn get_from(&self, endpoints: &[String], key: &str) -> Option<String> {
        // `KEY\nVALUE\n`, or nothing when there is no such key.
        let answer = self.etcdctl(endpoints, &["get", "--", key]).await;
        let value = answer.strip_prefix(&format!("{key}\n"))?;
        Some(value.strip_suffix('\n').unwrap_or(value).to_owned())
    }

    /// [`etcdctl`], panicking with its error and the members' logs.
    async fn etcdctl(&self, endpoints: &[String], args: &[&str]) -> String {
        etcdctl(endpoints, args)
            .await
            .unwrap_or_else(|e| panic!("etcdctl {args:?}: {e}\n{}", self.logs()))
    }
}

// === impl Member ===

impl Member {
    fn client_url(&self) -> String {
        format!("http://{}", self.client)
    }

    fn peer_url(&self) -> String {
        format!("http://{}", self.peer)
    }

    async fn healthy(&self) -> bool {
        let answer = tokio::time::timeout(ASK, admin::try_get_text(self.client, "/health")).await;
        let Ok(Some((StatusCode::OK, body))) = answer else {
            return false;
        };
        serde_json::from_str::<Value>(&body).is_ok_and(|v| v["health"] == "true")
    }
}

/// `etcdctl` (API v3) on `endpoints`: its stdout, or its stderr if it failed.
async fn etcdctl(endpoints: &[String], args: &[&str]) -> Result<String, String> {
    let output = tokio::process::Command::new("etcdctl")
        .env("ETCDCTL_API", "3")
        .arg(format!("--endpoints={}", endpoints.join(",")))
        .args(["--dial-timeout=1s", "--command-timeout=3s"])
        .args(args)
        .stdin(Stdio::null())
        .kill_on_drop(true)
        .output()
        .await
        .unwrap_or_else(|e| {
            panic!("running etcdctl (scripts/test installs Debian's etcd-client): {e}")
        });
    if output.status.success() {
        Ok(String::from_utf8_lossy(&output.stdout).into_owned())
    } else {
        Err(format!(
            "{}: {}",
            output.status,
            String::from_utf8_lossy(&output.stderr)
        ))
    }
}

/// The revision in the header of an `etcdctl -w json` answer.
fn revision(answer: &str) -> i64 {
    let answer: Value =
        serde_json::from_str(answer).unwrap_or_else(|e| panic!("etcdctl's JSON: {e}: {answer}"));
    answer["header"]["revision"]
        .as_i64()
        .unwrap_or_else(|| panic!("no header.revision in etcdctl's answer {answer}"))
}

/// `n` distinct ports nothing listens on now: the kernel's picks, each held until all are
/// picked (so none comes twice), then released for etcd to bind. (`prometheus::free_port` is
/// the one-port case.)
pub(crate) fn free_ports(n: usize) -> Vec<SocketAddr> {
    let listeners: Vec<TcpListener> = (0..n)
        .map(|_| TcpListener::bind("127.0.0.1:0").expect("a free port on 127.0.0.1"))
        .collect();
    listeners
        .iter()
        .map(|l| l.local_addr().expect("a bound listener's address"))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Long enough for an election (500 ms to 1 s) on a busy machine.
    const ELECTION: Duration = Duration::from_secs(5);

    /// Whether anything answers HTTP on member `i`'s client URL.
    async fn answers(cluster: &EtcdCluster, i: usize) -> bool {
        let addr = cluster.members[i].client;
        admin::try_get_text(addr, "/health").await.is_some()
    }

    #[tokio::test]
    async fn three_members_start_and_a_put_through_one_is_read_through_another() {
        let cluster = EtcdCluster::start(3).await;
        let urls = cluster.client_urls();
        assert_eq!(urls.len(), 3);
        assert!(
            urls.iter().all(|u| u.starts_with("http://127.0.0.1:")),
            "{urls:?}"
        );
        assert_eq!(cluster.endpoints_arg(), urls.join(","));

        let value = "two\nlines";
        cluster.put_via(0, "/smi/k", value).await;
        assert_eq!(cluster.get_via(2, "/smi/k").await.as_deref(), Some(value));
        assert_eq!(cluster.get_via(1, "/smi/missing").await, None);
    }

    #[tokio::test]
    async fn killing_the_leader_elects_another_and_puts_resume() {
        let mut cluster = EtcdCluster::start(3).await;
        let old = cluster.wait_for_leader(ELECTION).await;
        assert_eq!(cluster.leader().await, old);
        cluster.put("/smi/k", "before").await;

        cluster.kill(old).await;
        assert!(
            !answers(&cluster, old).await,
            "the killed leader still answers"
        );
        let new = cluster.wait_for_leader(ELECTION).await;
        assert_ne!(new, old, "the killed member is still the leader");
        cluster.put("/smi/k", "after").await;

        cluster.restart(old).await;
        assert_eq!(
            cluster.get_via(old, "/smi/k").await.as_deref(),
            Some("after")
        );
    }

    #[tokio::test]
    async fn stop_all_then_start_all_keeps_the_data() {
        let mut cluster = EtcdCluster::start(3).await;
        cluster.put("/smi/k", "kept").await;

        cluster.stop_all().await;
        for i in 0..3 {
            assert!(
                !answers(&cluster, i).await,
                "member {i} answers after stop_all"
            );
        }
        cluster.start_all().await;
        assert_eq!(cluster.get("/smi/k").await.as_deref(), Some("kept"));
    }

    #[tokio::test]
    async fn compact_to_latest_returns_at_least_the_last_put_revision() {
        let cluster = EtcdCluster::start(1).await;
        let first = cluster.put("/smi/k", "1").await;
        let last = cluster.put("/smi/k", "2").await;

        let compacted = cluster.compact_to_latest().await;
        assert!(
            compacted >= last,
            "compacted to {compacted}, the last put made {last}"
        );
        let at_first = format!("--rev={first}");
        let old = etcdctl(&cluster.running(), &["get", &at_first, "--", "/smi/k"]).await;
        let old = old.expect_err("a read at a compacted revision");
        assert!(old.contains("compacted"), "{old}");
        // Nothing written since: compacting again is the same revision, not an error.
        assert_eq!(cluster.compact_to_latest().await, compacted);
    }
}
