//! The hub's HTTP API (`docs/package-format.md#upload-protocol`).
//!
//! Authentication happened in the TLS layer ([`super::server`]): every request carries a
//! [`Peer`] extension for its connection. Handlers only authorize (role, facility).
//! Error bodies are [`ApiError`] JSON whose text names ids and reasons, never data values;
//! logs carry device id, method, route, status and package id only.

use super::store::{MetaStore, ObjectStore, StoreError};
use super::{Caller, Role};
use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{DefaultBodyLimit, Extension, Path, Request, State};
use axum::http::StatusCode;
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, put};
use axum::{Json, Router};
use fgw_format::ids::{FacilityId, PackageId, Sha256Hex};
use fgw_format::package::protocol::{Ack, ApiError, DicomListing, ExamListing, OBJECTS, PACKAGES};
use fgw_format::package::{Manifest, PackageError};
use serde::Serialize;
use std::collections::BTreeSet;
use std::sync::Arc;

/// Shared state of all connections.
pub(crate) struct HubState {
    pub(crate) objects: Arc<dyn ObjectStore>,
    pub(crate) meta: Arc<dyn MetaStore>,
    pub(crate) max_object_bytes: usize,
    pub(crate) max_manifest_bytes: usize,
}

/// Who is on the other end of a connection, decided once per TLS connection.
#[derive(Debug, Clone)]
pub(crate) enum Peer {
    Registered(Caller),
    /// Chained to the CA but not in the registry (or revoked by deletion): every request 403.
    Unregistered {
        fingerprint: Sha256Hex,
    },
}

use fgw_format::package::protocol::{MissingObjects, ObjectAck};

/// Why a request failed; each maps to one status. Messages carry ids and reasons only.
#[derive(Debug, thiserror::Error)]
pub(crate) enum ApiFailure {
    #[error("client certificate is not registered with this hub")]
    Unregistered,
    #[error("{param} in the URL is malformed")]
    BadParam { param: &'static str },
    #[error("role {} may not {action}", role.as_str())]
    RoleNotAllowed { role: Role, action: &'static str },
    #[error("manifest facility {manifest} does not match the certificate's facility {caller}")]
    FacilityMismatch { manifest: FacilityId, caller: FacilityId },
    #[error("facility {requested} is not the certificate's facility {caller}")]
    ForeignFacility { requested: FacilityId, caller: FacilityId },
    #[error("{what}: body does not hash to {expected}")]
    HashMismatch { what: &'static str, expected: Sha256Hex },
    #[error("manifest rejected: {reason}")]
    BadManifest { reason: String },
    #[error("file {path}: stored object {sha256} has a different size than the manifest says")]
    SizeMismatch { path: String, sha256: Sha256Hex },
    #[error("{} object(s) missing; upload them, then retry the manifest", missing.len())]
    MissingObjects { missing: Vec<Sha256Hex> },
    #[error("body rejected ({status})")]
    Body { status: StatusCode },
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
            ApiFailure::Unregistered
            | ApiFailure::RoleNotAllowed { .. }
            | ApiFailure::FacilityMismatch { .. }
            | ApiFailure::ForeignFacility { .. } => StatusCode::FORBIDDEN,
            ApiFailure::BadParam { .. } => StatusCode::BAD_REQUEST,
            ApiFailure::HashMismatch { .. }
            | ApiFailure::BadManifest { .. }
            | ApiFailure::SizeMismatch { .. } => StatusCode::UNPROCESSABLE_ENTITY,
            ApiFailure::MissingObjects { .. } => StatusCode::CONFLICT,
            ApiFailure::Body { status } => *status,
            ApiFailure::NotFound => StatusCode::NOT_FOUND,
            ApiFailure::Store(_) | ApiFailure::Internal => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }
}

impl From<StoreError> for ApiFailure {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::HashMismatch { expected } => {
                ApiFailure::HashMismatch { what: "object", expected }
            }
            other => ApiFailure::Store(other),
        }
    }
}

impl IntoResponse for ApiFailure {
    fn into_response(self) -> Response {
        let status = self.status();
        if let ApiFailure::Store(e) = &self {
            // The detail (paths) is for the hub's operator, not for the client.
            tracing::error!(error = %e, "store failure");
        }
        let error = self.to_string();
        match self {
            ApiFailure::MissingObjects { missing } => {
                (status, Json(MissingObjects { error, missing })).into_response()
            }
            _ => (status, Json(ApiError { error })).into_response(),
        }
    }
}

