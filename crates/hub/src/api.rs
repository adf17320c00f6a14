//! The hub's HTTP API (`docs/package-format.md#upload-protocol`).
//!
//! Authentication happened in the TLS layer ([`super::server`]): every request carries a
//! [`ConnPeer`] extension for its connection (the client certificate's fingerprint and the
//! CA it chains to). The registry is consulted on **every request** ([`Identity`]), not once
//! per connection, so a revocation cuts an open keep-alive connection at its next request.
//! Handlers only authorize (role, facility, which certificate).
//! Error bodies are [`ApiError`] JSON whose text names ids and reasons, never data values;
//! logs carry device id, method, route, status and package id only.
//!
//! Object bodies are streamed to the object store as they arrive (never held whole); every
//! body must keep up a minimum rate after a grace period; a device has a bounded number of
//! uploads in progress; a facility sees and references only the objects it uploaded.
//! Chunked upload sessions ([`super::uploads`]) stream their chunks under the same rules.

use super::enroll::{CsrProblem, EnrollError, EnrollSettings, Serial};
use super::est;
use super::intake::{self, IntakeError, ObjectIntake};
use super::store::{CredentialKind, MetaStore, ObjectStore, SerialStatus, StoreError};
use super::uploads::{self, UploadError};
use super::{Caller, Role};
use axum::body::{Body, Bytes};
use axum::extract::{Extension, Path, Request, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post, put};
use axum::{Json, Router};
use fgw_format::ids::{DeviceId, FacilityId, Sha256Hex};
use fgw_format::package::protocol::{
    Ack, ApiError, DicomListing, ExamListing, MissingChunks, MissingObjects, ObjectAck, Stored,
    HEARTBEAT, MAX_HEARTBEAT_BYTES, OBJECTS, PACKAGES, TUF_METADATA, TUF_TARGETS, UPDATE_OFFERS,
    UPLOADS,
};
use serde::Serialize;
use std::collections::{BTreeSet, HashMap};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::time::Instant;

/// Bodies above this size are refused for the quota before they are read (smaller ones are
/// read and refused after: the client gets the answer, not a cut connection).
const EARLY_REFUSAL_MIN_BYTES: u64 = 1 << 20;

/// Seconds a client told "too many uploads" should wait (`Retry-After`).
pub(crate) const RETRY_AFTER_SECS: u64 = 5;

/// Chunks queued between the network and the file writer of one upload: with hyper's read
/// buffer, what bounds one upload's memory.
const CHUNKS_IN_FLIGHT: usize = 4;

/// The limits handlers enforce (from `hub.toml`).
#[derive(Debug, Clone)]
pub(crate) struct Limits {
    pub(crate) max_object_bytes: u64,
    pub(crate) max_manifest_bytes: u64,
    pub(crate) facility_quota_bytes: u64,
    pub(crate) max_uploads_per_device: u32,
    /// Grace before `min_body_bytes_per_sec` applies.
    pub(crate) body_timeout: Duration,
    pub(crate) min_body_bytes_per_sec: u64,
    /// Chunk sizes of upload sessions are clamped to `min_chunk_bytes ..= max_chunk_bytes`.
    pub(crate) min_chunk_bytes: u64,
    pub(crate) max_chunk_bytes: u64,
    /// Largest object sent through an upload session.
    pub(crate) max_upload_bytes: u64,
    pub(crate) max_open_uploads_per_facility: u32,
}

/// Shared state of all connections.
pub(crate) struct HubState {
    pub(crate) objects: Arc<dyn ObjectStore>,
    pub(crate) meta: Arc<dyn MetaStore>,
    pub(crate) limits: Limits,
    pub(crate) uploads: UploadSlots,
    /// Chunks being written now (one writer per chunk: chunks are written in place).
    pub(crate) chunks: uploads::ChunkClaims,
    /// Whole-object hashes of sessions whose chunks arrive in order.
    pub(crate) running: uploads::RunningHashes,
    /// Enrollment: the society CA's files, certificate lifetime, what boxes are handed.
    pub(crate) enroll: Arc<EnrollSettings>,
    /// The release repository and its keys.
    pub(crate) releases: crate::releases::ReleasePaths,
    /// The operators' dashboard, `None` when `[dashboard] enabled = false`.
    pub(crate) dashboard: Option<Arc<crate::dashboard::Dashboard>>,
}

/// Uploads in progress per device.
#[derive(Debug, Default)]
pub(crate) struct UploadSlots {
    busy: Arc<Mutex<HashMap<DeviceId, u32>>>,
}

/// One device's upload slot, given back on drop (also when the request is cut).
pub(crate) struct UploadSlot {
    busy: Arc<Mutex<HashMap<DeviceId, u32>>>,
    device: DeviceId,
}

