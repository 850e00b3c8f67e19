//! Building a policy of 10,000 resources (4,000 TrafficTargets, 4,000 HTTPRouteGroups,
//! 1,000 TCPRoutes, 1,000 TrafficSplits), in two separately measured steps: load (YAML text to
//! `PolicySet`) and compile (`PolicySet` to `Snapshot`).
#![forbid(unsafe_code)]

use std::hint::black_box;
use std::sync::Arc;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use smi_benches::generator::{self, Shape};
use smi_core::{Format, Options, Snapshot, load_str};

fn build(c: &mut Criterion) {
    let shape = Shape::MIXED_10K;
    let text = generator::yaml(&shape);
    let policy = Arc::new(generator::load(&text));
    assert_eq!(policy.len(), 10_000);
    // Fails on any compile warning (the generator must not leave dangling references).
    drop(generator::compile((*policy).clone()));

    let mut group = c.benchmark_group("build_10k");
    group.sample_size(10);
    group.throughput(Throughput::Elements(shape.resources() as u64));
    // `iter_with_large_drop`: freeing the result is not part of either step.
    group.bench_function("load", |b| {
        b.iter_with_large_drop(|| load_str("generated.yaml", black_box(&text), Format::Yaml))
    });
    group.bench_function("compile", |b| {
        b.iter_with_large_drop(|| {
            Snapshot::compile(Arc::clone(black_box(&policy)), Options::default())
        })
    });
    group.finish();
}

criterion_group!(benches, build);
criterion_main!(benches);