/// Describe a manifest parse failure without quoting the manifest (serde_json's messages
/// can contain field values).
fn manifest_reason(e: &PackageError) -> String {
    match e {
        PackageError::Json(j) => {
            format!(
                "not valid package JSON ({:?} at line {}, column {})",
                j.classify(),
                j.line(),
                j.column()
            )
        }
        PackageError::KindMismatch { .. } => "kind does not match content".to_string(),
        PackageError::Version { .. } => {
            format!(
                "format or version not supported (expected {} v{})",
                fgw_format::package::FORMAT,
                fgw_format::package::FORMAT_VERSION
            )
        }
        PackageError::DuplicatePath { .. } => "a file path is listed twice".into(),
        PackageError::BadPath { .. } => "a file path is not a plain relative path".into(),
    }
}

async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> Result<T, StoreError> + Send + 'static,
) -> Result<T, ApiFailure> {
    tokio::task::spawn_blocking(f).await.map_err(|_| ApiFailure::Internal)?.map_err(Into::into)
}

fn parse_sha(s: &str, param: &'static str) -> Result<Sha256Hex, ApiFailure> {
    Sha256Hex::new(s).map_err(|_| ApiFailure::BadParam { param })
}

fn require_device(caller: &Caller, action: &'static str) -> Result<(), ApiFailure> {
    match caller.role {
        Role::Device => Ok(()),
        role => Err(ApiFailure::RoleNotAllowed { role, action }),
    }
}

fn body_bytes(body: Result<Bytes, BytesRejection>) -> Result<Bytes, ApiFailure> {
    body.map_err(|r| ApiFailure::Body { status: r.status() })
}

/// The API router. Requests must carry a [`Peer`] extension (inserted per connection by the
/// server; tests may insert it directly).
pub(crate) fn router(state: Arc<HubState>) -> Router {
    let object_limit = DefaultBodyLimit::max(state.max_object_bytes);
    let manifest_limit = DefaultBodyLimit::max(state.max_manifest_bytes);
    Router::new()
        .route("/v1/health", get(health))
        .route(
            &format!("{OBJECTS}/:sha256"),
            get(get_object_head).put(put_object).layer(object_limit),
        )
        .route(&format!("{PACKAGES}/:package_id"), put(put_package).layer(manifest_limit))
        .route("/v1/facilities/:facility/exams", get(list_exams))
        .route("/v1/facilities/:facility/dicom", get(list_dicom))
        .fallback(|| async { ApiFailure::NotFound })
        .with_state(state)
        // Outermost: authorize the connection's peer, then log the outcome.
        .layer(middleware::from_fn(authorize_and_log))
}

/// Route template and package id of a request path, for the log line (so object hashes and
/// other path parts never reach the log).
fn route_of(path: &str) -> (&'static str, Option<PackageId>) {
    let segs: Vec<&str> = path.trim_start_matches('/').split('/').collect();
    match segs.as_slice() {
        ["v1", "health"] => ("/v1/health", None),
        ["v1", "objects", _] => ("/v1/objects/{sha256}", None),
        ["v1", "packages", id] => ("/v1/packages/{package_id}", Sha256Hex::new(*id).ok()),
        ["v1", "facilities", _, "exams"] => ("/v1/facilities/{facility}/exams", None),
        ["v1", "facilities", _, "dicom"] => ("/v1/facilities/{facility}/dicom", None),
        _ => ("(unknown)", None),
    }
}

async fn authorize_and_log(mut req: Request, next: Next) -> Response {
    let (route, package_id) = route_of(req.uri().path());
    let method = req.method().clone();

    match req.extensions().get::<Peer>().cloned() {
        Some(Peer::Registered(caller)) => {
            let device = caller.device.clone();
            req.extensions_mut().insert(caller);
            let resp = next.run(req).await;
            tracing::info!(
                device = %device,
                method = %method,
                route,
                status = resp.status().as_u16(),
                package_id = package_id.as_ref().map(|p| p.as_str()),
                "request"
            );
            resp
        }
        Some(Peer::Unregistered { fingerprint }) => {
            let resp = ApiFailure::Unregistered.into_response();
            tracing::warn!(
                fingerprint = %fingerprint,
                method = %method,
                route,
                status = resp.status().as_u16(),
                "request from an unregistered certificate"
            );
            resp
        }
        // Only reachable if the router is served without the TLS layer: fail closed.
        None => ApiFailure::Unregistered.into_response(),
    }
}

