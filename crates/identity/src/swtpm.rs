//! A software TPM for tests (feature `swtpm-harness`): Debian's `swtpm` in socket mode on
//! loopback, with its own state directory, killed when dropped.
//!
//! Nothing is skipped when swtpm is missing: [`Swtpm::start`] fails and names the package,
//! so a machine without it fails the tests instead of passing them vacuously.

use crate::kind::Tcti;
use std::fs::{self, File};
use std::net::{IpAddr, Ipv4Addr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::thread;
use std::time::{Duration, Instant};

/// How long swtpm may take to listen. A liveness bound, not a performance assertion.
const START_TIMEOUT: Duration = Duration::from_secs(20);
/// Attempts with fresh ports when another process took the ones picked.
const START_ATTEMPTS: usize = 5;
/// swtpm's stderr, kept in the state directory and read when it fails.
const LOG_NAME: &str = "swtpm-stderr.log";

/// swtpm could not be started.
#[derive(Debug, thiserror::Error)]
pub enum SwtpmError {
    /// The `swtpm` binary is not on PATH.
    #[error("swtpm is not installed: install the Debian package `swtpm` (apt-get install swtpm swtpm-tools)")]
    NotInstalled,
    /// Spawning or preparing the state directory failed.
    #[error("swtpm: {what} {path}: {source}")]
    Io {
        /// What was being done.
        what: &'static str,
        /// The path concerned.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
    /// swtpm exited before listening.
    #[error("swtpm exited ({status}) before listening; its stderr: {log}")]
    Exited {
        /// Exit status.
        status: ExitStatus,
        /// The end of its stderr.
        log: String,
    },
    /// swtpm did not listen in time.
    #[error("swtpm did not listen on ports {port}/{} within {START_TIMEOUT:?}", port + 1)]
    Timeout {
        /// The server port.
        port: u16,
    },
}

/// A running swtpm (TPM 2.0, socket mode), killed on drop.
#[derive(Debug)]
pub struct Swtpm {
    child: Child,
    port: u16,
    state_dir: PathBuf,
}

impl Swtpm {
    /// Start swtpm on free loopback ports with its state in `state_dir` (created if absent;
    /// an existing state is the same TPM again, as after a reboot).
    pub fn start(state_dir: &Path) -> Result<Swtpm, SwtpmError> {
        fs::create_dir_all(state_dir).map_err(|source| SwtpmError::Io {
            what: "creating state directory",
            path: state_dir.to_path_buf(),
            source,
        })?;
        let mut last = None;
        for _ in 0..START_ATTEMPTS {
            let port = free_port_pair(state_dir)?;
            match Swtpm::start_on(state_dir, port) {
                Ok(swtpm) => return Ok(swtpm),
                // Lost a race for the ports: try others.
                Err(e @ (SwtpmError::Exited { .. } | SwtpmError::Timeout { .. })) => last = Some(e),
                Err(e) => return Err(e),
            }
        }
        Err(last.unwrap_or(SwtpmError::Timeout { port: 0 }))
    }

    fn start_on(state_dir: &Path, port: u16) -> Result<Swtpm, SwtpmError> {
        let log_path = state_dir.join(LOG_NAME);
        let log = File::create(&log_path).map_err(|source| SwtpmError::Io {
            what: "creating log",
            path: log_path.clone(),
            source,
        })?;
        let child = Command::new("swtpm")
            .arg("socket")
            .arg("--tpm2")
            .arg("--server")
            .arg(format!("type=tcp,bindaddr=127.0.0.1,port={port}"))
            .arg("--ctrl")
            .arg(format!("type=tcp,bindaddr=127.0.0.1,port={}", port + 1))
            .arg("--tpmstate")
            .arg(format!("dir={}", state_dir.display()))
            .arg("--flags")
            .arg("not-need-init,startup-clear")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .map_err(|source| match source.kind() {
                std::io::ErrorKind::NotFound => SwtpmError::NotInstalled,
                _ => SwtpmError::Io {
                    what: "spawning swtpm for",
                    path: state_dir.to_path_buf(),
                    source,
                },
            })?;
        let mut swtpm = Swtpm { child, port, state_dir: state_dir.to_path_buf() };
        let deadline = Instant::now() + START_TIMEOUT;
        loop {
            if let Ok(Some(status)) = swtpm.child.try_wait() {
                let log = fs::read_to_string(&log_path).unwrap_or_default();
                let tail = log.len().saturating_sub(2000);
                return Err(SwtpmError::Exited { status, log: log[tail..].to_string() });
            }
            if listening(port) && listening(port + 1) {
                return Ok(swtpm);
            }
            if Instant::now() > deadline {
                return Err(SwtpmError::Timeout { port });
            }
            thread::sleep(Duration::from_millis(20));
        }
    }

    /// The TCTI to reach this swtpm.
    pub fn tcti(&self) -> Tcti {
        Tcti::swtpm(IpAddr::V4(Ipv4Addr::LOCALHOST), self.port)
    }

    /// Its state directory.
    pub fn state_dir(&self) -> &Path {
        &self.state_dir
    }
}

impl Drop for Swtpm {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn listening(port: u16) -> bool {
    TcpStream::connect((Ipv4Addr::LOCALHOST, port)).is_ok()
}

/// A port P with P + 1 also free right now (swtpm's server and control channels).
fn free_port_pair(state_dir: &Path) -> Result<u16, SwtpmError> {
    let io = |source| SwtpmError::Io {
        what: "finding free ports for",
        path: state_dir.to_path_buf(),
        source,
    };
    loop {
        let first = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).map_err(io)?;
        let port = first.local_addr().map_err(io)?.port();
        if port == u16::MAX {
            continue;
        }
        if TcpListener::bind((Ipv4Addr::LOCALHOST, port + 1)).is_ok() {
            return Ok(port);
        }
    }
}
