//! Connecting to a control service that has several addresses, over real sockets on loopback:
//! a closed port, a listener that drops connections and one presenting a workload's
//! certificate are passed over; the address that answered is tried first next time; when none
//! answers, the error names each. The stand-in control is real TLS with the control's identity
//! (from a throwaway CA) and answers every gRPC call with a status naming itself.
#![allow(clippy::unwrap_used, clippy::expect_used)] // test helpers fail loudly

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use bytes::Bytes;
use http::{Request, Response};
use http_body_util::Empty;
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto;
use smi_client::control::{ClientError, ControlAddr, Credentials, connect, control_client};
use smi_client::test_util::TestCa;
use smi_core::proto::v1;
use tokio::net::TcpListener;
use tokio::task::JoinHandle;
use tokio_rustls::TlsAcceptor;
use tonic::transport::Channel;

/// Far longer than any step should take (a connect attempt is bounded at 5 s).
const WAIT: Duration = Duration::from_secs(30);

/// TLS as the control's API, presenting `credentials`; each call is answered `NOT_FOUND` with
/// `name` as the message.
struct StandIn {
    addr: SocketAddr,
    task: JoinHandle<()>,
}

impl StandIn {
    async fn start(name: &'static str, credentials: &Credentials) -> Self {
        Self::start_on("127.0.0.1:0".parse().unwrap(), name, credentials).await
    }

    async fn start_on(addr: SocketAddr, name: &'static str, credentials: &Credentials) -> Self {
        let config = credentials
            .mtls()
            .unwrap()
            .control_server(credentials.own_certificate())
            .unwrap();
        let acceptor = TlsAcceptor::from(Arc::new(config));
        let listener = TcpListener::bind(addr)
            .await
            .unwrap_or_else(|e| panic!("binding {addr}: {e}"));
        let addr = listener.local_addr().unwrap();
        let task = tokio::spawn(async move {
            while let Ok((tcp, _)) = listener.accept().await {
                let acceptor = acceptor.clone();
                tokio::spawn(async move {
                    let Ok(tls) = acceptor.accept(tcp).await else {
                        return;
                    };
                    let service = service_fn(move |_: Request<hyper::body::Incoming>| async move {
                        let answer = Response::builder()
                            .header("content-type", "application/grpc")
                            .header("grpc-status", "5")
                            .header("grpc-message", name)
                            .body(Empty::<Bytes>::new());
                        Ok::<_, Infallible>(answer.unwrap())
                    });
                    let builder = auto::Builder::new(TokioExecutor::new());
                    let _ = builder.serve_connection(TokioIo::new(tls), service).await;
                });
            }
        });
        Self { addr, task }
    }

    /// Stops listening: the port refuses connections once this returns.
    async fn stop(self) {
        self.task.abort();
        let _ = self.task.await;
    }
}

/// Accepts TCP connections and drops them at once (a TLS handshake fails); counts them.
struct Dropping {
    addr: SocketAddr,
    accepted: Arc<AtomicUsize>,
}

impl Dropping {
    async fn start() -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let accepted = Arc::new(AtomicUsize::new(0));
        let counted = accepted.clone();
        tokio::spawn(async move {
            while let Ok((tcp, _)) = listener.accept().await {
                // Counted before the close that the client's handshake fails on.
                counted.fetch_add(1, Ordering::SeqCst);
                drop(tcp);
            }
        });
        Self { addr, accepted }
    }

    fn accepted(&self) -> usize {
        self.accepted.load(Ordering::SeqCst)
    }
}

/// A loopback port nothing listens on (it was bound, then released).
fn closed_port() -> SocketAddr {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    listener.local_addr().unwrap()
}

struct Fixture {
    ca: TestCa,
    control: Credentials,
    workload: Credentials,
}

impl Fixture {
    fn new() -> Self {
        let ca = TestCa::new();
        Self {
            control: ca.credentials("smi-system/smi-control", &[]),
            workload: ca.credentials("shop/web", &[]),
            ca,
        }
    }

    async fn connect(&self, addr: &ControlAddr) -> Result<Channel, ClientError> {
        tokio::time::timeout(WAIT, connect(addr, &self.workload))
            .await
            .expect("a connect round ends within its attempts' timeouts")
    }

