//! Certificates per second: Certify calls over gRPC, against one core signing the same CSRs
//! in-process.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use smi_benches::stats::{median, spread};
use smi_core::ServiceAccount;
use smi_core::proto::v1::{self, control_client::ControlClient};

use crate::Error;
use crate::service::Control;

pub struct CertRate {
    pub grpc: f64,
    pub ratio: f64,
}

pub async fn certificates_per_second(
    control: &Control,
    rounds: usize,
    window: Duration,
) -> Result<CertRate, Error> {
    // CSRs made up front: key generation is the workload's cost, not the control's.
    let csrs: Arc<Vec<Vec<u8>>> = Arc::new(
        (0..256)
            .map(|_| -> Result<Vec<u8>, Error> {
                let key = rcgen::KeyPair::generate()?;
                Ok(rcgen::CertificateParams::default()
                    .serialize_request(&key)?
                    .der()
                    .to_vec())
            })
            .collect::<Result<_, _>>()?,
    );
    let mut channels = Vec::new();
    for i in 0..4 {
        channels.push(control.channel(&format!("bench/certify-{i}")).await?.1);
    }
    // One token per task, as workloads enrolling at once each have their own: each use is
    // counted on disk, and a token's uses are counted one at a time.
    let tokens: Vec<Arc<String>> = (0..64)
        .map(|i| control.token(&format!("bench/workload-{i}")).map(Arc::new))
        .collect::<Result<_, _>>()?;
    let identity: ServiceAccount = "bench/workload".parse()?;

    let (mut grpc, mut local, mut ratios) = (Vec::new(), Vec::new(), Vec::new());
    for _ in 0..rounds {
        // Baseline: the same signing in this process, one core, no network.
        let started = Instant::now();
        let mut signed = 0u64;
        while started.elapsed() < window {
            let csr = &csrs[signed as usize % csrs.len()];
            control
                .ca
                .issue_workload(csr, &identity, &[], Duration::from_secs(3600))?;
            signed += 1;
        }
        let one_core = signed as f64 / started.elapsed().as_secs_f64();

        let issued = Arc::new(AtomicU64::new(0));
        let failed = Arc::new(AtomicU64::new(0));
        let started = Instant::now();
        let deadline = started + window;
        let mut tasks = Vec::new();
        for i in 0..64 {
            let mut client = ControlClient::new(channels[i % channels.len()].clone());
            let (csrs, token) = (csrs.clone(), tokens[i].clone());
            let (issued, failed) = (issued.clone(), failed.clone());
            tasks.push(tokio::spawn(async move {
                let mut n = i;
                while Instant::now() < deadline {
                    let request = v1::CertifyRequest {
                        csr_der: csrs[n % csrs.len()].clone(),
                        token: token.to_string(),
                        names: None,
                    };
                    match client.certify(request).await {
                        Ok(_) => issued.fetch_add(1, Ordering::Relaxed),
                        Err(_) => failed.fetch_add(1, Ordering::Relaxed),
                    };
                    n += 64;
                }
            }));
        }
        for t in tasks {
            t.await?;
        }
        let failed = failed.load(Ordering::Relaxed);
        if failed > 0 {
            return Err(format!("{failed} Certify calls failed").into());
        }
        let rate = issued.load(Ordering::Relaxed) as f64 / started.elapsed().as_secs_f64();
        grpc.push(rate);
        local.push(one_core);
        ratios.push(rate / one_core);
    }
    println!(
        "certificates/s over gRPC (64 in flight): {}; in-process signing, one core: {}; ratio {}",
        spread(&grpc, 0),
        spread(&local, 0),
        spread(&ratios, 2)
    );
    Ok(CertRate {
        grpc: median(&grpc),
        ratio: median(&ratios),
    })
}
