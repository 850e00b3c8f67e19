//! The control on Kubernetes (feature `kubernetes`): `smi-control serve --kubernetes`.
//!
//! - [`KubePolicy`] ([`PolicySource`](crate::traits::PolicySource)): every SMI kind the cluster
//!   serves (discovery decides), watched with kube-rs's `watcher`, loaded by the same loader as
//!   files; an invalid resource is reported as an Event on it.
//! - [`KubeEndpoints`] ([`EndpointSource`](crate::traits::EndpointSource)): Services,
//!   EndpointSlices (ready addresses) and Pods (their ServiceAccount), so workloads in the
//!   cluster need no Register stream.
//! - [`TokenReviewAuthenticator`](token_review::TokenReviewAuthenticator)
//!   ([`Authenticator`](crate::traits::Authenticator)): a pod's projected ServiceAccount token
//!   (audience [`TOKEN_AUDIENCE`]), checked with a TokenReview and against the pod it is bound
//!   to (still there, same uid, same ServiceAccount); it may serve the Services that select
//!   the pod.
//! - [`aggregated::AggregatedApi`]: the TrafficMetrics API as an aggregated API (its own TLS
//!   listener; request-header authentication by the front proxy, SubjectAccessReview
//!   authorization), for `kubectl get --raw /apis/metrics.smi-spec.io/v1alpha1/...`.
//! - [`SecretStore`] ([`StateStore`](crate::traits::StateStore)): the control's state in one
//!   Secret (default `smi-system/smi-control-state`), the CA in cert-manager's layout
//!   (`tls.crt`, `tls.key`, `ca.crt`), shared by replicas through optimistic concurrency on its
//!   resourceVersion, so that the control needs no state directory.

mod endpoints;
mod events;
mod policy;
mod watched;

pub mod aggregated;
pub mod secret_store;
pub mod token_review;

pub use endpoints::KubeEndpoints;
pub use events::EventRecorder;
pub use policy::{KubePolicy, list_documents, smi_resources};
pub use secret_store::SecretStore;

use std::path::Path;

use kube::config::{KubeConfigOptions, Kubeconfig};

/// What the control takes from a cluster, connected and listed: see
/// [`ControlBuilder::kubernetes`](crate::serve::ControlBuilder::kubernetes).
pub struct Cluster {
    pub client: kube::Client,
    pub policy: KubePolicy,
}

impl std::fmt::Debug for Cluster {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Cluster")
            .field("policy", &self.policy)
            .finish_non_exhaustive()
    }
}

impl Cluster {
    /// Connects ([`client`]) and lists the SMI resources the cluster serves.
    pub async fn connect(kubeconfig: Option<&Path>) -> Result<Self, KubeError> {
        let client = client(kubeconfig).await?;
        let policy = KubePolicy::start(client.clone(), EventRecorder::new(client.clone())).await?;
        Ok(Self { client, policy })
    }
}

/// The audience a workload's projected ServiceAccount token must be for.
pub const TOKEN_AUDIENCE: &str = "smi-mesh";

/// Why the cluster could not be reached or read.
#[derive(Debug, thiserror::Error)]
pub enum KubeError {
    #[error("kubeconfig {path}: {message}")]
    Kubeconfig { path: String, message: String },
    #[error("Kubernetes configuration (in-cluster, or KUBECONFIG): {0}")]
    Infer(String),
    #[error("Kubernetes client: {0}")]
    Client(String),
    #[error("Kubernetes API: {0}")]
    Api(String),
}

/// A client for the cluster: from `kubeconfig` when given, else as kubectl would find it (the
/// `KUBECONFIG` variable, `~/.kube/config`, or the pod's own ServiceAccount in the cluster).
pub async fn client(kubeconfig: Option<&Path>) -> Result<kube::Client, KubeError> {
    let config = match kubeconfig {
        Some(path) => {
            let named = |message: String| KubeError::Kubeconfig {
                path: path.display().to_string(),
                message,
            };
            let file = Kubeconfig::read_from(path).map_err(|e| named(e.to_string()))?;
            kube::Config::from_custom_kubeconfig(file, &KubeConfigOptions::default())
                .await
                .map_err(|e| named(e.to_string()))?
        }
        None => kube::Config::infer()
            .await
            .map_err(|e| KubeError::Infer(e.to_string()))?,
    };
    kube::Client::try_from(config).map_err(|e| KubeError::Client(e.to_string()))
}
