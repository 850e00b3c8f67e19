//! What each process of the demo does. Every role ends when its stdin closes (the supervisor
//! holds it), so no process outlives the demo.

use std::io::Write;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use axum::Router;
use axum::extract::State;
use axum::response::IntoResponse;
use axum::routing::{get, post};
use bytes::Bytes;
use http::{Request, StatusCode};
use http_body_util::{BodyExt, Full};
use smi_client::{Mesh, MeshClient, MeshConfig};
use smi_server::AuthorizeLayer;
use tokio::net::TcpListener;

use super::stats::ClientReport;
use super::{READY, STATS, Workload};

type Error = Box<dyn std::error::Error + Send + Sync>;

/// How long a client pauses between purchases.
const PACE: Duration = Duration::from_millis(10);

fn say(line: &str) {
    let mut out = std::io::stdout().lock();
    let _ = writeln!(out, "{line}");
    let _ = out.flush();
}

/// Resolves when the supervisor closes our stdin (or goes away).
async fn supervisor_gone() {
    let _ = tokio::task::spawn_blocking(|| {
        let mut sink = String::new();
        while std::io::stdin().read_line(&mut sink).is_ok_and(|n| n > 0) {
            sink.clear();
        }
    })
    .await;
}

pub async fn control(policy_dir: PathBuf, state_dir: PathBuf) -> Result<(), Error> {
    let running = smi_control::serve::start(smi_control::serve::ServeConfig {
        policy_dir,
        state_dir,
        listen: "127.0.0.1:0".parse()?,
        admin: "127.0.0.1:0".parse()?,
        ..Default::default()
    })
    .await?;
    say(&format!(
        "{READY} {} {}",
        running.api_addr, running.admin_addr
    ));
    supervisor_gone().await;
    running.shutdown().await;
    Ok(())
}

async fn join(workload: &Workload) -> Result<Mesh, Error> {
    let config = MeshConfig::from_env()?
        .calls(workload.calls.iter().copied())
        .workload(workload.role);
    Ok(Mesh::start(config).await?)
}

#[derive(Clone)]
struct Shop {
    name: &'static str,
    sold: Arc<AtomicU64>,
    warehouse: Option<MeshClient<Full<Bytes>>>,
}

async fn buy(State(shop): State<Shop>) -> impl IntoResponse {
    let sold = shop.sold.fetch_add(1, Ordering::Relaxed) + 1;
    // Every tenth sale, restock (in the background: the buyer does not wait for it).
    if sold % 10 == 0
        && let Some(warehouse) = shop.warehouse.clone()
    {
        tokio::spawn(async move {
            let request = Request::post("http://bookwarehouse.bookwarehouse/restock-books")
                .body(Full::new(Bytes::new()));
            match request {
                Ok(request) => match warehouse.send(request).await {
                    Ok(r) if r.status().is_success() => {}
                    Ok(r) => tracing::warn!(status = %r.status(), "restock refused"),
                    Err(e) => tracing::warn!(error = %e, "restock failed"),
                },
                Err(e) => tracing::warn!(error = %e, "restock request"),
            }
        });
    }
    (
        [("x-backend", shop.name)],
        format!("{}: book {sold}\n", shop.name),
    )
}

async fn books_bought(State(shop): State<Shop>) -> String {
    format!("{}\n", shop.sold.load(Ordering::Relaxed))
}

async fn restock() -> &'static str {
    "restocked\n"
}

/// bookstore-v1, bookstore-v2, bookwarehouse.
pub async fn server(workload: &'static Workload) -> Result<(), Error> {
    let mesh = join(workload).await?;
    let listener = TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    let router = if workload.role == "bookwarehouse" {
        Router::new().route("/restock-books", post(restock))
    } else {
        Router::new()
            .route("/buy-a-book/new", get(buy))
            .route("/books-bought", get(books_bought))
            .with_state(Shop {
                name: workload.role,
                sold: Arc::default(),
                warehouse: Some(MeshClient::new(mesh.clone())),
            })
    };
    let service = tower_layer::Layer::layer(&AuthorizeLayer::new(mesh.clone()), router);
    let _registrations: Vec<_> = workload
        .serves
        .iter()
        .map(|service| mesh.register(service, addr))
        .collect();
    say(READY);
    tokio::select! {
        result = smi_server::serve(listener, &mesh, service) => result?,
        () = supervisor_gone() => {}
    }
    Ok(())
}

/// bookbuyer, bookthief: buy books in a loop and report the counts.
pub async fn client(workload: &'static Workload) -> Result<(), Error> {
    let mesh = join(workload).await?;
    // Start once both bookstores are known (or after 10 s, and count what fails).
    let mut changes = mesh.changed();
    let _ = tokio::time::timeout(Duration::from_secs(10), async {
        loop {
            let policy = mesh.policy_full();
            if ["bookstore-v1", "bookstore-v2"]
                .iter()
                .all(|b| !policy.endpoints("bookstore", b).is_empty())
            {
                return;
            }
            if changes.changed().await.is_err() {
                return;
            }
        }
    })
    .await;
    say(READY);
    let client: MeshClient<Full<Bytes>> = MeshClient::new(mesh);
    let mut report = ClientReport::default();
    let mut last_report = tokio::time::Instant::now();
    let stop = tokio::spawn(supervisor_gone());
    while !stop.is_finished() {
        let request = Request::get("http://bookstore.bookstore/buy-a-book/new")
            .body(Full::new(Bytes::new()))?;
        record(&mut report, client.send(request).await).await;
        if last_report.elapsed() >= Duration::from_millis(200) {
            say(&format!("{STATS}{}", serde_json::to_string(&report)?));
            last_report = tokio::time::Instant::now();
        }
        tokio::time::sleep(PACE).await;
    }
    // The last word, so that the summary counts every request.
    say(&format!("{STATS}{}", serde_json::to_string(&report)?));
    Ok(())
}

async fn record(
    report: &mut ClientReport,
    result: Result<http::Response<hyper::body::Incoming>, smi_client::OutboundError>,
) {
    match result {
        Ok(response) => {
            let status = response.status();
            let backend = response
                .headers()
                .get("x-backend")
                .and_then(|v| v.to_str().ok())
                .map(str::to_owned);
            let body = response.into_body().collect().await;
            if body.is_err() {
                report.counts.failed += 1;
                report.last_error = Some("response body interrupted".to_owned());
            } else if status.is_success() {
                report.counts.ok += 1;
                if let Some(backend) = backend {
                    *report.backends.entry(backend).or_default() += 1;
                }
            } else if status == StatusCode::FORBIDDEN {
                report.counts.denied += 1;
            } else {
                report.counts.failed += 1;
                report.last_error = Some(format!("HTTP {status}"));
            }
        }
        Err(e) => {
            report.counts.failed += 1;
            report.last_error = Some(e.to_string());
        }
    }
}
