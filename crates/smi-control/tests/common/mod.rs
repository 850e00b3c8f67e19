//! What the smictl tests share: the binary, its output, and files to point it at; and, in
//! `telemetry`, the telemetry tests' control service.
// Each test file uses its own part of this module.
#![allow(dead_code)]
#![allow(clippy::unwrap_used, clippy::expect_used)] // test helpers fail loudly

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

pub mod telemetry;

/// The bookstore example's policy directory.
pub const EXAMPLE_POLICY: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../../examples/bookstore/policy"
);

/// The `smictl` binary of this package.
pub fn smictl_command() -> Command {
    Command::new(env!("CARGO_BIN_EXE_smictl"))
}

/// Runs `smictl args`.
pub fn smictl(args: &[&str]) -> Output {
    smictl_command().args(args).output().expect("run smictl")
}

/// The arguments of `smictl check --policy <example> --from <from> --to <to> <rest>`.
pub fn check_args<'a>(from: &'a str, to: &'a str, rest: &[&'a str]) -> Vec<&'a str> {
    let mut args = vec![
        "check",
        "--policy",
        EXAMPLE_POLICY,
        "--from",
        from,
        "--to",
        to,
    ];
    args.extend_from_slice(rest);
    args
}

pub fn stdout(out: &Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Writes `dir/name`; returns its path.
pub fn write(dir: &Path, name: &str, text: &str) -> PathBuf {
    let path = dir.join(name);
    fs::write(&path, text).unwrap();
    path
}
