//! The release routes for devices (issue 13): the TUF repository's files and the rollouts'
//! offers. Only device certificates may read them; only the repository's own files are
//! served ([`crate::releases::served_path`]).

use crate::api::{require_device, ApiFailure, HubState};
use crate::releases::{served_path, RepoFile};
use crate::Caller;
use axum::body::Body;
use axum::extract::{Path, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::{Extension, Json};
use fgw_format::package::protocol::UpdateOffers;
use std::sync::Arc;
use tokio::io::AsyncSeekExt;

/// `GET /v1/tuf/metadata/{name}`.
pub(crate) async fn metadata(
    State(state): State<Arc<HubState>>,
    Extension(caller): Extension<Caller>,
    Path(name): Path<String>,
    headers: HeaderMap,
) -> Result<Response, ApiFailure> {
    require_device(&caller, "read release metadata")?;
    serve(&state, RepoFile::Metadata, &name, &headers).await
}

/// `GET /v1/tuf/targets/{name}`; `Range: bytes=N-` resumes a download.
pub(crate) async fn target(
    State(state): State<Arc<HubState>>,
    Extension(caller): Extension<Caller>,
    Path(name): Path<String>,
    headers: HeaderMap,
) -> Result<Response, ApiFailure> {
    require_device(&caller, "read release targets")?;
    serve(&state, RepoFile::Target, &name, &headers).await
}

/// `bytes=N-` → N. Other ranges are not served (the whole file is sent instead).
fn range_start(headers: &HeaderMap) -> Option<u64> {
    let v = headers.get(header::RANGE)?.to_str().ok()?;
    v.strip_prefix("bytes=")?.strip_suffix('-')?.parse().ok()
}

async fn serve(
    state: &HubState,
    kind: RepoFile,
    name: &str,
    headers: &HeaderMap,
) -> Result<Response, ApiFailure> {
    let path = served_path(&state.releases, kind, name).ok_or(ApiFailure::NotFound)?;
    let mut file = match tokio::fs::File::open(&path).await {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Err(ApiFailure::NotFound),
        Err(_) => return Err(ApiFailure::Internal),
    };
    let len = file.metadata().await.map_err(|_| ApiFailure::Internal)?.len();
    let start = range_start(headers).filter(|&s| s <= len && kind == RepoFile::Target);
    let mut resp = match start {
        Some(s) => {
            file.seek(std::io::SeekFrom::Start(s)).await.map_err(|_| ApiFailure::Internal)?;
            let mut r = Response::new(Body::from_stream(tokio_util::io::ReaderStream::new(file)));
            *r.status_mut() = StatusCode::PARTIAL_CONTENT;
            let range = format!("bytes {s}-{}/{len}", len.saturating_sub(1));
            if let Ok(v) = HeaderValue::from_str(&range) {
                r.headers_mut().insert(header::CONTENT_RANGE, v);
            }
            r.headers_mut().insert(header::CONTENT_LENGTH, HeaderValue::from(len - s));
            r
        }
        None => {
            let mut r = Response::new(Body::from_stream(tokio_util::io::ReaderStream::new(file)));
            r.headers_mut().insert(header::CONTENT_LENGTH, HeaderValue::from(len));
            r
        }
    };
    resp.headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static("application/octet-stream"));
    resp.headers_mut().insert(header::ACCEPT_RANGES, HeaderValue::from_static("bytes"));
    Ok(resp.into_response())
}

/// `GET /v1/update`: what the rollouts offer the calling box now.
pub(crate) async fn offers(
    State(state): State<Arc<HubState>>,
    Extension(caller): Extension<Caller>,
) -> Result<Json<UpdateOffers>, ApiFailure> {
    require_device(&caller, "ask for updates")?;
    let meta = state.meta.clone();
    let device = caller.device.as_str().to_string();
    let offers = tokio::task::spawn_blocking(move || {
        crate::rollout::offers_for(&*meta, &device, chrono::Utc::now())
    })
    .await
    .map_err(|_| ApiFailure::Internal)?
    .map_err(|e| match e {
        crate::rollout::RolloutError::Store(s) => ApiFailure::Store(s),
        _ => ApiFailure::Internal,
    })?;
    Ok(Json(offers))
}
