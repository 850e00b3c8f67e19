//! The control service as a process that the fault tests kill (SIGKILL) and restart:
//! `smi-test-control <policy-dir> <state-dir> <listen> <certificate-ttl-ms>`. Prints
//! `ready <api> <admin>` once serving.
//!
//! `smi-control serve` refuses certificate lifetimes under a minute; the tests rotate
//! certificates every few seconds, so they start the same `smi_control::serve::start` here.

use std::time::Duration;

use smi_control::serve::{ServeConfig, start};

type Error = Box<dyn std::error::Error + Send + Sync>;

#[tokio::main]
async fn main() -> Result<(), Error> {
    let args: Vec<String> = std::env::args().collect();
    let [_, policy, state, listen, ttl_ms] = &args[..] else {
        return Err("usage: smi-test-control <policy-dir> <state-dir> <listen> <ttl-ms>".into());
    };
    let running = start(ServeConfig {
        policy_dir: policy.into(),
        state_dir: state.into(),
        listen: listen.parse()?,
        admin: "127.0.0.1:0".parse()?,
        certificate_ttl: Duration::from_millis(ttl_ms.parse()?),
        ..ServeConfig::default()
    })
    .await?;
    println!("ready {} {}", running.api_addr, running.admin_addr);
    std::future::pending::<()>().await;
    Ok(())
}
