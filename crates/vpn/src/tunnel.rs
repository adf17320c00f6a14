//! A WireGuard interface, up for as long as its [`Tunnel`] lives.
//!
//! [`Tunnel::up`] makes the interface (the kernel's `wireguard` link type, or a boringtun
//! device on a tun interface in this process), gives it its private key and listen port,
//! adds the peers with `wg set`, then the address, MTU and routes with `ip`. Dropping the
//! tunnel removes the interface. Peers can be set and removed while it is up (the hub adds
//! boxes as they enroll and removes revoked ones).
//!
//! Why wg(8) and ip(8) rather than netlink from Rust: they are the reference tools every
//! WireGuard deployment uses, they speak both the kernel's netlink API and the userspace
//! UAPI socket, so one code path configures both implementations, and what the box does can
//! be repeated by hand with the same commands when debugging.

use crate::key::{WgPrivateKey, WgPublicKey};
use boringtun::device::{DeviceConfig, DeviceHandle};
use std::fmt;
use std::io::Write;
use std::net::IpAddr;
use std::process::{Command, Stdio};

/// Why a tunnel could not be brought up or changed. Names the interface and the command,
/// never a private key.
#[derive(Debug, thiserror::Error)]
pub enum TunnelError {
    /// A setting has the wrong shape.
    #[error("vpn: {what}: expected {expected}")]
    Invalid {
        /// What was given (the setting's name).
        what: &'static str,
        /// What it must be.
        expected: &'static str,
    },
    /// A command could not be run (not installed).
    #[error("vpn {iface}: cannot run {program}: {source} (install {package})")]
    Spawn {
        /// The interface.
        iface: String,
        /// The program.
        program: &'static str,
        /// Its Debian package.
        package: &'static str,
        /// The error.
        source: std::io::Error,
    },
    /// A command failed.
    #[error("vpn {iface}: `{command}` failed: {stderr}")]
    Command {
        /// The interface.
        iface: String,
        /// The command line (no key material: keys go through standard input).
        command: String,
        /// What it printed on standard error.
        stderr: String,
    },
    /// boringtun could not make its device (no `/dev/net/tun`, no `CAP_NET_ADMIN`, or the
    /// name is taken).
    #[error("vpn {iface}: userspace WireGuard (boringtun) failed: {detail}")]
    Userspace {
        /// The interface.
        iface: String,
        /// boringtun's error.
        detail: String,
    },
}

/// An interface name as the kernel takes it: 1 to 15 of `[A-Za-z0-9_-]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InterfaceName(String);

impl InterfaceName {
    /// Checks the name.
    pub fn new(name: &str) -> Result<InterfaceName, TunnelError> {
        let ok = (1..=15).contains(&name.len())
            && name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-');
        if ok {
            Ok(InterfaceName(name.into()))
        } else {
            Err(TunnelError::Invalid {
                what: "vpn.interface",
                expected: "1 to 15 characters of A-Z a-z 0-9 _ -",
            })
        }
    }

    /// The name.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for InterfaceName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// An address with its prefix length, `ip/len`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Cidr {
    /// The address.
    pub addr: IpAddr,
    /// The prefix length.
    pub prefix: u8,
}

impl Cidr {
    /// Parses `ip/len`.
    pub fn parse(s: &str) -> Result<Cidr, TunnelError> {
        let bad =
            || TunnelError::Invalid { what: "address", expected: "ip/prefix, e.g. 10.88.0.1/16" };
        let (ip, len) = s.split_once('/').ok_or_else(bad)?;
        let addr: IpAddr = ip.parse().map_err(|_| bad())?;
        let prefix: u8 = len.parse().map_err(|_| bad())?;
        if prefix > if addr.is_ipv4() { 32 } else { 128 } {
            return Err(bad());
        }
        Ok(Cidr { addr, prefix })
    }

    /// The same address as a host route (`/32` or `/128`).
    pub fn host(addr: IpAddr) -> Cidr {
        Cidr { addr, prefix: if addr.is_ipv4() { 32 } else { 128 } }
    }
}

impl fmt::Display for Cidr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.addr, self.prefix)
    }
}

/// Which WireGuard to use. Default [`Implementation::Auto`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Implementation {
    /// The kernel's where it has the module, otherwise userspace.
    #[default]
    Auto,
    /// The kernel's only (fails where the kernel lacks it).
    Kernel,
    /// boringtun over `/dev/net/tun`, in this process.
    Userspace,
}

