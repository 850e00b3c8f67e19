//! [`ControlAddr`]: where the control service is, as one or more `host:port` (TLS implied),
//! and which of them answered last (`failover` connects through them).

use std::sync::Arc;
use std::time::Duration;

use tonic::transport::Endpoint;

use super::ClientError;
use super::failover::LastGood;

/// The most control addresses one workload is given. A round of connecting tries each in turn,
/// every attempt bounded by the connect timeout, so the list bounds how long a round takes.
pub const MAX_CONTROL_ADDRS: usize = 16;

/// How long resolving, connecting and the TLS handshake to one address may take.
pub(super) const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

/// HTTP/2 pings on an idle control channel, so that a vanished control is noticed.
const KEEP_ALIVE_INTERVAL: Duration = Duration::from_secs(20);

/// Where the control service is: one or more `host:port`, comma-separated (TLS is implied; an
/// `https://` prefix is allowed). A host name counts as every address it resolves to, looked up
/// at each connect. Cheap to clone; clones share which address answered last, where the next
/// connect starts.
#[derive(Clone, Debug)]
pub struct ControlAddr {
    /// Never empty: [`ControlAddr::parse`] makes at least one.
    pub(super) targets: Arc<[Target]>,
    pub(super) last_good: Arc<LastGood>,
}

/// One configured address.
#[derive(Clone, Debug)]
pub(super) struct Target {
    /// `https://host:port`, as configured.
    pub uri: String,
    /// The host without brackets: what is resolved, and the TLS server name (as it was with a
    /// single address; the control is verified by its SPIFFE ID, not by this name).
    pub host: String,
    pub port: u16,
    /// The channel's settings; its URI gives the requests' authority.
    pub endpoint: Endpoint,
}

impl ControlAddr {
    /// `host:port`, or several separated by commas (`a:7443, b:7443, https://c:7443`), at most
    /// [`MAX_CONTROL_ADDRS`]. An error names the item that is wrong.
    pub fn parse(addrs: &str) -> Result<Self, ClientError> {
        let items: Vec<&str> = addrs.split(',').map(str::trim).collect();
        let list_error = |problem: String| ClientError::Address {
            addr: addrs.trim().to_owned(),
            problem,
        };
        if items.len() > MAX_CONTROL_ADDRS {
            return Err(list_error(format!(
                "{} addresses; at most {MAX_CONTROL_ADDRS}",
                items.len()
            )));
        }
        let several = items.len() > 1;
        let targets = items
            .iter()
            .enumerate()
            .map(|(i, item)| {
                // A lone empty address gets the single-address message, as before lists.
                if item.is_empty() && several {
                    Err(list_error(format!(
                        "address {} of {} is empty (a stray comma?)",
                        i + 1,
                        items.len()
                    )))
                } else {
                    Target::parse(item)
                }
            })
            .collect::<Result<Arc<[Target]>, ClientError>>()?;
        Ok(Self {
            targets,
            last_good: Arc::default(),
        })
    }

    /// The same addresses, the first connect starting at one chosen at random instead of the
    /// first: many workloads given one list then spread over the replicas it names, instead of
    /// all landing on the first. ([`MeshConfig::from_env`](crate::MeshConfig::from_env) does this.)
    #[must_use]
    pub fn starting_anywhere(self) -> Self {
        self.last_good
            .start_at(rand::random_range(0..self.targets.len()));
        self
    }

    /// `https://host:port` of the first address.
    pub fn uri(&self) -> &str {
        // `parse` makes at least one target.
        &self.targets[0].uri
    }

    /// `https://host:port` of every address, in the configured order.
    pub fn uris(&self) -> impl ExactSizeIterator<Item = &str> + '_ {
        self.targets.iter().map(|t| t.uri.as_str())
    }
}

