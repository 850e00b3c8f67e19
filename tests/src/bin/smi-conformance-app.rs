//! `smi-conformance-app`: the SMI conformance suite's test app (`service/main.go` of
//! layer5io/learn-layer5; `../shared/smi/CONFORMANCE.md`), meshed.
//!
//! Two listeners:
//! - the **mesh listener** (`--listen`): mTLS, SMI policy enforced. `GET /metrics` returns the
//!   counters; every other path behaves like `/echo` and is counted in `ReqReceived`, so that
//!   policies on any route can be exercised.
//! - the **control listener** (`--control-listen`, plain HTTP, for a test harness on loopback;
//!   not subject to policy): `POST /call`, `GET /echo`, `GET` and `DELETE /metrics`.
//!
//! `POST /call` takes `{"url","method","headers","body"}` and makes that request through the mesh
//! with `ServiceName: <--name>` added: status 200-399 is recorded in `RespSucceeded`, any other
//! status in `RespFailed`, and a transport error in neither (the harness gets 500).
//!
//! Prints `ready <mesh-addr> <control-addr>` on stdout once serving; stops on Ctrl-C/SIGTERM.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::process::ExitCode;
use std::sync::{Arc, Mutex};

use axum::Router;
use axum::extract::State;
use axum::http::{HeaderMap, Method, StatusCode, Uri};
use axum::response::IntoResponse;
use axum::routing::{any, get, post};
use bytes::Bytes;
use clap::Parser;
use http_body_util::{BodyExt, Full};
use serde::{Deserialize, Serialize};
use smi_client::control::ControlAddr;
use smi_client::{Mesh, MeshClient, MeshConfig};
use smi_server::AuthorizeLayer;
use tokio::net::TcpListener;

#[derive(Debug, Parser)]
#[command(
    name = "smi-conformance-app",
    about = "The SMI conformance suite's test app, meshed"
)]
struct Args {
    /// A service this app serves, `ns/name` (its mesh endpoint is registered for each).
    #[arg(long = "service", required = true)]
    services: Vec<String>,
    /// The app's SERVICE_NAME (sent as the `ServiceName` header of its calls).
    #[arg(long)]
    name: String,
    #[arg(long, default_value = "127.0.0.1:0")]
    listen: SocketAddr,
    #[arg(long, default_value = "127.0.0.1:0")]
    control_listen: SocketAddr,
    /// The control service (default: SMI_CONTROL_ADDR).
    #[arg(long)]
    control: Option<String>,
    /// The join token (default: SMI_TOKEN or SMI_TOKEN_FILE).
    #[arg(long)]
    token: Option<String>,
}

#[derive(Clone, Debug, Default, Serialize)]
struct Call {
    #[serde(rename = "URL")]
    url: String,
    #[serde(rename = "Method")]
    method: String,
    #[serde(rename = "Headers")]
    headers: BTreeMap<String, String>,
}

#[derive(Debug, Default, Serialize)]
struct Metrics {
    #[serde(rename = "ReqReceived")]
    req_received: Vec<String>,
    #[serde(rename = "RespSucceeded")]
    resp_succeeded: Vec<Call>,
    #[serde(rename = "RespFailed")]
    resp_failed: Vec<Call>,
}

#[derive(Debug, Deserialize)]
struct CallRequest {
    url: String,
    #[serde(default = "get_method")]
    method: String,
    #[serde(default)]
    headers: BTreeMap<String, String>,
    #[serde(default)]
    body: String,
}

fn get_method() -> String {
    "GET".to_owned()
}

#[derive(Clone)]
struct App {
    name: Arc<str>,
    metrics: Arc<Mutex<Metrics>>,
    client: MeshClient<Full<Bytes>>,
}

impl App {
    fn metrics(&self) -> std::sync::MutexGuard<'_, Metrics> {
        self.metrics.lock().unwrap_or_else(|e| e.into_inner())
    }
}

async fn echo(
    State(app): State<App>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
) -> impl IntoResponse {
    let caller = headers
        .get("ServiceName")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("Unidentified")
        .to_owned();
    app.metrics().req_received.push(caller);
    let headers: BTreeMap<String, String> = headers
        .iter()
        .map(|(k, v)| {
            (
                k.to_string(),
                String::from_utf8_lossy(v.as_bytes()).into_owned(),
            )
        })
        .collect();
    axum::Json(serde_json::json!({
        "method": method.as_str(),
        "path": uri.path(),
        "headers": headers,
        "served_by": &*app.name,
    }))
}

