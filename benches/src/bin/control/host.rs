//! What the machine and etcd say about themselves: open files, CPU ticks (`/proc`), etcd's
//! members among this process's children and their disk histograms (`/metrics`).

use std::net::SocketAddr;

use crate::Error;
use crate::service::http_get;

/// This process's soft limit on open files (`/proc/self/limits`).
pub fn fd_limit() -> Option<String> {
    let limits = std::fs::read_to_string("/proc/self/limits").ok()?;
    let line = limits.lines().find(|l| l.starts_with("Max open files"))?;
    line.split_whitespace().nth(3).map(str::to_owned)
}

/// The machine's CPU ticks so far, busy and in all (`/proc/stat`), over every core.
#[derive(Clone, Copy, Debug)]
pub struct MachineTicks {
    busy: u64,
    total: u64,
}

pub fn machine_busy() -> Result<MachineTicks, Error> {
    let stat = std::fs::read_to_string("/proc/stat")?;
    let ticks: Vec<u64> = stat
        .lines()
        .next()
        .and_then(|l| l.strip_prefix("cpu "))
        .ok_or("no cpu line in /proc/stat")?
        .split_whitespace()
        .map(str::parse)
        .collect::<Result<_, _>>()?;
    // user nice system idle iowait irq softirq steal (guest times are in user already).
    let total: u64 = ticks.iter().take(8).sum();
    let idle = ticks.get(3).copied().unwrap_or(0) + ticks.get(4).copied().unwrap_or(0);
    Ok(MachineTicks {
        busy: total - idle,
        total,
    })
}

impl MachineTicks {
    /// Cores busy on average since `before`.
    pub fn cores_since(self, before: MachineTicks) -> f64 {
        let cores = std::thread::available_parallelism().map_or(1, usize::from) as f64;
        let total = self.total.saturating_sub(before.total).max(1) as f64;
        self.busy.saturating_sub(before.busy) as f64 / total * cores
    }
}

/// This process's etcd members (children named `etcd`).
pub fn etcd_pids() -> Result<Vec<u32>, Error> {
    let me = std::process::id().to_string();
    let mut pids = Vec::new();
    for entry in std::fs::read_dir("/proc")? {
        let name = entry?.file_name();
        let Some(pid) = name.to_str().and_then(|n| n.parse::<u32>().ok()) else {
            continue;
        };
        let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
            continue;
        };
        // `pid (comm) state ppid ...`
        let comm = stat
            .split_once(" (")
            .and_then(|(_, rest)| rest.rsplit_once(") "));
        if let Some((comm, rest)) = comm
            && comm == "etcd"
            && rest.split_whitespace().nth(1) == Some(me.as_str())
        {
            pids.push(pid);
        }
    }
    if pids.len() != 3 {
        return Err(format!(
            "found {} etcd members among this process's children",
            pids.len()
        )
        .into());
    }
    Ok(pids)
}

/// etcd's disk histograms (`/metrics`), summed over the members.
#[derive(Clone, Copy, Debug, Default)]
pub struct Disk {
    pub fsyncs: f64,
    fsync_s: f64,
    commits: f64,
    commit_s: f64,
}

impl Disk {
    pub async fn read(members: &[SocketAddr]) -> Result<Self, Error> {
        let mut disk = Disk::default();
        for member in members {
            let text = http_get(*member, "/metrics").await?;
            let value = |name: &str| -> Result<f64, Error> {
                let prefix = format!("{name} ");
                text.lines()
                    .find_map(|l| l.strip_prefix(&prefix))
                    .and_then(|v| v.trim().parse().ok())
                    .ok_or_else(|| format!("{name} not in etcd's /metrics").into())
            };
            disk.fsyncs += value("etcd_disk_wal_fsync_duration_seconds_count")?;
            disk.fsync_s += value("etcd_disk_wal_fsync_duration_seconds_sum")?;
            disk.commits += value("etcd_disk_backend_commit_duration_seconds_count")?;
            disk.commit_s += value("etcd_disk_backend_commit_duration_seconds_sum")?;
        }
        Ok(disk)
    }

    pub fn since(self, before: Disk) -> Disk {
        Disk {
            fsyncs: self.fsyncs - before.fsyncs,
            fsync_s: self.fsync_s - before.fsync_s,
            commits: self.commits - before.commits,
            commit_s: self.commit_s - before.commit_s,
        }
    }

    pub fn fsync_ms(&self) -> f64 {
        self.fsync_s / self.fsyncs.max(1.0) * 1e3
    }

    pub fn commit_ms(&self) -> f64 {
        self.commit_s / self.commits.max(1.0) * 1e3
    }
}
