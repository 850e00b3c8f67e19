//! Many clients: 100 at once, each on its own connection with one request in flight (a closed
//! loop per client), GETs of 1 KiB. Figures: requests/s of all clients together, and the
//! latency p50 and p99 of their requests.
//!
//! A, B and D: 100 HTTP/2 connections. C: 100 `MeshClient`s, each with its own pool, so its
//! own connection to each of the 3 endpoints of the split it uses. They are spread over the
//! four client identities (`server::CLIENTS`): 100 clients x 3 endpoints from one identity
//! would exceed the 256 connections C's server admits per peer identity
//! (`ServeOptions::max_connections_per_peer`).

use std::time::{Duration, Instant};

use smi_benches::stats::spread;
use smi_client::{Mesh, MeshClient};

use super::{A, B, C, D, Settings, Setup, difference, ratio};
use crate::Error;
use crate::call::{Call, Http, h2};
use crate::server::PATH;
use crate::table::table;

const CLIENTS: usize = 100;

/// The value at quantile `q` of sorted values.
fn quantile(sorted: &[f64], q: f64) -> f64 {
    sorted
        .get(((sorted.len().max(1) - 1) as f64 * q) as usize)
        .copied()
        .unwrap_or(f64::NAN)
}

/// Requests per second and sorted latencies (microseconds) of a closed loop: each of `calls`
/// sends its next request when the last one is answered, for `window`.
async fn closed_loop(calls: &[Call], window: Duration) -> Result<(f64, Vec<f64>), Error> {
    let started = Instant::now();
    let deadline = started + window;
    let workers: Vec<_> = calls
        .iter()
        .map(|call| {
            let call = call.clone();
            tokio::spawn(async move {
                let mut latencies = Vec::new();
                while Instant::now() < deadline {
                    let t = Instant::now();
                    call.once().await?;
                    latencies.push(t.elapsed().as_secs_f64() * 1e6);
                }
                Ok::<_, Error>(latencies)
            })
        })
        .collect();
    let mut latencies = Vec::new();
    for w in workers {
        latencies.extend(w.await??);
    }
    let rps = latencies.len() as f64 / started.elapsed().as_secs_f64();
    latencies.sort_by(f64::total_cmp);
    Ok((rps, latencies))
}

pub async fn run(setup: &Setup<'_>, settings: Settings, meshes: &[Mesh]) -> Result<(), Error> {
    let [a, b, _] = setup.addrs;
    let get = |client, origin: String| Call::Get {
        client,
        uri: format!("{origin}{PATH}").into(),
    };
    let mut variants: Vec<(&str, Vec<Call>)> = Vec::new();
    if setup.wants(A) {
        let mut calls = Vec::new();
        for _ in 0..CLIENTS {
            let client = Http::Plain(h2(crate::tcp(a).await?).await?);
            calls.push(get(client, format!("http://{a}")));
        }
        variants.push((A, calls));
    }
    if setup.wants(B) {
        let mut calls = Vec::new();
        for _ in 0..CLIENTS {
            let client = Http::Plain(h2(crate::mtls(setup.client, b).await?).await?);
            calls.push(get(client, format!("https://{b}")));
        }
        variants.push((B, calls));
    }
    if setup.wants(C) {
        let calls = (0..CLIENTS)
            .map(|i| {
                let mesh = meshes[i % meshes.len()].clone();
                get(
                    Http::Mesh(MeshClient::new(mesh)),
                    "http://data.bench".into(),
                )
            })
            .collect();
        variants.push((C, calls));
    }
    if let Some((d, _)) = setup.sidecars.as_ref().filter(|_| setup.wants(D)) {
        let mut calls = Vec::new();
        for _ in 0..CLIENTS {
            let client = Http::Plain(h2(crate::tcp(*d).await?).await?);
            calls.push(get(client, format!("http://{d}")));
        }
        variants.push((D, calls));
    }
    // Warm-up: C's clients open their connections (to whichever endpoints they pick).
    for (_, calls) in &variants {
        closed_loop(calls, settings.window / 2).await?;
    }
    let mut figures = vec![[Vec::new(), Vec::new(), Vec::new()]; variants.len()];
    for _ in 0..settings.rounds {
        for ((_, calls), [rps, p50, p99]) in variants.iter().zip(&mut figures) {
            let (r, latencies) = closed_loop(calls, settings.window).await?;
            rps.push(r);
            p50.push(quantile(&latencies, 0.5));
            p99.push(quantile(&latencies, 0.99));
        }
    }

    println!(
        "# clients: {CLIENTS} clients, each on its own connection (C: {CLIENTS} MeshClients over {} identities), one 1 KiB GET in flight each; latencies in us",
        meshes.len()
    );
    table(
        &["variant", "req/s", "p50", "p99"],
        variants
            .iter()
            .zip(&figures)
            .map(|((name, _), [rps, p50, p99])| {
                [
                    (*name).to_owned(),
                    spread(rps, 0),
                    spread(p50, 0),
                    spread(p99, 0),
                ]
            }),
    );
    if setup.all() {
        let [a, b, c] = [&figures[0], &figures[1], &figures[2]];
        let c_over_d = match figures.get(3) {
            Some(d) => format!("{:.2}", ratio(&c[0], &d[0])),
            None => "skipped".to_owned(),
        };
        println!(
            "clients: C/A={:.2} C/B={:.2} C/D={c_over_d} C-B_p50_us={:.1} C/B_p99={:.2}",
            ratio(&c[0], &a[0]),
            ratio(&c[0], &b[0]),
            difference(&c[1], &b[1]),
            ratio(&c[2], &b[2]),
        );
    }
    Ok(())
}
