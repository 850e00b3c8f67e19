//! `smictl etcd seal-key --out FILE`: a new key for the values sealed in etcd (the CA, the
//! token key), to give every replica, and `smictl`, as `--seal-key FILE`.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::Args;

use crate::cli::args::usage;
use crate::cli::output::{Out, finish};
use crate::etcd::SealKey;

#[derive(Debug, Args)]
pub struct SealKeyArgs {
    /// Where to write it (mode 0600); an existing file is not replaced.
    #[arg(long, value_name = "FILE")]
    pub out: PathBuf,
}

pub fn seal_key(args: &SealKeyArgs, out: Out<'_>) -> ExitCode {
    if let Err(e) = SealKey::create_file(&args.out) {
        return usage(&e.to_string());
    }
    let written = writeln!(
        out,
        "wrote a new seal key to {}; give the same file to every replica and to smictl (--seal-key)",
        args.out.display()
    );
    finish(out, ExitCode::SUCCESS, written)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn makes_a_key_file_and_refuses_to_replace_it() {
        let dir = tempfile::tempdir().unwrap();
        let args = SealKeyArgs {
            out: dir.path().join("seal.key"),
        };
        let mut out = Vec::new();
        assert_eq!(seal_key(&args, &mut out), ExitCode::SUCCESS);
        let first = std::fs::read(&args.out).unwrap();
        assert!(SealKey::from_file(&args.out).is_ok());
        assert_eq!(
            seal_key(&args, &mut Vec::new()),
            ExitCode::from(crate::cli::EXIT_USAGE)
        );
        assert_eq!(std::fs::read(&args.out).unwrap(), first);
    }
}
