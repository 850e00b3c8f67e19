//! `smi-control serve`: the control service. See `smi_control::serve`.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::{Parser, Subcommand};
use smi_control::cli::EtcdArgs;
use smi_control::cli::duration::parse_duration;
use smi_control::quota::Quotas;
use smi_control::serve::{ControlBuilder, ServeConfig};

#[derive(Debug, Parser)]
#[command(
    name = "smi-control",
    version,
    about = "The smi-mesh control service: CA and policy distribution"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Serve the control API (gRPC over TLS) and the admin HTTP endpoints.
    Serve(ServeArgs),
}

#[derive(Debug, clap::Args)]
struct ServeArgs {
    /// Directory of SMI YAML/JSON; watched, and reloaded on change.
    #[arg(
        long,
        required_unless_present_any = ["endpoints", "kubernetes"],
        conflicts_with_all = ["endpoints", "kubernetes"]
    )]
    policy_dir: Option<PathBuf>,
    /// Where the CA and the token key live (created on first start; secrets are mode 0600).
    #[arg(
        long,
        required_unless_present_any = ["endpoints", "kubernetes"],
        conflicts_with = "endpoints"
    )]
    state_dir: Option<PathBuf>,
    #[command(flatten)]
    etcd: EtcdArgs,
    /// Read the policy from the cluster's SMI resources and the endpoints from its
    /// EndpointSlices (in-cluster configuration, or the kubeconfig KUBECONFIG or --kubeconfig
    /// names). Built with the `kubernetes` feature only.
    #[arg(long, conflicts_with = "endpoints")]
    kubernetes: bool,
    /// With --kubernetes and no --state-dir: the Secret the state is kept in, `NAMESPACE/NAME`
    /// (the CA in cert-manager's tls.crt/tls.key/ca.crt; shared by every replica).
    /// Default `smi-system/smi-control-state`.
    #[arg(
        long,
        value_name = "NS/NAME",
        requires = "kubernetes",
        conflicts_with = "state_dir"
    )]
    state_secret: Option<String>,
    /// The kubeconfig for --kubernetes, instead of KUBECONFIG or the in-cluster configuration.
    #[arg(long, value_name = "FILE", requires = "kubernetes")]
    kubeconfig: Option<PathBuf>,
    /// Also serve the TrafficMetrics API to the cluster's aggregation layer here (TLS; the
    /// APIService v1alpha1.metrics.smi-spec.io points at it).
    #[arg(long, value_name = "ADDR", requires = "kubernetes")]
    aggregated_api_listen: Option<SocketAddr>,
    /// Another DNS name for the aggregated API's certificate (it always has
    /// smi-control.smi-system.svc[.cluster.local]); repeat for more.
    #[arg(
        long = "aggregated-api-server-name",
        value_name = "NAME",
        requires = "aggregated_api_listen"
    )]
    aggregated_api_server_names: Vec<String>,
    #[arg(long, default_value = "127.0.0.1:7443")]
    listen: SocketAddr,
    /// The admin HTTP API (health, metrics, /debug/*, the TrafficMetrics API under /apis/*).
    /// Keep it on loopback; any other address is logged as a warning at start.
    #[arg(long, default_value = "127.0.0.1:7080")]
    admin: SocketAddr,
    /// A name (or IP) the admin API answers to in Host, besides localhost, loopback IPs and the
    /// --admin IP; requests naming anything else get 421 (DNS rebinding). Repeat for more.
    #[arg(long = "admin-host", value_name = "NAME")]
    admin_hosts: Vec<String>,
    /// A file (mode 0600 or stricter) with a bearer token that every admin path except
    /// /healthz, /readyz and /metrics then needs (`Authorization: Bearer <token>`).
    #[arg(long, value_name = "PATH")]
    admin_token_file: Option<PathBuf>,
    #[arg(long, default_value = smi_core::DEFAULT_TRUST_DOMAIN)]
    trust_domain: String,
    /// Workload certificate lifetime (e.g. 24h, 10m, 60s; at least 1m).
    #[arg(long, default_value = "24h", value_parser = parse_duration)]
    cert_ttl: Duration,
    /// How long a workload renews its certificate after enrolling with a join token; then it
    /// needs a new token (at least --cert-ttl).
    #[arg(long, default_value = "7d", value_parser = parse_duration)]
    max_chain_lifetime: Duration,
    /// Registration lease: endpoints without a heartbeat for this long are removed.
    #[arg(long, default_value = "15s", value_parser = parse_duration)]
    lease: Duration,
    /// Use this CA certificate (PEM, root or intermediate) instead of the state directory's root.
    #[arg(long, requires = "ca_key")]
    ca_cert: Option<PathBuf>,
    /// The private key of --ca-cert (PEM).
    #[arg(long, requires = "ca_cert")]
    ca_key: Option<PathBuf>,
    /// Roots above an intermediate --ca-cert (PEM); they form the trust bundle.
    #[arg(long, requires = "ca_cert")]
    ca_bundle: Option<PathBuf>,
    /// Extra DNS names for the API's certificate.
    #[arg(long = "server-name")]
    server_names: Vec<String>,
    /// Allow all traffic between workloads (like OSM's permissive mode).
    #[arg(long)]
    permissive: bool,
    /// Quota: endpoints one Register stream may announce.
    #[arg(long, default_value_t = Quotas::default().endpoints_per_registration)]
    max_endpoints_per_registration: usize,
    /// Quota: endpoints one identity may hold over all its registrations.
    #[arg(long, default_value_t = Quotas::default().endpoints_per_identity)]
    max_endpoints_per_identity: usize,
    /// Quota: open Watch streams of one identity (its replicas together).
    #[arg(long, default_value_t = Quotas::default().watches_per_identity)]
    max_watches_per_identity: usize,
    /// Quota: telemetry series one reporting pod may hold (one per direction, peer, service,
    /// backend and route); new series beyond it are dropped and counted in
    /// smi_control_telemetry_series_dropped_total.
    #[arg(long, default_value_t = Quotas::default().telemetry_series_per_workload)]
    max_telemetry_series_per_workload: usize,
    /// Log as JSON lines instead of text.
    #[arg(long)]
    log_json: bool,
}