impl UploadSlots {
    pub(crate) fn acquire(&self, device: &DeviceId, limit: u32) -> Result<UploadSlot, ApiFailure> {
        let mut busy = self.busy.lock().map_err(|_| ApiFailure::Internal)?;
        let n = busy.entry(device.clone()).or_insert(0);
        if *n >= limit {
            return Err(ApiFailure::TooManyUploads { device: device.clone(), limit });
        }
        *n += 1;
        Ok(UploadSlot { busy: self.busy.clone(), device: device.clone() })
    }
}

impl Drop for UploadSlot {
    fn drop(&mut self) {
        if let Ok(mut busy) = self.busy.lock() {
            if let Some(n) = busy.get_mut(&self.device) {
                *n -= 1;
                if *n == 0 {
                    busy.remove(&self.device);
                }
            }
        }
    }
}

/// What the TLS handshake established about a connection; attached to each of its requests.
#[derive(Debug, Clone)]
pub(crate) struct ConnPeer {
    /// The client's certificate, or that it sent none.
    pub(crate) client: ClientAuth,
    /// The connection's number, in the logs (requests of one keep-alive connection share it).
    pub(crate) conn: u64,
}

/// How the client of a connection authenticated at the TLS layer.
#[derive(Debug, Clone)]
pub(crate) enum ClientAuth {
    /// A certificate chained to one of the hub's CAs: the registry decides per request.
    Certificate {
        /// SHA-256 of the client's leaf certificate (DER): what the registry is keyed on.
        fingerprint: Sha256Hex,
        /// The CA its chain ends at.
        anchor: Anchor,
    },
    /// No certificate (a browser): only the dashboard's paths, which have their own login
    /// ([`crate::dashboard::is_dashboard_path`]); everything else is 401.
    Anonymous,
}

/// The root a client certificate chains to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Anchor {
    /// The society CA: operational and `issue-device` certificates.
    Society,
    /// The manufacturing CA: IDevIDs, which may only enroll.
    Manufacturing,
}

/// What the registry says about a request's certificate at the time of the request.
#[derive(Debug, Clone)]
pub(crate) enum Identity {
    /// A certificate of `hub issue-device`.
    Registered(Caller),
    /// An operational certificate of an enrolled box.
    Operational { caller: Caller, serial: Serial },
    /// A box's IDevID: it may only enroll.
    Idevid { serial: Serial, facility: FacilityId },
}

impl Identity {
    /// The API caller, for every certificate but an IDevID.
    fn caller(&self) -> Option<&Caller> {
        match self {
            Identity::Registered(c) | Identity::Operational { caller: c, .. } => Some(c),
            Identity::Idevid { .. } => None,
        }
    }

    /// Device id or serial, for the log.
    fn name(&self) -> &str {
        match self {
            Identity::Registered(c) | Identity::Operational { caller: c, .. } => c.device.as_str(),
            Identity::Idevid { serial, .. } => serial.as_str(),
        }
    }
}

/// Look the request's certificate up: `issue-device` registrations (society CA), then the
/// certificates issued to registered boxes, whose serial must not be revoked. A fingerprint
/// found under the other CA than the one it was issued by is refused too.
async fn identify(
    state: &HubState,
    fingerprint: &Sha256Hex,
    anchor: Anchor,
) -> Result<Identity, ApiFailure> {
    let (meta, fp) = (state.meta.clone(), fingerprint.clone());
    blocking(move || {
        if anchor == Anchor::Society {
            if let Some(rec) = meta.device_by_fingerprint(&fp)? {
                let caller = Caller { device: rec.device, facility: rec.facility, role: rec.role };
                return Ok(Ok(Identity::Registered(caller)));
            }
        }
        let Some(cred) = meta.credential_by_fingerprint(&fp)? else {
            return Ok(Err(ApiFailure::Unregistered));
        };
        if cred.status == SerialStatus::Revoked {
            return Ok(Err(ApiFailure::Revoked { serial: cred.serial }));
        }
        Ok(match (cred.kind, anchor) {
            (CredentialKind::Operational, Anchor::Society) => Ok(Identity::Operational {
                caller: Caller {
                    device: cred.serial.device_id(),
                    facility: cred.facility,
                    role: Role::Device,
                },
                serial: cred.serial,
            }),
            (CredentialKind::Idevid, Anchor::Manufacturing) => {
                Ok(Identity::Idevid { serial: cred.serial, facility: cred.facility })
            }
            _ => Err(ApiFailure::Unregistered),
        })
    })
    .await?
}

