//! Logging: tracing events go to journald when the process runs under systemd (the
//! `JOURNAL_STREAM` variable is set and the journal socket answers), else to stderr.
//!
//! Log lines carry ids, counts, states and reason codes only. Values from the department
//! system never reach a log call: the types that hold them have redacted `Debug` impls.
//! Panics neither: [`install_panic_hook`] replaces the default output, which prints the panic
//! message (`expect` texts, index errors, a library quoting its input).

use std::panic::Location;
use tracing_subscriber::EnvFilter;

/// Replace the default panic output with one line naming only where (file:line:column) and on
/// which thread. The message is never printed: it may quote the data being handled. Installed
/// first thing by the `gateway` binary's `main`; the pipeline catches panics per item
/// (`internal-error`), so this line is what tells an operator where to look.
pub fn install_panic_hook() {
    std::panic::set_hook(Box::new(|info| {
        let line = panic_line(info.location(), std::thread::current().name());
        // Through the log sink once it is set up (journald or stderr); before that, stderr.
        if tracing::dispatcher::has_been_set() || log::max_level() != log::LevelFilter::Off {
            tracing::error!("{line}");
        } else {
            eprintln!("{line}");
        }
    }));
}

/// The text logged for a panic: location and thread, no message.
pub fn panic_line(location: Option<&Location<'_>>, thread: Option<&str>) -> String {
    let at = location.map_or_else(
        || "an unknown location".to_string(),
        |l| format!("{}:{}:{}", l.file(), l.line(), l.column()),
    );
    let thread = thread.unwrap_or("<unnamed>");
    format!("panic at {at} in thread '{thread}' (message not logged: it may hold patient data)")
}

/// Where log lines go.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogSink {
    /// The systemd journal.
    Journald,
    /// Standard error, filtered by `RUST_LOG`.
    Stderr,
}

/// Initialise logging once. `RUST_LOG` overrides the default filter (`info`, with the TPM
/// library's per-call context messages at `warn`).
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
    let filter =
        EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info,tss_esapi=warn"));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_target(false)
        .try_init();
    LogSink::Stderr
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::process::Command;

    const MARKER: &str = "MARKER-PANIC-7731 山田 太郎 00012345";
    const CHILD: &str = "FGW_PANIC_HOOK_CHILD";

    #[test]
    fn panic_line_has_location_and_thread_only() {
        let here = Location::caller();
        let line = panic_line(Some(here), Some("deid-stage"));
        assert!(line.contains(&format!("{}:{}:", here.file(), here.line())), "{line}");
        assert!(line.contains("'deid-stage'"), "{line}");
        assert!(panic_line(None, None).contains("unknown location"));
    }

    /// The installed hook, in a child process (hooks are process-wide and the test harness
    /// captures output): a stage thread panics with a payload holding a marker; stderr names
    /// this file, the line and the thread, and never the marker.
    #[test]
    fn hook_logs_location_never_the_payload() {
        if std::env::var_os(CHILD).is_some() {
            install_panic_hook();
            let r = std::thread::Builder::new()
                .name("fgw-test-stage".into())
                .spawn(|| panic!("cannot parse row: {MARKER}"))
                .unwrap()
                .join();
            assert!(r.is_err());
            return;
        }
        let out = Command::new(std::env::current_exe().unwrap())
            .args(["--exact", "logging::tests::hook_logs_location_never_the_payload"])
            .args(["--nocapture", "--test-threads=1"])
            .env(CHILD, "1")
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(out.status.success(), "{stderr}");
        assert!(stderr.contains("panic at crates/gateway/src/logging.rs:"), "{stderr}");
        assert!(stderr.contains("'fgw-test-stage'"), "{stderr}");
        for leak in ["MARKER-PANIC-7731", "山田", "00012345", "cannot parse row"] {
            assert!(!stderr.contains(leak), "panic payload logged: {stderr}");
        }
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert!(!stdout.contains("MARKER-PANIC-7731"), "{stdout}");
    }
}
