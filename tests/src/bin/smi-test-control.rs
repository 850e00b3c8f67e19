//! The control service as a process that the fault tests kill (SIGKILL) and restart:
//! `smi-test-control <policy-dir> <state-dir> <listen> <certificate-ttl-ms>`. Prints
//! `ready <api> <admin>` once serving. `SMI_TEST_ENDPOINTS_PER_IDENTITY` raises that quota;
//! `SMI_TEST_MAX_CHAIN_LIFETIME_MS` sets how long certificates renew after enrollment.
//! `SMI_TEST_ETCD=<url,...>` with `SMI_TEST_SEAL_KEY=<file>` (and `SMI_TEST_ETCD_PREFIX`) runs it
//! as one replica over etcd, as `smi-control serve --etcd` does (the directories are unused);
//! `SMI_TEST_LEASE_MS` sets the registration lease. `SMI_TEST_KUBECONFIG=<file>` runs it as
//! `smi-control serve --kubernetes --kubeconfig <file>` does (policy and endpoints from the
//! cluster, ServiceAccount tokens, the state in the Secret smi-system/smi-control-state).
//!
//! `smi-control serve` refuses certificate lifetimes under a minute; the tests rotate
//! certificates every few seconds, so they start the same `smi_control::serve::start` here.

use std::time::Duration;

use smi_control::etcd::{Etcd, EtcdConfig, SealKey};
use smi_control::quota::Quotas;
use smi_control::serve::{ControlBuilder, ServeConfig};

type Error = Box<dyn std::error::Error + Send + Sync>;

#[tokio::main]
async fn main() -> Result<(), Error> {
    let args: Vec<String> = std::env::args().collect();
    let [_, policy, state, listen, ttl_ms] = &args[..] else {
        return Err("usage: smi-test-control <policy-dir> <state-dir> <listen> <ttl-ms>".into());
    };
    // A test that needs a bigger registry than the default quota raises it here.
    let mut quotas = Quotas::default();
    if let Ok(n) = std::env::var("SMI_TEST_ENDPOINTS_PER_IDENTITY") {
        quotas.endpoints_per_identity = n.parse()?;
    }
    // The revocation tests let a chain of renewals age out within seconds.
    let max_chain_lifetime = match std::env::var("SMI_TEST_MAX_CHAIN_LIFETIME_MS") {
        Ok(ms) => Duration::from_millis(ms.parse()?),
        Err(_) => ServeConfig::default().max_chain_lifetime,
    };
    let lease = match std::env::var("SMI_TEST_LEASE_MS") {
        Ok(ms) => Duration::from_millis(ms.parse()?),
        Err(_) => ServeConfig::default().lease,
    };
    let config = ServeConfig {
        quotas,
        max_chain_lifetime,
        lease,
        policy_dir: policy.into(),
        state_dir: state.into(),
        listen: listen.parse()?,
        admin: "127.0.0.1:0".parse()?,
        certificate_ttl: Duration::from_millis(ttl_ms.parse()?),
        ..ServeConfig::default()
    };
    let builder = ControlBuilder::new(config);
    let running = match std::env::var("SMI_TEST_ETCD") {
        Ok(urls) => {
            let seal = SealKey::from_file(std::env::var("SMI_TEST_SEAL_KEY")?.as_ref())?;
            let mut etcd = EtcdConfig::new(urls.split(',').map(str::to_owned).collect());
            if let Ok(prefix) = std::env::var("SMI_TEST_ETCD_PREFIX") {
                etcd.prefix = prefix;
            }
            // Connecting blocks on the etcd client's own runtime: off this one.
            let etcd =
                tokio::task::spawn_blocking(move || Etcd::connect(etcd, Some(seal))).await??;
            builder.etcd(&etcd, lease).start().await?
        }
        Err(_) => match std::env::var("SMI_TEST_KUBECONFIG") {
            Ok(kubeconfig) => {
                let cluster =
                    smi_control::kubernetes::Cluster::connect(Some(kubeconfig.as_ref())).await?;
                // As `serve --kubernetes` without --state-dir: the state in a Secret.
                let store = {
                    let kubeconfig = kubeconfig.clone();
                    tokio::task::spawn_blocking(move || {
                        smi_control::kubernetes::SecretStore::connect(
                            Some(kubeconfig.as_ref()),
                            "smi-system",
                            "smi-control-state",
                        )
                    })
                    .await??
                };
                builder
                    .kubernetes(cluster)
                    .state_store(store)
                    .start()
                    .await?
            }
            Err(_) => builder.start().await?,
        },
    };
    println!("ready {} {}", running.api_addr, running.admin_addr);
    std::future::pending::<()>().await;
    Ok(())
}
