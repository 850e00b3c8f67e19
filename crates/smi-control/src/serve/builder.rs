//! [`ControlBuilder`]: a control service assembled from its parts. Each part has a file-based
//! default (the policy directory, the state directory); others plug in beside or instead of
//! them (see [`crate::traits`]).

use std::sync::Arc;

use arc_swap::ArcSwap;
use smi_core::Options;
use tokio::net::TcpListener;
use tokio::sync::watch;

use super::ca::{self, CaKeeper, server_ips, server_tls};
use super::{Running, ServeConfig, ServeError, servers};
use crate::admin::{self, Access, AdminState, AdminToken, AllowedHosts, StoreView};
use crate::api::ControlApi;
use crate::enroll::{CertificateRenewal, JoinTokens};
use crate::etcd::{Etcd, EtcdEndpoints, LeasedRegistrations};
use crate::files::{PolicyDir, StateDir};
use crate::hub::{EndpointSink, Hub, Versions};
use crate::quota::StreamCounts;
use crate::registry::{Registry, RegistrySink};
use crate::revocation::Revocations;
use crate::source::PolicyReloader;
use crate::status::Status;
use crate::telemetry::{self, Clock, StoreLimits, SystemClock, TelemetryStore};
use crate::traits::{
    Authenticator, Authenticators, EndpointSource, PolicySource, SourceError, StateStore,
    WatchGuard,
};

type MakeEndpointSource = Box<dyn FnOnce(EndpointSink) -> Arc<dyn EndpointSource> + Send>;

/// Builds a control service from its parts:
///
/// ```no_run
/// # async fn run() -> Result<(), smi_control::serve::ServeError> {
/// use smi_control::files::{PolicyDir, StateDir};
/// use smi_control::serve::{ControlBuilder, ServeConfig};
///
/// let config = ServeConfig::default();
/// let running = ControlBuilder::new(config)
///     .policy_source(PolicyDir::new("/etc/smi/policy"))
///     .state_store(StateDir::new("/var/lib/smi"))
///     .start()
///     .await?;
/// # running.shutdown().await;
/// # Ok(())
/// # }
/// ```
///
/// Always present: the registry (the Register API's endpoints, one endpoint source) and the
/// control's own authenticators, join tokens then certificate renewal. What is not given is
/// the file-based default: the policy directory and the state directory of the config.
pub struct ControlBuilder {
    config: ServeConfig,
    policy: Option<Arc<dyn PolicySource>>,
    store: Option<Arc<dyn StateStore>>,
    endpoint_sources: Vec<(String, MakeEndpointSource)>,
    registrations: Option<Box<dyn RegistrySink>>,
    authenticators: Authenticators,
    clock: Arc<dyn Clock>,
    #[cfg(feature = "kubernetes")]
    aggregated: Option<(
        kube::Client,
        crate::kubernetes::aggregated::AggregatedApiConfig,
    )>,
}

impl std::fmt::Debug for ControlBuilder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ControlBuilder")
            .field("config", &self.config)
            .field("policy", &self.policy.as_ref().map(|p| p.name().to_owned()))
            .field("store", &self.store.as_ref().map(|s| s.name().to_owned()))
            .field(
                "endpoint_sources",
                &self
                    .endpoint_sources
                    .iter()
                    .map(|(n, _)| n)
                    .collect::<Vec<_>>(),
            )
            .field("authenticators", &self.authenticators)
            .field("clock", &self.clock)
            .finish()
    }
}

impl ControlBuilder {
    pub fn new(config: ServeConfig) -> Self {
        Self {
            config,
            policy: None,
            store: None,
            endpoint_sources: Vec::new(),
            registrations: None,
            authenticators: Authenticators::default(),
            clock: Arc::new(SystemClock),
            #[cfg(feature = "kubernetes")]
            aggregated: None,
        }
    }

