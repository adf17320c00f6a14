//! The box's end of the WireGuard tunnel (`[vpn]`, issue 12).
//!
//! With `mode = "wireguard"` the box sends its WireGuard public key when it enrolls; the hub
//! answers with its own key, its endpoint, the box's tunnel address and the API's URL inside
//! the tunnel. The daemon then brings the interface up ([`BoxTunnel::up`]) and every upload
//! goes to that URL, which exists only inside the tunnel: the hub's API is not reachable
//! from the hospital network at all.
//!
//! The private key is never stored: it is derived from the sealed root secret and the box's
//! serial (`Secrets::wireguard_key`). The interface lives as long as the daemon.

use fgw_format::package::protocol::{VpnPeer, VpnStatus};
use fgw_vpn::{
    Cidr, Implementation, InterfaceName, PeerSpec, Tunnel, TunnelError, TunnelSpec, WgPrivateKey,
    WgPublicKey,
};
use serde::{Deserialize, Serialize};

/// Whether the box uses the tunnel. A security choice, so an enum with a documented default.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum VpnMode {
    /// No tunnel: uploads go to `uplink.hub_url` over mTLS (default; development, and
    /// hospitals that allow only an HTTP proxy).
    #[default]
    Off,
    /// WireGuard to the hub: enrollment at `uplink.hub_url`, everything else inside the
    /// tunnel.
    Wireguard,
}

/// `[vpn]` of `gateway.toml`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct VpnSettings {
    /// `off` (default) or `wireguard`.
    #[serde(default)]
    pub mode: VpnMode,
    /// The interface's name. Default `fgw0`.
    #[serde(default = "default_interface")]
    pub interface: String,
    /// `auto` (the kernel's WireGuard where it has it, else boringtun), `kernel` or
    /// `userspace`. Default `auto`.
    #[serde(default = "default_implementation")]
    pub implementation: String,
}

fn default_interface() -> String {
    "fgw0".into()
}
fn default_implementation() -> String {
    "auto".into()
}

impl Default for VpnSettings {
    fn default() -> Self {
        VpnSettings {
            mode: VpnMode::Off,
            interface: default_interface(),
            implementation: default_implementation(),
        }
    }
}

impl VpnSettings {
    /// Error: (key, what is allowed).
    pub fn validate(&self) -> Result<(), (&'static str, &'static str)> {
        InterfaceName::new(&self.interface)
            .map_err(|_| ("vpn.interface", "1 to 15 characters of A-Z a-z 0-9 _ -"))?;
        Implementation::parse(&self.implementation)
            .map_err(|_| ("vpn.implementation", "\"auto\", \"kernel\" or \"userspace\""))?;
        Ok(())
    }
}

