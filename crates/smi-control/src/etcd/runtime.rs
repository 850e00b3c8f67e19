//! [`EtcdRuntime`]: the runtime the etcd client, its watch and its lease keeper run on.
//!
//! The [`StateStore`](crate::traits::StateStore) is a blocking interface, called from blocking
//! threads (reloads) and from async handlers (enrollment) alike, and tests run the control on
//! a current-thread runtime where no handler may block on a future of the same runtime. The
//! etcd side therefore has a runtime of its own: [`block_on`](EtcdRuntime::block_on) hands a
//! future to it and waits on a channel, which works from any thread.

use std::future::Future;

use tokio::runtime::{Builder, Runtime};

use super::EtcdError;

pub struct EtcdRuntime {
    runtime: Option<Runtime>,
}

impl std::fmt::Debug for EtcdRuntime {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("EtcdRuntime")
    }
}

impl EtcdRuntime {
    pub fn new() -> Result<Self, EtcdError> {
        let runtime = Builder::new_multi_thread()
            .worker_threads(1)
            .thread_name("smi-etcd")
            .enable_all()
            .build()
            .map_err(|e| EtcdError::Runtime(e.to_string()))?;
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
    pub fn block_on<T, F>(&self, future: F) -> Result<T, EtcdError>
    where
        F: Future<Output = Result<T, EtcdError>> + Send + 'static,
        T: Send + 'static,
    {
        let (tx, rx) = std::sync::mpsc::sync_channel(1);
        self.runtime().spawn(async move {
            let _ = tx.send(future.await);
        });
        // The sender is gone unanswered only when the runtime is shutting down.
        rx.recv().unwrap_or(Err(EtcdError::Stopped))
    }
}

impl Drop for EtcdRuntime {
    /// Without waiting: the last handle may be dropped inside another runtime, where a blocking
    /// shutdown would panic.
    fn drop(&mut self) {
        if let Some(runtime) = self.runtime.take() {
            runtime.shutdown_background();
        }
    }
}