/// Why a request failed; each maps to one status. Messages carry ids and reasons only.
#[derive(Debug, thiserror::Error)]
pub(crate) enum ApiFailure {
    #[error("a client certificate is required (without one, only /dashboard is served)")]
    NoCertificate,
    #[error("client certificate is not registered with this hub")]
    Unregistered,
    #[error("serial {serial} is revoked")]
    Revoked { serial: Serial },
    #[error("an IDevID may only enroll (POST {})", est::SIMPLEENROLL)]
    IdevidOnlyEnrolls,
    #[error("{action} needs {needs}")]
    WrongCertificate { action: &'static str, needs: &'static str },
    #[error("certificate request refused: {problem}")]
    BadCsr { problem: CsrProblem },
    #[error("enrollment is not available on this hub")]
    EnrollUnavailable,
    #[error(transparent)]
    BadHeartbeat(crate::fleet::HeartbeatError),
    #[error("header {header}: expected {expected}")]
    BadHeader { header: &'static str, expected: &'static str },
    #[error("the WireGuard key is another box's; make a new one")]
    TunnelKeyTaken,
    #[error("role {} may not {action}", role.as_str())]
    RoleNotAllowed { role: Role, action: &'static str },
    #[error("facility {requested} is not the certificate's facility {caller}")]
    ForeignFacility { requested: FacilityId, caller: FacilityId },
    #[error(transparent)]
    Intake(IntakeError),
    #[error(transparent)]
    Upload(UploadError),
    #[error("file {path}: stored object {sha256} has a different size than the manifest says")]
    SizeMismatch { path: String, sha256: Sha256Hex },
    #[error("{} object(s) missing; upload them, then retry the manifest", missing.len())]
    MissingObjects { missing: Vec<Sha256Hex> },
    #[error("device {device} already has {limit} upload(s) in progress; retry later")]
    TooManyUploads { device: DeviceId, limit: u32 },
    #[error("facility {facility} is over its storage quota of {quota} bytes; ask the society")]
    QuotaExceeded { facility: FacilityId, quota: u64 },
    #[error("request body too slow (under {min_rate} bytes/s after {grace_secs} s); cut")]
    BodyTimeout { min_rate: u64, grace_secs: u64 },
    #[error("request body could not be read")]
    BodyRead,
    #[error("no such route")]
    NotFound,
    #[error("internal storage error")]
    Store(#[source] StoreError),
    #[error("internal error")]
    Internal,
}

impl ApiFailure {
    pub(crate) fn status(&self) -> StatusCode {
        match self {
            ApiFailure::NoCertificate => StatusCode::UNAUTHORIZED,
            ApiFailure::Unregistered
            | ApiFailure::Revoked { .. }
            | ApiFailure::IdevidOnlyEnrolls
            | ApiFailure::WrongCertificate { .. }
            | ApiFailure::RoleNotAllowed { .. }
            | ApiFailure::ForeignFacility { .. } => StatusCode::FORBIDDEN,
            ApiFailure::BadCsr { problem: CsrProblem::TooLarge } => StatusCode::PAYLOAD_TOO_LARGE,
            ApiFailure::BadCsr { .. }
            | ApiFailure::BadHeader { .. }
            | ApiFailure::BadHeartbeat(_) => StatusCode::BAD_REQUEST,
            ApiFailure::TunnelKeyTaken => StatusCode::CONFLICT,
            ApiFailure::EnrollUnavailable => StatusCode::SERVICE_UNAVAILABLE,
            ApiFailure::Intake(e) => match e {
                IntakeError::BadParam { .. } | IntakeError::BadLength => StatusCode::BAD_REQUEST,
                IntakeError::TooLarge { .. } => StatusCode::PAYLOAD_TOO_LARGE,
                IntakeError::HashMismatch { .. } | IntakeError::BadManifest { .. } => {
                    StatusCode::UNPROCESSABLE_ENTITY
                }
                IntakeError::FacilityMismatch { .. } => StatusCode::FORBIDDEN,
                IntakeError::Store(_) => StatusCode::INTERNAL_SERVER_ERROR,
            },
            ApiFailure::Upload(e) => e.status(),
            ApiFailure::SizeMismatch { .. } => StatusCode::UNPROCESSABLE_ENTITY,
            ApiFailure::MissingObjects { .. } => StatusCode::CONFLICT,
            ApiFailure::TooManyUploads { .. } => StatusCode::TOO_MANY_REQUESTS,
            ApiFailure::QuotaExceeded { .. } => StatusCode::INSUFFICIENT_STORAGE,
            ApiFailure::BodyTimeout { .. } => StatusCode::REQUEST_TIMEOUT,
            ApiFailure::BodyRead => StatusCode::BAD_REQUEST,
            ApiFailure::NotFound => StatusCode::NOT_FOUND,
            ApiFailure::Store(_) | ApiFailure::Internal => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    /// The request body may be unread: tell the client the connection ends here.
    fn closes_connection(&self) -> bool {
        matches!(
            self,
            ApiFailure::BodyTimeout { .. }
                | ApiFailure::BodyRead
                | ApiFailure::Intake(IntakeError::TooLarge { .. })
                | ApiFailure::BadCsr { problem: CsrProblem::TooLarge }
        ) || matches!(self, ApiFailure::Upload(e) if e.leaves_body_unread())
    }
}

impl From<StoreError> for ApiFailure {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::HashMismatch { expected } => {
                ApiFailure::Intake(IntakeError::HashMismatch { what: "object", expected })
            }
            StoreError::ObjectsNotHeld { missing, .. } => ApiFailure::MissingObjects { missing },
            StoreError::ObjectSize { path, sha256 } => ApiFailure::SizeMismatch { path, sha256 },
            StoreError::QuotaExceeded { facility, quota } => {
                ApiFailure::QuotaExceeded { facility, quota }
            }
            StoreError::TooManyOpenUploads { facility, limit } => {
                ApiFailure::Upload(UploadError::TooManyOpen { facility, limit })
            }
            StoreError::ChunkHashMismatch { upload, index } => {
                ApiFailure::Upload(UploadError::ChunkHash { upload, index })
            }
            StoreError::PartMissing { upload, index } => {
                ApiFailure::Upload(UploadError::MissingChunks { upload, missing: vec![index] })
            }
            other => ApiFailure::Store(other),
        }
    }
}

impl From<EnrollError> for ApiFailure {
    fn from(e: EnrollError) -> Self {
        match e {
            EnrollError::Csr { problem, .. } => ApiFailure::BadCsr { problem },
            EnrollError::Store(StoreError::SerialRevoked { serial }) => {
                ApiFailure::Revoked { serial }
            }
            EnrollError::Store(StoreError::UnknownSerial { .. })
            | EnrollError::UnknownSerial { .. } => ApiFailure::Unregistered,
            EnrollError::Store(StoreError::TunnelKeyTaken { .. }) => ApiFailure::TunnelKeyTaken,
            EnrollError::Store(s) => s.into(),
            other => {
                // The society CA's files (paths) are the operator's business, not the box's.
                tracing::error!(error = %other, "enrollment failed");
                ApiFailure::EnrollUnavailable
            }
        }
    }
}

impl From<UploadError> for ApiFailure {
    fn from(e: UploadError) -> Self {
        ApiFailure::Upload(e)
    }
}

impl From<IntakeError> for ApiFailure {
    fn from(e: IntakeError) -> Self {
        match e {
            IntakeError::Store(s) => s.into(),
            other => ApiFailure::Intake(other),
        }
    }
}

impl IntoResponse for ApiFailure {
    fn into_response(self) -> Response {
        let status = self.status();
        if let ApiFailure::Store(e) | ApiFailure::Intake(IntakeError::Store(e)) = &self {
            // The detail (paths) is for the hub's operator, not for the client.
            tracing::error!(error = %e, "store failure");
        }
        let error = self.to_string();
        let close = self.closes_connection();
        let retry = matches!(self, ApiFailure::TooManyUploads { .. });
        let mut resp = match self {
            ApiFailure::MissingObjects { missing } => {
                (status, Json(MissingObjects { error, missing })).into_response()
            }
            ApiFailure::Upload(UploadError::MissingChunks { missing, .. }) => {
                (status, Json(MissingChunks { error, missing })).into_response()
            }
            _ => (status, Json(ApiError { error })).into_response(),
        };
        if retry {
            resp.headers_mut().insert(header::RETRY_AFTER, HeaderValue::from(RETRY_AFTER_SECS));
        }
        if close {
            resp.headers_mut().insert(header::CONNECTION, HeaderValue::from_static("close"));
        }
        resp
    }
}

pub(crate) async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> Result<T, StoreError> + Send + 'static,
) -> Result<T, ApiFailure> {
    tokio::task::spawn_blocking(f).await.map_err(|_| ApiFailure::Internal)?.map_err(Into::into)
}

/// [`blocking`] for enrollment work (signing, registry).
pub(crate) async fn blocking_enroll<T: Send + 'static>(
    f: impl FnOnce() -> Result<T, EnrollError> + Send + 'static,
) -> Result<T, ApiFailure> {
    tokio::task::spawn_blocking(f).await.map_err(|_| ApiFailure::Internal)?.map_err(Into::into)
}

