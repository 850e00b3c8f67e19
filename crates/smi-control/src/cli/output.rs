//! Printing that cannot panic. `println!` panics when stdout is closed (`smictl check ... | head
//! -0`), which would turn a documented exit code into 101 and a panic message. Commands write to
//! an [`Out`] instead and hand the result to [`finish`]; diagnostics go through [`diag!`], which
//! drops what stderr cannot take.

use std::io::{self, Write};
use std::process::ExitCode;

use super::EXIT_USAGE;

/// Where a command's result goes: stdout when run as `smictl`, a buffer in tests.
pub type Out<'a> = &'a mut dyn Write;

/// `eprintln!` without the panic: a diagnostic that cannot be written is dropped.
macro_rules! diag {
    ($($arg:tt)*) => {{
        use std::io::Write as _;
        let _ = writeln!(std::io::stderr(), $($arg)*);
    }};
}
pub(crate) use diag;

/// The exit code once a command has written its output (`written`, then a flush):
/// - everything written, or the reader went away (a broken pipe: `| head`, `| true`): `code`, the
///   command's own answer, since the exit code is the interface scripts rely on;
/// - any other write error (a full disk): a usage error, so that a script does not take
///   incomplete output for the answer.
pub fn finish(out: Out<'_>, code: ExitCode, written: io::Result<()>) -> ExitCode {
    match written.and_then(|()| out.flush()) {
        Ok(()) => code,
        Err(e) if e.kind() == io::ErrorKind::BrokenPipe => code,
        Err(e) => {
            diag!("error: writing the output: {e}");
            ExitCode::from(EXIT_USAGE)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A writer whose every write fails with one error kind.
    struct Failing(io::ErrorKind);

    impl Write for Failing {
        fn write(&mut self, _: &[u8]) -> io::Result<usize> {
            Err(self.0.into())
        }
        fn flush(&mut self) -> io::Result<()> {
            Err(self.0.into())
        }
    }

    #[test]
    fn a_broken_pipe_keeps_the_commands_exit_code_and_other_errors_become_usage_errors() {
        let code = |kind| {
            let mut out = Failing(kind);
            let written = writeln!(out, "DENY");
            finish(&mut out, ExitCode::from(1), written)
        };
        assert_eq!(code(io::ErrorKind::BrokenPipe), ExitCode::from(1));
        assert_eq!(code(io::ErrorKind::StorageFull), ExitCode::from(EXIT_USAGE));
        let mut ok = Vec::new();
        let written = writeln!(ok, "ALLOW");
        assert_eq!(
            finish(&mut ok, ExitCode::SUCCESS, written),
            ExitCode::SUCCESS
        );
    }
}