    /// The name of the stand-in that `addr` now connects to.
    async fn reached(&self, addr: &ControlAddr) -> String {
        let channel = self.connect(addr).await.unwrap();
        let answer = control_client(channel)
            .certify(v1::CertifyRequest::default())
            .await;
        let status = answer.expect_err("the stand-in answers NOT_FOUND");
        assert_eq!(status.code(), tonic::Code::NotFound, "{status:?}");
        status.message().to_owned()
    }
}

#[tokio::test]
async fn connect_passes_over_unreachable_addresses_and_starts_from_the_one_that_answered() {
    let fixture = Fixture::new();
    let closed = closed_port();
    let dropping = Dropping::start().await;
    // A certificate of the same CA, but not the control's identity: not to be trusted.
    let impostor_credentials = fixture.ca.credentials("shop/impostor", &[]);
    let impostor = StandIn::start("impostor", &impostor_credentials).await;
    let control = StandIn::start("control", &fixture.control).await;
    let addr = ControlAddr::parse(&format!(
        "{closed}, {}, {}, https://{}",
        dropping.addr, impostor.addr, control.addr
    ))
    .unwrap();

    assert_eq!(fixture.reached(&addr).await, "control");
    assert_eq!(dropping.accepted(), 1);

    // A clone shares what answered: the next connect goes there first, not past the others.
    assert_eq!(fixture.reached(&addr.clone()).await, "control");
    assert_eq!(
        dropping.accepted(),
        1,
        "the dropping listener was tried again"
    );
}

#[tokio::test]
async fn a_control_that_goes_away_is_left_for_the_next_address() {
    let fixture = Fixture::new();
    let first = StandIn::start("first", &fixture.control).await;
    let second = StandIn::start("second", &fixture.control).await;
    let addr = ControlAddr::parse(&format!("{},{}", first.addr, second.addr)).unwrap();
    assert_eq!(fixture.reached(&addr).await, "first");
    assert_eq!(fixture.reached(&addr).await, "first");

    let first_addr = first.addr;
    first.stop().await;
    assert_eq!(fixture.reached(&addr).await, "second");

    // The first comes back on its address: the workload stays where it is until that fails.
    let back = StandIn::start_on(first_addr, "first again", &fixture.control).await;
    assert_eq!(fixture.reached(&addr).await, "second");
    second.stop().await;
    assert_eq!(fixture.reached(&addr).await, "first again");
    back.stop().await;
}

#[tokio::test]
async fn when_no_address_answers_the_error_names_each_and_why() {
    let fixture = Fixture::new();
    let (a, b) = (closed_port(), closed_port());
    let addr = ControlAddr::parse(&format!("{a},{b}")).unwrap();
    let Err(ClientError::Connect {
        addr: tried,
        message,
    }) = fixture.connect(&addr).await
    else {
        panic!("connected to closed ports");
    };
    assert_eq!(tried, format!("https://{a}, https://{b}"));
    for port in [a, b] {
        let reason = message
            .split("; ")
            .find(|part| part.starts_with(&format!("https://{port}: ")))
            .unwrap_or_else(|| panic!("{port} missing from {message:?}"));
        assert!(reason.to_lowercase().contains("refused"), "{reason}");
    }

    // One address fails as it did before lists: that address, its reason.
    let single = ControlAddr::parse(&a.to_string()).unwrap();
    let Err(ClientError::Connect {
        addr: tried,
        message,
    }) = fixture.connect(&single).await
    else {
        panic!("connected to a closed port");
    };
    assert_eq!(tried, format!("https://{a}"));
    assert!(message.to_lowercase().contains("refused"), "{message}");
}

#[tokio::test]
async fn a_host_name_is_resolved_at_connect() {
    let fixture = Fixture::new();
    let control = StandIn::start("control", &fixture.control).await;
    // `localhost` may resolve to ::1 first, where nothing listens: the next address is tried.
    let addr = ControlAddr::parse(&format!("localhost:{}", control.addr.port())).unwrap();
    assert_eq!(fixture.reached(&addr).await, "control");
}
