//! The in-flight count and the idle wait, on tokio's paused clock.

use std::convert::Infallible;
use std::future::{Ready, ready};
use std::net::SocketAddr;
use std::time::Instant;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use smi_core::ServiceAccount;

use super::*;

/// Answers every request with a one-chunk body; the connection's peer must be in it.
#[derive(Clone, Debug)]
struct Answer;

impl Service<Request<()>> for Answer {
    type Response = Response<Full<Bytes>>;
    type Error = Infallible;
    type Future = Ready<Result<Response<Full<Bytes>>, Infallible>>;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, request: Request<()>) -> Self::Future {
        assert!(request.extensions().get::<Peer>().is_some(), "no Peer");
        ready(Ok(Response::new(Full::new(Bytes::from_static(b"done")))))
    }
}

fn with_peer(activity: &Arc<Activity>) -> WithPeer<Answer> {
    let addr: SocketAddr = "127.0.0.1:1".parse().unwrap();
    let identity = ServiceAccount::new("ns", "client").spiffe_id("cluster.local");
    WithPeer {
        inner: Answer,
        peer: Peer::new(identity, addr, addr),
        activity: activity.clone(),
        upgrades: false,
    }
}

// Short periods on the real clock (tokio's paused clock needs its `test-util` feature, which
// would build tokio and everything above it a second time); each wait is bounded.
const FIRST: Duration = Duration::from_millis(50);
// The idle period is long beside the first, so that telling them apart survives a loaded machine.
const IDLE: Duration = Duration::from_millis(1_000);
const BOUND: Duration = Duration::from_secs(5);

/// Waits for `activity` to be idle; how long that took.
async fn time_to_idle(activity: &Activity) -> Duration {
    let started = Instant::now();
    tokio::time::timeout(BOUND, activity.idle(Some(FIRST), Some(IDLE)))
        .await
        .expect("idle within the bound");
    started.elapsed()
}

#[tokio::test]
async fn the_first_request_is_awaited_for_the_first_period_only() {
    let activity = Arc::new(Activity::default());
    let took = time_to_idle(&activity).await;
    assert!(took >= FIRST && took < IDLE, "{took:?}");
}

#[tokio::test]
async fn a_request_in_flight_keeps_the_connection_busy_until_its_body_ends() {
    let activity = Arc::new(Activity::default());
    let mut service = with_peer(&activity);
    let response = service.call(Request::new(())).await.unwrap();
    assert_eq!(activity.in_flight.load(Ordering::Acquire), 1);
    let busy = tokio::time::timeout(IDLE * 2, activity.idle(Some(FIRST), Some(IDLE))).await;
    assert!(busy.is_err(), "idle with a body in flight");

    let body = response.into_body().collect().await.unwrap().to_bytes();
    assert_eq!(&body[..], b"done");
    assert_eq!(activity.in_flight.load(Ordering::Acquire), 0);
    let took = time_to_idle(&activity).await;
    assert!(
        took >= IDLE,
        "after the first request the idle period applies: {took:?}"
    );
}

#[tokio::test]
async fn a_dropped_response_future_or_body_ends_the_request() {
    let activity = Arc::new(Activity::default());
    let mut service = with_peer(&activity);
    drop(service.call(Request::new(())));
    assert_eq!(activity.in_flight.load(Ordering::Acquire), 0);
    let response = service.call(Request::new(())).await.unwrap();
    assert_eq!(activity.in_flight.load(Ordering::Acquire), 1);
    drop(response);
    assert_eq!(activity.in_flight.load(Ordering::Acquire), 0);
}

#[tokio::test]
async fn a_request_during_the_quiet_period_starts_it_again() {
    let activity = Arc::new(Activity::default());
    let mut service = with_peer(&activity);
    drop(service.call(Request::new(())).await.unwrap());
    let waiting = {
        let activity = activity.clone();
        tokio::spawn(async move { time_to_idle(&activity).await })
    };
    // Halfway through the quiet period (the pause is the subject of the test, not a wait for
    // an event), a request comes and goes: the period counts again from its end.
    tokio::time::sleep(IDLE / 2).await;
    drop(service.call(Request::new(())).await.unwrap());
    let ended = Instant::now();
    waiting.await.unwrap();
    assert!(
        ended.elapsed() >= IDLE,
        "idle {:?} after the last request",
        ended.elapsed()
    );
}
