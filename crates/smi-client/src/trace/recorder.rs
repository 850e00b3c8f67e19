//! [`SpanRecorder`] (feature `test-util`): a sink that keeps spans in memory, for tests that
//! look at what the layers recorded.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::watch;

use super::sink::SpanSink;
use super::span::FinishedSpan;

/// The most spans a recorder keeps; later ones are dropped (a test that needs more is wrong).
const MAX_SPANS: usize = 10_000;

/// Keeps the spans it is given. Clones share them.
#[derive(Clone, Debug)]
pub struct SpanRecorder(Arc<watch::Sender<Vec<FinishedSpan>>>);

impl Default for SpanRecorder {
    fn default() -> Self {
        Self(Arc::new(watch::Sender::new(Vec::new())))
    }
}

impl SpanRecorder {
    pub fn new() -> Self {
        Self::default()
    }

    /// The spans so far, in the order they finished.
    pub fn spans(&self) -> Vec<FinishedSpan> {
        self.0.borrow().clone()
    }

    /// Waits until at least `n` spans have finished, up to `timeout`; then returns them all, or
    /// `None` if they did not arrive in time.
    pub async fn wait_for(&self, n: usize, timeout: Duration) -> Option<Vec<FinishedSpan>> {
        let mut changes = self.0.subscribe();
        let arrived = tokio::time::timeout(timeout, changes.wait_for(|spans| spans.len() >= n));
        match arrived.await {
            Ok(Ok(spans)) => Some(spans.clone()),
            _ => None,
        }
    }
}

impl SpanSink for SpanRecorder {
    fn finish(&self, span: FinishedSpan) {
        self.0.send_if_modified(|spans| {
            let room = spans.len() < MAX_SPANS;
            if room {
                spans.push(span);
            }
            room
        });
    }
}
