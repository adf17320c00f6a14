//! The hub's end of the WireGuard tunnel (`[vpn]` of `hub.toml`, issue 12).
//!
//! - Its private key is a 0600 file (`vpn.private_key_file`), made at the first start.
//! - At enrollment a box sends its WireGuard public key ([`WIREGUARD_KEY_HEADER`]); the
//!   registry keeps it with a host index, and the answer carries the hub's key, endpoint,
//!   the box's tunnel address and the API's URL inside the tunnel ([`VpnOffer::peer_for`]).
//! - While `hub serve` runs, the interface is up ([`HubTunnel`]) and a task brings its peers
//!   in line with the registry every `reconcile_secs`: boxes enrolled since are added,
//!   revoked ones removed. The registry is the only source: `hub device revoke` (another
//!   process) closes the tunnel within one period, with no call into the server.
//!
//! [`WIREGUARD_KEY_HEADER`]: fgw_format::package::protocol::WIREGUARD_KEY_HEADER

use crate::config::{ConfigError, HubConfig, HubVpn};
use crate::store::{MetaStore, StoreError, TunnelRecord};
use fgw_format::package::protocol::{VpnPeer, VpnStatus};
use fgw_vpn::{
    Cidr, Implementation, InterfaceName, PeerSpec, Tunnel, TunnelError, TunnelSpec, WgPrivateKey,
    WgPublicKey,
};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