fn main() -> ExitCode {
    let Command::Serve(mut args) = Cli::parse().command;
    init_logs(args.log_json);
    if args.cert_ttl < Duration::from_secs(60) {
        eprintln!("error: --cert-ttl must be at least 1m");
        return ExitCode::from(2);
    }
    if args.max_chain_lifetime < args.cert_ttl {
        eprintln!("error: --max-chain-lifetime must be at least --cert-ttl");
        return ExitCode::from(2);
    }
    if !args.etcd.endpoints.is_empty() && args.etcd.seal_key.is_none() {
        eprintln!("error: --etcd needs --seal-key FILE (the same file on every replica)");
        return ExitCode::from(2);
    }
    // Before the runtime: connecting reads every key once, on the etcd client's own runtime.
    let etcd = match args.etcd.connect() {
        Ok(etcd) => etcd,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::FAILURE;
        }
    };
    let kube_args = args.kubernetes_args();
    // Before the runtime, as etcd: the Secret store reads the Secret on a runtime of its own.
    let secret_store = match state_secret(&args, &kube_args) {
        Ok(store) => store,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::FAILURE;
        }
    };
    let config = ServeConfig {
        policy_dir: args.policy_dir.take().unwrap_or_default(),
        state_dir: args.state_dir.take().unwrap_or_default(),
        listen: args.listen,
        admin: args.admin,
        admin_hosts: args.admin_hosts,
        admin_token_file: args.admin_token_file,
        trust_domain: args.trust_domain,
        certificate_ttl: args.cert_ttl,
        max_chain_lifetime: args.max_chain_lifetime,
        lease: args.lease,
        ca_cert: args.ca_cert,
        ca_key: args.ca_key,
        ca_bundle: args.ca_bundle,
        server_names: args.server_names,
        permissive: args.permissive,
        quotas: Quotas {
            endpoints_per_registration: args.max_endpoints_per_registration,
            endpoints_per_identity: args.max_endpoints_per_identity,
            watches_per_identity: args.max_watches_per_identity,
            telemetry_series_per_workload: args.max_telemetry_series_per_workload,
            ..Quotas::default()
        },
    };
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: starting the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    runtime.block_on(async {
        let lease = config.lease;
        let builder = ControlBuilder::new(config);
        let builder = match &etcd {
            Some(etcd) => builder.etcd(etcd, lease),
            None => builder,
        };
        let builder = match secret_store {
            Some(store) => store.into_builder(builder),
            None => builder,
        };
        let builder = match kubernetes(&kube_args).await {
            Ok(Some(cluster)) => with_cluster(builder, cluster, &kube_args),
            Ok(None) => builder,
            Err(message) => {
                eprintln!("error: {message}");
                return ExitCode::FAILURE;
            }
        };
        let running = match builder.start().await {
            Ok(r) => r,
            Err(e) => {
                tracing::error!(error = %e, "cannot start");
                eprintln!("error: {e}");
                return ExitCode::FAILURE;
            }
        };
        shutdown_signal().await;
        tracing::info!("shutting down");
        running.shutdown().await;
        ExitCode::SUCCESS
    })
}

