//! `smictl route`: where a request to a service goes.

use std::process::ExitCode;

use clap::Args;
use rand::SeedableRng;
use rand::rngs::StdRng;
use serde_json::{Value, json};
use smi_core::policy::{HttpRequest, Route, ServiceName};

use super::args::{Output, PolicyArgs, header_map, usage};
use super::output::{Out, finish};

#[derive(Debug, Args)]
pub struct RouteArgs {
    #[command(flatten)]
    pub policy: PolicyArgs,
    /// The root service: `namespace/name`, `name.namespace` or `name.namespace.svc.cluster.local`.
    #[arg(long, value_name = "NS/NAME")]
    pub service: String,
    /// The HTTP request (default `GET /`); matters for splits with `matches`.
    #[arg(long, num_args = 2, value_names = ["METHOD", "PATH"])]
    pub http: Option<Vec<String>>,
    /// A request header, `'Name: value'`; repeat for more.
    #[arg(long = "header", value_name = "NAME: VALUE")]
    pub headers: Vec<String>,
    /// Simulate this many requests and print how many each backend received.
    #[arg(long)]
    pub samples: Option<u64>,
    /// Seed of the simulation, for repeatable counts.
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    #[arg(long, value_enum, default_value_t = Output::Text)]
    pub output: Output,
}

pub fn run(args: &RouteArgs, out: Out<'_>) -> ExitCode {
    let headers = match header_map(&args.headers) {
        Ok(h) => h,
        Err(e) => return usage(&e),
    };
    let snapshot = match args.policy.snapshot(false) {
        Ok(s) => s,
        Err(code) => return code,
    };
    let cluster_domain = &snapshot.options().cluster_domain;
    let service = match ServiceName::parse(&args.service, None, cluster_domain) {
        Ok(s) => s,
        Err(e) => return usage(&format!("--service: {e}")),
    };
    let (method, path) = match args.http.as_deref() {
        Some([method, path]) => (method.as_str(), path.as_str()),
        _ => ("GET", "/"),
    };
    let request = HttpRequest::new(method, path, &headers);
    let route = snapshot.route(service, Some(&request));

    let root = format!("{}/{}", service.namespace, service.name);
    let (decision, why) = match route {
        Route::Unsplit => (
            "unsplit",
            "no TrafficSplit has this root service".to_owned(),
        ),
        Route::Unmatched(s) => (
            "unmatched",
            format!(
                "the request does not match TrafficSplit {}'s matches",
                s.meta().name
            ),
        ),
        Route::NoWeight(s) => (
            "no_weight",
            format!(
                "TrafficSplit {} has no backend with weight > 0",
                s.meta().name
            ),
        ),
        Route::Split(s) => ("split", format!("split by TrafficSplit {}", s.meta().name)),
    };
    let backends: Vec<Value> = match route {
        Route::Split(s) => s
            .backends()
            .iter()
            .enumerate()
            .map(|(i, b)| json!({"service": b.service, "weight": b.weight, "probability": s.probability(i)}))
            .collect(),
        _ => vec![json!({"service": service.name, "weight": Value::Null, "probability": 1.0})],
    };
    let samples = args.samples.map(|n| {
        let mut rng = StdRng::seed_from_u64(args.seed);
        let mut counts = serde_json::Map::new();
        for b in &backends {
            counts.insert(
                b["service"].as_str().unwrap_or_default().to_owned(),
                json!(0u64),
            );
        }
        for _ in 0..n {
            let name = route
                .pick(&mut rng)
                .map_or(service.name, |b| b.service.as_str());
            if let Some(c) = counts.get_mut(name) {
                *c = json!(c.as_u64().unwrap_or(0) + 1);
            }
        }
        json!({"n": n, "seed": args.seed, "counts": counts})
    });

    let written = match args.output {
        Output::Json => {
            let mut body = json!({
                "service": root,
                "request": format!("{method} {path}"),
                "decision": decision,
                "split": route.split().map(|s| format!("{}/{}", s.meta().namespace, s.meta().name)),
                "backends": backends,
            });
            if let Some(samples) = samples {
                body["samples"] = samples;
            }
            writeln!(out, "{body}")
        }
        Output::Text => {
            let lines = backends.iter().map(|b| {
                let service = b["service"].as_str().unwrap_or_default();
                let share = b["probability"].as_f64().unwrap_or(0.0) * 100.0;
                let weight = b["weight"]
                    .as_u64()
                    .map_or("-".to_owned(), |w| w.to_string());
                let count = samples
                    .as_ref()
                    .and_then(|s| s["counts"][service].as_u64())
                    .map_or(String::new(), |c| format!("  {c} sampled"));
                format!("  {service:<24} weight {weight:>6}  {share:6.2}%{count}")
            });
            std::iter::once(format!("{root}: {method} {path}: {why}"))
                .chain(lines)
                .try_for_each(|line| writeln!(out, "{line}"))
        }
    };
    finish(out, ExitCode::SUCCESS, written)
}
