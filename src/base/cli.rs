//! What every program's `main` shares: exit codes, logging, flag helpers.
//!
//! Exit codes are the suite's convention, listed in each man page:
//! [`EXIT_OK`] success, [`EXIT_FAILURE`] the operation failed or found
//! problems, [`EXIT_USAGE`] a usage or configuration error.

use std::ffi::OsString;
use std::path::PathBuf;
use std::process::ExitCode;

/// Success.
pub const EXIT_OK: u8 = 0;
/// The operation failed, or found problems.
pub const EXIT_FAILURE: u8 = 1;
/// Usage or configuration error.
pub const EXIT_USAGE: u8 = 2;

/// Sets up `env_logger`: `RUST_LOG` sets the level (default `info`), lines go
/// to stderr so stdout stays clean for data and `--json`.
///
/// ureq's transport dumps every request byte at trace level, the
/// `Authorization: Bearer` line included (issue 17), so trace records of
/// the `ureq` crates are dropped at any `RUST_LOG`; their debug records,
/// where ureq redacts headers, stay.
pub fn init_logging() {
    let logger =
        env_logger::Builder::from_env(env_logger::Env::default().default_filter_or("info"))
            .format_timestamp_millis()
            .build();
    let max = logger.filter();
    if log::set_boxed_logger(Box::new(NoWireDump(logger))).is_ok() {
        log::set_max_level(max);
    }
}

/// The logger without the trace records of ureq and ureq-proto.
struct NoWireDump(env_logger::Logger);

impl NoWireDump {
    fn dropped(meta: &log::Metadata<'_>) -> bool {
        meta.level() == log::Level::Trace && meta.target().starts_with("ureq")
    }
}

impl log::Log for NoWireDump {
    fn enabled(&self, meta: &log::Metadata<'_>) -> bool {
        !Self::dropped(meta) && self.0.enabled(meta)
    }

    fn log(&self, record: &log::Record<'_>) {
        if !Self::dropped(record.metadata()) {
            self.0.log(record);
        }
    }

    fn flush(&self) {
        self.0.flush();
    }
}

/// A failure of a program, carrying its exit code, and the error it comes
/// from when there is one (its [`source`](std::error::Error::source)).
#[derive(Debug)]
pub struct Failure {
    /// [`EXIT_FAILURE`] or [`EXIT_USAGE`].
    pub code: u8,
    /// What to print after `program: `.
    pub message: String,
    cause: Option<Box<dyn std::error::Error + Send + Sync>>,
}

impl Failure {
    /// A usage or configuration error (exit 2).
    pub fn usage(message: impl Into<String>) -> Failure {
        Failure::with_code(EXIT_USAGE, message)
    }

    /// An operational failure (exit 1).
    pub fn failed(message: impl Into<String>) -> Failure {
        Failure::with_code(EXIT_FAILURE, message)
    }

    /// A failure with exit `code` and `message`.
    pub fn with_code(code: u8, message: impl Into<String>) -> Failure {
        Failure {
            code,
            message: message.into(),
            cause: None,
        }
    }

    /// A failure with exit `code` that says what `error` says and keeps it
    /// as the source.
    pub fn caused_by(code: u8, error: impl std::error::Error + Send + Sync + 'static) -> Failure {
        Failure {
            code,
            message: error.to_string(),
            cause: Some(Box::new(error)),
        }
    }
}

impl std::fmt::Display for Failure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for Failure {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        self.cause
            .as_deref()
            .map(|e| e as &(dyn std::error::Error + 'static))
    }
}

impl From<pico_args::Error> for Failure {
    fn from(e: pico_args::Error) -> Self {
        let message = format!("{e}; see --help");
        Failure {
            cause: Some(Box::new(e)),
            ..Failure::usage(message)
        }
    }
}

impl From<crate::base::config::ConfigError> for Failure {
    fn from(e: crate::base::config::ConfigError) -> Self {
        Failure::caused_by(EXIT_USAGE, e)
    }
}

/// Turns a program's result into its exit code, printing a failure as
/// `program: message` on stderr.
pub fn finish(program: &str, result: Result<u8, Failure>) -> ExitCode {
    match result {
        Ok(code) => ExitCode::from(code),
        Err(f) => {
            eprintln!("{program}: {}", f.message);
            ExitCode::from(f.code)
        }
    }
}

/// Prints `text` for `--help`, or the version for `--version`; true if it did.
pub fn help_or_version(args: &mut pico_args::Arguments, program: &str, help: &str) -> bool {
    if args.contains(["-h", "--help"]) {
        print!("{help}");
        return true;
    }
    if args.contains(["-V", "--version"]) {
        println!("{program} {}", env!("CARGO_PKG_VERSION"));
        return true;
    }
    false
}

/// Fails on any argument left over after parsing, naming it.
pub fn reject_leftovers(args: pico_args::Arguments) -> Result<(), Failure> {
    let rest: Vec<OsString> = args.finish();
    match rest.first() {
        None => Ok(()),
        Some(a) if a.to_string_lossy().starts_with('-') => Err(Failure::usage(format!(
            "unknown flag {}; see --help",
            a.to_string_lossy()
        ))),
        Some(a) => Err(Failure::usage(format!(
            "unexpected argument {:?}; see --help",
            a.to_string_lossy()
        ))),
    }
}

/// The remaining free arguments as paths (for `MANIFEST...` style lists).
pub fn free_paths(args: pico_args::Arguments) -> Result<Vec<PathBuf>, Failure> {
    let rest = args.finish();
    if let Some(flag) = rest.iter().find(|a| a.to_string_lossy().starts_with('-')) {
        return Err(Failure::usage(format!(
            "unknown flag {}; see --help",
            flag.to_string_lossy()
        )));
    }
    Ok(rest.into_iter().map(PathBuf::from).collect())
}

#[cfg(test)]
mod tests {
    use std::error::Error as _;

    use super::*;

    #[test]
    fn a_failure_keeps_the_error_it_comes_from() {
        let io = std::io::Error::new(std::io::ErrorKind::NotFound, "x.yaml: gone");
        let f = Failure::caused_by(EXIT_FAILURE, io);
        assert_eq!(f.code, EXIT_FAILURE);
        assert_eq!(f.to_string(), "x.yaml: gone");
        let cause = f.source().and_then(|e| e.downcast_ref::<std::io::Error>());
        assert_eq!(cause.map(|e| e.kind()), Some(std::io::ErrorKind::NotFound));
        let plain = Failure::usage("unknown flag --x; see --help");
        assert_eq!(plain.code, EXIT_USAGE);
        assert!(plain.source().is_none());
    }
}