    /// The clock the telemetry store reads (slots, windows, timestamps), instead of the wall
    /// clock: for tests, which move it on rather than sleep.
    #[must_use]
    pub fn telemetry_clock(mut self, clock: Arc<dyn Clock>) -> Self {
        self.clock = clock;
        self
    }

    /// Where the policy comes from, instead of `config.policy_dir`.
    #[must_use]
    pub fn policy_source(mut self, source: impl PolicySource) -> Self {
        self.policy = Some(Arc::new(source));
        self
    }

    /// Where the state is kept, instead of `config.state_dir`.
    #[must_use]
    pub fn state_store(mut self, store: impl StateStore) -> Self {
        self.store = Some(Arc::new(store));
        self
    }

    /// Another source of endpoints, beside the registry. `make` is given the source's own slot
    /// in the hub (named `name` in logs) when the control starts.
    #[must_use]
    pub fn endpoint_source<S: EndpointSource>(
        mut self,
        name: &str,
        make: impl FnOnce(EndpointSink) -> S + Send + 'static,
    ) -> Self {
        let make: MakeEndpointSource = Box::new(move |sink| Arc::new(make(sink)));
        self.endpoint_sources.push((name.to_owned(), make));
        self
    }

    /// Where the Register API's endpoints go, instead of this control's own slot in its hub:
    /// a store every replica reads, which an endpoint source then brings back.
    #[must_use]
    pub fn registrations(mut self, sink: impl RegistrySink) -> Self {
        self.registrations = Some(Box::new(sink));
        self
    }

    /// Every part on etcd, shared with the other replicas: the policy, the state, and the
    /// registrations (this replica's under its lease `lease`, every replica's read back).
    #[must_use]
    pub fn etcd(self, etcd: &Etcd, lease: std::time::Duration) -> Self {
        let replica = format!("{:016x}", rand::random::<u64>());
        let mirror = etcd.mirror().clone();
        self.policy_source(etcd.policy())
            .state_store(etcd.store())
            .registrations(LeasedRegistrations::start(etcd, replica, lease))
            .endpoint_source("etcd", move |sink| EtcdEndpoints::new(mirror, sink))
    }

    /// The cluster's parts (feature `kubernetes`): the SMI resources it serves as the policy
    /// source, its EndpointSlices as an endpoint source beside the registry, and pods'
    /// ServiceAccount tokens as a credential beside join tokens.
    #[cfg(feature = "kubernetes")]
    #[must_use]
    pub fn kubernetes(self, cluster: crate::kubernetes::Cluster) -> Self {
        let trust_domain = self.config.trust_domain.clone();
        let client = cluster.client.clone();
        let reviews =
            crate::kubernetes::token_review::TokenReviewAuthenticator::new(cluster.client.clone());
        self.policy_source(cluster.policy)
            .endpoint_source("kubernetes", move |sink| {
                crate::kubernetes::KubeEndpoints::new(client, &trust_domain, sink)
            })
            .authenticator(reviews)
    }

    /// Also serve the TrafficMetrics API to the cluster's aggregation layer (feature
    /// `kubernetes`; its own TLS listener, see [`crate::kubernetes::aggregated`]).
    #[cfg(feature = "kubernetes")]
    #[must_use]
    pub fn aggregated_api(
        mut self,
        client: kube::Client,
        config: crate::kubernetes::aggregated::AggregatedApiConfig,
    ) -> Self {
        self.aggregated = Some((client, config));
        self
    }

    /// Another authenticator, after the control's own (each claims only what it recognizes).
    #[must_use]
    pub fn authenticator(mut self, authenticator: impl Authenticator) -> Self {
        self.authenticators = self.authenticators.with(authenticator);
        self
    }

