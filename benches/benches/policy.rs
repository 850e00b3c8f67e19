//! Per-request costs of the compiled policy: `authorize` as the policy grows, the weighted split
//! pick, and the `route` lookup.
//!
//! Every policy is generated as YAML, loaded and compiled once, outside the timed loops.
#![forbid(unsafe_code)]

use std::hint::black_box;

use criterion::{BenchmarkId, Criterion, criterion_group, criterion_main};
use http::HeaderMap;
use http::header::{ACCEPT, CONTENT_TYPE, HOST, HeaderValue, USER_AGENT};
use rand::SeedableRng;
use rand::rngs::SmallRng;
use smi_benches::generator::{self, Shape};
use smi_core::Snapshot;
use smi_core::policy::{Denied, HttpRequest, Permit, Request, Route, ServiceName};

/// What a sidecar typically sees on an inbound API call.
fn typical_headers() -> HeaderMap {
    let mut headers = HeaderMap::new();
    headers.insert(
        HOST,
        HeaderValue::from_static("app-1.ns-7.svc.cluster.local"),
    );
    headers.insert(USER_AGENT, HeaderValue::from_static("okhttp/4.12.0"));
    headers.insert(ACCEPT, HeaderValue::from_static("application/json"));
    headers.insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    headers.insert(
        "x-request-id",
        HeaderValue::from_static("7f3c9a2e-5b1d-4e8f-9c6a-2d4b8e1f0a3c"),
    );
    headers
}

fn decision(c: &mut Criterion) {
    let headers = typical_headers();
    let mut group = c.benchmark_group("authorize");
    for targets in [10, 100, 1_000, 10_000] {
        let shape = Shape::with_targets(targets);
        let snapshot = generator::snapshot(&shape);
        let probe = generator::probe(&shape);
        let allowed = HttpRequest::new("GET", &probe.allowed_get_path, &headers);
        let denied = HttpRequest::new("GET", &probe.denied_get_path, &headers);
        let allowed = Request::http(Some(8080), allowed);
        let denied = Request::http(Some(8080), denied);

        // The cases must decide as named, or the figures mean something else.
        let decide =
            |src, req: &Request<'_>| snapshot.authorize(&probe.destination, Some(src), req);
        assert!(
            matches!(decide(&probe.source, &allowed), Ok(Permit::Granted { .. })),
            "{targets}: allowed case is not granted"
        );
        assert!(
            matches!(
                decide(&probe.source, &denied),
                Err(Denied::NoRuleMatched { .. })
            ),
            "{targets}: denied case is not denied by route"
        );
        assert_eq!(
            decide(&probe.stranger, &allowed),
            Err(Denied::SourceNotAllowed),
            "{targets}: unknown source case"
        );

        let cases = [
            ("allowed", &probe.source, &allowed),
            ("denied_route", &probe.source, &denied),
            ("unknown_source", &probe.stranger, &allowed),
        ];
        for (name, source, request) in cases {
            group.bench_with_input(BenchmarkId::new(name, targets), &targets, |b, _| {
                b.iter(|| {
                    black_box(snapshot.authorize(
                        black_box(&probe.destination),
                        Some(black_box(source)),
                        black_box(request),
                    ))
                    .is_ok()
                })
            });
        }
    }
    group.finish();
}

fn split_pick(c: &mut Criterion) {
    let sizes = [2, 10, 100];
    let text: String = sizes
        .iter()
        .map(|&n| generator::split_yaml("shop", &format!("root-{n}"), n))
        .collect();
    let snapshot = generator::compile(generator::load(&text));
    let mut group = c.benchmark_group("split_pick");
    for backends in sizes {
        let root = format!("root-{backends}");
        let route = snapshot.route(
            ServiceName {
                namespace: "shop",
                name: &root,
            },
            None,
        );
        let Route::Split(split) = route else {
            panic!("root-{backends} is not split: {route:?}");
        };
        assert_eq!(split.backends().len(), backends);
        let mut rng = SmallRng::seed_from_u64(0x5eed);
        group.bench_with_input(BenchmarkId::from_parameter(backends), &route, |b, route| {
            b.iter(|| black_box(black_box(route).pick(&mut rng)).is_some())
        });
    }
    group.finish();
}

fn route_lookup(c: &mut Criterion) {
    let shape = Shape::MIXED_10K;
    let snapshot: Snapshot = generator::snapshot(&shape);
    let headers = typical_headers();
    let request = HttpRequest::new("GET", "/api/v1/orders/1", &headers);

    // Split 1 has no `matches`, split 0 has (and the request does not match them); `unknown-svc`
    // has no split.
    let split = generator::split_root(&shape, 1);
    let split_with_matches = generator::split_root(&shape, 0);
    let unsplit = ("ns-1".to_owned(), "unknown-svc".to_owned());
    let cases = [
        ("split", &split, "Split"),
        ("split_matches_missed", &split_with_matches, "Unmatched"),
        ("unsplit", &unsplit, "Unsplit"),
    ];
    let mut group = c.benchmark_group("route");
    for (name, service, want) in cases {
        let service = generator::service_name(service);
        let got = snapshot.route(service, Some(&request));
        let variant = format!("{got:?}");
        assert!(variant.starts_with(want), "{name}: got {variant}");
        group.bench_function(name, |b| {
            b.iter(|| {
                black_box(snapshot.route(black_box(service), Some(black_box(&request)))).split()
            })
        });
    }
    group.finish();
}

criterion_group!(benches, decision, split_pick, route_lookup);
criterion_main!(benches);
