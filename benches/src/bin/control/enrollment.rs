//! Certificates per second: Certify calls over gRPC, against one core signing the same CSRs
//! in-process. [`Certifiers`] is the load, for any [`Target`].

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use smi_benches::stats::{median, spread};
use smi_core::ServiceAccount;
use smi_core::proto::v1::{self, control_client::ControlClient};
use tonic::transport::Channel;

use crate::Error;
use crate::service::{Control, Target, channel};

/// Certify calls in flight.
pub const IN_FLIGHT: usize = 64;
/// HTTP/2 connections they share (on one control).
pub const CONNECTIONS: usize = 4;

pub struct CertRate {
    pub grpc: f64,
    pub ratio: f64,
}

/// CSRs made up front: key generation is the workload's cost, not the control's.
pub fn csrs() -> Result<Arc<Vec<Vec<u8>>>, Error> {
    let csrs = (0..256)
        .map(|_| -> Result<Vec<u8>, Error> {
            let key = rcgen::KeyPair::generate()?;
            Ok(rcgen::CertificateParams::default()
                .serialize_request(&key)?
                .der()
                .to_vec())
        })
        .collect::<Result<_, _>>()?;
    Ok(Arc::new(csrs))
}

/// [`IN_FLIGHT`] tasks calling Certify in a loop, each with its own token, over `connections`
/// connections (connection `c` to the target's address `c`, round robin); task `i` on
/// connection `i % connections`.
pub struct Certifiers {
    channels: Vec<Channel>,
    tokens: Vec<Arc<String>>,
    csrs: Arc<Vec<Vec<u8>>>,
}

/// One window's result.
#[derive(Clone, Copy, Debug)]
pub struct Issued {
    pub count: u64,
    pub per_second: f64,
}

impl Certifiers {
    pub async fn new(
        target: &impl Target,
        connections: usize,
        csrs: Arc<Vec<Vec<u8>>>,
    ) -> Result<Self, Error> {
        let mut channels = Vec::new();
        for i in 0..connections {
            channels.push(channel(target, &format!("bench/certify-{i}"), i).await?.1);
        }
        // One token per task, as workloads enrolling at once each have their own: each use is
        // counted (on disk, or in etcd), and a token's uses are counted one at a time.
        let tokens = (0..IN_FLIGHT)
            .map(|i| target.token(&format!("bench/workload-{i}")).map(Arc::new))
            .collect::<Result<_, _>>()?;
        Ok(Self {
            channels,
            tokens,
            csrs,
        })
    }

    /// Certify calls for `window`; an error if any failed.
    pub async fn run(&self, window: Duration) -> Result<Issued, Error> {
        let issued = Arc::new(AtomicU64::new(0));
        let failed = Arc::new(AtomicU64::new(0));
        let last_error = Arc::new(std::sync::Mutex::new(None));
        let started = Instant::now();
        let deadline = started + window;
        let mut tasks = Vec::new();
        for i in 0..IN_FLIGHT {
            let mut client = ControlClient::new(self.channels[i % self.channels.len()].clone());
            let (csrs, token) = (self.csrs.clone(), self.tokens[i].clone());
            let (issued, failed) = (issued.clone(), failed.clone());
            let last_error = last_error.clone();
            tasks.push(tokio::spawn(async move {
                let mut n = i;
                while Instant::now() < deadline {
                    let request = v1::CertifyRequest {
                        csr_der: csrs[n % csrs.len()].clone(),
                        token: token.to_string(),
                        names: None,
                    };
                    match client.certify(request).await {
                        Ok(_) => {
                            issued.fetch_add(1, Ordering::Relaxed);
                        }
                        Err(status) => {
                            failed.fetch_add(1, Ordering::Relaxed);
                            *last_error.lock().unwrap_or_else(|e| e.into_inner()) =
                                Some(status.message().to_owned());
                        }
                    };
                    n += IN_FLIGHT;
                }
            }));
        }
        for t in tasks {
            t.await?;
        }
        let failed = failed.load(Ordering::Relaxed);
        if failed > 0 {
            let last = last_error.lock().unwrap_or_else(|e| e.into_inner()).take();
            return Err(format!("{failed} Certify calls failed (the last: {last:?})").into());
        }
        let count = issued.load(Ordering::Relaxed);
        Ok(Issued {
            count,
            per_second: count as f64 / started.elapsed().as_secs_f64(),
        })
    }
}

pub async fn certificates_per_second(
    control: &Control,
    rounds: usize,
    window: Duration,
) -> Result<CertRate, Error> {
    let csrs = csrs()?;
    let certifiers = Certifiers::new(control, CONNECTIONS, csrs.clone()).await?;
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

        let rate = certifiers.run(window).await?.per_second;
        grpc.push(rate);
        local.push(one_core);
        ratios.push(rate / one_core);
    }
    println!(
        "certificates/s over gRPC ({IN_FLIGHT} in flight): {}; in-process signing, one core: {}; ratio {}",
        spread(&grpc, 0),
        spread(&local, 0),
        spread(&ratios, 2)
    );
    Ok(CertRate {
        grpc: median(&grpc),
        ratio: median(&ratios),
    })
}