impl Implementation {
    /// `auto`, `kernel` or `userspace`.
    pub fn parse(s: &str) -> Result<Implementation, TunnelError> {
        match s {
            "auto" => Ok(Implementation::Auto),
            "kernel" => Ok(Implementation::Kernel),
            "userspace" => Ok(Implementation::Userspace),
            _ => Err(TunnelError::Invalid {
                what: "vpn.implementation",
                expected: "\"auto\", \"kernel\" or \"userspace\"",
            }),
        }
    }
}

/// A peer of the interface.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PeerSpec {
    /// Its public key.
    pub public_key: WgPublicKey,
    /// Where to reach it (`host:port`), if this side dials it.
    pub endpoint: Option<String>,
    /// Addresses it may send from and that are routed to it.
    pub allowed_ips: Vec<Cidr>,
    /// Keepalive in seconds (through NAT), if any.
    pub keepalive_secs: Option<u16>,
}

/// What [`Tunnel::up`] makes.
#[derive(Debug, Clone)]
pub struct TunnelSpec {
    /// The interface's name.
    pub interface: InterfaceName,
    /// Kernel or userspace.
    pub implementation: Implementation,
    /// This side's private key.
    pub private_key: WgPrivateKey,
    /// UDP port to listen on; `None` for any (a box that only dials).
    pub listen_port: Option<u16>,
    /// This side's tunnel address and the prefix reachable through the interface.
    pub address: Cidr,
    /// The peers.
    pub peers: Vec<PeerSpec>,
}

/// Which implementation a running tunnel uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Running {
    /// A kernel `wireguard` link.
    Kernel,
    /// boringtun in this process.
    Userspace,
}

/// An interface that is up; removed on drop.
pub struct Tunnel {
    iface: InterfaceName,
    running: Running,
    /// boringtun's device: its threads serve the interface until dropped.
    device: Option<DeviceHandle>,
}

impl fmt::Debug for Tunnel {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Tunnel")
            .field("iface", &self.iface)
            .field("running", &self.running)
            .finish()
    }
}

impl Tunnel {
    /// Brings the interface up as `spec` says. On failure nothing is left behind.
    pub fn up(spec: &TunnelSpec) -> Result<Tunnel, TunnelError> {
        let name = &spec.interface;
        let kernel = match spec.implementation {
            Implementation::Userspace => false,
            Implementation::Kernel => {
                ip(name, &["link", "add", "dev", name.as_str(), "type", "wireguard"])?;
                true
            }
            // `ip link add ... type wireguard` fails at once where the module is missing.
            Implementation::Auto => {
                ip(name, &["link", "add", "dev", name.as_str(), "type", "wireguard"]).is_ok()
            }
        };
        let mut tunnel = if kernel {
            Tunnel { iface: name.clone(), running: Running::Kernel, device: None }
        } else {
            let config = DeviceConfig {
                n_threads: 2,
                use_connected_socket: true,
                use_multi_queue: false,
                uapi_fd: -1,
            };
            let device = DeviceHandle::new(name.as_str(), config).map_err(|e| {
                TunnelError::Userspace { iface: name.to_string(), detail: format!("{e:?}") }
            })?;
            Tunnel { iface: name.clone(), running: Running::Userspace, device: Some(device) }
        };
        tunnel.configure(spec)?;
        tracing::info!(
            iface = %name,
            implementation = ?tunnel.running,
            address = %spec.address,
            peers = spec.peers.len(),
            "wireguard tunnel up"
        );
        Ok(tunnel)
    }

    fn configure(&mut self, spec: &TunnelSpec) -> Result<(), TunnelError> {
        let name = self.iface.as_str();
        let mut args = vec!["set", name, "private-key", "/dev/stdin"];
        let port = spec.listen_port.map(|p| p.to_string());
        if let Some(port) = &port {
            args.extend(["listen-port", port.as_str()]);
        }
        wg(&self.iface, &args, Some(&spec.private_key.to_base64()))?;
        ip(&self.iface, &["address", "add", &spec.address.to_string(), "dev", name])?;
        // 1420: WireGuard's default, the Ethernet MTU minus its IPv6 + UDP overhead.
        ip(&self.iface, &["link", "set", "dev", name, "mtu", "1420", "up"])?;
        // Peers last: their routes need the interface up.
        for peer in &spec.peers {
            self.set_peer(peer)?;
        }
        Ok(())
    }

    /// The interface's name.
    pub fn interface(&self) -> &InterfaceName {
        &self.iface
    }

