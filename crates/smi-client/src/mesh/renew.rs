//! Certificate renewal at about 70% of the lifetime (with jitter, so that workloads enrolled
//! together do not renew together): over mTLS with the current certificate, or with the
//! rotated ServiceAccount token when the workload enrolled with one from a file (`proof`).

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use super::Inner;
use super::backoff::Backoff;
use super::proof::{self, Proof};

pub(super) async fn run(inner: Arc<Inner>) {
    let mut backoff = Backoff::new();
    let mut issued = SystemTime::now();
    loop {
        let not_after = inner.credentials.load().not_after();
        let lifetime = not_after.duration_since(issued).unwrap_or(Duration::ZERO);
        let at = issued + lifetime.mul_f64(rand::random_range(0.65..0.75));
        let wait = at
            .duration_since(SystemTime::now())
            .unwrap_or(Duration::ZERO);
        tokio::time::sleep(wait).await;
        loop {
            let current = inner.credentials.load_full();
            // Read each attempt: the kubelet may have rotated the token since the last.
            let presented = proof::next_proof(&inner.config, |path| std::fs::read_to_string(path));
            let by = match presented {
                Proof::Certificate => "certificate",
                Proof::Token(_) => "token",
            };
            match proof::renew(&inner.config, &current, &inner.workload, &presented).await {
                Ok(fresh) if fresh.spiffe_id() != current.spiffe_id() => tracing::error!(
                    granted = %fresh.spiffe_id(),
                    identity = %current.spiffe_id(),
                    "the renewal granted another identity; keeping the current certificate"
                ),
                Ok(fresh) => {
                    let expires = fresh.not_after();
                    match inner.set_credentials(fresh) {
                        Ok(()) => {
                            tracing::info!(?expires, by, "certificate renewed");
                            issued = SystemTime::now();
                            backoff.reset();
                            break;
                        }
                        Err(e) => tracing::error!(error = %e, "renewed certificate unusable"),
                    }
                }
                Err(e) => {
                    tracing::warn!(error = %e, by, "certificate renewal failed; retrying");
                }
            }
            tokio::time::sleep(backoff.next_delay()).await;
        }
    }
}
