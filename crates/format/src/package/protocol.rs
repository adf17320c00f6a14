//! Protocol types for the upload API (`docs/package-format.md#upload-protocol`).

use crate::ids::{FacilityId, PackageId, Serial, Sha256Hex, UploadId};
use serde::{Deserialize, Serialize};

/// Path prefix of object uploads: `PUT {OBJECTS}/{sha256}`.
pub const OBJECTS: &str = "/v1/objects";
/// Path prefix of manifest uploads: `PUT {PACKAGES}/{package_id}`.
pub const PACKAGES: &str = "/v1/packages";

/// Path prefix of chunked upload sessions (`docs/package-format.md#chunked-uploads`):
/// `POST {UPLOADS}` opens (or finds) a session, `GET {UPLOADS}/{upload_id}` shows it,
/// `PUT {UPLOADS}/{upload_id}/chunks/{index}` sends one chunk,
/// `POST {UPLOADS}/{upload_id}/commit` assembles and stores the object.
pub const UPLOADS: &str = "/v1/uploads";

/// Request header carrying the SHA-256 (lowercase hex) of a chunk's body.
pub const CHUNK_SHA256_HEADER: &str = "x-chunk-sha256";

/// Body of `POST /v1/uploads`: the object to send in chunks.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UploadRequest {
    /// The whole object's SHA-256 (its name once committed).
    pub sha256: Sha256Hex,
    /// The whole object's size in bytes.
    pub size: u64,
    /// The chunk size the device would like; the hub may answer with another (an open
    /// session keeps the size it was opened with).
    pub chunk_bytes: u64,
}

/// A chunk the hub holds.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChunkAck {
    /// Its index (chunk `i` is bytes `i * chunk_bytes ..`).
    pub index: u32,
    /// Its SHA-256.
    pub sha256: Sha256Hex,
}

/// An upload session (answer to `POST` and `GET`, state after each chunk).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct UploadSession {
    /// The session (derived from facility and object: [`UploadId::derive`]).
    pub upload_id: UploadId,
    /// The object.
    pub sha256: Sha256Hex,
    /// Its size.
    pub size: u64,
    /// The chunk size of this session: every chunk but the last has exactly this size.
    pub chunk_bytes: u64,
    /// Number of chunks: `ceil(size / chunk_bytes)` (at least 1).
    pub chunks: u32,
    /// The chunks the hub holds, by index; send the others.
    pub received: Vec<ChunkAck>,
}

/// Body of a 409 on a commit: chunks the hub does not hold yet.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MissingChunks {
    /// What went wrong.
    pub error: String,
    /// The chunk indexes to send before committing again.
    pub missing: Vec<u32>,
}

/// Whether an upload added something or the hub already had it (both are success).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Stored {
    /// Stored by this request.
    New,
    /// Already stored; nothing changed.
    Duplicate,
}

/// The hub's acknowledgement: after this, the gateway may delete the raw input.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Ack {
    /// The package acknowledged.
    pub package_id: PackageId,
    /// New or duplicate.
    pub stored: Stored,
    /// The facility the hub filed the package under (the caller's).
    pub facility_id: FacilityId,
}

/// Body of every error response.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ApiError {
    /// What went wrong, naming ids and paths, never values.
    pub error: String,
}

/// Body of a 409 on a manifest PUT: the objects the hub does not have yet.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MissingObjects {
    /// What went wrong.
    pub error: String,
    /// The objects to upload before the manifest.
    pub missing: Vec<Sha256Hex>,
}

/// Body of a successful (200) `PUT /v1/objects/{sha256}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ObjectAck {
    /// The object acknowledged.
    pub sha256: Sha256Hex,
    /// New or duplicate.
    pub stored: Stored,
}

/// One row of `GET /v1/facilities/{facility}/dicom`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DicomListing {
    /// Remapped Study Instance UID.
    pub study_uid: String,
    /// Remapped Series Instance UID.
    pub series_uid: Option<String>,
    /// Remapped SOP Instance UID.
    pub sop_instance_uid: String,
    /// SOP Class UID as sent.
    pub sop_class: String,
    /// The exam the object joins, when its accession number is the exam id.
    pub exam_pid: Option<String>,
    /// The package holding the object's current version.
    pub package_id: PackageId,
    /// When the hub received it (RFC 3339, UTC).
    pub received_at: String,
}