    /// Opens the parts, binds the API and admin listeners and starts serving.
    pub async fn start(self) -> Result<Running, ServeError> {
        let Self {
            config,
            policy,
            store,
            endpoint_sources,
            registrations,
            authenticators,
            clock,
            #[cfg(feature = "kubernetes")]
            aggregated,
        } = self;
        let policy: Arc<dyn PolicySource> = match policy {
            Some(policy) => policy,
            None if !config.policy_dir.is_dir() => {
                return Err(ServeError::PolicyDir(config.policy_dir.clone()));
            }
            None => Arc::new(PolicyDir::new(&config.policy_dir)),
        };
        let admin_token = config
            .admin_token_file
            .as_deref()
            .map(AdminToken::from_file)
            .transpose()?;
        let store: Arc<dyn StateStore> =
            store.unwrap_or_else(|| Arc::new(StateDir::new(&config.state_dir)));
        let authority = Arc::new(ArcSwap::from_pointee(ca::load(&config, &*store)?));
        let tokens = JoinTokens::new(&store.token_key()?, &config.trust_domain);
        let control_id = tokens.control_id().to_owned();
        let status = Status::new();
        let versions = Versions::from_store(store.clone()).map_err(ServeError::Versions)?;
        let hub = Hub::with_versions(config.permissive, versions);
        hub.set_bundle(authority.load().bundle().to_vec());
        let revocations = Revocations::new(store.clone(), &config.trust_domain, hub.clone())
            .map_err(ServeError::Revocations)?;
        let registry = match registrations {
            Some(sink) => Registry::from_sink(sink, config.quotas.clone(), config.lease),
            None => Registry::from_sink(
                hub.endpoint_sink("registrations"),
                config.quotas.clone(),
                config.lease,
            ),
        };
        let mut endpoints: Vec<Arc<dyn EndpointSource>> = vec![registry.clone()];
        for (name, make) in endpoint_sources {
            endpoints.push(make(hub.endpoint_sink(&name)));
        }

        let reloader = Arc::new(PolicyReloader::new(
            policy.clone(),
            hub.clone(),
            status.clone(),
            Options::default()
                .trust_domain(&config.trust_domain)
                .permissive(config.permissive),
        ));
        reloader.reload();
        let reload = {
            let reloader = reloader.clone();
            move || {
                reloader.reload();
            }
        };
        let mut watchers = vec![watching(policy.name(), policy.watch(Arc::new(reload)))?];
        // A change between the first load and the watch would be seen by neither.
        reloader.reload();

        let listener = bind(config.listen).await?;
        let api_addr = local_addr(&listener, config.listen)?;
        let ips = server_ips(api_addr.ip());
        let tls = Arc::new(ArcSwap::from_pointee(server_tls(
            &authority.load(),
            &config.server_names,
            &ips,
        )?));
        let config = Arc::new(config);
        let keeper = CaKeeper {
            config: config.clone(),
            store: store.clone(),
            authority: authority.clone(),
            tls: tls.clone(),
            hub: hub.clone(),
            ips,
        };
        // The state: the deny list (`smictl revoke`), and the CA unless it is provided.
        let refresh = config.ca_cert.is_none().then(|| keeper.clone());
        let on_state_change = {
            let revocations = revocations.clone();
            move || {
                revocations.reload();
                if let Some(keeper) = &refresh {
                    keeper.refresh();
                }
            }
        };
        let on_state_change = Arc::new(on_state_change);
        watchers.push(watching(
            store.name(),
            store.watch(on_state_change.clone()),
        )?);
        // As for the policy: a `smictl revoke` or `ca rotate` since the state was read. Off
        // this thread: a networked store's reads block.
        let again = on_state_change.clone();
        let _ = tokio::task::spawn_blocking(move || again()).await;

        let (shutdown, shutdown_rx) = watch::channel(false);
        let telemetry = Arc::new(TelemetryStore::new(
            clock,
            StoreLimits::from(&config.quotas),
        ));
        let api = ControlApi {
            ca: authority.clone(),
            authenticators: Authenticators::default()
                .with(tokens)
                .with(CertificateRenewal {
                    trust_domain: config.trust_domain.clone(),
                    max_chain_lifetime: config.max_chain_lifetime,
                })
                .then(authenticators),
            revocations,
            hub: hub.clone(),
            registry,
            status: status.clone(),
            certificate_ttl: config.certificate_ttl,
            max_chain_lifetime: config.max_chain_lifetime,
            lease: config.lease,
            quotas: config.quotas.clone(),
            watches: StreamCounts::new(
                "Watch",
                config.quotas.watches_per_identity,
                Some(config.quotas.watches_per_connection),
            ),
            registrations: StreamCounts::new(
                "Register",
                config.quotas.registrations_per_identity,
                None,
            ),
            stopping: shutdown_rx.clone(),
            telemetry: telemetry.clone(),
        };
        let admin_listener = bind(config.admin).await?;
        let admin_addr = local_addr(&admin_listener, config.admin)?;

        admin::warn_if_exposed(admin_addr, admin_token.is_some());
        let admin_access = Access::new(
            AllowedHosts::new(admin_addr.ip(), &config.admin_hosts),
            admin_token,
        );
        #[cfg(feature = "kubernetes")]
        let aggregated = match aggregated {
            Some((client, aggregated_config)) => Some(
                crate::kubernetes::aggregated::AggregatedApi::start(
                    client,
                    aggregated_config,
                    crate::telemetry::MetricsState {
                        telemetry: telemetry.clone(),
                        hub: hub.clone(),
                    },
                    authority.clone(),
                    shutdown_rx.clone(),
                )
                .await
                .map_err(|e| ServeError::AggregatedApi(e.to_string()))?,
            ),
            None => None,
        };
        #[cfg(feature = "kubernetes")]
        let aggregated_api_addr = aggregated.as_ref().map(|a| a.local_addr());
        #[cfg(not(feature = "kubernetes"))]
        let aggregated_api_addr = None;
        let mut tasks = vec![
            servers::grpc(api, listener, tls, shutdown_rx.clone()),
            servers::admin(
                AdminState {
                    hub,
                    status,
                    telemetry: telemetry.clone(),
                    store: StoreView::new(store.clone()),
                },
                admin_access,
                admin_listener,
                shutdown_rx.clone(),
            ),
        ];
        // The endpoint sources: until each is synced (the registry: one lease after a start),
        // views say their endpoints are partial.
        for source in endpoints {
            tasks.push(tokio::spawn(source.run(shutdown_rx.clone())));
        }
        tasks.push(tokio::spawn(telemetry::sweep_until(
            telemetry,
            shutdown_rx.clone(),
        )));
        tasks.push(tokio::spawn(keeper.timers(shutdown_rx)));
        #[cfg(feature = "kubernetes")]
        tasks.extend(aggregated.map(|a| a.into_task()));

        let bundle_pem = smi_core::pem::certificates(authority.load().bundle());
        tracing::info!(%api_addr, %admin_addr, control = %control_id, policy = policy.name(), state = store.name(), "smi-control ready");
        Ok(Running {
            api_addr,
            admin_addr,
            aggregated_api_addr,
            bundle_pem,
            shutdown,
            tasks,
            _watchers: watchers,
        })
    }
}

/// A part's watch, or what stops the start: `what` could not be watched.
fn watching(
    what: &str,
    watched: Result<WatchGuard, SourceError>,
) -> Result<WatchGuard, ServeError> {
    watched.map_err(|e| ServeError::Watch {
        what: what.to_owned(),
        message: e.to_string(),
    })
}

async fn bind(addr: std::net::SocketAddr) -> Result<TcpListener, ServeError> {
    TcpListener::bind(addr)
        .await
        .map_err(|source| ServeError::Bind { addr, source })
}

fn local_addr(
    listener: &TcpListener,
    addr: std::net::SocketAddr,
) -> Result<std::net::SocketAddr, ServeError> {
    listener
        .local_addr()
        .map_err(|source| ServeError::Bind { addr, source })
}
