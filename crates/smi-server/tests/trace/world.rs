//! The fixture: the frontend (the test's caller), the bookstore and the warehouse, on
//! loopback with certificates from one `TestCa`.

use std::collections::HashMap;
use std::convert::Infallible;
use std::net::SocketAddr;
use std::time::Duration;

use bytes::Bytes;
use http::{Request, Response};
use http_body_util::{BodyExt, Empty, Full};
use hyper::body::Incoming;
use smi_client::mesh::Endpoint;
use smi_client::test_util::{TestCa, policy_state};
use smi_client::trace::{FinishedSpan, TraceHandle};
use smi_client::{Handles, MeshClient};
use smi_core::telemetry::Direction;
use smi_server::AuthorizeLayer;
use tokio::net::TcpListener;
use tower::{Layer, service_fn};

pub const WAIT: Duration = Duration::from_secs(10);

pub const TRACE: &str = "4bf92f3577b34da6a3ce929d0e0e4736";
pub const CALLER_SPAN: &str = "00f067aa0ba902b7";

/// frontend may call bookstore, and bookstore may call warehouse (every path, every method).
const POLICY: &str = "
apiVersion: specs.smi-spec.io/v1alpha4
kind: HTTPRouteGroup
metadata: {name: everything, namespace: bookstore}
spec:
  matches:
  - {name: all, pathRegex: '/.*'}
---
apiVersion: access.smi-spec.io/v1alpha3
kind: TrafficTarget
metadata: {name: frontend-orders, namespace: bookstore}
spec:
  destination: {kind: ServiceAccount, name: bookstore, namespace: bookstore}
  rules:
  - {kind: HTTPRouteGroup, name: everything, matches: [all]}
  sources:
  - {kind: ServiceAccount, name: frontend, namespace: frontend}
---
apiVersion: specs.smi-spec.io/v1alpha4
kind: HTTPRouteGroup
metadata: {name: everything, namespace: warehouse}
spec:
  matches:
  - {name: all, pathRegex: '/.*'}
---
apiVersion: access.smi-spec.io/v1alpha3
kind: TrafficTarget
metadata: {name: bookstore-stock, namespace: warehouse}
spec:
  destination: {kind: ServiceAccount, name: warehouse, namespace: warehouse}
  rules:
  - {kind: HTTPRouteGroup, name: everything, matches: [all]}
  sources:
  - {kind: ServiceAccount, name: bookstore, namespace: bookstore}
";

/// `warehouse.warehouse` split to its `warehouse-v1` backend.
const SPLIT: &str = "
---
apiVersion: split.smi-spec.io/v1alpha4
kind: TrafficSplit
metadata: {name: warehouse, namespace: warehouse}
spec:
  service: warehouse.warehouse.svc.cluster.local
  backends:
  - {service: warehouse-v1, weight: 100}
";

/// What each hop saw, as the bookstore's answer reports it (`key=value` lines).
pub type Seen = HashMap<String, String>;

/// The three workloads; the frontend's client (no spans of its own) is the test's caller.
pub struct World {
    frontend: MeshClient<Empty<Bytes>>,
}

impl World {
    /// The bookstore and warehouse servers, both recording to `trace`; with `split`, the
    /// bookstore's call goes through a TrafficSplit to `warehouse-v1`.
    pub async fn start(trace: TraceHandle, split: bool) -> Self {
        let ca = TestCa::new();
        let policy = if split {
            format!("{POLICY}{SPLIT}")
        } else {
            POLICY.to_owned()
        };
        let backend = if split {
            "warehouse/warehouse-v1"
        } else {
            "warehouse/warehouse"
        };
        let warehouse = ca.credentials("warehouse/warehouse", &[backend]);
        let warehouse_handles =
            Handles::for_test(&warehouse, policy_state(1, &policy, &[])).with_trace(trace.clone());
        let warehouse_addr = serve(&warehouse_handles, service_fn(warehouse_app)).await;

        let store = ca.credentials("bookstore/bookstore", &["bookstore/bookstore"]);
        let endpoints = [(
            backend,
            vec![Endpoint {
                addr: warehouse_addr,
                identity: warehouse.spiffe_id().clone(),
            }],
        )];
        let store_handles =
            Handles::for_test(&store, policy_state(1, &policy, &endpoints)).with_trace(trace);
        let client = MeshClient::new(store_handles.clone());
        let bookstore = service_fn(move |request| bookstore_app(client.clone(), request));
        let store_addr = serve(&store_handles, bookstore).await;

        let frontend = ca.credentials("frontend/frontend", &[]);
        let endpoints = [(
            "bookstore/bookstore",
            vec![Endpoint {
                addr: store_addr,
                identity: store.spiffe_id().clone(),
            }],
        )];
        let handles = Handles::for_test(&frontend, policy_state(1, &policy, &endpoints));
        Self {
            frontend: MeshClient::new(handles),
        }
    }

