//! Connecting to one of the control's addresses: first the one that answered last, then those
//! after it in the configured order, wrapping around. A host name counts as each address it
//! resolves to, looked up again at every connect (so a replaced replica is found). Each attempt
//! is bounded by the connect timeout; when all fail, the error names every address tried and
//! why. Enrollment, renewal, the watch, registration and reports all connect through here, so
//! a control that dies is left at the next reconnect; the mesh's tasks back off between rounds.

use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, Mutex, PoisonError};

use rustls::ClientConfig;
use tonic::transport::Channel;

use super::addr::{CONNECT_TIMEOUT, ControlAddr, MAX_CONTROL_ADDRS, Target};
use super::connector::ControlConnector;
use super::{ClientError, error_chain};

/// The address that answered last, shared by every clone of a [`ControlAddr`]: which
/// configured one, and the resolved address it was reached at (`None`: where to start, before
/// any answered).
#[derive(Debug, Default)]
pub(super) struct LastGood(Mutex<Option<(usize, Option<SocketAddr>)>>);

impl LastGood {
    fn get(&self) -> Option<(usize, Option<SocketAddr>)> {
        *self.0.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn set(&self, target: usize, addr: SocketAddr) {
        *self.0.lock().unwrap_or_else(PoisonError::into_inner) = Some((target, Some(addr)));
    }

    /// Where the first connect starts, before any address answered.
    pub(super) fn start_at(&self, target: usize) {
        *self.0.lock().unwrap_or_else(PoisonError::into_inner) = Some((target, None));
    }
}

/// One address that did not answer, and why.
#[derive(Debug)]
struct Failure {
    /// `https://host:port`, with the resolved address when the host is a name.
    what: String,
    uri: String,
    reason: String,
}

impl ControlAddr {
    /// A channel to the first address that completes a TLS handshake with `tls`.
    pub(super) async fn connect(&self, tls: ClientConfig) -> Result<Channel, ClientError> {
        let tls = Arc::new(tls);
        let last = self.last_good.get();
        let mut failures = Vec::new();
        for index in starting_at(last.map(|(i, _)| i), self.targets.len()) {
            let target = &self.targets[index];
            let addrs = match target.resolve().await {
                Ok(addrs) => addrs,
                Err(reason) => {
                    failures.push(Failure::new(target, None, reason));
                    continue;
                }
            };
            let remembered = last.filter(|(i, _)| *i == index).and_then(|(_, addr)| addr);
            for addr in remembered_first(addrs, remembered) {
                match target.dial(addr, tls.clone()).await {
                    Ok(channel) => {
                        if !failures.is_empty() {
                            tracing::info!(control = target.uri, %addr, unreachable = %summary(&failures), "connected to the control service at another address");
                        }
                        self.last_good.set(index, addr);
                        return Ok(channel);
                    }
                    Err(e) => {
                        let failure = Failure::new(target, Some(addr), error_chain(&e));
                        tracing::debug!(
                            control = failure.what,
                            reason = failure.reason,
                            "control address unreachable"
                        );
                        failures.push(failure);
                    }
                }
            }
        }
        Err(all_failed(failures))
    }
}

impl Target {
    /// The addresses `host` stands for now (an IP stands for itself), without repeats, at most
    /// [`MAX_CONTROL_ADDRS`] of them (each attempt may take the connect timeout).
    async fn resolve(&self) -> Result<Vec<SocketAddr>, String> {
        let lookup = tokio::net::lookup_host((self.host.as_str(), self.port));
        let found = tokio::time::timeout(CONNECT_TIMEOUT, lookup)
            .await
            .map_err(|_| format!("resolving {:?} took over {CONNECT_TIMEOUT:?}", self.host))?
            .map_err(|e| format!("cannot resolve {:?}: {e}", self.host))?;
        let mut addrs = Vec::new();
        for addr in found {
            if !addrs.contains(&addr) && addrs.len() < MAX_CONTROL_ADDRS {
                addrs.push(addr);
            }
        }
        if addrs.is_empty() {
            return Err(format!("{:?} resolves to no address", self.host));
        }
        Ok(addrs)
    }

