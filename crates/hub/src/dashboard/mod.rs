//! The society operators' dashboard (issue 13, `docs/dashboard.md`): server-rendered HTML
//! at `/dashboard` on the hub's API address, behind a username and password login.
//!
//! - [`auth`] — accounts (Argon2id), session tokens and cookies, login lockout, CSRF check;
//! - `render` — the pages' HTML (every value escaped); `chart` — inline SVG charts.
//!
//! Browsers carry no client certificate, so the TLS layer lets a connection without one
//! through, and the API's middleware lets such a connection reach `/dashboard` and below
//! only ([`is_dashboard_path`]); everything else answers 401. Pages need no script and
//! load nothing but `/dashboard/style.css`, which is compiled into the binary.

pub mod auth;
mod chart;
mod render;

pub use auth::{AuthError, OperatorName};

use crate::api::HubState;
use crate::config::HubDashboard;
use crate::store::{MetaStore, StoreError};
use auth::{LoginThrottle, SessionPolicy, SessionToken};
use axum::extract::{Form, Path, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::Router;
use fgw_format::ids::{FacilityId, Sha256Hex};
use render::{BoxRow, FacilityRow, FacilityView, FleetView, Presence};
use serde::Deserialize;
use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Days the uploads charts cover (today included).
const CHART_DAYS: i64 = 14;
/// Queue states that are no longer waiting to be uploaded (the rest is the backlog).
const NOT_BACKLOG: [&str; 3] = ["acked", "quarantined", "superseded"];
/// The stylesheet, compiled in: the dashboard works with no outside network.
const STYLE: &str = include_str!("style.css");
/// Every dashboard response: nothing but this origin's stylesheet and forms, no framing.
const CSP: &str = "default-src 'none'; style-src 'self'; img-src 'self'; form-action 'self'; \
                   frame-ancestors 'none'; base-uri 'none'";

/// Why a dashboard request failed. Carries ids and reasons, never a password.
#[derive(Debug, thiserror::Error)]
pub enum DashboardError {
    /// The metadata store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// Hashing or the random source failed.
    #[error(transparent)]
    Auth(#[from] AuthError),
    /// A blocking task panicked.
    #[error("dashboard: background task failed")]
    Task,
}

impl IntoResponse for DashboardError {
    fn into_response(self) -> Response {
        // The detail (paths) is for the hub's operator log, not for the page.
        tracing::error!(error = %self, "dashboard request failed");
        html(
            StatusCode::INTERNAL_SERVER_ERROR,
            render::message_page("Error", None, "The hub could not answer; see its log."),
        )
    }
}

/// The dashboard's settings and its in-memory login throttle.
#[derive(Debug)]
pub(crate) struct Dashboard {
    policy: SessionPolicy,
    online_after: Duration,
    throttle: LoginThrottle,
}

impl Dashboard {
    /// The dashboard `[dashboard]` configures, `None` if it is disabled.
    pub(crate) fn from_config(cfg: &HubDashboard) -> Option<Arc<Dashboard>> {
        cfg.enabled.then(|| {
            Arc::new(Dashboard {
                policy: SessionPolicy {
                    idle: Duration::from_secs(cfg.session_idle_secs),
                    absolute: Duration::from_secs(cfg.session_max_secs),
                },
                online_after: Duration::from_secs(cfg.online_secs),
                throttle: LoginThrottle::default(),
            })
        })
    }
}

/// Whether `path` is the dashboard's: the only paths a connection without a client
/// certificate may reach.
pub(crate) fn is_dashboard_path(path: &str) -> bool {
    path == "/dashboard" || path.starts_with("/dashboard/")
}

/// The dashboard's routes.
pub(crate) fn routes() -> Router<Arc<HubState>> {
    Router::new()
        .route("/dashboard", get(fleet))
        .route("/dashboard/login", get(login_form).post(login))
        .route("/dashboard/logout", post(logout))
        .route("/dashboard/facility/:facility", get(facility))
        .route("/dashboard/style.css", get(style))
        .layer(axum::middleware::map_response(security_headers))
}

async fn security_headers(mut resp: Response) -> Response {
    let h = resp.headers_mut();
    h.insert(header::CONTENT_SECURITY_POLICY, HeaderValue::from_static(CSP));
    h.insert(header::X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff"));
    h.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    // Same-origin requests keep their Referer (the CSRF check's fallback); others get none.
    h.insert(header::REFERRER_POLICY, HeaderValue::from_static("same-origin"));
    if !h.contains_key(header::CACHE_CONTROL) {
        h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    }
    resp
}

fn html(status: StatusCode, body: String) -> Response {
    (status, [(header::CONTENT_TYPE, "text/html; charset=utf-8")], body).into_response()
}

fn see_other(to: &'static str) -> Response {
    (StatusCode::SEE_OTHER, [(header::LOCATION, to)]).into_response()
}

fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> Result<T, DashboardError> + Send + 'static,
) -> Result<T, DashboardError> {
    tokio::task::spawn_blocking(f).await.map_err(|_| DashboardError::Task)?
}

fn dashboard(state: &HubState) -> Option<Arc<Dashboard>> {
    state.dashboard.clone()
}

/// The operator signed in with the request's session cookie; the session is marked used.
/// An expired session is deleted.
async fn signed_in(
    state: &HubState,
    dash: &Dashboard,
    headers: &HeaderMap,
) -> Result<Option<OperatorName>, DashboardError> {
    let Some(token) = auth::cookie_token(headers) else { return Ok(None) };
    let (meta, policy, key) = (state.meta.clone(), dash.policy, token.sha256());
    blocking(move || {
        let Some(session) = meta.session(&key)? else { return Ok(None) };
        let now = now_ms();
        if !policy.valid(&session, now) {
            meta.delete_session(&key)?;
            return Ok(None);
        }
        meta.touch_session(&key, now)?;
        Ok(Some(session.operator))
    })
    .await
}

/// `GET /dashboard`: the fleet page, or to the login.
async fn fleet(State(state): State<Arc<HubState>>, headers: HeaderMap) -> Response {
    let Some(dash) = dashboard(&state) else { return not_found(None) };
    let result = async {
        let Some(operator) = signed_in(&state, &dash, &headers).await? else {
            return Ok(see_other("/dashboard/login"));
        };
        let (meta, online_after) = (state.meta.clone(), dash.online_after);
        let view = blocking(move || fleet_view(&*meta, operator, online_after)).await?;
        Ok::<_, DashboardError>(html(StatusCode::OK, render::fleet_page(&view)))
    };
    result.await.unwrap_or_else(IntoResponse::into_response)
}

/// `GET /dashboard/facility/{id}`: one facility's page.
async fn facility(
    State(state): State<Arc<HubState>>,
    Path(id): Path<String>,
    headers: HeaderMap,
) -> Response {
    let Some(dash) = dashboard(&state) else { return not_found(None) };
    let result = async {
        let Some(operator) = signed_in(&state, &dash, &headers).await? else {
            return Ok(see_other("/dashboard/login"));
        };
        // The path's id must have a facility id's shape; nothing else reaches the store.
        let Ok(facility) = FacilityId::new(id) else {
            return Ok(not_found(Some(operator.as_str())));
        };
        let (meta, online_after) = (state.meta.clone(), dash.online_after);
        let name = operator.to_string();
        let view =
            blocking(move || facility_view(&*meta, operator, facility, online_after)).await?;
        Ok::<_, DashboardError>(match view {
            Some(view) => html(StatusCode::OK, render::facility_page(&view)),
            None => not_found(Some(&name)),
        })
    };
    result.await.unwrap_or_else(IntoResponse::into_response)
}

fn not_found(operator: Option<&str>) -> Response {
    html(
        StatusCode::NOT_FOUND,
        render::message_page("Not found", operator, "No such page or facility."),
    )
}

async fn style() -> Response {
    (
        [
            (header::CONTENT_TYPE, "text/css; charset=utf-8"),
            (header::CACHE_CONTROL, "private, max-age=3600"),
        ],
        STYLE,
    )
        .into_response()
}

/// `GET /dashboard/login`: the form (or the fleet, when already signed in).
async fn login_form(State(state): State<Arc<HubState>>, headers: HeaderMap) -> Response {
    let Some(dash) = dashboard(&state) else { return not_found(None) };
    match signed_in(&state, &dash, &headers).await {
        Ok(Some(_)) => see_other("/dashboard"),
        Ok(None) => html(StatusCode::OK, render::login_page(None)),
        Err(e) => e.into_response(),
    }
}

/// The login form's fields.
#[derive(Deserialize)]
struct LoginForm {
    username: String,
    password: String,
}

impl std::fmt::Debug for LoginForm {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LoginForm").field("username", &self.username).finish_non_exhaustive()
    }
}

fn cross_site_refused(route: &'static str) -> Response {
    tracing::warn!(route, "dashboard POST refused: not from this origin");
    html(
        StatusCode::FORBIDDEN,
        render::message_page("Refused", None, "The form must be sent from the dashboard itself."),
    )
}

/// `POST /dashboard/login`: check the password; on success a new session and its cookie.
async fn login(
    State(state): State<Arc<HubState>>,
    headers: HeaderMap,
    Form(form): Form<LoginForm>,
) -> Response {
    let Some(dash) = dashboard(&state) else { return not_found(None) };
    if !auth::same_origin(&headers) {
        return cross_site_refused("/dashboard/login");
    }
    let name = OperatorName::new(form.username.as_str()).ok();
    // Throttled and logged under a checked name only: a malformed "username" may well be a
    // password typed into the wrong field.
    let key = name.as_ref().map_or("(malformed)", OperatorName::as_str).to_string();
    let started = Instant::now();
    if let Err(wait) = dash.throttle.check(&key, started) {
        tracing::warn!(operator = %key, "dashboard login refused: locked after failures");
        let msg = format!(
            "Too many failed sign-ins for this username. Try again in {} seconds.",
            wait.as_secs().max(1)
        );
        return html(StatusCode::TOO_MANY_REQUESTS, render::login_page(Some(&msg)));
    }
    let (meta, policy, password) = (state.meta.clone(), dash.policy, form.password);
    let checked = blocking(move || {
        let stored = match &name {
            Some(n) => meta.operator_password(n)?,
            None => None,
        };
        // Unknown names are checked against a dummy hash: about as slow as a real check.
        let matches = auth::verify_password(
            stored.as_deref().unwrap_or_else(|| auth::dummy_hash()),
            &password,
        );
        let (Some(name), true) = (name, matches && stored.is_some()) else { return Ok(None) };
        let token = SessionToken::generate()?;
        let now = now_ms();
        let (idle_cutoff, created_cutoff) = policy.cutoffs(now);
        meta.expire_sessions(idle_cutoff, created_cutoff)?;
        meta.insert_session(&token.sha256(), &name, now)?;
        Ok(Some((name, token)))
    })
    .await;
    match checked {
        Ok(Some((name, token))) => {
            dash.throttle.succeeded(name.as_str());
            tracing::info!(operator = %name, "dashboard login");
            let mut resp = see_other("/dashboard");
            if let Ok(v) = HeaderValue::from_str(&token.set_cookie()) {
                resp.headers_mut().insert(header::SET_COOKIE, v);
            }
            resp
        }
        Ok(None) => {
            dash.throttle.failed(&key, started);
            tracing::warn!(operator = %key, "dashboard login failed");
            html(StatusCode::UNAUTHORIZED, render::login_page(Some("Wrong username or password.")))
        }
        Err(e) => e.into_response(),
    }
}

/// `POST /dashboard/logout`: end the session, drop the cookie, back to the login.
async fn logout(State(state): State<Arc<HubState>>, headers: HeaderMap) -> Response {
    if dashboard(&state).is_none() {
        return not_found(None);
    }
    if !auth::same_origin(&headers) {
        return cross_site_refused("/dashboard/logout");
    }
    if let Some(token) = auth::cookie_token(&headers) {
        let (meta, key): (_, Sha256Hex) = (state.meta.clone(), token.sha256());
        let ended = blocking(move || {
            let operator = meta.session(&key)?.map(|s| s.operator);
            meta.delete_session(&key)?;
            Ok(operator)
        })
        .await;
        match ended {
            Ok(Some(operator)) => tracing::info!(operator = %operator, "dashboard logout"),
            Ok(None) => {}
            Err(e) => return e.into_response(),
        }
    }
    let mut resp = see_other("/dashboard/login");
    if let Ok(v) = HeaderValue::from_str(&auth::clear_cookie()) {
        resp.headers_mut().insert(header::SET_COOKIE, v);
    }
    resp
}

/// The chart's days, oldest first, as (`YYYY-MM-DD`, `MM-DD`).
fn chart_days(today: chrono::NaiveDate) -> Vec<(String, String)> {
    (0..CHART_DAYS)
        .rev()
        .map(|back| {
            let d = today - chrono::Duration::days(back);
            (d.format("%Y-%m-%d").to_string(), d.format("%m-%d").to_string())
        })
        .collect()
}

/// Packages per chart day, zero where none arrived.
fn uploads_chart(
    meta: &dyn MetaStore,
    facility: Option<&FacilityId>,
) -> Result<Vec<(String, u64)>, DashboardError> {
    let days = chart_days(chrono::Utc::now().date_naive());
    let since = days.first().map(|(d, _)| d.clone()).unwrap_or_default();
    let counts: HashMap<String, u64> =
        meta.uploads_per_day(facility, &since)?.into_iter().map(|c| (c.day, c.count)).collect();
    Ok(days
        .into_iter()
        .map(|(day, label)| (label, counts.get(&day).copied().unwrap_or(0)))
        .collect())
}

/// Every box: from its newest heartbeat and what it uploaded (a box that uploaded but never
/// sent a heartbeat is listed too). Also the quarantine counts of the heartbeats, summed.
fn boxes(
    meta: &dyn MetaStore,
    online_after: Duration,
    only: Option<&FacilityId>,
) -> Result<(Vec<BoxRow>, BTreeMap<String, u64>), DashboardError> {
    let now = chrono::Utc::now();
    let mut rows: BTreeMap<(FacilityId, String), BoxRow> = BTreeMap::new();
    let mut quarantine = BTreeMap::new();
    let wanted = |f: &FacilityId| only.is_none_or(|o| o == f);
    for r in meta.fleet()?.into_iter().filter(|r| wanted(&r.facility)) {
        let online = chrono::DateTime::parse_from_rfc3339(&r.last_heartbeat)
            .ok()
            .and_then(|t| (now - t.with_timezone(&chrono::Utc)).to_std().ok())
            .map_or(Presence::Offline, |age| {
                if age <= online_after {
                    Presence::Online
                } else {
                    Presence::Offline
                }
            });
        let backlog = r
            .queue
            .iter()
            .filter(|(k, _)| !NOT_BACKLOG.contains(&k.as_str()))
            .map(|(_, n)| n)
            .sum();
        for (reason, n) in &r.heartbeat.quarantine {
            *quarantine.entry(reason.clone()).or_insert(0) += n;
        }
        rows.insert(
            (r.facility.clone(), r.device.clone()),
            BoxRow {
                device: r.device,
                facility: r.facility,
                online,
                last_heartbeat: Some(r.last_heartbeat),
                os_version: Some(r.os_version),
                policy_version: Some(r.policy_version),
                backlog: Some(backlog),
                packages: 0,
                last_upload: None,
                quarantined: Some(r.heartbeat.quarantine.values().sum()),
            },
        );
    }
    for u in meta.device_uploads()?.into_iter().filter(|u| wanted(&u.facility)) {
        let row = rows.entry((u.facility.clone(), u.device.clone())).or_insert(BoxRow {
            device: u.device,
            facility: u.facility,
            online: Presence::Never,
            last_heartbeat: None,
            os_version: None,
            policy_version: None,
            backlog: None,
            packages: 0,
            last_upload: None,
            quarantined: None,
        });
        row.packages = u.packages;
        row.last_upload = Some(u.last_received);
    }
    Ok((rows.into_values().collect(), quarantine))
}

fn fleet_view(
    meta: &dyn MetaStore,
    operator: OperatorName,
    online_after: Duration,
) -> Result<FleetView, DashboardError> {
    let (boxes, quarantine) = boxes(meta, online_after, None)?;
    let mut facilities: BTreeMap<FacilityId, FacilityRow> = BTreeMap::new();
    for b in &boxes {
        let f = facilities.entry(b.facility.clone()).or_insert(FacilityRow {
            facility: b.facility.clone(),
            boxes: 0,
            online: 0,
            packages: 0,
            quarantined: 0,
        });
        f.boxes += 1;
        f.online += usize::from(b.online == Presence::Online);
        f.packages += b.packages;
        f.quarantined += b.quarantined.unwrap_or(0);
    }
    Ok(FleetView {
        operator: operator.to_string(),
        generated: generated(),
        online_minutes: online_after.as_secs() / 60,
        facilities: facilities.into_values().collect(),
        boxes,
        uploads: uploads_chart(meta, None)?,
        quarantine,
        rollouts: crate::rollout::summaries(meta, chrono::Utc::now())?,
    })
}

/// The facility's page, `None` if the hub knows nothing of it (no box, no package).
fn facility_view(
    meta: &dyn MetaStore,
    operator: OperatorName,
    facility: FacilityId,
    online_after: Duration,
) -> Result<Option<FacilityView>, DashboardError> {
    let (boxes, quarantine) = boxes(meta, online_after, Some(&facility))?;
    let counts = meta.facility_counts(&facility)?;
    if boxes.is_empty() && counts == Default::default() {
        return Ok(None);
    }
    Ok(Some(FacilityView {
        operator: operator.to_string(),
        generated: generated(),
        online_minutes: online_after.as_secs() / 60,
        uploads: uploads_chart(meta, Some(&facility))?,
        facility,
        boxes,
        quarantine,
        counts,
    }))
}

fn generated() -> String {
    chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_the_dashboard_tree_is_a_dashboard_path() {
        for p in ["/dashboard", "/dashboard/", "/dashboard/login", "/dashboard/facility/F1"] {
            assert!(is_dashboard_path(p), "{p}");
        }
        for p in ["/", "/dashboards", "/dashboardx/login", "/v1/health", "/v1/dashboard", ""] {
            assert!(!is_dashboard_path(p), "{p}");
        }
    }

    #[test]
    fn chart_days_end_today() {
        let today = chrono::NaiveDate::from_ymd_opt(2026, 3, 2).unwrap();
        let days = chart_days(today);
        assert_eq!(days.len(), 14);
        assert_eq!(days[0], ("2026-02-17".to_string(), "02-17".to_string()));
        assert_eq!(days[13], ("2026-03-02".to_string(), "03-02".to_string()));
    }
}
