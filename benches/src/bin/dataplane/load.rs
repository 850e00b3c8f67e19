//! The three ways of loading a variant: saturation (closed loop), one request at a time, and a
//! fixed rate (open loop).

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use crate::Error;
use crate::call::Call;

/// Requests in flight in the closed loop (one HTTP/2 connection).
pub const IN_FLIGHT: usize = 64;

/// Latency quantiles of one measurement, in microseconds.
#[derive(Debug, Clone, Copy)]
pub struct Quantiles {
    pub p50: f64,
    pub p99: f64,
    pub p999: f64,
}

impl Quantiles {
    fn of(mut latencies: Vec<f64>) -> Result<Self, Error> {
        if latencies.is_empty() {
            return Err("no request completed".into());
        }
        latencies.sort_by(f64::total_cmp);
        let at = |q: f64| latencies[((latencies.len() - 1) as f64 * q) as usize];
        Ok(Self {
            p50: at(0.50),
            p99: at(0.99),
            p999: at(0.999),
        })
    }
}

/// Closed loop: `IN_FLIGHT` workers for `window`; requests per second.
pub async fn saturation(call: &Call, window: Duration) -> Result<f64, Error> {
    let done = Arc::new(AtomicU64::new(0));
    let deadline = Instant::now() + window;
    let started = Instant::now();
    let mut workers = Vec::new();
    for _ in 0..IN_FLIGHT {
        let (call, done) = (call.clone(), done.clone());
        workers.push(tokio::spawn(async move {
            while Instant::now() < deadline {
                call.once().await?;
                done.fetch_add(1, Ordering::Relaxed);
            }
            Ok::<(), Error>(())
        }));
    }
    for w in workers {
        w.await??;
    }
    Ok(done.load(Ordering::Relaxed) as f64 / started.elapsed().as_secs_f64())
}

/// One request at a time for `window`.
pub async fn one_at_a_time(call: &Call, window: Duration) -> Result<Quantiles, Error> {
    let mut latencies = Vec::new();
    let deadline = Instant::now() + window;
    while Instant::now() < deadline {
        let t = Instant::now();
        call.once().await?;
        latencies.push(t.elapsed().as_secs_f64() * 1e6);
    }
    Quantiles::of(latencies)
}

/// Open loop: `rate` requests per second for `window`, each started at its scheduled time
/// whatever the others are doing. Latency counts from the scheduled start, so a generator or
/// server that falls behind shows in the figures (no coordinated omission).
///
/// The pacer yields between requests instead of sleeping: tokio's timer has a 1 ms resolution,
/// which would send requests in bursts. The load generator runs on one thread, so the
/// yielding pacer and the requests share it cooperatively.
pub async fn fixed_rate(call: &Call, rate: f64, window: Duration) -> Result<Quantiles, Error> {
    let total = (rate * window.as_secs_f64()) as u64;
    let interval = Duration::from_secs_f64(1.0 / rate);
    let (done, mut latencies) = tokio::sync::mpsc::unbounded_channel();
    let start = Instant::now();
    for i in 0..total {
        let scheduled = start + interval.mul_f64(i as f64);
        while Instant::now() < scheduled {
            tokio::task::yield_now().await;
        }
        let (call, done) = (call.clone(), done.clone());
        tokio::spawn(async move {
            let result = call.once().await;
            let _ = done.send(result.map(|()| scheduled.elapsed().as_secs_f64() * 1e6));
        });
    }
    drop(done);
    let mut measured = Vec::with_capacity(total as usize);
    while let Some(latency) = latencies.recv().await {
        measured.push(latency?);
    }
    Quantiles::of(measured)
}