/// `--kubernetes` and `--kubeconfig`, as the cluster is reached.
struct KubernetesArgs {
    enabled: bool,
    kubeconfig: Option<PathBuf>,
    aggregated_api_listen: Option<SocketAddr>,
    aggregated_api_server_names: Vec<String>,
}

impl ServeArgs {
    fn kubernetes_args(&self) -> KubernetesArgs {
        KubernetesArgs {
            enabled: self.kubernetes,
            kubeconfig: self.kubeconfig.clone(),
            aggregated_api_listen: self.aggregated_api_listen,
            aggregated_api_server_names: self.aggregated_api_server_names.clone(),
        }
    }
}

/// The Secret the state is kept in: with `--kubernetes` and no `--state-dir`.
#[cfg(feature = "kubernetes")]
fn state_secret(args: &ServeArgs, kube: &KubernetesArgs) -> Result<Option<StateSecret>, String> {
    if !kube.enabled || args.state_dir.is_some() {
        return Ok(None);
    }
    let secret = args
        .state_secret
        .as_deref()
        .unwrap_or("smi-system/smi-control-state");
    let (namespace, name) = secret
        .split_once('/')
        .ok_or_else(|| format!("--state-secret {secret:?}: expected NAMESPACE/NAME"))?;
    smi_control::kubernetes::SecretStore::connect(kube.kubeconfig.as_deref(), namespace, name)
        .map(|store| Some(StateSecret(store)))
        .map_err(|e| format!("--state-secret {secret}: {e}"))
}

#[cfg(not(feature = "kubernetes"))]
fn state_secret(_: &ServeArgs, _: &KubernetesArgs) -> Result<Option<StateSecret>, String> {
    Ok(None)
}

/// The Secret store, when there is one (a type of its own so that a build without the
/// `kubernetes` feature has the same code path).
struct StateSecret(#[cfg(feature = "kubernetes")] smi_control::kubernetes::SecretStore);

impl StateSecret {
    #[cfg(feature = "kubernetes")]
    fn into_builder(self, builder: ControlBuilder) -> ControlBuilder {
        builder.state_store(self.0)
    }

    #[cfg(not(feature = "kubernetes"))]
    fn into_builder(self, builder: ControlBuilder) -> ControlBuilder {
        builder
    }
}

/// The cluster, connected and listed, when `--kubernetes` is given.
#[cfg(feature = "kubernetes")]
async fn kubernetes(
    args: &KubernetesArgs,
) -> Result<Option<smi_control::kubernetes::Cluster>, String> {
    if !args.enabled {
        return Ok(None);
    }
    smi_control::kubernetes::Cluster::connect(args.kubeconfig.as_deref())
        .await
        .map(Some)
        .map_err(|e| e.to_string())
}

#[cfg(not(feature = "kubernetes"))]
async fn kubernetes(args: &KubernetesArgs) -> Result<Option<std::convert::Infallible>, String> {
    if args.enabled {
        return Err("--kubernetes: this smi-control was built without the `kubernetes` feature (cargo build -p smi-control --features kubernetes)".into());
    }
    let _ = (
        &args.kubeconfig,
        &args.aggregated_api_listen,
        &args.aggregated_api_server_names,
    );
    Ok(None)
}

#[cfg(feature = "kubernetes")]
fn with_cluster(
    builder: ControlBuilder,
    cluster: smi_control::kubernetes::Cluster,
    args: &KubernetesArgs,
) -> ControlBuilder {
    let client = cluster.client.clone();
    let builder = builder.kubernetes(cluster);
    match args.aggregated_api_listen {
        Some(listen) => builder.aggregated_api(
            client,
            smi_control::kubernetes::aggregated::AggregatedApiConfig {
                listen,
                server_names: args.aggregated_api_server_names.clone(),
                ..Default::default()
            },
        ),
        None => builder,
    }
}

#[cfg(not(feature = "kubernetes"))]
fn with_cluster(
    _: ControlBuilder,
    never: std::convert::Infallible,
    _: &KubernetesArgs,
) -> ControlBuilder {
    match never {}
}

async fn shutdown_signal() {
    let ctrl_c = tokio::signal::ctrl_c();
    match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
        Ok(mut term) => {
            tokio::select! {
                _ = ctrl_c => {}
                _ = term.recv() => {}
            }
        }
        Err(_) => {
            let _ = ctrl_c.await;
        }
    }
}

fn init_logs(json: bool) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .with_writer(std::io::stderr);
    if json {
        builder.json().init();
    } else {
        builder.init();
    }
}