    /// Which implementation serves it.
    pub fn running(&self) -> Running {
        self.running
    }

    /// Adds `peer`, or replaces its endpoint and addresses, and routes its addresses here.
    pub fn set_peer(&self, peer: &PeerSpec) -> Result<(), TunnelError> {
        let key = peer.public_key.to_string();
        let ips: Vec<String> = peer.allowed_ips.iter().map(Cidr::to_string).collect();
        let ips = ips.join(",");
        let keepalive = peer.keepalive_secs.map(|k| k.to_string());
        let mut args = vec!["set", self.iface.as_str(), "peer", &key, "allowed-ips", &ips];
        if let Some(e) = &peer.endpoint {
            args.extend(["endpoint", e.as_str()]);
        }
        if let Some(k) = &keepalive {
            args.extend(["persistent-keepalive", k.as_str()]);
        }
        wg(&self.iface, &args, None)?;
        for cidr in &peer.allowed_ips {
            ip(&self.iface, &["route", "replace", &cidr.to_string(), "dev", self.iface.as_str()])?;
        }
        Ok(())
    }

    /// Removes the peer with `key` (absent is fine).
    pub fn remove_peer(&self, key: &WgPublicKey) -> Result<(), TunnelError> {
        let key = key.to_string();
        wg(&self.iface, &["set", self.iface.as_str(), "peer", &key, "remove"], None).map(drop)
    }

    /// The peers' public keys, as the interface has them.
    pub fn peers(&self) -> Result<Vec<WgPublicKey>, TunnelError> {
        let out = wg(&self.iface, &["show", self.iface.as_str(), "peers"], None)?;
        Ok(out.lines().filter_map(|l| WgPublicKey::parse(l.trim()).ok()).collect())
    }
}

impl Drop for Tunnel {
    fn drop(&mut self) {
        match self.running {
            Running::Kernel => {
                let _ = ip(&self.iface, &["link", "del", "dev", self.iface.as_str()]);
            }
            // Dropping the device stops its threads and closes the tun, which removes the
            // interface and its routes.
            Running::Userspace => drop(self.device.take()),
        }
    }
}

/// `wg args`, with `stdin` written to its standard input; its standard output.
fn wg(iface: &InterfaceName, args: &[&str], stdin: Option<&str>) -> Result<String, TunnelError> {
    run(iface, "wg", "wireguard-tools", args, stdin)
}

fn ip(iface: &InterfaceName, args: &[&str]) -> Result<String, TunnelError> {
    run(iface, "ip", "iproute2", args, None)
}

fn run(
    iface: &InterfaceName,
    program: &'static str,
    package: &'static str,
    args: &[&str],
    stdin: Option<&str>,
) -> Result<String, TunnelError> {
    let spawn_err =
        |source| TunnelError::Spawn { iface: iface.to_string(), program, package, source };
    let mut child = Command::new(program)
        .args(args)
        .stdin(if stdin.is_some() { Stdio::piped() } else { Stdio::null() })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(spawn_err)?;
    if let (Some(text), Some(mut pipe)) = (stdin, child.stdin.take()) {
        pipe.write_all(text.as_bytes()).map_err(spawn_err)?;
    }
    let out = child.wait_with_output().map_err(spawn_err)?;
    if !out.status.success() {
        return Err(TunnelError::Command {
            iface: iface.to_string(),
            command: format!("{program} {}", args.join(" ")),
            stderr: String::from_utf8_lossy(&out.stderr).trim().chars().take(300).collect(),
        });
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_addresses_and_implementations_are_checked() {
        assert!(InterfaceName::new("fgw0").is_ok());
        assert!(InterfaceName::new("fgw-hub_0123456").is_ok());
        for bad in ["", "fgw-hub_01234567", "a b", "x/y", "wg0;rm"] {
            assert!(InterfaceName::new(bad).is_err(), "{bad:?}");
        }
        assert_eq!(Cidr::parse("10.88.0.1/16").unwrap().to_string(), "10.88.0.1/16");
        assert_eq!(Cidr::parse("fd00::1/64").unwrap().prefix, 64);
        for bad in ["10.88.0.1", "10.88.0.1/33", "x/8", "10.88.0.1/-1"] {
            assert!(Cidr::parse(bad).is_err(), "{bad:?}");
        }
        assert_eq!(Implementation::parse("auto").unwrap(), Implementation::Auto);
        assert!(Implementation::parse("boringtun").is_err());
    }
}