async fn metrics_get(State(app): State<App>) -> impl IntoResponse {
    axum::Json(serde_json::to_value(&*app.metrics()).unwrap_or_default())
}

async fn metrics_delete(State(app): State<App>) -> StatusCode {
    *app.metrics() = Metrics::default();
    StatusCode::OK
}

async fn call(
    State(app): State<App>,
    axum::Json(call): axum::Json<CallRequest>,
) -> impl IntoResponse {
    let mut builder = http::Request::builder()
        .method(call.method.as_str())
        .uri(&call.url);
    for (k, v) in &call.headers {
        builder = builder.header(k, v);
    }
    builder = builder.header("ServiceName", &*app.name);
    let request = match builder.body(Full::new(Bytes::from(call.body.clone()))) {
        Ok(r) => r,
        Err(e) => return (StatusCode::BAD_REQUEST, format!("bad call: {e}\n")).into_response(),
    };
    let mut record = Call {
        url: call.url.clone(),
        method: call.method.clone(),
        headers: call.headers.clone(),
    };
    record
        .headers
        .insert("ServiceName".to_owned(), app.name.to_string());
    match app.client.send(request).await {
        Ok(response) => {
            let status = response.status();
            let body = response
                .into_body()
                .collect()
                .await
                .map(|b| b.to_bytes())
                .unwrap_or_default();
            let mut metrics = app.metrics();
            if (200..400).contains(&status.as_u16()) {
                metrics.resp_succeeded.push(record);
            } else {
                metrics.resp_failed.push(record);
            }
            (status, body).into_response()
        }
        Err(e) => (
            StatusCode::INTERNAL_SERVER_ERROR,
            format!("call failed: {e}\n"),
        )
            .into_response(),
    }
}

type Error = Box<dyn std::error::Error + Send + Sync>;

async fn run(args: Args) -> Result<(), Error> {
    let mut config = match (&args.control, &args.token) {
        (Some(control), Some(token)) => {
            MeshConfig::new(ControlAddr::parse(control)?, token.clone())
        }
        _ => {
            let mut from_env = MeshConfig::from_env()?;
            if let Some(control) = &args.control {
                from_env.control = ControlAddr::parse(control)?;
            }
            if let Some(token) = &args.token {
                from_env.token = token.clone();
            }
            from_env
        }
    };
    // `--name` is the workload's name (SMI_WORKLOAD_NAME may not override it); the pod is the
    // host's unless SMI_POD_NAME says otherwise.
    config = config
        .calls(["*"])
        .workload(args.name.clone())
        .workload_name(args.name.clone());
    let mesh = Mesh::start(config).await?;
    let app = App {
        name: args.name.clone().into(),
        metrics: Arc::default(),
        client: MeshClient::new(mesh.clone()),
    };

    let mesh_router = Router::new()
        .route("/metrics", get(metrics_get))
        .route(
            "/call",
            any(|| async { (StatusCode::NOT_FOUND, "/call is on the control listener\n") }),
        )
        .fallback(echo)
        .with_state(app.clone());
    let control_router = Router::new()
        .route("/call", post(call))
        .route("/echo", get(echo))
        .route("/metrics", get(metrics_get).delete(metrics_delete))
        .with_state(app);

    let mesh_listener = TcpListener::bind(args.listen).await?;
    let control_listener = TcpListener::bind(args.control_listen).await?;
    let mesh_addr = mesh_listener.local_addr()?;
    let control_addr = control_listener.local_addr()?;
    let _registrations: Vec<_> = args
        .services
        .iter()
        .map(|s| mesh.register(s, mesh_addr))
        .collect();
    let service = tower_layer::Layer::layer(&AuthorizeLayer::new(mesh.clone()), mesh_router);
    println!("ready {mesh_addr} {control_addr}");
    tokio::select! {
        result = smi_server::serve(mesh_listener, &mesh, service) => result?,
        result = axum::serve(control_listener, control_router) => result?,
        _ = tokio::signal::ctrl_c() => {}
    }
    Ok(())
}

fn main() -> ExitCode {
    let args = Args::parse();
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn")),
        )
        .init();
    let result = tokio::runtime::Runtime::new()
        .map_err(Error::from)
        .and_then(|rt| rt.block_on(run(args)));
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("smi-conformance-app: {e}");
            ExitCode::FAILURE
        }
    }
}
