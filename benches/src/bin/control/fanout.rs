//! Fan-out: one TrafficSplit change to N Watch streams, against one subscriber; and the control's
//! memory per subscriber. [`Audience`] and [`Rounds`] are the parts, for any [`Target`].

use std::time::{Duration, Instant};

use smi_benches::stats::{median, spread};
use smi_core::proto::v1::{self, control_client::ControlClient};
use tokio::sync::mpsc;

use crate::Error;
use crate::service::{Control, Target, channel};

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

/// Opens `n` Watch streams, 100 per connection, each connection its own identity; connection
/// `c` goes to the target's address `c` (round robin over replicas).
async fn subscribe(
    target: &impl Target,
    n: usize,
    first_index: usize,
    receipts: &mpsc::UnboundedSender<(usize, u64, Instant)>,
) -> Result<Subscribers, Error> {
    let mut tasks = Vec::new();
    let mut opened = 0;
    let mut connection = 0;
    while opened < n {
        let identity = format!("bench/subscriber-{}", first_index + connection);
        let (_creds, channel) = channel(target, &identity, connection).await?;
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

// === impl Audience ===

/// The Watch streams of one target: one subscriber alone (the baseline), and N others (the
/// first of them the lone one's index, so N in all). Dropping it closes them.
pub struct Audience {
    pub subscribers: usize,
    single: Receipts,
    _single: Subscribers,
    all: Option<(Receipts, Subscribers)>,
}

/// One change's times from the write, ms.
#[derive(Clone, Copy, Debug)]
pub struct Round {
    /// Until the write returned (a file renamed; etcd's answer to the put).
    pub written_ms: f64,
    pub first_ms: f64,
    pub last_ms: f64,
    /// The lone subscriber's receipt.
    pub single_ms: f64,
}

impl Audience {
    /// Sets the split to 50% and opens the lone subscriber (until it has seen that).
    pub async fn single(target: &impl Target) -> Result<Self, Error> {
        target.set_split(50).await?;
        let (tx, mut single) = mpsc::unbounded_channel();
        let subscriber = subscribe(target, 1, 0, &tx).await?;
        receipts_of(&mut single, 1, 50).await?;
        Ok(Self {
            subscribers: 0,
            single,
            _single: subscriber,
            all: None,
        })
    }

    /// Opens the `n` streams (until each has seen the current 50%); the seconds it took.
    pub async fn fill(&mut self, target: &impl Target, n: usize) -> Result<f64, Error> {
        let opened = Instant::now();
        let (tx, mut receipts) = mpsc::unbounded_channel();
        let subscribers = subscribe(target, n, 0, &tx).await?;
        receipts_of(&mut receipts, n, 50).await?;
        self.subscribers = n;
        self.all = Some((receipts, subscribers));
        Ok(opened.elapsed().as_secs_f64())
    }

    /// Sets the split to `weight` (not the weight it has) and waits for every receipt.
    pub async fn round(&mut self, target: &impl Target, weight: u64) -> Result<Round, Error> {
        let (receipts, _) = self.all.as_mut().ok_or("the audience is not filled")?;
        let written = Instant::now();
        target.set_split(weight).await?;
        let written_at = Instant::now();
        let (_, single_last) = receipts_of(&mut self.single, 1, weight).await?;
        let (first, last) = receipts_of(receipts, self.subscribers, weight).await?;
        let ms = |t: Instant| t.duration_since(written).as_secs_f64() * 1e3;
        Ok(Round {
            written_ms: ms(written_at),
            first_ms: ms(first),
            last_ms: ms(last),
            single_ms: ms(single_last),
        })
    }
}

// === impl Rounds ===

/// The rounds of one audience, summarised as BENCHMARKS.md reports them.
#[derive(Debug, Default)]
pub struct Rounds(Vec<Round>);

impl Rounds {
    pub fn push(&mut self, round: Round) {
        self.0.push(round);
    }

    fn each(&self, f: impl Fn(&Round) -> f64) -> Vec<f64> {
        self.0.iter().map(f).collect()
    }

    pub fn written(&self) -> Vec<f64> {
        self.each(|r| r.written_ms)
    }

    pub fn firsts(&self) -> Vec<f64> {
        self.each(|r| r.first_ms)
    }

    pub fn lasts(&self) -> Vec<f64> {
        self.each(|r| r.last_ms)
    }

    /// First receipt to last: the fan-out itself.
    pub fn spans(&self) -> Vec<f64> {
        self.each(|r| r.last_ms - r.first_ms)
    }

    pub fn singles(&self) -> Vec<f64> {
        self.each(|r| r.single_ms)
    }

    /// `last(N) - last(1)`: the cost of the other N - 1.
    pub fn added(&self) -> Vec<f64> {
        self.each(|r| r.last_ms - r.single_ms)
    }

    /// `write->first ..., write->last ..., first->last ...; one subscriber ...; last(N)-last(1) ...`.
    pub fn describe(&self) -> String {
        format!(
            "write->first {} ms, write->last {} ms, first->last {} ms; one subscriber write->receipt {} ms; last(N)-last(1) {} ms",
            spread(&self.firsts(), 1),
            spread(&self.lasts(), 1),
            spread(&self.spans(), 1),
            spread(&self.singles(), 1),
            spread(&self.added(), 1),
        )
    }
}

pub fn connections_for(n: usize) -> usize {
    n.div_ceil(STREAMS_PER_CONNECTION)
}

pub async fn fan_out(control: &Control, n: usize, rounds: usize) -> Result<FanOut, Error> {
    let mut audience = Audience::single(control).await?;
    let rss_before = control.rss()?;
    let open_s = audience.fill(control, n).await?;
    let rss_after = control.rss()?;
    let bytes_per_subscriber = rss_after.saturating_sub(rss_before) / n as u64;

    let mut measured = Rounds::default();
    for round in 0..rounds {
        measured.push(audience.round(control, 51 + round as u64).await?);
    }
    println!(
        "fan-out to {n} subscribers ({} connections; opened in {open_s:.1} s): {}; control RSS +{} KiB = {} bytes/subscriber",
        connections_for(n),
        measured.describe(),
        rss_after.saturating_sub(rss_before) / 1024,
        bytes_per_subscriber,
    );
    drop(audience);
    Ok(FanOut {
        subscribers: n,
        span_ms: median(&measured.spans()),
        last_ms: median(&measured.lasts()),
        added_ms: median(&measured.added()),
        bytes_per_subscriber,
    })
}