pub(crate) fn require_device(caller: &Caller, action: &'static str) -> Result<(), ApiFailure> {
    match caller.role {
        Role::Device => Ok(()),
        role => Err(ApiFailure::RoleNotAllowed { role, action }),
    }
}

/// What a listener serves.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Surface {
    /// Every route: the hub without a VPN, or the API inside the tunnel.
    Everything,
    /// Health and EST enrollment only: the public listener of a hub whose API is reachable
    /// only through the tunnel (a box enrolls before it has the tunnel's peer data).
    EnrollmentOnly,
}

/// The router for `surface`. Requests must carry a [`ConnPeer`] extension (inserted per
/// connection by the server; tests may insert it directly).
pub(crate) fn router_for(state: Arc<HubState>, surface: Surface) -> Router {
    let enrollment = Router::new()
        .route("/v1/health", get(health))
        .route(est::SIMPLEENROLL, post(est::simpleenroll))
        .route(est::SIMPLEREENROLL, post(est::simplereenroll));
    let routes = match surface {
        Surface::EnrollmentOnly => enrollment,
        Surface::Everything if state.dashboard.is_some() => {
            api_routes(enrollment).merge(crate::dashboard::routes())
        }
        Surface::Everything => api_routes(enrollment),
    };
    routes
        .fallback(|| async { ApiFailure::NotFound })
        .with_state(state.clone())
        // Outermost: look the certificate up, authorize, then log the outcome.
        .layer(middleware::from_fn_with_state(state, authorize_and_log))
}

