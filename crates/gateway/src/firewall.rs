//! The firewall's allow-lists, from the box's configuration (issue 14).
//!
//! `/etc/nftables.conf` (board overlay) drops everything by default and admits traffic only
//! to and from named sets. This module renders those sets' elements as an nftables file,
//! which `facility-gateway-firewall.service` (root, before the daemon) writes under `/run`
//! and loads with the ruleset:
//!
//! - `department4`/`department6`: who may reach the DICOM and HL7 listeners — the
//!   listeners' own `allowed_peers` — and the DICOM archive the box pulls from;
//! - `department_ports`: the ports those listeners are configured on, and `archive_ports`:
//!   the archive's port;
//! - `hub4`/`hub6` and `hub_ports`: the hub nodes of `[uplink]` and the hospital's proxy,
//!   names resolved when the file is written. The WireGuard endpoint the hub gives the box
//!   at enrollment must be at one of those addresses (UDP to them is allowed on any port).
//!
//! An empty configuration gives empty sets: the ruleset then admits DHCP, DNS and NTP only.
//! The file carries addresses and ports, never anything else from the configuration.

use crate::config::GatewayConfig;
use fgw_ingest::dicom_pull::PullMode;
use fgw_ingest::dicom_scp::ScpMode;
use fgw_ingest::hl7::Hl7Mode;
use std::collections::BTreeSet;
use std::fmt::Write as _;
use std::net::{IpAddr, ToSocketAddrs};
use std::path::{Path, PathBuf};

/// Why the allow-lists could not be made or written.
#[derive(Debug, thiserror::Error)]
pub enum FirewallError {
    /// A setting that names a peer is not usable (`key` names it).
    #[error("{key}: {why}")]
    Setting {
        /// The setting.
        key: &'static str,
        /// What is wrong with it.
        why: String,
    },
    /// A host name of the hub or proxy did not resolve (the unit retries later).
    #[error("{key}: host name does not resolve")]
    Resolve {
        /// The setting holding the name.
        key: &'static str,
    },
    /// The file could not be written.
    #[error("writing {path}: {source}")]
    Write {
        /// The file.
        path: PathBuf,
        /// The system's error.
        source: std::io::Error,
    },
}

/// A network in a set: IPv4 or IPv6, in `addr/prefix` form.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
enum Net {
    V4(String),
    V6(String),
}

impl Net {
    fn host(ip: IpAddr) -> Net {
        match ip.to_canonical() {
            IpAddr::V4(a) => Net::V4(format!("{a}/32")),
            IpAddr::V6(a) => Net::V6(format!("{a}/128")),
        }
    }

    /// A listener's `allowed_peers` entry, already validated (`PeerNet`'s `addr/prefix`).
    fn peer(shown: String) -> Net {
        if shown.contains(':') {
            Net::V6(shown)
        } else {
            Net::V4(shown)
        }
    }
}

/// The sets' elements.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct AllowLists {
    department: BTreeSet<Net>,
    department_ports: BTreeSet<u16>,
    archive_ports: BTreeSet<u16>,
    hub: BTreeSet<Net>,
    hub_ports: BTreeSet<u16>,
}

/// How host names become addresses: the system resolver, or a table (tests).
pub trait Resolve {
    /// The addresses of `host`; empty if it does not resolve.
    fn addresses(&self, host: &str, port: u16) -> Vec<IpAddr>;
}

/// The system's resolver (`getaddrinfo`).
pub struct SystemResolver;

impl Resolve for SystemResolver {
    fn addresses(&self, host: &str, port: u16) -> Vec<IpAddr> {
        (host, port).to_socket_addrs().map(|a| a.map(|s| s.ip()).collect()).unwrap_or_default()
    }
}

/// The addresses of `host`: itself if it is an address, else what `resolver` says.
fn addresses_of(resolver: &dyn Resolve, host: &str, port: u16) -> Vec<IpAddr> {
    match host.parse::<IpAddr>() {
        Ok(ip) => vec![ip],
        Err(_) => resolver.addresses(host, port),
    }
}

/// `host` and port of an `http(s)://` URL from the configuration.
fn host_port(key: &'static str, text: &str) -> Result<(String, u16), FirewallError> {
    let url = url::Url::parse(text)
        .map_err(|_| FirewallError::Setting { key, why: "not a URL".into() })?;
    let host = match url.host() {
        Some(url::Host::Domain(d)) => d.to_string(),
        Some(url::Host::Ipv4(a)) => a.to_string(),
        Some(url::Host::Ipv6(a)) => a.to_string(),
        None => return Err(FirewallError::Setting { key, why: "URL without a host".into() }),
    };
    let port = url
        .port_or_known_default()
        .ok_or(FirewallError::Setting { key, why: "URL without a port".into() })?;
    Ok((host, port))
}