    /// Orders from the bookstore with these trace headers; what each hop saw.
    pub async fn order(&self, headers: &[(&str, &str)]) -> Seen {
        let mut request = Request::get("http://bookstore.bookstore/order");
        for (name, value) in headers {
            request = request.header(*name, *value);
        }
        let response = tokio::time::timeout(
            WAIT,
            self.frontend.send(request.body(Empty::new()).unwrap()),
        )
        .await
        .expect("the bookstore answers in time")
        .expect("the bookstore answers");
        assert_eq!(response.status(), 200);
        lines(response.into_body()).await
    }
}

/// Serves `app` behind `AuthorizeLayer` on a loopback port.
async fn serve<S>(handles: &Handles, app: S) -> SocketAddr
where
    S: tower::Service<Request<Incoming>, Response = Response<Full<Bytes>>, Error = Infallible>
        + Clone
        + Send
        + 'static,
    S::Future: Send + 'static,
{
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let service = AuthorizeLayer::new(handles.clone()).layer(app);
    tokio::spawn(smi_server::serve(listener, handles.clone(), service));
    addr
}

/// Answers with the trace headers it received and the context its handler ran in.
async fn warehouse_app(request: Request<Incoming>) -> Result<Response<Full<Bytes>>, Infallible> {
    let header = |name: &str| {
        request
            .headers()
            .get(name)
            .map_or("none".to_owned(), |v| v.to_str().unwrap().to_owned())
    };
    let current =
        smi_client::trace::current().map_or("none".to_owned(), |c| c.traceparent.to_string());
    let text = format!(
        "warehouse.traceparent={}\nwarehouse.tracestate={}\nwarehouse.current={current}\n",
        header("traceparent"),
        header("tracestate")
    );
    Ok(Response::new(Full::new(Bytes::from(text))))
}

/// Calls the warehouse while serving, and answers with what both saw.
async fn bookstore_app(
    client: MeshClient<Empty<Bytes>>,
    request: Request<Incoming>,
) -> Result<Response<Full<Bytes>>, Infallible> {
    let current =
        smi_client::trace::current().map_or("none".to_owned(), |c| c.traceparent.to_string());
    let received = request
        .headers()
        .get("traceparent")
        .map_or("none".to_owned(), |v| v.to_str().unwrap().to_owned());
    let call = Request::get("http://warehouse.warehouse/stock")
        .body(Empty::new())
        .unwrap();
    let answer = client.send(call).await.expect("the warehouse answers");
    let body = answer.into_body().collect().await.unwrap().to_bytes();
    let text = format!(
        "bookstore.current={current}\nbookstore.traceparent={received}\n{}",
        String::from_utf8_lossy(&body)
    );
    Ok(Response::new(Full::new(Bytes::from(text))))
}

async fn lines(body: Incoming) -> Seen {
    let body = body.collect().await.unwrap().to_bytes();
    String::from_utf8_lossy(&body)
        .lines()
        .filter_map(|l| l.split_once('='))
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .collect()
}

/// A `traceparent` value's trace-id and parent-id.
pub fn ids(traceparent: &str) -> (&str, &str) {
    let mut fields = traceparent.split('-').skip(1);
    (fields.next().unwrap(), fields.next().unwrap())
}

pub fn span<'a>(spans: &'a [FinishedSpan], direction: Direction, local: &str) -> &'a FinishedSpan {
    spans
        .iter()
        .find(|s| s.direction == direction && s.local_identity.contains(local))
        .unwrap_or_else(|| panic!("no {direction:?} span of {local}: {spans:#?}"))
}