#[derive(Serialize)]
struct Health {
    status: &'static str,
}

async fn health() -> Json<Health> {
    Json(Health { status: "ok" })
}

/// `HEAD` (and `GET`, answered without the bytes): 200 if the object is stored, else 404.
async fn get_object_head(
    State(state): State<Arc<HubState>>,
    Path(sha): Path<String>,
) -> Result<StatusCode, ApiFailure> {
    let sha = parse_sha(&sha, "sha256")?;
    let objects = state.objects.clone();
    let present = blocking(move || objects.has(&sha)).await?;
    Ok(if present { StatusCode::OK } else { StatusCode::NOT_FOUND })
}

async fn put_object(
    State(state): State<Arc<HubState>>,
    Extension(caller): Extension<Caller>,
    Path(sha): Path<String>,
    body: Result<Bytes, BytesRejection>,
) -> Result<Json<ObjectAck>, ApiFailure> {
    require_device(&caller, "upload objects")?;
    let sha = parse_sha(&sha, "sha256")?;
    let body = body_bytes(body)?;
    let objects = state.objects.clone();
    let key = sha.clone();
    let stored = blocking(move || objects.put(&key, &body)).await?;
    Ok(Json(ObjectAck { sha256: sha, stored }))
}

async fn put_package(
    State(state): State<Arc<HubState>>,
    Extension(caller): Extension<Caller>,
    Path(id): Path<String>,
    body: Result<Bytes, BytesRejection>,
) -> Result<Json<Ack>, ApiFailure> {
    require_device(&caller, "upload packages")?;
    let package_id = parse_sha(&id, "package_id")?;
    let body = body_bytes(body)?;
    if Manifest::id_of(&body) != package_id {
        return Err(ApiFailure::HashMismatch { what: "manifest", expected: package_id });
    }
    let manifest = Manifest::parse(&body)
        .map_err(|e| ApiFailure::BadManifest { reason: manifest_reason(&e) })?;
    if manifest.facility_id != caller.facility {
        return Err(ApiFailure::FacilityMismatch {
            manifest: manifest.facility_id,
            caller: caller.facility,
        });
    }

    let objects = state.objects.clone();
    let files = manifest.files.clone();
    let missing = blocking(move || {
        let mut missing = BTreeSet::new();
        for f in &files {
            match objects.size(&f.sha256)? {
                None => {
                    missing.insert(f.sha256.clone());
                }
                Some(n) if n != f.size => return Ok(Err((f.path.clone(), f.sha256.clone()))),
                Some(_) => {}
            }
        }
        Ok(Ok(missing))
    })
    .await?;
    let missing = missing.map_err(|(path, sha256)| ApiFailure::SizeMismatch { path, sha256 })?;
    if !missing.is_empty() {
        return Err(ApiFailure::MissingObjects { missing: missing.into_iter().collect() });
    }

    let meta = state.meta.clone();
    let (facility, device, id) =
        (caller.facility.clone(), caller.device.clone(), package_id.clone());
    let stored = blocking(move || meta.record_package(&facility, &device, &id, &manifest)).await?;
    Ok(Json(Ack { package_id, stored, facility_id: caller.facility }))
}

/// The facility a listing asks for, if the caller may read it (a device only its own).
fn listing_facility(caller: &Caller, facility: String) -> Result<FacilityId, ApiFailure> {
    let facility =
        FacilityId::new(facility).map_err(|_| ApiFailure::BadParam { param: "facility" })?;
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
    fn log_routes_hide_object_hashes() {
        let sha = Sha256Hex::of(b"x");
        assert_eq!(route_of(&format!("/v1/objects/{sha}")), ("/v1/objects/{sha256}", None));
        assert_eq!(
            route_of(&format!("/v1/packages/{sha}")),
            ("/v1/packages/{package_id}", Some(sha))
        );
        assert_eq!(route_of("/etc/passwd").0, "(unknown)");
    }

    #[test]
    fn manifest_errors_do_not_quote_values() {
        let e = Manifest::parse(br#"{"format": "secret-value"}"#).unwrap_err();
        assert!(!manifest_reason(&e).contains("secret-value"));
        let e = serde_json::from_str::<u32>(r#""secret-value""#).unwrap_err();
        assert!(!manifest_reason(&PackageError::Json(e)).contains("secret-value"));
    }
}