impl AllowLists {
    /// The allow-lists `cfg` asks for; names resolved with `resolver`.
    pub fn from_config(
        cfg: &GatewayConfig,
        resolver: &dyn Resolve,
    ) -> Result<AllowLists, FirewallError> {
        let mut lists = AllowLists::default();
        if cfg.dicom_scp.mode == ScpMode::Enabled {
            lists.admit_listener(cfg.dicom_scp.listen_addr(), &cfg.dicom_scp.allowed_peers)?;
        }
        if cfg.hl7.mode == Hl7Mode::Enabled {
            lists.admit_listener(cfg.hl7.listen_addr(), &cfg.hl7.allowed_peers)?;
        }
        if cfg.dicom_pull.mode == PullMode::Enabled {
            let (host, port) = (&cfg.dicom_pull.archive_host, cfg.dicom_pull.archive_port);
            let found = addresses_of(resolver, host, port);
            if found.is_empty() {
                return Err(FirewallError::Resolve { key: "dicom_pull.archive_host" });
            }
            lists.department.extend(found.into_iter().map(Net::host));
            lists.archive_ports.insert(port);
        }
        let mut hubs: Vec<(&'static str, &str)> =
            cfg.uplink.hub_list().into_iter().map(|u| ("uplink.hub_urls", u)).collect();
        if let Some(proxy) = &cfg.uplink.proxy_url {
            hubs.push(("uplink.proxy_url", proxy));
        }
        for (key, text) in hubs {
            if text.is_empty() {
                continue;
            }
            let (host, port) = host_port(key, text)?;
            let found = addresses_of(resolver, &host, port);
            if found.is_empty() {
                return Err(FirewallError::Resolve { key });
            }
            lists.hub.extend(found.into_iter().map(Net::host));
            lists.hub_ports.insert(port);
        }
        Ok(lists)
    }

    /// An enabled listener: its port, and its `allowed_peers` as department addresses.
    fn admit_listener(
        &mut self,
        listen: Result<std::net::SocketAddr, (&'static str, String)>,
        peers: &[fgw_ingest::PeerNet],
    ) -> Result<(), FirewallError> {
        let addr = listen.map_err(|(key, why)| FirewallError::Setting { key, why })?;
        self.department_ports.insert(addr.port());
        self.department.extend(peers.iter().map(|p| Net::peer(p.to_string())));
        Ok(())
    }

    /// The nftables statements that fill the sets of `table inet fgw`.
    pub fn to_nft(&self) -> String {
        let mut out = String::from(
            "# Written by `gateway firewall` from gateway.toml: the sets of /etc/nftables.conf.\n",
        );
        let nets = |set: &BTreeSet<Net>, v6: bool| -> Vec<String> {
            set.iter()
                .filter_map(|n| match (n, v6) {
                    (Net::V4(s), false) | (Net::V6(s), true) => Some(s.clone()),
                    _ => None,
                })
                .collect()
        };
        let ports = |set: &BTreeSet<u16>| set.iter().map(u16::to_string).collect::<Vec<_>>();
        let sets = [
            ("department4", nets(&self.department, false)),
            ("department6", nets(&self.department, true)),
            ("department_ports", ports(&self.department_ports)),
            ("archive_ports", ports(&self.archive_ports)),
            ("hub4", nets(&self.hub, false)),
            ("hub6", nets(&self.hub, true)),
            ("hub_ports", ports(&self.hub_ports)),
        ];
        for (name, elements) in sets {
            if !elements.is_empty() {
                let _ = writeln!(out, "add element inet fgw {name} {{ {} }}", elements.join(", "));
            }
        }
        out
    }
}

/// Writes `text` to `path` whole or not at all (a temporary file renamed over it), mode 0644.
pub fn write_file(path: &Path, text: &str) -> Result<(), FirewallError> {
    let write = |p: &Path| -> std::io::Result<()> {
        if let Some(dir) = p.parent() {
            std::fs::create_dir_all(dir)?;
        }
        let tmp = p.with_extension("nft.tmp");
        std::fs::write(&tmp, text)?;
        std::fs::rename(&tmp, p)
    };
    write(path).map_err(|source| FirewallError::Write { path: path.to_path_buf(), source })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;
    use std::path::Path;

    struct Table(HashMap<&'static str, Vec<IpAddr>>);
    impl Resolve for Table {
        fn addresses(&self, host: &str, _port: u16) -> Vec<IpAddr> {
            self.0.get(host).cloned().unwrap_or_default()
        }
    }

    fn config(extra: &str) -> GatewayConfig {
        let text = format!("facility_id = \"F0001\"\nstate_dir = \"/nonexistent\"\n{extra}");
        GatewayConfig::from_toml(Path::new("/etc/facility-gateway/gateway.toml"), &text).unwrap()
    }

    fn table() -> Table {
        Table(HashMap::from([
            (
                "hub.jges.example",
                vec!["198.51.100.7".parse().unwrap(), "2001:db8::7".parse().unwrap()],
            ),
            ("proxy.hospital.example", vec!["10.1.0.3".parse().unwrap()]),
            ("pacs.hospital.example", vec!["10.1.0.9".parse().unwrap()]),
            ("localhost", vec!["127.0.0.1".parse().unwrap()]),
        ]))
    }

    /// The defaults: no listener, no archive, the hub at its default URL (localhost).
    const DEFAULT_HUB: &str = "add element inet fgw hub4 { 127.0.0.1/32 }\n\
                               add element inet fgw hub_ports { 8443 }\n";

    #[test]
    fn a_configuration_without_listeners_opens_only_the_hub() {
        let nft = AllowLists::from_config(&config(""), &table()).unwrap().to_nft();
        assert!(nft.ends_with(DEFAULT_HUB), "{nft}");
        assert_eq!(nft.matches("add element").count(), 2, "{nft}");
    }

    #[test]
    fn listeners_admit_only_their_allowed_peers_on_their_ports() {
        let cfg = config(
            r#"
[dicom_scp]
mode = "enabled"
listen = "0.0.0.0:11112"
allowed_peers = ["10.0.2.2/32", "192.168.10.0/24", "fd00::5"]
[hl7]
mode = "enabled"
listen = "0.0.0.0:2575"
allowed_peers = ["192.168.10.0/24"]
"#,
        );
        let nft = AllowLists::from_config(&cfg, &table()).unwrap().to_nft();
        assert!(
            nft.contains("add element inet fgw department4 { 10.0.2.2/32, 192.168.10.0/24 }"),
            "{nft}"
        );
        assert!(nft.contains("add element inet fgw department6 { fd00::5/128 }"), "{nft}");
        assert!(nft.contains("add element inet fgw department_ports { 2575, 11112 }"), "{nft}");
        assert!(nft.ends_with(DEFAULT_HUB), "{nft}");
    }

    #[test]
    fn a_disabled_listener_opens_no_port_whatever_its_peers() {
        let cfg = config("[dicom_scp]\nmode = \"disabled\"\nallowed_peers = [\"10.0.0.0/8\"]\n");
        let nft = AllowLists::from_config(&cfg, &table()).unwrap().to_nft();
        assert!(!nft.contains("department"), "{nft}");
    }

    #[test]
    fn hub_nodes_and_the_proxy_are_resolved_with_their_ports() {
        let cfg = config(
            r#"
[uplink]
hub_urls = ["https://hub.jges.example", "https://10.0.2.2:8443"]
proxy_url = "http://proxy.hospital.example:3128"
"#,
        );
        let nft = AllowLists::from_config(&cfg, &table()).unwrap().to_nft();
        assert!(
            nft.contains("add element inet fgw hub4 { 10.0.2.2/32, 10.1.0.3/32, 198.51.100.7/32 }"),
            "{nft}"
        );
        assert!(nft.contains("add element inet fgw hub6 { 2001:db8::7/128 }"), "{nft}");
        assert!(nft.contains("add element inet fgw hub_ports { 443, 3128, 8443 }"), "{nft}");
    }

    #[test]
    fn the_archive_pulled_from_is_a_department_address_on_its_port() {
        let cfg = config(
            r#"
[dicom_scp]
mode = "enabled"
allowed_peers = ["10.1.0.9"]
[dicom_pull]
mode = "enabled"
archive_ae = "PACS"
archive_host = "pacs.hospital.example"
archive_port = 104
calling_ae = "FGW"
"#,
        );
        let nft = AllowLists::from_config(&cfg, &table()).unwrap().to_nft();
        assert!(nft.contains("add element inet fgw department4 { 10.1.0.9/32 }"), "{nft}");
        assert!(nft.contains("add element inet fgw archive_ports { 104 }"), "{nft}");
        assert!(nft.contains("add element inet fgw department_ports { 11112 }"), "{nft}");
    }

    #[test]
    fn an_unresolvable_hub_is_an_error_naming_the_setting_not_the_host() {
        let cfg = config("[uplink]\nhub_url = \"https://hub.nowhere.example\"\n");
        let e = AllowLists::from_config(&cfg, &table()).unwrap_err();
        assert!(matches!(e, FirewallError::Resolve { key: "uplink.hub_urls" }), "{e}");
        assert!(!e.to_string().contains("nowhere"), "{e}");
    }

    #[test]
    fn the_file_is_replaced_whole() {
        let dir = std::env::temp_dir().join(format!("fgw-firewall-{}", std::process::id()));
        let path = dir.join("addresses.nft");
        write_file(&path, "one\n").unwrap();
        write_file(&path, "two\n").unwrap();
        assert_eq!(std::fs::read_to_string(&path).unwrap(), "two\n");
        assert!(!path.with_extension("nft.tmp").exists());
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
