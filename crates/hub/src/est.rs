//! Enrollment over the API's mutual TLS, with EST's (RFC 7030) request semantics
//! (`docs/enrollment.md`):
//!
//! - `POST /.well-known/est/simpleenroll`, authenticated with the box's IDevID: the first
//!   operational certificate;
//! - `POST /.well-known/est/simplereenroll`, authenticated with a valid operational
//!   certificate: a new one (renewal, also with a new key);
//! - `GET /v1/device/config`, with an operational certificate: the configuration alone.
//!
//! The body is a PKCS#10 request as EST sends it (base64 DER; PEM and DER are accepted too).
//! The answer is JSON ([`EnrollResponse`]) instead of EST's PKCS#7 `certs-only`: it carries the
//! facility's configuration and the VPN peer beside the certificate, and a client reads it with
//! serde alone.

use super::api::{blocking_enroll, ApiFailure, BodyReader, HubState, Identity};
use super::enroll::{self, Csr, CsrProblem, DeviceConfig, EnrollResponse, Serial, MAX_CSR_BYTES};
use super::store::Enrollment;
use axum::body::Body;
use axum::extract::{Extension, State};
use axum::http::HeaderMap;
use axum::Json;
use fgw_format::ids::FacilityId;
use fgw_format::package::protocol::WIREGUARD_KEY_HEADER;
use std::sync::Arc;

/// First enrollment, with the IDevID.
pub(crate) const SIMPLEENROLL: &str = "/.well-known/est/simpleenroll";
/// Renewal, with an operational certificate.
pub(crate) const SIMPLEREENROLL: &str = "/.well-known/est/simplereenroll";
/// The box's configuration, with an operational certificate.
pub(crate) const DEVICE_CONFIG: &str = "/v1/device/config";

/// Largest enrollment body: a CSR in base64 with line breaks.
const MAX_BODY_BYTES: usize = MAX_CSR_BYTES * 2;

pub(crate) async fn simpleenroll(
    State(state): State<Arc<HubState>>,
    Extension(identity): Extension<Identity>,
    headers: HeaderMap,
    body: Body,
) -> Result<Json<EnrollResponse>, ApiFailure> {
    let Identity::Idevid { serial, facility } = identity else {
        return Err(ApiFailure::WrongCertificate {
            action: "simpleenroll",
            needs: "the box's IDevID (renew with simplereenroll)",
        });
    };
    let wg_key = wireguard_key(&headers)?;
    enroll(&state, serial, facility, body, Enrollment::Initial, wg_key).await
}

pub(crate) async fn simplereenroll(
    State(state): State<Arc<HubState>>,
    Extension(identity): Extension<Identity>,
    headers: HeaderMap,
    body: Body,
) -> Result<Json<EnrollResponse>, ApiFailure> {
    let Identity::Operational { serial, caller } = identity else {
        return Err(ApiFailure::WrongCertificate {
            action: "simplereenroll",
            needs: "an operational certificate of an enrolled box",
        });
    };
    let wg_key = wireguard_key(&headers)?;
    enroll(&state, serial, caller.facility, body, Enrollment::Renewal, wg_key).await
}

/// The box's WireGuard public key from [`WIREGUARD_KEY_HEADER`], if it sent one.
fn wireguard_key(headers: &HeaderMap) -> Result<Option<fgw_vpn::WgPublicKey>, ApiFailure> {
    let Some(value) = headers.get(WIREGUARD_KEY_HEADER) else { return Ok(None) };
    let key = value.to_str().ok().and_then(|v| fgw_vpn::WgPublicKey::parse(v.trim()).ok());
    key.map(Some).ok_or(ApiFailure::BadHeader {
        header: WIREGUARD_KEY_HEADER,
        expected: "a WireGuard public key, base64 of 32 bytes",
    })
}

pub(crate) async fn device_config(
    State(state): State<Arc<HubState>>,
    Extension(identity): Extension<Identity>,
) -> Result<Json<DeviceConfig>, ApiFailure> {
    let Identity::Operational { caller, serial } = identity else {
        return Err(ApiFailure::WrongCertificate {
            action: "device config",
            needs: "an operational certificate of an enrolled box",
        });
    };
    let (settings, meta, serial) = (state.enroll.clone(), state.meta.clone(), serial);
    let vpn = blocking_enroll(move || Ok(settings.vpn_of(&*meta, &serial)?)).await?;
    Ok(Json(state.enroll.device_config(&caller.facility, vpn)))
}

/// Read the CSR (bounded), sign, register, answer.
async fn enroll(
    state: &HubState,
    serial: Serial,
    facility: FacilityId,
    body: Body,
    enrollment: Enrollment,
    wg_key: Option<fgw_vpn::WgPublicKey>,
) -> Result<Json<EnrollResponse>, ApiFailure> {
    let mut bytes = Vec::new();
    let mut reader = BodyReader::new(body, &state.limits);
    while let Some(chunk) = reader.next().await? {
        if bytes.len() + chunk.len() > MAX_BODY_BYTES {
            return Err(ApiFailure::BadCsr { problem: CsrProblem::TooLarge });
        }
        bytes.extend_from_slice(&chunk);
    }
    let csr = Csr::from_est_body(&bytes).map_err(|problem| ApiFailure::BadCsr { problem })?;
    let (settings, meta) = (state.enroll.clone(), state.meta.clone());
    let (s, f) = (serial.clone(), facility.clone());
    let answer = blocking_enroll(move || {
        enroll::issue_operational(&settings, &*meta, &s, &f, &csr, enrollment, wg_key.as_ref())
    })
    .await?;
    tracing::info!(
        serial = %serial,
        facility = %facility,
        renewal = enrollment == Enrollment::Renewal,
        not_after = answer.not_after,
        "operational certificate issued"
    );
    Ok(Json(answer))
}
