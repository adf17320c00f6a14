//! Logging: tracing events go to journald when the process runs under systemd (the
//! `JOURNAL_STREAM` variable is set and the journal socket answers), else to stderr.
//!
//! Log lines carry ids, counts, states and reason codes only. Values from the department
//! system never reach a log call: the types that hold them have redacted `Debug` impls.

use tracing_subscriber::EnvFilter;

/// Where log lines go.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogSink {
    /// The systemd journal.
    Journald,
    /// Standard error, filtered by `RUST_LOG`.
    Stderr,
}

/// Initialise logging once. `RUST_LOG` overrides the default filter (`info`).
pub fn init(program: &str) -> LogSink {
    let under_systemd = std::env::var_os("JOURNAL_STREAM").is_some();
    if under_systemd {
        if let Ok(logger) = systemd_journal_logger::JournalLog::new() {
            let logger = logger.with_syslog_identifier(program.to_string());
            if logger.install().is_ok() {
                // tracing's `log` feature forwards events to the `log` facade when no
                // tracing subscriber is set, which is what feeds the journal here.
                log::set_max_level(log::LevelFilter::Info);
                return LogSink::Journald;
            }
        }
    }
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_target(false)
        .try_init();
    LogSink::Stderr
}
