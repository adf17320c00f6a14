//! CPU time of processes from `/proc/PID/stat` (user + system), and their peak resident
//! set from `/proc/PID/status`: what the hub nodes (and the stores) used during a run.

use std::path::PathBuf;

/// Clock ticks per second of `/proc/PID/stat` (`USER_HZ`, 100 on Linux).
const TICKS_PER_SEC: f64 = 100.0;

/// Why a process's figures could not be read.
#[derive(Debug, thiserror::Error)]
pub enum CpuError {
    /// The file could not be read (the process is gone?).
    #[error("reading {path}: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// The cause.
        source: std::io::Error,
    },
    /// The file's content is not what Linux writes.
    #[error("{path}: unexpected format")]
    Format {
        /// The file.
        path: PathBuf,
    },
}

/// User + system CPU seconds used so far by process `pid` (`self` for this process).
pub fn cpu_secs(pid: &str) -> Result<f64, CpuError> {
    let path = PathBuf::from(format!("/proc/{pid}/stat"));
    let stat = std::fs::read_to_string(&path)
        .map_err(|source| CpuError::Read { path: path.clone(), source })?;
    // Fields after the command name (which may hold spaces, in parentheses): state is
    // field 3, utime 14, stime 15.
    let rest =
        stat.rsplit_once(')').map(|(_, r)| r).ok_or(CpuError::Format { path: path.clone() })?;
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let tick = |i: usize| fields.get(i).and_then(|f| f.parse::<u64>().ok());
    match (tick(11), tick(12)) {
        (Some(u), Some(s)) => Ok((u + s) as f64 / TICKS_PER_SEC),
        _ => Err(CpuError::Format { path }),
    }
}

/// CPU seconds of all of `pids`, summed.
pub fn total_cpu_secs(pids: &[u32]) -> Result<f64, CpuError> {
    pids.iter().map(|p| cpu_secs(&p.to_string())).sum()
}

/// CPU seconds of those of `pids` still running, summed: for store processes, whose workers
/// (PostgreSQL backends) may come and go. A process gone since is counted as 0.
pub fn running_cpu_secs(pids: &[u32]) -> f64 {
    pids.iter().filter_map(|p| cpu_secs(&p.to_string()).ok()).sum()
}

/// Peak resident set (`VmHWM`) of process `pid`, in KiB.
pub fn peak_rss_kib(pid: u32) -> Result<u64, CpuError> {
    let path = PathBuf::from(format!("/proc/{pid}/status"));
    let status = std::fs::read_to_string(&path)
        .map_err(|source| CpuError::Read { path: path.clone(), source })?;
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse().ok())
        .ok_or(CpuError::Format { path })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn own_cpu_time_and_rss_are_readable() {
        let t = cpu_secs("self").unwrap();
        assert!(t >= 0.0);
        assert!(peak_rss_kib(std::process::id()).unwrap() > 0);
    }
}
