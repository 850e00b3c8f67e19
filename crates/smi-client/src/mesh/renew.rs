//! Certificate renewal at about 70% of the lifetime (with jitter, so that workloads enrolled
//! together do not renew together), over mTLS with the current certificate.

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use super::Inner;
use super::backoff::Backoff;
use crate::control::renew_as;

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
            match renew_as(&inner.config.control, &current, Some(&inner.workload)).await {
                Ok(fresh) => {
                    let expires = fresh.not_after();
                    match inner.set_credentials(fresh) {
                        Ok(()) => {
                            tracing::info!(?expires, "certificate renewed");
                            issued = SystemTime::now();
                            backoff.reset();
                            break;
                        }
                        Err(e) => tracing::error!(error = %e, "renewed certificate unusable"),
                    }
                }
                Err(e) => tracing::warn!(error = %e, "certificate renewal failed; retrying"),
            }
            tokio::time::sleep(backoff.next_delay()).await;
        }
    }
}