/// Why the tunnel could not be brought up. Names fields, never keys.
#[derive(Debug, thiserror::Error)]
pub enum BoxTunnelError {
    /// The hub's answer lacks a field or has one of the wrong shape.
    #[error("vpn: the hub's peer data: {field} is missing or malformed")]
    PeerData {
        /// The field of the enrollment answer's `config.vpn`.
        field: &'static str,
    },
    /// The interface failed.
    #[error(transparent)]
    Tunnel(#[from] TunnelError),
    /// The root secret (the key derives from it) could not be opened.
    #[error(transparent)]
    Secrets(#[from] crate::secrets::SecretsError),
    /// The box's serial could not be read.
    #[error(transparent)]
    Identity(#[from] Box<crate::identity::IdentityError>),
}

/// With `[vpn] mode = "wireguard"`: the box's WireGuard key, and `identity` set to send its
/// public half when enrolling. Off: `identity` as it was and no key.
pub fn attach_key(
    cfg: &crate::config::GatewayConfig,
    identity: crate::identity::BoxIdentity,
) -> Result<(crate::identity::BoxIdentity, Option<WgPrivateKey>), BoxTunnelError> {
    if cfg.vpn.mode != VpnMode::Wireguard {
        return Ok((identity, None));
    }
    let serial = identity.serial().map_err(Box::new)?;
    let key = crate::secrets::Secrets::open_for(cfg)?.wireguard_key(serial.as_str());
    Ok((identity.with_wireguard_key(key.public_key()), Some(key)))
}

/// The tunnel's peer data of an enrollment answer's `config` (`config.vpn`).
pub fn peer_of(config: &serde_json::Value) -> Result<VpnPeer, BoxTunnelError> {
    serde_json::from_value(config["vpn"].clone())
        .map_err(|_| BoxTunnelError::PeerData { field: "vpn" })
}

/// The tunnel, up, and where the API is inside it.
#[derive(Debug)]
pub struct BoxTunnel {
    _tunnel: Tunnel,
    api_url: String,
}

impl BoxTunnel {
    /// Brings the interface up with `key` and the hub's `peer` data (from enrollment).
    /// `None` if the hub offers no tunnel ([`VpnStatus::Off`]).
    pub fn up(
        settings: &VpnSettings,
        key: WgPrivateKey,
        peer: &VpnPeer,
    ) -> Result<Option<BoxTunnel>, BoxTunnelError> {
        if peer.status != VpnStatus::Active {
            return Ok(None);
        }
        let missing = |field| BoxTunnelError::PeerData { field };
        let hub_key = peer
            .hub_public_key
            .as_deref()
            .and_then(|k| WgPublicKey::parse(k).ok())
            .ok_or(missing("hub_public_key"))?;
        let address =
            peer.address.as_deref().and_then(|a| Cidr::parse(a).ok()).ok_or(missing("address"))?;
        let allowed_ips = peer
            .allowed_ips
            .iter()
            .map(|a| Cidr::parse(a).map_err(|_| missing("allowed_ips")))
            .collect::<Result<Vec<_>, _>>()?;
        let endpoint = peer.endpoint.clone().ok_or(missing("endpoint"))?;
        let api_url =
            peer.api_url.clone().filter(|u| u.starts_with("https://")).ok_or(missing("api_url"))?;
        if allowed_ips.is_empty() {
            return Err(missing("allowed_ips"));
        }
        let spec = TunnelSpec {
            interface: InterfaceName::new(&settings.interface)?,
            implementation: Implementation::parse(&settings.implementation)?,
            private_key: key,
            listen_port: None,
            address,
            peers: vec![PeerSpec {
                public_key: hub_key,
                endpoint: Some(endpoint),
                allowed_ips,
                keepalive_secs: peer.keepalive_secs,
            }],
        };
        let tunnel = Tunnel::up(&spec)?;
        Ok(Some(BoxTunnel { _tunnel: tunnel, api_url }))
    }

    /// The hub's API inside the tunnel.
    pub fn api_url(&self) -> &str {
        &self.api_url
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_off_answer_brings_nothing_up_and_a_broken_one_is_named() {
        let settings = VpnSettings::default();
        let key = WgPrivateKey::from_bytes([1; 32]);
        assert!(BoxTunnel::up(&settings, key.clone(), &VpnPeer::off()).unwrap().is_none());
        let mut peer = VpnPeer::off();
        peer.status = VpnStatus::Active;
        peer.hub_public_key = Some("not a key".into());
        let e = BoxTunnel::up(&settings, key, &peer).unwrap_err();
        assert!(e.to_string().contains("hub_public_key"), "{e}");
    }

    #[test]
    fn settings_are_checked() {
        assert!(VpnSettings::default().validate().is_ok());
        let bad = VpnSettings { interface: "a b".into(), ..VpnSettings::default() };
        assert_eq!(bad.validate().unwrap_err().0, "vpn.interface");
        let bad = VpnSettings { implementation: "tap".into(), ..VpnSettings::default() };
        assert_eq!(bad.validate().unwrap_err().0, "vpn.implementation");
    }
}