    /// A channel whose connections go to `addr`, naming `host` to TLS.
    async fn dial(
        &self,
        addr: SocketAddr,
        config: Arc<ClientConfig>,
    ) -> Result<Channel, tonic::transport::Error> {
        let connector = ControlConnector {
            host: self.host.clone(),
            addr,
            config,
        };
        // The endpoint's connect timeout bounds the connector: TCP and the TLS handshake.
        self.endpoint.connect_with_connector(connector).await
    }
}

impl Failure {
    fn new(target: &Target, addr: Option<SocketAddr>, reason: String) -> Self {
        let named = target.host.parse::<IpAddr>().is_err();
        let what = match addr {
            Some(addr) if named => format!("{} ({addr})", target.uri),
            _ => target.uri.clone(),
        };
        Self {
            what,
            uri: target.uri.clone(),
            reason,
        }
    }
}

/// Every index below `len`, from `start` (0 when nothing answered yet), wrapping around.
fn starting_at(start: Option<usize>, len: usize) -> impl Iterator<Item = usize> {
    let start = start.filter(|s| *s < len).unwrap_or(0);
    (0..len).map(move |k| (start + k) % len)
}

/// `addrs` with `remembered` moved to the front, if it is still among them.
fn remembered_first(mut addrs: Vec<SocketAddr>, remembered: Option<SocketAddr>) -> Vec<SocketAddr> {
    if let Some(at) = remembered.and_then(|r| addrs.iter().position(|a| *a == r)) {
        addrs[..=at].rotate_right(1);
    }
    addrs
}

/// `what: reason; ...` of every failure.
fn summary(failures: &[Failure]) -> String {
    failures
        .iter()
        .map(|f| format!("{}: {}", f.what, f.reason))
        .collect::<Vec<_>>()
        .join("; ")
}

/// The error after every address failed. A single attempt reads as before lists existed.
fn all_failed(failures: Vec<Failure>) -> ClientError {
    if let [only] = failures.as_slice() {
        return ClientError::Connect {
            addr: only.uri.clone(),
            message: only.reason.clone(),
        };
    }
    let mut uris: Vec<&str> = Vec::new();
    for failure in &failures {
        if !uris.contains(&failure.uri.as_str()) {
            uris.push(&failure.uri);
        }
    }
    ClientError::Connect {
        addr: uris.join(", "),
        message: summary(&failures),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn addr(s: &str) -> SocketAddr {
        s.parse().unwrap_or_else(|e| panic!("{s}: {e}"))
    }

    #[test]
    fn addresses_are_tried_from_the_last_good_one_wrapping_around() {
        assert_eq!(starting_at(None, 3).collect::<Vec<_>>(), [0, 1, 2]);
        assert_eq!(starting_at(Some(1), 3).collect::<Vec<_>>(), [1, 2, 0]);
        assert_eq!(starting_at(Some(2), 3).collect::<Vec<_>>(), [2, 0, 1]);
        assert_eq!(starting_at(Some(7), 2).collect::<Vec<_>>(), [0, 1]);
    }

    #[test]
    fn the_remembered_resolved_address_goes_first_and_the_rest_keep_their_order() {
        let resolved = vec![addr("10.0.0.1:1"), addr("10.0.0.2:1"), addr("10.0.0.3:1")];
        assert_eq!(
            remembered_first(resolved.clone(), Some(addr("10.0.0.3:1"))),
            [addr("10.0.0.3:1"), addr("10.0.0.1:1"), addr("10.0.0.2:1")]
        );
        // A replica that is gone from the name is simply not tried.
        assert_eq!(
            remembered_first(resolved.clone(), Some(addr("10.0.0.9:1"))),
            resolved
        );
        assert_eq!(remembered_first(resolved.clone(), None), resolved);
    }

    #[test]
    fn starting_anywhere_spreads_the_first_connect_over_the_addresses() {
        let starts: std::collections::BTreeSet<usize> = (0..100)
            .map(|_| {
                let addr = ControlAddr::parse("a:1,b:1,c:1")
                    .unwrap()
                    .starting_anywhere();
                addr.last_good.get().map(|(i, _)| i).unwrap()
            })
            .collect();
        // 100 draws of three: all three, but for a chance of about 3 * (2/3)^100.
        assert_eq!(starts.into_iter().collect::<Vec<_>>(), [0, 1, 2]);
        let plain = ControlAddr::parse("a:1,b:1").unwrap();
        assert_eq!(plain.last_good.get(), None);
    }
}