/// The API router, every route ([`Surface::Everything`]).
pub(crate) fn router(state: Arc<HubState>) -> Router {
    router_for(state, Surface::Everything)
}

fn api_routes(routes: Router<Arc<HubState>>) -> Router<Arc<HubState>> {
    routes
        .route(est::DEVICE_CONFIG, get(est::device_config))
        .route(&format!("{OBJECTS}/:sha256"), get(get_object_head).put(put_object))
        .route(&format!("{PACKAGES}/:package_id"), put(put_package))
        .route("/v1/facilities/:facility/exams", get(list_exams))
        .route("/v1/facilities/:facility/dicom", get(list_dicom))
        .route(UPLOADS, post(uploads::open))
        .route(&format!("{UPLOADS}/:upload_id"), get(uploads::show))
        .route(&format!("{UPLOADS}/:upload_id/chunks/:index"), put(uploads::put_chunk))
        .route(&format!("{UPLOADS}/:upload_id/commit"), post(uploads::commit))
        .route(HEARTBEAT, put(put_heartbeat))
        .route(&format!("{TUF_METADATA}:name"), get(crate::release_api::metadata))
        .route(&format!("{TUF_TARGETS}:name"), get(crate::release_api::target))
        .route(UPDATE_OFFERS, get(crate::release_api::offers))
}

/// `PUT /v1/heartbeat`: the box's report, checked and kept as its newest (204).
async fn put_heartbeat(
    State(state): State<Arc<HubState>>,
    Extension(caller): Extension<Caller>,
    body: Body,
) -> Result<StatusCode, ApiFailure> {
    require_device(&caller, "send heartbeats")?;
    let limit = MAX_HEARTBEAT_BYTES as u64;
    let mut bytes = Vec::new();
    let mut reader = BodyReader::new(body, &state.limits);
    while let Some(chunk) = reader.next().await? {
        if bytes.len() as u64 + chunk.len() as u64 > limit {
            return Err(IntakeError::TooLarge { limit }.into());
        }
        bytes.extend_from_slice(&chunk);
    }
    let heartbeat = crate::fleet::parse(&bytes).map_err(ApiFailure::BadHeartbeat)?;
    let meta = state.meta.clone();
    blocking(move || meta.record_heartbeat(&caller.device, &caller.facility, &heartbeat)).await?;
    Ok(StatusCode::NO_CONTENT)
}

