//! Client certificates of the simulated devices, issued by the hub's own CLI
//! (`hub issue-device`), and the operator certificate the check lists with.
//!
//! Layout of the certificate directory: `devices/<device>/{device.crt,device.key,ca.crt}`,
//! `operator/…`, and `devices.json` ([`Fleet`]). Device `lg-00000` belongs to facility
//! `LG0000`, device `i` to facility `i mod facilities`.

use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};
use std::process::Command;

/// Device id of the operator certificate.
pub const OPERATOR: &str = "lg-operator";

/// Why certificates could not be issued or loaded.
#[derive(Debug, thiserror::Error)]
pub enum CertsError {
    /// `hub issue-device` could not be started.
    #[error("starting {bin} for device {device}: {source}")]
    Spawn {
        /// The hub binary.
        bin: PathBuf,
        /// The device.
        device: String,
        /// The cause.
        source: std::io::Error,
    },
    /// `hub issue-device` failed.
    #[error("hub issue-device for device {device} exited with {status}: {stderr}")]
    Issue {
        /// The device.
        device: String,
        /// Its exit status.
        status: std::process::ExitStatus,
        /// The last line of its standard error.
        stderr: String,
    },
    /// `devices.json` could not be read or written.
    #[error("{path}: {reason}")]
    Fleet {
        /// The file.
        path: PathBuf,
        /// What went wrong.
        reason: String,
    },
    /// Fewer devices issued than a run asks for.
    #[error("{path} has {have} devices, {want} asked for")]
    TooFew {
        /// The file.
        path: PathBuf,
        /// Devices in it.
        have: usize,
        /// Devices asked for.
        want: usize,
    },
    /// Zero devices or facilities, or more facilities than devices.
    #[error("{devices} devices for {facilities} facilities: need 1 <= facilities <= devices")]
    Shape {
        /// Devices asked for.
        devices: usize,
        /// Facilities asked for.
        facilities: usize,
    },
}

/// One simulated device.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeviceEntry {
    /// Its device id.
    pub device: String,
    /// Its facility.
    pub facility: String,
}

/// `devices.json`: the devices issued.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Fleet {
    /// In issue order.
    pub devices: Vec<DeviceEntry>,
}

/// The device id and facility of device `i` of `facilities`.
pub fn entry(i: usize, facilities: usize) -> DeviceEntry {
    DeviceEntry { device: format!("lg-{i:05}"), facility: format!("LG{:04}", i % facilities) }
}

/// The directory of a device's certificate, key and CA.
pub fn device_dir(certs: &Path, device: &str) -> PathBuf {
    if device == OPERATOR {
        certs.join("operator")
    } else {
        certs.join("devices").join(device)
    }
}

/// Issues `devices` device certificates over `facilities` facilities and one operator
/// certificate with `hub issue-device --config CONFIG`, `jobs` at a time, into `out`.
/// Devices whose directory already holds a certificate are kept.
pub fn issue(
    hub_bin: &Path,
    config: &Path,
    devices: usize,
    facilities: usize,
    jobs: usize,
    out: &Path,
) -> Result<Fleet, CertsError> {
    if facilities == 0 || devices == 0 || facilities > devices {
        return Err(CertsError::Shape { devices, facilities });
    }
    let mut todo: Vec<(String, String, &str)> = (0..devices)
        .map(|i| entry(i, facilities))
        .map(|e| (e.device, e.facility, "device"))
        .collect();
    // The operator first, alone: the first `hub issue-device` on a fresh store creates its
    // tables, which concurrent ones would race.
    todo.insert(0, (OPERATOR.into(), "SOC".into(), "operator"));
    todo.retain(|(d, _, _)| !device_dir(out, d).join("device.crt").exists());
    let first = todo.len().min(1);
    let (head, rest) = todo.split_at(first);
    for batch in head.chunks(1).chain(rest.chunks(jobs.max(1))) {
        let mut children = Vec::new();
        for (device, facility, role) in batch {
            let child = Command::new(hub_bin)
                .args(["issue-device", "--config"])
                .arg(config)
                .args(["--device", device, "--facility", facility, "--role", role, "--out"])
                .arg(device_dir(out, device))
                .stdout(std::process::Stdio::null())
                .stderr(std::process::Stdio::piped())
                .spawn()
                .map_err(|source| CertsError::Spawn {
                    bin: hub_bin.to_path_buf(),
                    device: device.clone(),
                    source,
                })?;
            children.push((device, child));
        }
        for (device, child) in children {
            let out = child.wait_with_output().map_err(|source| CertsError::Spawn {
                bin: hub_bin.to_path_buf(),
                device: device.clone(),
                source,
            })?;
            if !out.status.success() {
                let stderr = String::from_utf8_lossy(&out.stderr);
                return Err(CertsError::Issue {
                    device: device.clone(),
                    status: out.status,
                    stderr: stderr.lines().last().unwrap_or("").to_string(),
                });
            }
        }
    }
    let fleet = Fleet { devices: (0..devices).map(|i| entry(i, facilities)).collect() };
    let path = out.join("devices.json");
    let json = serde_json::to_vec_pretty(&fleet)
        .map_err(|e| CertsError::Fleet { path: path.clone(), reason: e.to_string() })?;
    std::fs::write(&path, json)
        .map_err(|e| CertsError::Fleet { path: path.clone(), reason: e.to_string() })?;
    Ok(fleet)
}

/// The first `want` devices of `certs/devices.json`.
pub fn load(certs: &Path, want: usize) -> Result<Vec<DeviceEntry>, CertsError> {
    let path = certs.join("devices.json");
    let bytes = std::fs::read(&path)
        .map_err(|e| CertsError::Fleet { path: path.clone(), reason: e.to_string() })?;
    let fleet: Fleet = serde_json::from_slice(&bytes)
        .map_err(|e| CertsError::Fleet { path: path.clone(), reason: e.to_string() })?;
    if fleet.devices.len() < want {
        return Err(CertsError::TooFew { path, have: fleet.devices.len(), want });
    }
    Ok(fleet.devices.into_iter().take(want).collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn devices_are_spread_over_facilities() {
        assert_eq!(entry(0, 3).facility, "LG0000");
        assert_eq!(entry(4, 3).facility, "LG0001");
        assert_eq!(entry(4, 3).device, "lg-00004");
    }
}