/// One row of `GET /v1/facilities/{facility}/exams`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ExamListing {
    /// The exam's keyed pseudonym.
    pub exam_pid: String,
    /// The current (highest) revision.
    pub revision: u32,
    /// The package of that revision.
    pub package_id: PackageId,
    /// When the hub received it (RFC 3339, UTC).
    pub received_at: String,
    /// Files in the package.
    pub files: u32,
    /// Images kept on the box.
    pub images_withheld: u32,
    /// Report packages (HL7) received for this exam.
    pub reports: u32,
    /// DICOM objects received whose Accession Number maps to this exam.
    #[serde(default)]
    pub dicom_objects: u32,
}

// Enrollment (issue 12, docs/enrollment.md): the hub's answer to EST simpleenroll and
// simplereenroll.

/// What the hub hands a box at enrollment, besides its certificate.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeviceConfig {
    /// The facility the registry assigns the box to.
    pub facility_id: FacilityId,
    /// `[facility_config.<facility>]` of `hub.toml`, as a JSON object (empty if none).
    pub settings: serde_json::Map<String, serde_json::Value>,
    /// The VPN peer, or [`VpnStatus::Off`].
    pub vpn: VpnPeer,
}

/// The header a box sends its WireGuard public key in, on `simpleenroll` and
/// `simplereenroll` (base64 of 32 bytes). Optional: without it the box gets no tunnel.
pub const WIREGUARD_KEY_HEADER: &str = "x-fgw-wireguard-key";

/// Whether the box is to bring up the tunnel.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum VpnStatus {
    /// No tunnel: the hub has no `[vpn]`, or the box sent no WireGuard key. The box talks to
    /// the hub at its configured URL.
    Off,
    /// The hub registered the box's key as a peer: bring the tunnel up with these fields and
    /// send every API request to `api_url`, through it.
    Active,
}

/// The hub's WireGuard peer and the box's place in the tunnel.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct VpnPeer {
    /// [`VpnStatus::Active`] when the fields below are complete.
    pub status: VpnStatus,
    /// The hub's WireGuard public key (base64).
    pub hub_public_key: Option<String>,
    /// `host:port` of the hub's WireGuard.
    pub endpoint: Option<String>,
    /// Networks routed into the tunnel (`ip/prefix`): the hub's tunnel address.
    pub allowed_ips: Vec<String>,
    /// The box's tunnel address, `ip/prefix` (a host address).
    #[serde(default)]
    pub address: Option<String>,
    /// The hub's API inside the tunnel, `https://ip:port`.
    #[serde(default)]
    pub api_url: Option<String>,
    /// Keepalive the box sends so that the hospital's NAT keeps the mapping open, seconds.
    #[serde(default)]
    pub keepalive_secs: Option<u16>,
}

impl VpnPeer {
    /// No tunnel.
    pub fn off() -> VpnPeer {
        VpnPeer {
            status: VpnStatus::Off,
            hub_public_key: None,
            endpoint: None,
            allowed_ips: Vec::new(),
            address: None,
            api_url: None,
            keepalive_secs: None,
        }
    }
}

/// The answer to `simpleenroll` and `simplereenroll` (`application/json`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct EnrollResponse {
    /// The box's serial (from the registry).
    pub serial: Serial,
    /// Its facility (from the registry).
    pub facility_id: FacilityId,
    /// The operational certificate, PEM, leaf only (it chains to the society CA the box
    /// already trusts: its `ca.crt`).
    pub certificate: String,
    /// Its validity (RFC 3339, UTC).
    pub not_before: String,
    /// Its expiry (RFC 3339, UTC).
    pub not_after: String,
    /// When the box should renew: two thirds into the validity (RFC 3339, UTC).
    pub renew_after: String,
    /// The facility's configuration and the VPN peer.
    pub config: DeviceConfig,
}

// Fleet (issue 13): the box's heartbeat, `PUT /v1/heartbeat` with its device certificate.

/// Route of the heartbeat.
pub const HEARTBEAT: &str = "/v1/heartbeat";
/// Largest heartbeat body the hub reads.
pub const MAX_HEARTBEAT_BYTES: usize = 64 * 1024;

