//! Handles without a control service (feature `test-util`), in the spirit of linkerd's
//! `for_test()`: a throwaway CA that issues real certificates by the mesh's naming convention,
//! and a policy compiled from YAML with endpoints given by the test. The layers run on these
//! exactly as on a [`crate::Mesh`]'s handles; a test changes the policy with
//! [`PolicyHandle::set`].
//!
//! Test code: these helpers panic with a message instead of returning errors.
#![allow(clippy::expect_used)]

use std::time::{Duration, SystemTime};

use rcgen::{
    BasicConstraints, CertificateParams, CustomExtension, IsCa, Issuer, KeyPair, KeyUsagePurpose,
    SanType,
};
use rustls::pki_types::CertificateDer;
use smi_core::san::{WORKLOAD_OID, workload_extension};
use smi_core::telemetry::Workload;
use smi_core::{Format, Options, ServiceAccount, ServiceRef, Snapshot, SpiffeId, WorkloadNames};

use crate::control::Credentials;
use crate::handles::{Handles, PolicyHandle, StatusHandle, TlsHandle};
use crate::mesh::{Endpoint, MeshStatus, PolicyState};
use crate::metrics::{LocalNames, Metrics, MetricsOptions};

const TRUST_DOMAIN: &str = smi_core::DEFAULT_TRUST_DOMAIN;

/// A CA for one test: a P-256 root that signs workload certificates.
pub struct TestCa {
    issuer: Issuer<'static, KeyPair>,
    root_der: Vec<u8>,
}

impl std::fmt::Debug for TestCa {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TestCa").finish_non_exhaustive()
    }
}

impl Default for TestCa {
    fn default() -> Self {
        Self::new()
    }
}

impl TestCa {
    pub fn new() -> Self {
        let key = KeyPair::generate().expect("a CA key");
        let mut params = CertificateParams::new(Vec::<String>::new()).expect("CA parameters");
        params.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
        params.key_usages = vec![KeyUsagePurpose::KeyCertSign];
        let root = params.self_signed(&key).expect("a self-signed root");
        Self {
            root_der: root.der().to_vec(),
            issuer: Issuer::new(params, key),
        }
    }

    /// Credentials for `account` (`ns/name`) that may serve `serves` (`ns/name` each), valid
    /// for an hour, named as the control's CA names workloads (without workload names).
    pub fn credentials(&self, account: &str, serves: &[&str]) -> Credentials {
        self.issue(account, serves, None)
    }

    /// [`TestCa::credentials`] whose certificate also names its workload and pod, in the
    /// extension the control's CA writes (`smi_core::san::WORKLOAD_OID`).
    pub fn workload_credentials(
        &self,
        account: &str,
        serves: &[&str],
        workload: &str,
        pod: &str,
    ) -> Credentials {
        self.issue(account, serves, Some((workload, pod)))
    }

    fn issue(&self, account: &str, serves: &[&str], workload: Option<(&str, &str)>) -> Credentials {
        let account: ServiceAccount = account.parse().expect("an account ns/name");
        let serves = serves
            .iter()
            .map(|s| s.parse::<ServiceRef>().expect("a service ns/name"))
            .collect();
        let names = WorkloadNames::new(account.spiffe_id(TRUST_DOMAIN), serves);
        let sans = names.sans(smi_core::DEFAULT_CLUSTER_DOMAIN);
        let mut params = CertificateParams::new(sans.dns_names).expect("leaf parameters");
        for uri in sans.uris {
            params
                .subject_alt_names
                .push(SanType::URI(uri.try_into().expect("a URI SAN")));
        }
        if let Some((name, pod)) = workload {
            let names = Workload::new(&account.namespace, name, pod);
            names.check().expect("valid workload names");
            params
                .custom_extensions
                .push(CustomExtension::from_oid_content(
                    WORKLOAD_OID,
                    workload_extension(&names),
                ));
        }
        let key = KeyPair::generate().expect("a workload key");
        let leaf = params.signed_by(&key, &self.issuer).expect("a signed leaf");
        Credentials::new(
            key,
            vec![leaf.der().to_vec()],
            vec![self.root_der.clone()],
            &names.spiffe_id.to_string(),
            SystemTime::now() + Duration::from_secs(3600),
        )
        .expect("test credentials")
    }
}

/// A policy state at `version`, compiled from SMI YAML (errors panic, naming the diagnostic),
/// with `endpoints` per service `ns/name`.
pub fn policy_state(version: u64, yaml: &str, endpoints: &[(&str, Vec<Endpoint>)]) -> PolicyState {
    let loaded = smi_core::load_str("test.yaml", yaml, Format::Yaml);
    if let Some(error) = loaded.errors().next() {
        panic!("test policy: {error}");
    }
    let snapshot = Snapshot::compile(loaded.policy, Options::default());
    PolicyState::from_parts(
        version,
        snapshot,
        endpoints.iter().map(|(service, list)| {
            let (ns, name) = service.split_once('/').expect("a service ns/name");
            (ns, name, list.clone())
        }),
    )
}

/// The same state as a workload that lists its `calls` sees it (not `*`): a service it lacks
/// is one the workload does not call.
pub fn with_listed_calls(state: PolicyState) -> PolicyState {
    PolicyState {
        subscribed_to_all: false,
        ..state
    }
}

/// The same state with these identities revoked (the control's deny list).
pub fn revoke(state: PolicyState, revoked: &[SpiffeId]) -> PolicyState {
    PolicyState {
        snapshot: state.snapshot.with_revoked(revoked),
        ..state
    }
}

impl PolicyHandle {
    /// A handle on `state`, for `credentials`' identity.
    pub fn for_test(credentials: &Credentials, state: PolicyState) -> Self {
        Self::new(credentials.spiffe_id().clone(), state)
    }

    /// Replaces the policy, as an update from the control would.
    pub fn set(&self, state: PolicyState) {
        self.store(state);
    }
}

impl Handles {
    /// Handles on a fixed policy and credentials; the status says ready at the policy's
    /// version, connected.
    pub fn for_test(credentials: &Credentials, state: PolicyState) -> Self {
        let policy = PolicyHandle::for_test(credentials, state);
        let tls = TlsHandle::new(
            credentials.client_config().expect("client TLS"),
            credentials.server_config().expect("server TLS"),
        );
        let (status_policy, expires) = (policy.clone(), credentials.not_after());
        let status = StatusHandle::new(move || {
            let version = status_policy.load().version;
            MeshStatus {
                ready: version > 0,
                policy_version: version,
                certificate_expires: expires,
                connected: true,
                watch_failures: 0,
                last_watch_error: None,
                reports_sent: 0,
                reports_failed: 0,
            }
        });
        let metrics = Metrics::with_options(local_names(credentials), &MetricsOptions::default());
        Handles::new(policy, tls, metrics, status)
    }
}

/// What the metrics call a test workload: the names its certificate carries, or else its
/// service account's name for both workload and pod.
fn local_names(credentials: &Credentials) -> LocalNames {
    let id = credentials.spiffe_id();
    let leaf = credentials.chain_der().first().expect("a leaf certificate");
    let presented =
        smi_tls::peer_identity(&CertificateDer::from(leaf.as_slice())).expect("a test identity");
    let workload = presented.workload.unwrap_or_else(|| {
        Workload::new(id.namespace(), id.service_account(), id.service_account())
    });
    LocalNames::new(id, workload, presented.serves)
}
