//! Fan-out: one TrafficSplit change to N Watch streams, against one subscriber; and the control's
//! memory per subscriber.

use std::time::{Duration, Instant};

use smi_benches::stats::{median, spread};
use smi_core::proto::v1::{self, control_client::ControlClient};
use tokio::sync::mpsc;

use crate::Error;
use crate::service::{Control, write_split};

const STREAMS_PER_CONNECTION: usize = 100;
const WAIT: Duration = Duration::from_secs(30);

pub struct FanOut {
    pub subscribers: usize,
    /// From the first subscriber's receipt to the last's: the fan-out itself.
    pub span_ms: f64,
    /// From the file write to the last receipt (includes the watch's debounce and the reload).
    pub last_ms: f64,
    pub added_ms: f64,
    pub bytes_per_subscriber: u64,
}

/// Each subscriber reports (its index, the v1 weight it saw) for every update it receives.
type Receipts = mpsc::UnboundedReceiver<(usize, u64, Instant)>;

async fn subscribe(
    control: &Control,
    n: usize,
    first_index: usize,
    receipts: &mpsc::UnboundedSender<(usize, u64, Instant)>,
) -> Result<Subscribers, Error> {
    let mut tasks = Vec::new();
    let mut opened = 0;
    let mut connection = 0;
    while opened < n {
        let (_creds, channel) = control
            .channel(&format!("bench/subscriber-{}", first_index + connection))
            .await?;
        connection += 1;
        let batch = STREAMS_PER_CONNECTION.min(n - opened);
        for _ in 0..batch {
            let index = first_index + opened;
            opened += 1;
            let mut stream = ControlClient::new(channel.clone())
                .watch(v1::WatchRequest {
                    services: vec!["bookstore/bookstore".into()],
                    workload: format!("bench-{index}"),
                })
                .await?
                .into_inner();
            let receipts = receipts.clone();
            tasks.push(tokio::spawn(async move {
                while let Ok(Some(update)) = stream.message().await {
                    let _ = receipts.send((index, v1_weight(&update), Instant::now()));
                }
            }));
        }
    }
    Ok(Subscribers(tasks))
}

/// Open Watch streams; dropping this closes them.
struct Subscribers(Vec<tokio::task::JoinHandle<()>>);

impl Drop for Subscribers {
    fn drop(&mut self) {
        for task in &self.0 {
            task.abort();
        }
    }
}

fn v1_weight(update: &v1::PolicyUpdate) -> u64 {
    update
        .policy
        .as_ref()
        .and_then(|p| p.traffic_splits.first())
        .and_then(|s| s.backends.iter().find(|b| b.service == "bookstore-v1"))
        .map_or(0, |b| b.weight)
}

/// Waits until each of `n` subscribers has seen weight `weight`; returns the first and last
/// receipt times.
async fn receipts_of(
    receipts: &mut Receipts,
    n: usize,
    weight: u64,
) -> Result<(Instant, Instant), Error> {
    let mut seen = vec![false; n];
    let (mut count, mut first, mut last) = (0, None, None);
    tokio::time::timeout(WAIT, async {
        while count < n {
            let Some((index, w, at)) = receipts.recv().await else {
                break;
            };
            if w == weight && index < n && !seen[index] {
                seen[index] = true;
                count += 1;
                first = first.or(Some(at));
                last = Some(at);
            }
        }
    })
    .await
    .map_err(|_| format!("only {count} of {n} subscribers saw the change within {WAIT:?}"))?;
    match (first, last) {
        (Some(first), Some(last)) if count == n => Ok((first, last)),
        _ => Err("the subscribers' streams ended".into()),
    }
}

pub async fn fan_out(control: &Control, n: usize, rounds: usize) -> Result<FanOut, Error> {
    write_split(&control.policy, 50)?;
    // The single-subscriber baseline (index 0), then the N (index 0 included, so N in all).
    let (single_tx, mut single) = mpsc::unbounded_channel();
    let _single = subscribe(control, 1, 0, &single_tx).await?;
    receipts_of(&mut single, 1, 50).await?;

    let rss_before = control.rss()?;
    let (tx, mut receipts) = mpsc::unbounded_channel();
    let opened = Instant::now();
    let subscribers = subscribe(control, n, 0, &tx).await?;
    receipts_of(&mut receipts, n, 50).await?;
    let open_s = opened.elapsed().as_secs_f64();
    let rss_after = control.rss()?;
    let bytes_per_subscriber = rss_after.saturating_sub(rss_before) / n as u64;

    let (mut lasts, mut firsts, mut spans, mut singles, mut added) =
        (Vec::new(), Vec::new(), Vec::new(), Vec::new(), Vec::new());
    for round in 0..rounds {
        let weight = 51 + round as u64;
        let written = Instant::now();
        write_split(&control.policy, weight)?;
        let (_, single_last) = receipts_of(&mut single, 1, weight).await?;
        let (first, last) = receipts_of(&mut receipts, n, weight).await?;
        let ms = |t: Instant| t.duration_since(written).as_secs_f64() * 1e3;
        lasts.push(ms(last));
        firsts.push(ms(first));
        spans.push(ms(last) - ms(first));
        singles.push(ms(single_last));
        added.push(ms(last) - ms(single_last));
    }
    println!(
        "fan-out to {n} subscribers ({} connections; opened in {open_s:.1} s): write->first {} ms, write->last {} ms, first->last {} ms; one subscriber write->receipt {} ms; last(N)-last(1) {} ms; control RSS +{} KiB = {} bytes/subscriber",
        n.div_ceil(STREAMS_PER_CONNECTION),
        spread(&firsts, 1),
        spread(&lasts, 1),
        spread(&spans, 1),
        spread(&singles, 1),
        spread(&added, 1),
        rss_after.saturating_sub(rss_before) / 1024,
        bytes_per_subscriber,
    );
    drop(subscribers);
    Ok(FanOut {
        subscribers: n,
        span_ms: median(&spans),
        last_ms: median(&lasts),
        added_ms: median(&added),
        bytes_per_subscriber,
    })
}
