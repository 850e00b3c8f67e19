//! [`StoreRuntime`]: the runtime a networked state store's client runs on (etcd's client, its
//! watch and its lease keeper; the Kubernetes Secret store's client).
//!
//! The [`StateStore`](crate::traits::StateStore) is a blocking interface, called from blocking
//! threads (reloads) and from async handlers (enrollment) alike, and tests run the control on
//! a current-thread runtime where no handler may block on a future of the same runtime. Such a
//! store therefore has a runtime of its own: [`block_on`](StoreRuntime::block_on) hands a
//! future to it and waits on a channel, which works from any thread but that runtime's own.

use std::future::Future;

use tokio::runtime::{Builder, Runtime};

/// Why the runtime could not do what was asked.
#[derive(Debug, Clone, thiserror::Error)]
pub enum RuntimeError {
    #[error("starting the store's runtime: {0}")]
    Start(String),
    #[error("the store's client is shutting down")]
    Stopped,
}

pub struct StoreRuntime {
    runtime: Option<Runtime>,
}

impl std::fmt::Debug for StoreRuntime {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("StoreRuntime")
    }
}

impl StoreRuntime {
    pub fn new() -> Result<Self, RuntimeError> {
        let runtime = Builder::new_multi_thread()
            .worker_threads(1)
            .thread_name("smi-store")
            .enable_all()
            .build()
            .map_err(|e| RuntimeError::Start(e.to_string()))?;
        Ok(Self {
            runtime: Some(runtime),
        })
    }

    fn runtime(&self) -> &Runtime {
        // Taken only by drop.
        #[allow(clippy::expect_used)]
        self.runtime.as_ref().expect("the runtime lives until drop")
    }

    /// Runs `f` in the runtime's context (what makes lazy channels spawn their tasks there).
    pub fn enter<T>(&self, f: impl FnOnce() -> T) -> T {
        let _entered = self.runtime().enter();
        f()
    }

    pub fn spawn<F>(&self, future: F) -> tokio::task::JoinHandle<F::Output>
    where
        F: Future + Send + 'static,
        F::Output: Send + 'static,
    {
        self.runtime().spawn(future)
    }

    /// Runs `future` on the etcd runtime and waits for it, from any thread (see the module).
    pub fn block_on<T, E, F>(&self, future: F) -> Result<T, E>
    where
        F: Future<Output = Result<T, E>> + Send + 'static,
        T: Send + 'static,
        E: From<RuntimeError> + Send + 'static,
    {
        let (tx, rx) = std::sync::mpsc::sync_channel(1);
        self.runtime().spawn(async move {
            let _ = tx.send(future.await);
        });
        // The sender is gone unanswered only when the runtime is shutting down.
        rx.recv().unwrap_or(Err(RuntimeError::Stopped.into()))
    }
}

impl Drop for StoreRuntime {
    /// Without waiting: the last handle may be dropped inside another runtime, where a blocking
    /// shutdown would panic.
    fn drop(&mut self) {
        if let Some(runtime) = self.runtime.take() {
            runtime.shutdown_background();
        }
    }
}