/// What a box reports every few minutes: versions, counts, states and dates. Never a value
/// from an exam: every field is a count, a version, a code or a time.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Heartbeat {
    /// When the box sent it (RFC 3339, UTC).
    pub sent_at: String,
    /// The box's software: the OS image's version when it runs from one, else the gateway's.
    pub os_version: String,
    /// The de-identification policy in force, `<id>@<version>`.
    pub policy_version: String,
    /// Items per state (`received`, `normalized`, `deidentified`, `acked`, `quarantined`,
    /// `superseded`).
    pub queue: std::collections::BTreeMap<String, u64>,
    /// Bytes of packages the hub has acknowledged since the box's state was made.
    pub bytes_uploaded: u64,
    /// Quarantined items per reason code.
    pub quarantine: std::collections::BTreeMap<String, u64>,
    /// The class of the last upload error (`network`, `hub-refused`, `local`, …), if any.
    pub last_error_class: Option<String>,
    /// Expiry of the operational certificate (RFC 3339), if the box enrolls.
    pub cert_not_after: Option<String>,
    /// The state folder's file system.
    pub disk: DiskUse,
    /// `tpm`, `insecure-file`, or `none` (certificate files).
    pub key_store: String,
    /// `off`, `up` (the tunnel carries the uploads) or `down` (configured, not up).
    pub vpn: String,
    /// The last update of each kind (`policy`, `os`) the box tried: its version and outcome.
    /// The hub's rollouts count these to halt a wave.
    #[serde(default)]
    pub updates: std::collections::BTreeMap<String, UpdateReport>,
}

/// What became of one update on a box.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct UpdateReport {
    /// The release version.
    pub version: String,
    /// `installed` (in force, health check passed), `failed` (its self-test or health check
    /// failed and the box went back), `refused` (its verification failed), `staged`
    /// (verified, waiting for the maintenance window).
    pub outcome: String,
    /// When (RFC 3339, UTC).
    pub at: String,
}

// Releases (issue 13): the TUF repository and the rollouts' offers.

/// Prefix of the TUF metadata files (`…/timestamp.json`).
pub const TUF_METADATA: &str = "/v1/tuf/metadata/";
/// Prefix of the TUF target files (`…/policy-1.json`).
pub const TUF_TARGETS: &str = "/v1/tuf/targets/";
/// What the hub's rollouts offer this box: `GET`.
pub const UPDATE_OFFERS: &str = "/v1/update";

/// The hub's answer to [`UPDATE_OFFERS`]: per kind, what a rollout offers this box. Only a
/// pointer: the box installs a version only if the signed TUF targets list it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct UpdateOffers {
    /// One per kind with a rollout.
    pub offers: Vec<UpdateOffer>,
}

/// One kind's offer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct UpdateOffer {
    /// `policy` or `os`.
    pub kind: String,
    /// `offered`, `not_in_wave` (the box's wave has not started or does not include it yet),
    /// `paused`, `halted`, or `rolled_back` (offered: the previous version).
    pub state: String,
    /// The version to install when offered.
    pub version: Option<String>,
    /// The rollout.
    pub rollout: i64,
    /// The wave (0-based) that includes this box, if any does.
    pub wave: Option<u32>,
    /// When that wave starts (RFC 3339).
    pub wave_starts: Option<String>,
    /// Install even outside the maintenance window or with today's exams waiting.
    pub force: bool,
}

/// Disk use of the box's state folder.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct DiskUse {
    /// Size of the file system.
    pub total_bytes: u64,
    /// Free for the daemon.
    pub available_bytes: u64,
}

/// One row of `hub fleet --json`: the last heartbeat of a device.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FleetRow {
    /// The device (its id in the registry).
    pub device: String,
    /// Its facility.
    pub facility: FacilityId,
    /// When the hub received its last heartbeat (RFC 3339, UTC).
    pub last_heartbeat: String,
    /// From that heartbeat.
    pub os_version: String,
    /// From that heartbeat.
    pub policy_version: String,
    /// From that heartbeat: items per state.
    pub queue: std::collections::BTreeMap<String, u64>,
    /// The whole heartbeat.
    pub heartbeat: Heartbeat,
}