async fn authorize_and_log(
    State(state): State<Arc<HubState>>,
    mut req: Request,
    next: Next,
) -> Response {
    let (route, package_id) = intake::log_route(req.uri().path());
    let method = req.method().clone();
    // Only absent if the router is served without the TLS layer: fail closed.
    let Some(peer) = req.extensions().get::<ConnPeer>().cloned() else {
        return ApiFailure::Unregistered.into_response();
    };
    let (fingerprint, anchor) = match &peer.client {
        ClientAuth::Certificate { fingerprint, anchor } => (fingerprint.clone(), *anchor),
        // Decided here, before routing: without a certificate, nothing of the API is reached.
        ClientAuth::Anonymous if crate::dashboard::is_dashboard_path(req.uri().path()) => {
            let resp = next.run(req).await;
            tracing::info!(
                client = "browser",
                conn = peer.conn,
                method = %method,
                route,
                status = resp.status().as_u16(),
                "request"
            );
            return resp;
        }
        ClientAuth::Anonymous => {
            let refusal = ApiFailure::NoCertificate;
            let reason = refusal.to_string();
            let resp = refusal.into_response();
            tracing::warn!(
                client = "browser",
                conn = peer.conn,
                method = %method,
                route,
                status = resp.status().as_u16(),
                reason,
                "request refused"
            );
            return resp;
        }
    };
    let identity = match identify(&state, &fingerprint, anchor).await {
        Ok(Identity::Idevid { .. }) if route != est::SIMPLEENROLL => {
            Err(ApiFailure::IdevidOnlyEnrolls)
        }
        other => other,
    };
    let identity = match identity {
        Ok(identity) => identity,
        Err(refusal) => {
            let reason = refusal.to_string();
            let resp = refusal.into_response();
            tracing::warn!(
                fingerprint = %fingerprint,
                conn = peer.conn,
                method = %method,
                route,
                status = resp.status().as_u16(),
                reason,
                "request refused"
            );
            return resp;
        }
    };
    let name = identity.name().to_string();
    if let Some(caller) = identity.caller() {
        req.extensions_mut().insert(caller.clone());
    }
    req.extensions_mut().insert(identity);
    let resp = next.run(req).await;
    tracing::info!(
        device = %name,
        conn = peer.conn,
        method = %method,
        route,
        status = resp.status().as_u16(),
        package_id = package_id.as_ref().map(|p| p.as_str()),
        "request"
    );
    resp
}

#[derive(Serialize)]
struct Health {
    status: &'static str,
}

async fn health() -> Json<Health> {
    Json(Health { status: "ok" })
}

/// `HEAD` (and `GET`, answered without the bytes): 200 if the caller's facility holds the
/// object (it uploaded it, and the blob is there), else 404 — also when another facility
/// holds it.
async fn get_object_head(
    State(state): State<Arc<HubState>>,
    Extension(caller): Extension<Caller>,
    Path(sha): Path<String>,
) -> Result<StatusCode, ApiFailure> {
    let sha = intake::object_name(&sha)?;
    let (objects, meta) = (state.objects.clone(), state.meta.clone());
    let held = blocking(move || {
        Ok(meta.held_size(&caller.facility, &sha)?.is_some() && objects.has(&sha)?)
    })
    .await?;
    Ok(if held { StatusCode::OK } else { StatusCode::NOT_FOUND })
}

pub(crate) fn content_length(headers: &HeaderMap) -> Option<&[u8]> {
    headers.get(header::CONTENT_LENGTH).map(HeaderValue::as_bytes)
}

/// Reads a request body frame by frame under the rate rule: after `grace`, the body must have
/// averaged at least `min_rate` bytes/s since it started, or it is cut.
pub(crate) struct BodyReader {
    body: Body,
    started: Instant,
    received: u64,
    grace: Duration,
    min_rate: u64,
}

impl BodyReader {
    pub(crate) fn new(body: Body, limits: &Limits) -> BodyReader {
        BodyReader {
            body,
            started: Instant::now(),
            received: 0,
            grace: limits.body_timeout,
            min_rate: limits.min_body_bytes_per_sec.max(1),
        }
    }

    /// The next data chunk, `None` at the end of the body.
    pub(crate) async fn next(&mut self) -> Result<Option<Bytes>, ApiFailure> {
        use hyper::body::Body as _;
        loop {
            // The moment the bytes received so far stop covering the minimum rate.
            let owed = Duration::from_secs_f64(self.received as f64 / self.min_rate as f64);
            let deadline = self.started + self.grace + owed;
            let frame =
                std::future::poll_fn(|cx| std::pin::Pin::new(&mut self.body).poll_frame(cx));
            let frame = match tokio::time::timeout_at(deadline, frame).await {
                Err(_) => {
                    return Err(ApiFailure::BodyTimeout {
                        min_rate: self.min_rate,
                        grace_secs: self.grace.as_secs(),
                    })
                }
                Ok(None) => return Ok(None),
                Ok(Some(Err(_))) => return Err(ApiFailure::BodyRead),
                Ok(Some(Ok(frame))) => frame,
            };
            // Trailers carry nothing the hub uses.
            if let Ok(data) = frame.into_data() {
                self.received += data.len() as u64;
                return Ok(Some(data));
            }
        }
    }
}

enum Chunk {
    Data(Bytes),
    End,
}

/// Where a streamed request body goes, on a blocking thread (file writes, hashing).
pub(crate) trait BodySink: Send + 'static {
    /// What a complete body gives.
    type Done: Send + 'static;
    /// Take the next piece of the body. After an error the sink is dropped.
    fn push(&mut self, bytes: &[u8]) -> Result<(), ApiFailure>;
    /// The body is complete.
    fn finish(self) -> Result<Self::Done, ApiFailure>;
}

