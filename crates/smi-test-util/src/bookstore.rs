//! The bookstore scenario that most end-to-end tests play: the example's policy
//! (`examples/bookstore/policy/`: bookbuyer may buy from bookstore, bookthief is not listed), a
//! TrafficSplit of bookstore over bookstore-v1 and bookstore-v2, backends that answer with their
//! name, and callers that wait for the backends' endpoints. Waits here take at most [`WAIT`].

use std::time::{Duration, Instant};

use axum::Router;
use bytes::Bytes;
use http::{Request, StatusCode};
use http_body_util::{BodyExt, Full};
use smi_client::{Mesh, MeshClient, OutboundError};
use smi_server::Peer;

use crate::{Control, LocalControl, Server, policy_until};

/// The example's access policy: bookbuyer may GET and POST the bookstore's routes.
pub const ACCESS: &str = include_str!("../../../examples/bookstore/policy/bookstore-access.yaml");
/// The example's TrafficSplit: bookstore 50/50 over bookstore-v1 and bookstore-v2.
pub const SPLIT: &str = include_str!("../../../examples/bookstore/policy/bookstore-split.yaml");
/// A route [`ACCESS`] allows bookbuyer, through the split.
pub const BUY: &str = "http://bookstore.bookstore/buy-a-book/new";
/// The backends of the split.
pub const VERSIONS: &[&str] = &["bookstore-v1", "bookstore-v2"];
/// How long a wait of this scenario may take.
pub const WAIT: Duration = Duration::from_secs(5);

/// A TrafficSplit of bookstore: `v1` to bookstore-v1, `v2` to bookstore-v2.
pub fn split(v1: u32, v2: u32) -> String {
    format!(
        "apiVersion: split.smi-spec.io/v1alpha4\nkind: TrafficSplit\nmetadata:\n  name: bookstore-split\n  namespace: bookstore\nspec:\n  service: bookstore\n  backends:\n  - service: bookstore-v1\n    weight: {v1}\n  - service: bookstore-v2\n    weight: {v2}\n"
    )
}

/// An in-process control with [`ACCESS`] (`access.yaml`) and a v1/v2 split of these weights
/// (`split.yaml`), issuing certificates of an hour.
pub async fn control(v1: u32, v2: u32) -> LocalControl {
    control_with_ttl(v1, v2, Duration::from_secs(3600)).await
}

/// [`control`] issuing certificates that live `certificate_ttl`.
pub async fn control_with_ttl(v1: u32, v2: u32, certificate_ttl: Duration) -> LocalControl {
    let files = [("access.yaml", ACCESS), ("split.yaml", &split(v1, v2))];
    LocalControl::start_with(&files, |config| smi_control::serve::ServeConfig {
        certificate_ttl,
        ..config
    })
    .await
}

/// The bookstore's workload (bookstore/bookstore) and two callers, bookbuyer (allowed) and
/// bookthief (not listed), on an in-process control with [`ACCESS`] only; started once the
/// bookstore knows the buyer is allowed. What a test serves as the bookstore is its own.
#[derive(Debug)]
pub struct Shop {
    pub control: LocalControl,
    pub server: Mesh,
    pub buyer: Mesh,
    pub thief: Mesh,
}

impl Shop {
    pub async fn start() -> Shop {
        let control = LocalControl::start(&[("access.yaml", ACCESS)]).await;
        let server = control.mesh("bookstore/bookstore", &[], &[]).await;
        let buyer = control.mesh("bookbuyer/bookbuyer", &[], &[]).await;
        let thief = control.mesh("bookthief/bookthief", &[], &[]).await;
        // The server knows the buyer is allowed (the revocation watch starts from there).
        policy_until(&server, "the buyer admitted", WAIT, |p| {
            p.snapshot.admits_any(server.identity(), buyer.identity())
        })
        .await;
        Shop {
            control,
            server,
            buyer,
            thief,
        }
    }

    pub async fn stop(mut self) {
        self.control.shutdown().await;
    }
}

/// A meshed backend of `identity` serving `serves` that answers every path with its `name`
/// (header `x-backend`, and a body naming the caller's identity).
pub async fn backend(
    control: &impl Control,
    name: &'static str,
    identity: &str,
    serves: &[&str],
) -> Server {
    let router = Router::new().fallback(
        move |axum::Extension(peer): axum::Extension<Peer>| async move {
            (
                [("x-backend", name)],
                format!("{name} served {}", peer.identity),
            )
        },
    );
    Server::start(control, identity, serves, router).await
}

/// bookstore-v1, running as ServiceAccount bookstore/bookstore.
pub async fn v1(control: &impl Control) -> Server {
    let serves = ["bookstore/bookstore-v1"];
    backend(control, "bookstore-v1", "bookstore/bookstore", &serves).await
}

/// bookstore-v1 and bookstore-v2, both running as ServiceAccount bookstore/bookstore.
pub async fn backends(control: &impl Control) -> [Server; 2] {
    let serves = ["bookstore/bookstore-v2"];
    let v1 = v1(control).await;
    let v2 = backend(control, "bookstore-v2", "bookstore/bookstore", &serves).await;
    [v1, v2]
}

/// A workload of `identity` that calls bookstore.bookstore.
pub async fn customer(control: &impl Control, identity: &str) -> Mesh {
    control.mesh(identity, &[], &["bookstore/bookstore"]).await
}

/// A [`customer`], once it knows the endpoints of `backends` (service names in namespace
/// bookstore, such as [`VERSIONS`]).
pub async fn caller(control: &impl Control, identity: &str, backends: &[&str]) -> Mesh {
    let mesh = customer(control, identity).await;
    with_endpoints(&mesh, backends).await;
    mesh
}

/// Waits until the mesh knows an endpoint of each of `backends` (in namespace bookstore).
pub async fn with_endpoints(mesh: &Mesh, backends: &[&str]) {
    let what = format!("endpoints of {backends:?}");
    policy_until(mesh, &what, WAIT, |p| {
        backends
            .iter()
            .all(|s| !p.endpoints("bookstore", s).is_empty())
    })
    .await;
}

/// GETs `uri` through the mesh: the status and the answering backend's name (empty when no
/// backend answered).
pub async fn get(
    client: &MeshClient<Full<Bytes>>,
    uri: &str,
) -> Result<(StatusCode, String), OutboundError> {
    let request = Request::get(uri)
        .body(Full::new(Bytes::new()))
        .expect("a GET request");
    let response = client.send(request).await?;
    let status = response.status();
    let backend = response
        .headers()
        .get("x-backend")
        .map(|v| v.to_str().expect("an ASCII backend name").to_owned())
        .unwrap_or_default();
    response
        .into_body()
        .collect()
        .await
        .expect("the whole response body");
    Ok((status, backend))
}

/// Sends requests until `done` holds for one, within [`WAIT`]; returns how long it took.
pub async fn until_response(
    client: &MeshClient<Full<Bytes>>,
    uri: &str,
    done: impl Fn(&(StatusCode, String)) -> bool,
) -> Duration {
    let started = Instant::now();
    tokio::time::timeout(WAIT, async {
        loop {
            if let Ok(answer) = get(client, uri).await
                && done(&answer)
            {
                return;
            }
            tokio::task::yield_now().await;
        }
    })
    .await
    .expect("the expected response within 5 s");
    started.elapsed()
}
