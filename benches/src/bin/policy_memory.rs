//! Memory and wall time of loading and compiling the 10,000-resource policy, which criterion
//! cannot measure: `cargo run --release -p smi-benches --bin policy_memory`.
//!
//! A counting global allocator wraps the system one; live bytes are read before and after each
//! step. "allocated" is allocator traffic (bytes requested, a `realloc` counting its whole new
//! size), "live" the change in bytes held.

// The workspace forbids unsafe code. A global allocator can only be written as an
// `unsafe impl GlobalAlloc`, so this one binary (not the library, not the benchmarks) allows it;
// every unsafe operation below forwards unchanged to `std::alloc::System`. (This package's
// Cargo.toml sets `unsafe_code` to "deny" instead of the workspace's "forbid" for this reason.)
#![allow(unsafe_code)]

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicUsize, Ordering::Relaxed};
use std::time::{Duration, Instant};

use http::HeaderMap;
use smi_benches::generator::{self, Shape};
use smi_core::policy::{HttpRequest, Request};

/// `System`, counting live bytes, the peak of live bytes, and everything ever allocated.
struct Counting;

static LIVE: AtomicUsize = AtomicUsize::new(0);
static PEAK: AtomicUsize = AtomicUsize::new(0);
static TOTAL: AtomicUsize = AtomicUsize::new(0);
static CALLS: AtomicUsize = AtomicUsize::new(0);

fn grew(bytes: usize) {
    let live = LIVE.fetch_add(bytes, Relaxed) + bytes;
    PEAK.fetch_max(live, Relaxed);
    TOTAL.fetch_add(bytes, Relaxed);
    CALLS.fetch_add(1, Relaxed);
}

// SAFETY: every method forwards to `System` with the caller's arguments, so `System`'s
// guarantees hold; the counters have no effect on the memory handed out.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        // SAFETY: forwarded; the caller upholds `alloc`'s contract.
        let p = unsafe { System.alloc(layout) };
        if !p.is_null() {
            grew(layout.size());
        }
        p
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        // SAFETY: forwarded; the caller upholds `alloc_zeroed`'s contract.
        let p = unsafe { System.alloc_zeroed(layout) };
        if !p.is_null() {
            grew(layout.size());
        }
        p
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: forwarded; `ptr` was allocated by `System` with `layout`.
        unsafe { System.dealloc(ptr, layout) };
        LIVE.fetch_sub(layout.size(), Relaxed);
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        // SAFETY: forwarded; the caller upholds `realloc`'s contract.
        let p = unsafe { System.realloc(ptr, layout, new_size) };
        if !p.is_null() {
            LIVE.fetch_sub(layout.size(), Relaxed);
            grew(new_size);
        }
        p
    }
}

#[global_allocator]
static ALLOCATOR: Counting = Counting;

/// Counters at one moment.
#[derive(Clone, Copy, Debug)]
struct Mark {
    live: usize,
    total: usize,
    calls: usize,
}

fn mark() -> Mark {
    Mark {
        live: LIVE.load(Relaxed),
        total: TOTAL.load(Relaxed),
        calls: CALLS.load(Relaxed),
    }
}

fn mib(bytes: usize) -> String {
    format!("{:.1} MiB", bytes as f64 / (1024.0 * 1024.0))
}

fn signed_mib(before: usize, after: usize) -> String {
    format!(
        "{:+.1} MiB",
        (after as f64 - before as f64) / (1024.0 * 1024.0)
    )
}

fn ms(d: Duration) -> String {
    format!("{:.1} ms", d.as_secs_f64() * 1e3)
}

fn step(name: &str, time: Duration, before: Mark, after: Mark, live_note: &str) {
    println!(
        "{name:<8} {:>9}   allocated {:>10} in {:>8} allocations   live {:>10} ({live_note})",
        ms(time),
        mib(after.total - before.total),
        after.calls - before.calls,
        signed_mib(before.live, after.live),
    );
}

fn main() {
    let shape = Shape::MIXED_10K;
    let start = mark();
    let text = generator::yaml(&shape);
    let with_text = mark();
    println!(
        "policy: {} resources ({} TrafficTargets, {} HTTPRouteGroups, {} TCPRoutes, {} TrafficSplits), \
         YAML text {}",
        shape.resources(),
        shape.targets,
        shape.route_groups(),
        shape.tcp_routes,
        shape.splits,
        mib(with_text.live - start.live)
    );

    let t = Instant::now();
    let policy = generator::load(&text);
    let load_time = t.elapsed();
    let loaded = mark();
    assert_eq!(policy.len(), shape.resources());
    step("load", load_time, with_text, loaded, "the PolicySet");

    let t = Instant::now();
    let snapshot = generator::compile(policy);
    let compile_time = t.elapsed();
    let compiled = mark();
    step(
        "compile",
        compile_time,
        loaded,
        compiled,
        "indexes and matchers; the PolicySet is kept by reference",
    );

    // The regex crate allocates a search cache for each regex on its first use (per thread
    // using it concurrently): ask every target once with a GET and a POST that match nothing,
    // which runs every path regex once.
    let headers = HeaderMap::new();
    let probes: Vec<_> = (0..shape.targets)
        .filter_map(|i| generator::probe_at(&shape, i))
        .collect();
    let before_warm = mark();
    let t = Instant::now();
    let mut decisions = 0usize;
    for p in &probes {
        for method in ["GET", "POST"] {
            let req = Request::http(None, HttpRequest::new(method, &p.denied_get_path, &headers));
            let decision = snapshot.authorize(&p.destination, Some(&p.source), &req);
            assert!(
                decision.is_err(),
                "{method} {} was allowed",
                p.denied_get_path
            );
            decisions += 1;
        }
    }
    let warm_time = t.elapsed();
    let warmed = mark();
    step(
        "warm",
        warm_time,
        before_warm,
        warmed,
        &format!("{decisions} first decisions, one thread: regex search caches"),
    );
    drop(probes);

    drop(text);
    let held = mark().live - start.live;
    println!(
        "snapshot live in total, warmed on one thread: {} ({} bytes per resource; PolicySet {} \
         + compiled {} + search caches {})",
        mib(held),
        held / shape.resources(),
        mib(loaded.live - with_text.live),
        mib(compiled.live - loaded.live),
        mib(warmed.live - before_warm.live),
    );
    println!(
        "peak live during the run: {}; load + compile wall time {}",
        mib(PEAK.load(Relaxed)),
        ms(load_time + compile_time)
    );
    drop(snapshot);
}