/// An object body into the store (size limit, hash check).
struct ObjectSink(ObjectIntake);

impl BodySink for ObjectSink {
    type Done = (Stored, u64);
    fn push(&mut self, bytes: &[u8]) -> Result<(), ApiFailure> {
        Ok(self.0.push(bytes)?)
    }
    fn finish(self) -> Result<(Stored, u64), ApiFailure> {
        Ok(self.0.finish()?)
    }
}

/// Stream an object body into the store. Returns whether the blob was new, and its size.
async fn stream_object(
    state: &HubState,
    sha: &Sha256Hex,
    body: Body,
) -> Result<(Stored, u64), ApiFailure> {
    let objects = state.objects.clone();
    let key = sha.clone();
    let writer = blocking(move || objects.writer(&key)).await?;
    let sink = ObjectSink(ObjectIntake::new(writer, state.limits.max_object_bytes));
    stream_body(&state.limits, body, sink).await
}

/// Stream a request body into `sink` under the rate rule: network chunks go over a short
/// queue to a blocking thread that writes and hashes them, so a body is never held whole.
pub(crate) async fn stream_body<S: BodySink>(
    limits: &Limits,
    body: Body,
    mut sink: S,
) -> Result<S::Done, ApiFailure> {
    let (tx, mut rx) = tokio::sync::mpsc::channel::<Chunk>(CHUNKS_IN_FLIGHT);
    let sink = tokio::task::spawn_blocking(move || {
        while let Some(chunk) = rx.blocking_recv() {
            match chunk {
                Chunk::Data(bytes) => sink.push(&bytes)?,
                Chunk::End => return sink.finish().map(Some),
            }
        }
        // The request ended without its body (cut, timed out): dropping the sink removes
        // its temporary file.
        Ok(None)
    });
    let mut reader = BodyReader::new(body, limits);
    let read = async {
        while let Some(data) = reader.next().await? {
            if tx.send(Chunk::Data(data)).await.is_err() {
                // The writer stopped (limit or I/O error): its result says why.
                return Ok(());
            }
        }
        let _ = tx.send(Chunk::End).await;
        Ok::<(), ApiFailure>(())
    };
    let read = read.await;
    drop(tx);
    let written = sink.await.map_err(|_| ApiFailure::Internal)?;
    // A writer error is the more precise cause; otherwise a read error.
    match (written, read) {
        (Err(e), _) => Err(e),
        (Ok(_), Err(e)) => Err(e),
        (Ok(Some(done)), Ok(())) => Ok(done),
        (Ok(None), Ok(())) => Err(ApiFailure::Internal),
    }
}

async fn put_object(
    State(state): State<Arc<HubState>>,
    Extension(caller): Extension<Caller>,
    Path(sha): Path<String>,
    headers: HeaderMap,
    body: Body,
) -> Result<Json<ObjectAck>, ApiFailure> {
    require_device(&caller, "upload objects")?;
    let sha = intake::object_name(&sha)?;
    let limits = &state.limits;
    let declared = intake::declared_length(content_length(&headers), limits.max_object_bytes)?;
    let _slot = state.uploads.acquire(&caller.device, limits.max_uploads_per_device)?;

    // Refuse before reading when the declared size cannot fit the quota (an object the
    // facility already holds costs nothing). Small bodies are read first and refused after
    // (below): answering before the body was read closes the connection under a client
    // still sending, which then sees a broken pipe instead of the 507.
    if let Some(n) = declared.filter(|n| *n > EARLY_REFUSAL_MIN_BYTES) {
        let (meta, facility, key, quota) =
            (state.meta.clone(), caller.facility.clone(), sha.clone(), limits.facility_quota_bytes);
        blocking(move || {
            if meta.held_size(&facility, &key)?.is_none()
                && meta.facility_usage(&facility)?.saturating_add(n) > quota
            {
                return Err(StoreError::QuotaExceeded { facility, quota });
            }
            Ok(())
        })
        .await?;
    }

    let (_, size) = stream_object(&state, &sha, body).await?;
    let (meta, facility, key, quota) =
        (state.meta.clone(), caller.facility.clone(), sha.clone(), limits.facility_quota_bytes);
    // A blob refused here for the quota is held by no one and goes at the next collection.
    let stored = blocking(move || meta.hold_object(&facility, &key, size, quota)).await?;
    Ok(Json(ObjectAck { sha256: sha, stored }))
}

