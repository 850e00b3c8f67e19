//! A control's Watch stream read directly (the protocol, without `smi_client::Mesh`): opened as a
//! workload, then the next update, or the first that satisfies a condition, each within 5 s.

use std::time::Duration;

use smi_client::control::Credentials;
use smi_core::proto::v1::{PolicyUpdate, WatchRequest};
use tonic::Streaming;

use crate::Control;

/// How long an update may take to arrive.
const UPDATE: Duration = Duration::from_secs(5);

/// A Watch stream of `request` on `control`, opened with `credentials`.
pub async fn open(
    control: &impl Control,
    credentials: &Credentials,
    request: WatchRequest,
) -> Streaming<PolicyUpdate> {
    control
        .client(credentials)
        .await
        .watch(request)
        .await
        .expect("a Watch stream")
        .into_inner()
}

/// The next update of `stream`; panics if none comes within 5 s or the stream fails or ends.
pub async fn next_update(stream: &mut Streaming<PolicyUpdate>) -> PolicyUpdate {
    tokio::time::timeout(UPDATE, stream.message())
        .await
        .expect("an update within 5 s")
        .expect("a healthy stream")
        .expect("the stream stays open")
}

/// Reads updates until one satisfies `done` (updates in between are fine), within 5 s.
pub async fn update_until(
    stream: &mut Streaming<PolicyUpdate>,
    done: impl Fn(&PolicyUpdate) -> bool,
) -> PolicyUpdate {
    tokio::time::timeout(UPDATE, async {
        loop {
            let update = next_update(stream).await;
            if done(&update) {
                return update;
            }
        }
    })
    .await
    .expect("the expected update within 5 s")
}
