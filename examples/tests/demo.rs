//! The bookstore demo end to end: the real binary, its real processes, mTLS on 127.0.0.1.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::Path;
use std::process::Command;

use smi_examples::bookstore::stats::Summary;

const POLICY: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/bookstore/policy");

fn run_demo(policy_dir: &Path, seconds: u32) -> Summary {
    let output = Command::new(env!("CARGO_BIN_EXE_bookstore"))
        .args(["--duration", &seconds.to_string(), "--json", "--policy-dir"])
        .arg(policy_dir)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "the demo failed: {stderr}");
    let stdout = String::from_utf8(output.stdout).unwrap();
    serde_json::from_str(stdout.trim()).unwrap_or_else(|e| panic!("{e}: {stdout:?} {stderr}"))
}

fn copy_policy(to: &Path) {
    for entry in std::fs::read_dir(POLICY).unwrap() {
        let entry = entry.unwrap();
        std::fs::copy(entry.path(), to.join(entry.file_name())).unwrap();
    }
}

#[test]
fn the_buyer_buys_the_thief_is_denied_and_the_split_sends_to_both_versions() {
    let summary = run_demo(Path::new(POLICY), 4);
    let buyer = &summary.clients["bookbuyer"];
    let thief = &summary.clients["bookthief"];
    assert!(buyer.ok > 20, "{summary:?}");
    assert_eq!((buyer.denied, buyer.failed), (0, 0), "{summary:?}");
    assert!(thief.denied > 20, "{summary:?}");
    assert_eq!((thief.ok, thief.failed), (0, 0), "{summary:?}");
    assert_eq!(summary.backends.values().sum::<u64>(), buyer.ok);
    for backend in ["bookstore-v1", "bookstore-v2"] {
        // 50/50: with over 20 purchases, each side gets some (the chance of none is < 1e-6).
        assert!(summary.backends[backend] > 0, "{summary:?}");
    }
    // The control's TrafficMetrics API saw it too (workloads report every second here).
    let traffic = |name: &str| {
        summary
            .traffic
            .iter()
            .find(|row| row.deployment == name)
            .unwrap_or_else(|| panic!("no TrafficMetrics row for {name}: {summary:?}"))
    };
    let sent = traffic("bookbuyer");
    assert!(sent.answered > 0.0, "{summary:?}");
    assert_eq!(sent.success_rate, Some(100.0), "{summary:?}");
    assert!(sent.p99_ms.is_some_and(|p| p > 0.0), "{summary:?}");
    for backend in ["bookstore-v1", "bookstore-v2", "bookwarehouse"] {
        assert!(traffic(backend).answered > 0.0, "{backend}: {summary:?}");
    }
    // The thief's purchases were refused by the bookstores, which count them as denials.
    let refused: f64 = ["bookstore-v1", "bookstore-v2"]
        .iter()
        .map(|b| traffic(b).denied)
        .sum();
    assert!(refused > 0.0, "{summary:?}");
}

#[test]
fn split_weights_decide_the_backend() {
    let dir = tempfile::tempdir().unwrap();
    copy_policy(dir.path());
    let split = std::fs::read_to_string(dir.path().join("bookstore-split.yaml")).unwrap();
    let all_v2 = split
        .replace(
            "service: bookstore-v1\n    weight: 50",
            "service: bookstore-v1\n    weight: 0",
        )
        .replace(
            "service: bookstore-v2\n    weight: 50",
            "service: bookstore-v2\n    weight: 100",
        );
    assert_ne!(
        all_v2, split,
        "the bundled split changed shape; update this test"
    );
    std::fs::write(dir.path().join("bookstore-split.yaml"), all_v2).unwrap();
    let summary = run_demo(dir.path(), 3);
    assert_eq!(summary.backends["bookstore-v1"], 0, "{summary:?}");
    assert!(summary.backends["bookstore-v2"] > 0, "{summary:?}");
}