impl Target {
    fn parse(addr: &str) -> Result<Self, ClientError> {
        let invalid = || ClientError::Address {
            addr: addr.to_owned(),
            problem: "expected host:port".to_owned(),
        };
        let hostport = addr.trim_start_matches("https://").trim_end_matches('/');
        let (host, port) = hostport.rsplit_once(':').ok_or_else(invalid)?;
        let port = port.parse::<u16>().map_err(|_| invalid())?;
        if host.is_empty() {
            return Err(invalid());
        }
        let uri = format!("https://{hostport}");
        // The scheme is http because the connector does TLS itself (tonic's own TLS would
        // verify the dialled name; we verify the control's SPIFFE ID).
        let endpoint = Endpoint::from_shared(format!("http://{hostport}"))
            .map_err(|_| invalid())?
            .connect_timeout(CONNECT_TIMEOUT)
            .http2_keep_alive_interval(KEEP_ALIVE_INTERVAL);
        Ok(Self {
            uri,
            host: host
                .trim_start_matches('[')
                .trim_end_matches(']')
                .to_owned(),
            port,
            endpoint,
        })
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    fn uris(addrs: &str) -> Vec<String> {
        let parsed = ControlAddr::parse(addrs).unwrap_or_else(|e| panic!("{addrs:?}: {e}"));
        parsed.uris().map(str::to_owned).collect()
    }

    fn refused(addrs: &str) -> String {
        match ControlAddr::parse(addrs) {
            Ok(parsed) => panic!("{addrs:?} parsed as {:?}", parsed.targets),
            Err(e @ ClientError::Address { .. }) => e.to_string(),
            Err(e) => panic!("{addrs:?}: not an address error: {e}"),
        }
    }

    #[test]
    fn a_single_address_parses_as_before() {
        let parsed = ControlAddr::parse("127.0.0.1:7443").unwrap();
        assert_eq!(parsed.uri(), "https://127.0.0.1:7443");
        assert_eq!(parsed.uris().len(), 1);
        let v6 = ControlAddr::parse("https://[::1]:7443/").unwrap();
        assert_eq!(v6.uri(), "https://[::1]:7443");
        assert_eq!(
            (v6.targets[0].host.as_str(), v6.targets[0].port),
            ("::1", 7443)
        );
        assert_eq!(
            refused("control.example"),
            r#"control address "control.example": expected host:port"#
        );
        for bad in ["", ":7443", "host:port", "host:70000"] {
            assert!(refused(bad).ends_with("expected host:port"), "{bad:?}");
        }
    }

    #[test]
    fn several_addresses_keep_their_order_and_lose_surrounding_whitespace() {
        assert_eq!(
            uris("a:7443,b:7443,https://c:7443"),
            ["https://a:7443", "https://b:7443", "https://c:7443"]
        );
        assert_eq!(uris(" a:1 ,\tb:2\n"), ["https://a:1", "https://b:2"]);
        let parsed = ControlAddr::parse("a:1,b:2").unwrap();
        assert_eq!(parsed.uri(), "https://a:1");
    }

    #[test]
    fn an_empty_item_is_refused_by_its_position() {
        let error = refused("a:1,,b:2");
        assert!(error.contains(r#""a:1,,b:2""#), "{error}");
        assert!(error.contains("address 2 of 3 is empty"), "{error}");
        assert!(refused("a:1,").contains("address 2 of 2 is empty"));
        assert!(refused(" , a:1").contains("address 1 of 2 is empty"));
    }

    #[test]
    fn a_bad_item_in_a_list_is_named() {
        assert_eq!(
            refused("a:1, b, c:3"),
            r#"control address "b": expected host:port"#
        );
    }

    #[test]
    fn more_than_the_maximum_is_refused() {
        let list = |n: usize| {
            (0..n)
                .map(|i| format!("c{i}:7443"))
                .collect::<Vec<_>>()
                .join(",")
        };
        assert_eq!(uris(&list(MAX_CONTROL_ADDRS)).len(), MAX_CONTROL_ADDRS);
        let error = refused(&list(MAX_CONTROL_ADDRS + 1));
        assert!(error.contains("17 addresses; at most 16"), "{error}");
    }
}
