//! The WireGuard tunnel between a box and the hub (issue 12).
//!
//! - [`key`]: X25519 key pairs in WireGuard's base64 form; the private half never prints.
//! - [`tunnel`]: an interface brought up with its address, key, peers and routes: the
//!   kernel's WireGuard where the kernel has it, otherwise boringtun (Cloudflare's userspace
//!   WireGuard) over `/dev/net/tun`, inside this process. Both are configured the same way,
//!   with `wg(8)` (wireguard-tools), which talks netlink to the kernel's and the UAPI socket
//!   (`/var/run/wireguard/<name>.sock`) to boringtun's.
//!
//! Needs `CAP_NET_ADMIN` (and `/dev/net/tun` for boringtun): the box's daemon unit and the
//! hub's grant it; nothing else here is privileged.

pub mod key;
pub mod tunnel;

pub use key::{KeyError, WgPrivateKey, WgPublicKey};
pub use tunnel::{
    Cidr, Implementation, InterfaceName, PeerSpec, Running, Tunnel, TunnelError, TunnelSpec,
};
