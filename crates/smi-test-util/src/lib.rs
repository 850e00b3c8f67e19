//! Test fixtures for smi-mesh (dev-only: the integration tests, the benchmarks and crates'
//! dev-dependencies use it; never a dependency of a shipped crate).
//!
//! - [`LocalControl`]: a control service in the test's process over temporary directories;
//!   [`LiveControl`]: the same as a process ([`Process`]), which a test can kill. Both are a
//!   [`Control`]: mint join tokens, start workloads ([`smi_client::Mesh`]), write policy files.
//! - [`mint_token`] / [`join_token`]: the one way tests make join tokens.
//! - [`Server`], [`EchoServer`]: workloads that serve an app or a TCP echo over mTLS.
//! - [`policy_until`], [`status_until`], [`renewals`]: waits on a workload's change
//!   notifications, with a timeout. [`watch`]: the same on a raw Watch stream; [`admin`]: admin
//!   views, which have no notification.
//! - [`prometheus`]: a real Prometheus server scraping workloads, and its query API.
//! - [`etcd`]: a real etcd cluster of one or three members, which a test can kill and
//!   start again, member by member or whole; [`Replicas`]: control replicas over it, as
//!   processes.
//! - [`kube_api`]: a fake Kubernetes API server (REST, watch, discovery, CRDs, TokenReview,
//!   SubjectAccessReview) on 127.0.0.1, which kube-rs's own client and watcher work against.
//! - [`tls`], [`raw`]: hand-made TLS and HTTP clients; [`bookstore`]: the scenario most
//!   end-to-end tests play.
//! - [`handles`]: fixed handles (a throwaway CA's credentials, a policy from YAML) for the
//!   layers without any control service (`smi_client::test_util`, re-exported).
//!
//! This is test code: helpers panic with a message instead of returning errors.
#![forbid(unsafe_code)]
// Test fixtures: failing loudly, with a message, is their error handling.
#![allow(clippy::expect_used)]

pub mod admin;
pub mod bookstore;
pub mod cluster;
mod control;
pub mod etcd;
pub mod kube_api;
mod live;
mod local;
mod process;
pub mod prometheus;
pub mod raw;
mod replicas;
mod serve;
pub mod tls;
mod token;
mod wait;
pub mod watch;

pub use control::{Control, START, assert_status, refused, smictl};
pub use live::LiveControl;
pub use local::LocalControl;
pub use process::Process;
pub use replicas::Replicas;
pub use serve::{EchoServer, Server};
pub use token::{TRUST_DOMAIN, TokenSpec, join_token, mint_token};
pub use wait::{policy_until, renewals, status_until};

/// Fixed handles: the layers on a given policy and credentials, no control service.
pub use smi_client::test_util as handles;
