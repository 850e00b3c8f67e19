//! Response sizes: GETs of 64 B, 16 KiB and 1 MiB (the main section has 1 KiB), each at
//! saturation: 64 requests in flight on one HTTP/2 connection, closed loop
//! (`load::saturation`). Each round measures every size on every variant in turn. Figures:
//! requests/s, and MB/s of response bodies (10^6 bytes; headers and framing not counted).

use smi_benches::stats::spread;

use super::{Settings, Setup, ratio};
use crate::Error;
use crate::call::Call;
use crate::load::{self, IN_FLIGHT};
use crate::server::SIZES;
use crate::table::table;

pub async fn run(setup: &Setup<'_>, settings: Settings) -> Result<(), Error> {
    let targets = setup.http().await?;
    // calls[size][variant], rps[size][variant][round]
    let calls: Vec<Vec<Call>> = SIZES
        .iter()
        .map(|size| targets.iter().map(|t| t.get(size.path)).collect())
        .collect();
    for call in calls.iter().flatten() {
        load::saturation(call, settings.window / 4).await?;
    }
    let mut rps = vec![vec![Vec::new(); targets.len()]; SIZES.len()];
    for _ in 0..settings.rounds {
        for (row, rps) in calls.iter().zip(&mut rps) {
            for (call, rps) in row.iter().zip(rps.iter_mut()) {
                rps.push(load::saturation(call, settings.window).await?);
            }
        }
    }

    println!("# sizes: HTTP/2 GET, {IN_FLIGHT} in flight on one connection");
    table(
        &["variant", "size", "req/s", "MB/s (bodies)"],
        SIZES.iter().zip(&rps).flat_map(|(size, rps)| {
            targets.iter().zip(rps).map(|(t, rps)| {
                let mbps: Vec<f64> = rps
                    .iter()
                    .map(|r| r * size.body.len() as f64 / 1e6)
                    .collect();
                [
                    t.name.to_owned(),
                    size.label.to_owned(),
                    spread(rps, 0),
                    spread(&mbps, 1),
                ]
            })
        }),
    );
    if setup.all() {
        let mut line = "sizes:".to_owned();
        for (size, rps) in SIZES.iter().zip(&rps) {
            for (base, other) in [("A", &rps[0]), ("B", &rps[1])]
                .into_iter()
                .chain(rps.get(3).map(|d| ("D", d)))
            {
                line.push_str(&format!(
                    " C/{base}@{}={:.2}",
                    size.label,
                    ratio(&rps[2], other)
                ));
            }
        }
        println!("{line}");
    }
    Ok(())
}