async fn put_package(
    State(state): State<Arc<HubState>>,
    Extension(caller): Extension<Caller>,
    Path(id): Path<String>,
    headers: HeaderMap,
    body: Body,
) -> Result<Json<Ack>, ApiFailure> {
    require_device(&caller, "upload packages")?;
    let package_id = intake::package_id(&id)?;
    let limit = state.limits.max_manifest_bytes;
    let declared = intake::declared_length(content_length(&headers), limit)?;
    let _slot = state.uploads.acquire(&caller.device, state.limits.max_uploads_per_device)?;

    // A manifest is parsed whole, so it is read whole (at most max_manifest_bytes).
    let mut bytes = Vec::with_capacity(declared.unwrap_or(0) as usize);
    let mut reader = BodyReader::new(body, &state.limits);
    while let Some(chunk) = reader.next().await? {
        if bytes.len() as u64 + chunk.len() as u64 > limit {
            return Err(IntakeError::TooLarge { limit }.into());
        }
        bytes.extend_from_slice(&chunk);
    }
    let manifest = intake::check_manifest(&bytes, &package_id, &caller.facility)?;

    // The blobs must be there with the sizes given (the holdings are checked again, in the
    // metadata transaction that records the package).
    let objects = state.objects.clone();
    let files = manifest.files.clone();
    let missing = blocking(move || {
        let mut missing = BTreeSet::new();
        for f in &files {
            match objects.size(&f.sha256)? {
                None => {
                    missing.insert(f.sha256.clone());
                }
                Some(n) if n != f.size => {
                    return Err(StoreError::ObjectSize {
                        path: f.path.clone(),
                        sha256: f.sha256.clone(),
                    })
                }
                Some(_) => {}
            }
        }
        Ok(missing)
    })
    .await?;
    if !missing.is_empty() {
        return Err(ApiFailure::MissingObjects { missing: missing.into_iter().collect() });
    }

    let meta = state.meta.clone();
    let (facility, device, id) =
        (caller.facility.clone(), caller.device.clone(), package_id.clone());
    let stored =
        blocking(move || meta.record_package(&facility, &device, &id, &manifest, &bytes)).await?;
    Ok(Json(Ack { package_id, stored, facility_id: caller.facility }))
}

/// The facility a listing asks for, if the caller may read it (a device only its own).
fn listing_facility(caller: &Caller, facility: String) -> Result<FacilityId, ApiFailure> {
    let facility = FacilityId::new(facility)
        .map_err(|_| ApiFailure::Intake(IntakeError::BadParam { param: "facility" }))?;
    if caller.role == Role::Device && facility != caller.facility {
        return Err(ApiFailure::ForeignFacility {
            requested: facility,
            caller: caller.facility.clone(),
        });
    }
    Ok(facility)
}

async fn list_exams(
    State(state): State<Arc<HubState>>,
    Extension(caller): Extension<Caller>,
    Path(facility): Path<String>,
) -> Result<Json<Vec<ExamListing>>, ApiFailure> {
    let facility = listing_facility(&caller, facility)?;
    let meta = state.meta.clone();
    Ok(Json(blocking(move || meta.list_exams(&facility)).await?))
}

async fn list_dicom(
    State(state): State<Arc<HubState>>,
    Extension(caller): Extension<Caller>,
    Path(facility): Path<String>,
) -> Result<Json<Vec<DicomListing>>, ApiFailure> {
    let facility = listing_facility(&caller, facility)?;
    let meta = state.meta.clone();
    Ok(Json(blocking(move || meta.list_dicom(&facility)).await?))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn upload_slots_are_per_device_and_given_back() {
        let slots = UploadSlots::default();
        let (a, b) = (DeviceId::new("gw-1").unwrap(), DeviceId::new("gw-2").unwrap());
        let first = slots.acquire(&a, 2).unwrap();
        let second = slots.acquire(&a, 2).unwrap();
        let e = slots.acquire(&a, 2).err().unwrap();
        assert_eq!(e.status(), StatusCode::TOO_MANY_REQUESTS);
        assert!(e.to_string().contains("gw-1"));
        let other = slots.acquire(&b, 2).unwrap();
        drop(first);
        let third = slots.acquire(&a, 2).unwrap();
        drop((second, third, other));
        assert!(slots.busy.lock().unwrap().is_empty());
    }

    #[test]
    fn refusals_that_leave_a_body_unread_close_the_connection() {
        let r = ApiFailure::BodyTimeout { min_rate: 1, grace_secs: 1 }.into_response();
        assert_eq!(r.status(), StatusCode::REQUEST_TIMEOUT);
        assert_eq!(r.headers()[header::CONNECTION], "close");
        let r = ApiFailure::TooManyUploads { device: DeviceId::new("gw-1").unwrap(), limit: 1 }
            .into_response();
        assert_eq!(r.headers()[header::RETRY_AFTER], "5");
    }
}
