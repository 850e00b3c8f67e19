//! `smictl`: see `smi_control::cli`.

use std::process::ExitCode;

use clap::Parser;
use smi_control::cli::{Cli, run};

fn main() -> ExitCode {
    run(Cli::parse())
}