/// Why the hub's tunnel could not be set up or kept in line.
#[derive(Debug, thiserror::Error)]
pub enum VpnError {
    /// `[vpn]` is not usable.
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// The key file could not be read or written.
    #[error("vpn: key file {path}: {source}")]
    KeyIo {
        /// The file.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
    /// The key file does not hold a WireGuard key, or is readable by others.
    #[error("vpn: key file {path}: {problem}")]
    KeyFile {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        problem: &'static str,
    },
    /// The interface failed.
    #[error(transparent)]
    Tunnel(#[from] TunnelError),
    /// The registry failed.
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// The hub's WireGuard private key from `path`, made (random, 0600) if the file is missing.
pub fn load_or_create_key(path: &Path) -> Result<WgPrivateKey, VpnError> {
    use ring::rand::SecureRandom;
    use std::os::unix::fs::PermissionsExt;
    let io = |source| VpnError::KeyIo { path: path.to_path_buf(), source };
    match std::fs::read_to_string(path) {
        Ok(text) => {
            let mode = std::fs::metadata(path).map_err(io)?.permissions().mode() & 0o777;
            if mode & 0o077 != 0 {
                return Err(VpnError::KeyFile { path: path.into(), problem: "not mode 0600" });
            }
            WgPrivateKey::parse(&text).map_err(|_| VpnError::KeyFile {
                path: path.into(),
                problem: "not a WireGuard key (base64 of 32 bytes)",
            })
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            let mut bytes = [0u8; 32];
            ring::rand::SystemRandom::new().fill(&mut bytes).expect("system RNG");
            let key = WgPrivateKey::from_bytes(bytes);
            let line = format!("{}\n", base64_of(&bytes));
            fgw_format::durable::create_private(path, line.as_bytes()).map_err(io)?;
            tracing::info!(file = %path.display(), public_key = %key.public_key(), "hub WireGuard key created");
            Ok(key)
        }
        Err(e) => Err(io(e)),
    }
}

fn base64_of(bytes: &[u8; 32]) -> String {
    use base64::Engine;
    base64::engine::general_purpose::STANDARD.encode(bytes)
}

/// What enrollment tells a box about the tunnel.
#[derive(Debug, Clone)]
pub(crate) struct VpnOffer {
    hub_public_key: WgPublicKey,
    cfg: HubVpn,
    hub_address: Cidr,
    api_url: String,
}

impl VpnOffer {
    /// The offer of the hub configured by `cfg`, whose key is `key`.
    pub(crate) fn new(cfg: &HubVpn, key: &WgPrivateKey) -> Result<VpnOffer, ConfigError> {
        let address = cfg.address_cidr()?;
        Ok(VpnOffer {
            hub_public_key: key.public_key(),
            cfg: cfg.clone(),
            hub_address: Cidr::host(address.addr),
            api_url: format!("https://{}", cfg.api_listen_addr()?),
        })
    }

    /// The peer data for the box with registry host index `index`; off if the prefix has no
    /// address left for it.
    pub(crate) fn peer_for(&self, index: u32) -> VpnPeer {
        let Some(address) = self.cfg.box_address(index) else {
            tracing::error!(index, prefix = %self.cfg.address, "vpn: no tunnel address left in the prefix");
            return VpnPeer::off();
        };
        VpnPeer {
            status: VpnStatus::Active,
            hub_public_key: Some(self.hub_public_key.to_string()),
            endpoint: Some(self.cfg.endpoint.clone()),
            allowed_ips: vec![self.hub_address.to_string()],
            address: Some(address.to_string()),
            api_url: Some(self.api_url.clone()),
            keepalive_secs: Some(self.cfg.keepalive_secs),
        }
    }
}

/// The hub's interface while `hub serve` runs, and the task keeping its peers in line.
pub struct HubTunnel {
    tunnel: Arc<Tunnel>,
    reconcile: tokio::task::JoinHandle<()>,
}

impl HubTunnel {
    /// Brings the interface up with the registry's boxes as peers and starts reconciling.
    pub async fn start(cfg: &HubConfig, meta: Arc<dyn MetaStore>) -> Result<HubTunnel, VpnError> {
        let vpn = cfg
            .vpn
            .clone()
            .ok_or(ConfigError::Invalid { key: "vpn", expected: "a [vpn] table".into() })?;
        let key = load_or_create_key(&cfg.vpn_key_file())?;
        let spec = TunnelSpec {
            interface: InterfaceName::new(&vpn.interface)?,
            implementation: Implementation::parse(&vpn.implementation)?,
            private_key: key,
            listen_port: Some(vpn.listen_port),
            address: vpn.address_cidr()?,
            peers: Vec::new(),
        };
        let (tunnel, vpn) = tokio::task::spawn_blocking(move || {
            let tunnel = Tunnel::up(&spec)?;
            reconcile_once(&tunnel, &vpn, &*meta)?;
            Ok::<_, VpnError>((Arc::new(tunnel), (vpn, meta)))
        })
        .await
        .expect("vpn setup task")?;
        let period = Duration::from_secs(vpn.0.reconcile_secs);
        let reconcile = tokio::spawn(reconcile_periodically(tunnel.clone(), vpn.0, vpn.1, period));
        Ok(HubTunnel { tunnel, reconcile })
    }

    /// The interface.
    pub fn tunnel(&self) -> &Tunnel {
        &self.tunnel
    }
}

impl Drop for HubTunnel {
    fn drop(&mut self) {
        self.reconcile.abort();
    }
}

async fn reconcile_periodically(
    tunnel: Arc<Tunnel>,
    vpn: HubVpn,
    meta: Arc<dyn MetaStore>,
    period: Duration,
) {
    let mut tick = tokio::time::interval(period);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        let (t, v, m) = (tunnel.clone(), vpn.clone(), meta.clone());
        match tokio::task::spawn_blocking(move || reconcile_once(&t, &v, &*m)).await {
            Ok(Ok(())) => {}
            Ok(Err(e)) => tracing::error!(error = %e, "vpn: peers not brought in line"),
            Err(_) => tracing::error!("vpn: reconcile task failed"),
        }
    }
}

/// One pass: every box of the registry that is not revoked is a peer with its /32, nothing
/// else is.
fn reconcile_once(tunnel: &Tunnel, vpn: &HubVpn, meta: &dyn MetaStore) -> Result<(), VpnError> {
    let mut wanted: BTreeMap<WgPublicKey, (TunnelRecord, Cidr)> = BTreeMap::new();
    for record in meta.active_tunnels()? {
        let (Ok(key), Some(address)) =
            (WgPublicKey::parse(&record.wg_public_key), vpn.box_address(record.host_index))
        else {
            tracing::warn!(serial = %record.serial, "vpn: registry tunnel row unusable; skipped");
            continue;
        };
        wanted.insert(key, (record, address));
    }
    let present = tunnel.peers()?;
    for key in &present {
        if !wanted.contains_key(key) {
            tunnel.remove_peer(key)?;
            tracing::info!(peer = %key, "vpn: peer removed (revoked or replaced)");
        }
    }
    for (key, (record, address)) in &wanted {
        if !present.contains(key) {
            tunnel.set_peer(&PeerSpec {
                public_key: *key,
                endpoint: None,
                allowed_ips: vec![*address],
                keepalive_secs: None,
            })?;
            tracing::info!(serial = %record.serial, address = %address, "vpn: peer added");
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_key_file_is_made_once_private_and_read_back() {
        use std::os::unix::fs::PermissionsExt;
        let d = tempfile::tempdir().unwrap();
        let path = d.path().join("pki/wg.key");
        let a = load_or_create_key(&path).unwrap();
        let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
        assert_eq!(load_or_create_key(&path).unwrap().public_key(), a.public_key());
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
        assert!(matches!(load_or_create_key(&path), Err(VpnError::KeyFile { .. })));
    }

    #[test]
    fn the_offer_gives_each_index_its_address_inside_the_prefix() {
        let vpn: HubVpn =
            toml::from_str("address = \"10.88.0.1/29\"\nendpoint = \"hub.example.org:51820\"\n")
                .unwrap();
        let offer = VpnOffer::new(&vpn, &WgPrivateKey::from_bytes([3; 32])).unwrap();
        let peer = offer.peer_for(1);
        assert_eq!(peer.status, VpnStatus::Active);
        assert_eq!(peer.address.as_deref(), Some("10.88.0.2/32"));
        assert_eq!(peer.allowed_ips, vec!["10.88.0.1/32".to_string()]);
        assert_eq!(peer.api_url.as_deref(), Some("https://10.88.0.1:8443"));
        // 10.88.0.0/29: .1 the hub, .2 to .6 boxes, .7 broadcast.
        assert_eq!(offer.peer_for(5).address.as_deref(), Some("10.88.0.6/32"));
        assert_eq!(offer.peer_for(6).status, VpnStatus::Off);
    }
}
