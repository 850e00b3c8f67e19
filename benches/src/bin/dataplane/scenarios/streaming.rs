//! gRPC server streaming: `Greeter.SayHellos`, which answers each call with
//! `greeter::HELLOS_PER_CALL` messages, with 16 calls in flight on one connection (closed
//! loop). Figures: messages received per second, and the CPU time of the generator and the
//! server per message. A, B and C (as the main section's gRPC table); the HAProxy pair is not
//! measured here.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use smi_benches::stats::spread;
use smi_client::MeshClient;

use super::{A, B, C, Settings, Setup, ratio};
use crate::call::{Grpc, H2Channel, h2};
use crate::greeter::{self, GreeterClient, HELLOS_PER_CALL};
use crate::table::table;
use crate::{Error, cpu};

/// Calls in flight.
const IN_FLIGHT: usize = 16;

/// One call: the messages it received.
async fn call(grpc: &Grpc) -> Result<usize, Error> {
    let mut stream = match grpc {
        Grpc::Plain(client) => client.clone().say_hellos(greeter::request()).await?,
        Grpc::Mesh(client) => client.clone().say_hellos(greeter::request()).await?,
    }
    .into_inner();
    let mut messages = 0;
    while stream.message().await?.is_some() {
        messages += 1;
    }
    if messages != HELLOS_PER_CALL {
        return Err(format!("SayHellos: {messages} messages, not {HELLOS_PER_CALL}").into());
    }
    Ok(messages)
}

/// `IN_FLIGHT` calls at a time for `window`: the messages received, and the seconds taken.
async fn saturation(grpc: &Grpc, window: Duration) -> Result<(u64, f64), Error> {
    let messages = Arc::new(AtomicU64::new(0));
    let started = Instant::now();
    let deadline = started + window;
    let workers: Vec<_> = (0..IN_FLIGHT)
        .map(|_| {
            let (grpc, messages) = (grpc.clone(), messages.clone());
            tokio::spawn(async move {
                while Instant::now() < deadline {
                    let n = call(&grpc).await?;
                    messages.fetch_add(n as u64, Ordering::Relaxed);
                }
                Ok::<(), Error>(())
            })
        })
        .collect();
    for w in workers {
        w.await??;
    }
    Ok((
        messages.load(Ordering::Relaxed),
        started.elapsed().as_secs_f64(),
    ))
}

pub async fn run(setup: &Setup<'_>, settings: Settings) -> Result<(), Error> {
    let [a, b, _] = setup.addrs;
    let plain = |sender, origin: String| -> Result<Grpc, Error> {
        Ok(Grpc::Plain(GreeterClient::with_origin(
            H2Channel(sender),
            origin.parse()?,
        )))
    };
    let mut variants = vec![
        (
            A,
            plain(h2(crate::tcp(a).await?).await?, format!("http://{a}"))?,
        ),
        (
            B,
            plain(
                h2(crate::mtls(setup.client, b).await?).await?,
                format!("https://{b}"),
            )?,
        ),
        (
            C,
            Grpc::Mesh(GreeterClient::with_origin(
                MeshClient::new(setup.client.clone()),
                "http://data.bench".parse()?,
            )),
        ),
    ];
    variants.retain(|(name, _)| setup.wants(name));
    for (_, grpc) in &variants {
        saturation(grpc, settings.window / 4).await?;
    }
    let pids = setup.pids(&[]);
    let mut figures = vec![[Vec::new(), Vec::new()]; variants.len()];
    for _ in 0..settings.rounds {
        for ((_, grpc), [rate, cpu_us]) in variants.iter().zip(&mut figures) {
            let before = cpu::seconds(&pids);
            let (messages, seconds) = saturation(grpc, settings.window).await?;
            if let (Some(before), Some(after)) = (before, cpu::seconds(&pids)) {
                cpu_us.push((after - before) / messages as f64 * 1e6);
            }
            rate.push(messages as f64 / seconds);
        }
    }

    println!(
        "# streaming: gRPC Greeter.SayHellos, {HELLOS_PER_CALL} messages per call, {IN_FLIGHT} calls in flight on one connection"
    );
    table(
        &["variant", "messages/s", "CPU us/message"],
        variants
            .iter()
            .zip(&figures)
            .map(|((name, _), [rate, cpu_us])| {
                [(*name).to_owned(), spread(rate, 0), spread(cpu_us, 2)]
            }),
    );
    if setup.all() {
        println!(
            "streaming: C/A={:.2} C/B={:.2}",
            ratio(&figures[2][0], &figures[0][0]),
            ratio(&figures[2][0], &figures[1][0]),
        );
    }
    Ok(())
}
