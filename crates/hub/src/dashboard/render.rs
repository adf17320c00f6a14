//! The dashboard's HTML, rendered on the server. Every value goes through [`escape`], even
//! ids whose shape is already checked: the page must not depend on every writer of the
//! store having checked. Pages show ids, codes, counts and times only.

use super::chart::bar_chart;
use crate::store::{FacilityCounts, RolloutSummary};
use fgw_format::ids::FacilityId;
use fgw_format::units::human_bytes;
use std::collections::BTreeMap;
use std::fmt::Write;

/// `s` safe in HTML text and in double- or single-quoted attribute values.
pub(crate) fn escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// Whether a box has been heard from lately.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Presence {
    /// A heartbeat within the threshold.
    Online,
    /// Its last heartbeat is older.
    Offline,
    /// It never sent one (it only uploaded).
    Never,
}

impl Presence {
    fn cell(self) -> &'static str {
        match self {
            Presence::Online => r#"<td class="state online">online</td>"#,
            Presence::Offline => r#"<td class="state offline">offline</td>"#,
            Presence::Never => r#"<td class="state never">no heartbeat</td>"#,
        }
    }
}

/// One box (device) as the tables show it.
#[derive(Debug, Clone)]
pub(crate) struct BoxRow {
    pub(crate) device: String,
    pub(crate) facility: FacilityId,
    pub(crate) online: Presence,
    pub(crate) last_heartbeat: Option<String>,
    pub(crate) os_version: Option<String>,
    pub(crate) policy_version: Option<String>,
    /// Items not yet acknowledged by the hub (nor quarantined or superseded).
    pub(crate) backlog: Option<u64>,
    pub(crate) packages: u64,
    pub(crate) last_upload: Option<String>,
    pub(crate) quarantined: Option<u64>,
}

/// One facility on the fleet page.
#[derive(Debug, Clone)]
pub(crate) struct FacilityRow {
    pub(crate) facility: FacilityId,
    pub(crate) boxes: usize,
    pub(crate) online: usize,
    pub(crate) packages: u64,
    pub(crate) quarantined: u64,
}

/// What the fleet page shows.
#[derive(Debug, Clone)]
pub(crate) struct FleetView {
    pub(crate) operator: String,
    pub(crate) generated: String,
    pub(crate) online_minutes: u64,
    pub(crate) facilities: Vec<FacilityRow>,
    pub(crate) boxes: Vec<BoxRow>,
    pub(crate) uploads: Vec<(String, u64)>,
    pub(crate) quarantine: BTreeMap<String, u64>,
    pub(crate) rollouts: Vec<RolloutSummary>,
}

/// What a facility's page shows.
#[derive(Debug, Clone)]
pub(crate) struct FacilityView {
    pub(crate) operator: String,
    pub(crate) generated: String,
    pub(crate) online_minutes: u64,
    pub(crate) facility: FacilityId,
    pub(crate) boxes: Vec<BoxRow>,
    pub(crate) uploads: Vec<(String, u64)>,
    pub(crate) quarantine: BTreeMap<String, u64>,
    pub(crate) counts: FacilityCounts,
}

/// The frame of every page; `operator` adds the header with the logout button.
fn page(title: &str, operator: Option<&str>, body: &str) -> String {
    let mut out = String::new();
    let _ = write!(
        out,
        r#"<!DOCTYPE html><html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1"><title>{t} · fgw hub</title><link rel="stylesheet" href="/dashboard/style.css"></head><body>"#,
        t = escape(title)
    );
    out.push_str(r#"<header><a class="brand" href="/dashboard">fgw hub · operators</a>"#);
    if let Some(op) = operator {
        let _ = write!(
            out,
            r#"<span class="who">signed in as <b id="operator">{}</b></span><form method="post" action="/dashboard/logout"><button type="submit" id="logout">Log out</button></form>"#,
            escape(op)
        );
    }
    out.push_str("</header><main>");
    out.push_str(body);
    out.push_str("</main></body></html>");
    out
}

/// The login form; `message` says why the last attempt failed.
pub(crate) fn login_page(message: Option<&str>) -> String {
    let mut body = String::from(r#"<section class="login"><h1>Sign in</h1>"#);
    if let Some(m) = message {
        let _ = write!(body, r#"<p class="error" id="login-error">{}</p>"#, escape(m));
    }
    body.push_str(
        r#"<form method="post" action="/dashboard/login" id="login"><label>Username <input type="text" name="username" id="username" autocomplete="username" required maxlength="64"></label><label>Password <input type="password" name="password" id="password" autocomplete="current-password" required maxlength="1024"></label><button type="submit" id="login-submit">Sign in</button></form></section>"#,
    );
    page("Sign in", None, &body)
}

/// A page that only says something (not found, failure).
pub(crate) fn message_page(title: &str, operator: Option<&str>, message: &str) -> String {
    let body = format!(
        r#"<h1>{}</h1><p>{}</p><p><a href="/dashboard">Back to the fleet</a></p>"#,
        escape(title),
        escape(message)
    );
    page(title, operator, &body)
}

fn opt(v: &Option<String>) -> String {
    v.as_deref().map(escape).unwrap_or_else(|| "–".into())
}

fn opt_n(v: Option<u64>) -> String {
    v.map(|n| n.to_string()).unwrap_or_else(|| "–".into())
}

fn facility_link(f: &FacilityId) -> String {
    let f = escape(f.as_str());
    format!(r#"<a class="facility" href="/dashboard/facility/{f}">{f}</a>"#)
}

fn boxes_table(boxes: &[BoxRow]) -> String {
    if boxes.is_empty() {
        return r#"<p class="empty">No boxes yet.</p>"#.into();
    }
    let mut t = String::from(
        r#"<table id="boxes"><thead><tr><th>Device</th><th>Facility</th><th>State</th><th>Last heartbeat</th><th>OS version</th><th>Policy</th><th class="n">Backlog</th><th class="n">Packages</th><th>Last upload</th><th class="n">Quarantined</th></tr></thead><tbody>"#,
    );
    for b in boxes {
        let _ = write!(
            t,
            r#"<tr class="box" data-device="{d}"><td class="device">{d}</td><td>{f}</td>{s}<td>{hb}</td><td>{os}</td><td>{pol}</td><td class="n">{bl}</td><td class="n">{p}</td><td>{lu}</td><td class="n">{q}</td></tr>"#,
            d = escape(&b.device),
            f = facility_link(&b.facility),
            s = b.online.cell(),
            hb = opt(&b.last_heartbeat),
            os = opt(&b.os_version),
            pol = opt(&b.policy_version),
            bl = opt_n(b.backlog),
            p = b.packages,
            lu = opt(&b.last_upload),
            q = opt_n(b.quarantined),
        );
    }
    t.push_str("</tbody></table>");
    t
}

fn quarantine_table(id: &str, counts: &BTreeMap<String, u64>) -> String {
    if counts.values().all(|n| *n == 0) {
        return format!(r#"<p class="empty" id="{id}">Nothing quarantined.</p>"#);
    }
    let mut t = format!(
        r#"<table id="{id}"><thead><tr><th>Reason</th><th class="n">Items</th></tr></thead><tbody>"#
    );
    for (reason, n) in counts.iter().filter(|(_, n)| **n > 0) {
        let _ = write!(t, r#"<tr><td>{}</td><td class="n">{n}</td></tr>"#, escape(reason));
    }
    let total: u64 = counts.values().sum();
    let _ = write!(
        t,
        r#"</tbody><tfoot><tr><th>Total</th><th class="n">{total}</th></tr></tfoot></table>"#
    );
    t
}

fn rollouts_section(rollouts: &[RolloutSummary]) -> String {
    if rollouts.is_empty() {
        return r#"<p class="empty" id="rollouts">No rollouts.</p>"#.into();
    }
    let mut t = String::from(
        r#"<table id="rollouts"><thead><tr><th>Release</th><th>Kind</th><th>State</th><th>Waves</th><th class="n">Updated</th><th class="n">Failed</th></tr></thead><tbody>"#,
    );
    for r in rollouts {
        let waves: Vec<String> = r
            .waves
            .iter()
            .map(|(pct, start, state)| format!("{pct}% from {} ({})", escape(start), escape(state)))
            .collect();
        let _ = write!(
            t,
            r#"<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td class="n">{}</td><td class="n">{}</td></tr>"#,
            escape(&r.release),
            escape(&r.kind),
            escape(&r.state),
            waves.join("<br>"),
            r.updated,
            r.failed
        );
    }
    t.push_str("</tbody></table>");
    t
}

fn footer(generated: &str, online_minutes: u64) -> String {
    format!(
        r#"<p class="note">Online: a heartbeat within the last {online_minutes} minutes. Times are UTC. Generated {}.</p>"#,
        escape(generated)
    )
}

/// `/dashboard`: every facility and box, uploads per day, quarantine, rollouts.
pub(crate) fn fleet_page(v: &FleetView) -> String {
    let mut body = String::from(r#"<h1>Fleet</h1>"#);
    let (boxes, online) =
        (v.boxes.len(), v.boxes.iter().filter(|b| b.online == Presence::Online).count());
    let packages: u64 = v.uploads.iter().map(|(_, n)| n).sum();
    let quarantined: u64 = v.quarantine.values().sum();
    let _ = write!(
        body,
        r#"<ul class="tiles"><li><span class="big" id="boxes-online">{online} / {boxes}</span> boxes online</li><li><span class="big">{}</span> facilities</li><li><span class="big" id="packages-14d">{packages}</span> packages in 14 days</li><li><span class="big" id="quarantined-total">{quarantined}</span> quarantined</li></ul>"#,
        v.facilities.len()
    );
    body.push_str(r#"<h2>Facilities</h2>"#);
    if v.facilities.is_empty() {
        body.push_str(r#"<p class="empty">No facilities yet.</p>"#);
    } else {
        body.push_str(
            r#"<table id="facilities"><thead><tr><th>Facility</th><th class="n">Boxes</th><th class="n">Online</th><th class="n">Packages</th><th class="n">Quarantined</th></tr></thead><tbody>"#,
        );
        for f in &v.facilities {
            let _ = write!(
                body,
                r#"<tr><td>{}</td><td class="n">{}</td><td class="n">{}</td><td class="n">{}</td><td class="n">{}</td></tr>"#,
                facility_link(&f.facility),
                f.boxes,
                f.online,
                f.packages,
                f.quarantined
            );
        }
        body.push_str("</tbody></table>");
    }
    body.push_str(r#"<h2>Boxes</h2>"#);
    body.push_str(&boxes_table(&v.boxes));
    body.push_str(r#"<h2>Uploads per day (last 14 days)</h2><figure id="uploads-chart">"#);
    body.push_str(&bar_chart("Packages received per day, all facilities", &v.uploads));
    body.push_str("</figure>");
    body.push_str(r#"<h2>Quarantine (as the boxes last reported)</h2>"#);
    body.push_str(&quarantine_table("quarantine", &v.quarantine));
    body.push_str(r#"<h2>Rollouts</h2>"#);
    body.push_str(&rollouts_section(&v.rollouts));
    body.push_str(&footer(&v.generated, v.online_minutes));
    page("Fleet", Some(&v.operator), &body)
}

/// `/dashboard/facility/{id}`: one facility's boxes, uploads, quarantine and holdings.
pub(crate) fn facility_page(v: &FacilityView) -> String {
    let f = escape(v.facility.as_str());
    let mut body = format!(
        r#"<p class="crumbs"><a href="/dashboard">Fleet</a> › {f}</p><h1>Facility <span id="facility-id">{f}</span></h1>"#
    );
    let c = &v.counts;
    let _ = write!(
        body,
        r#"<ul class="tiles"><li><span class="big" id="exams">{}</span> exams</li><li><span class="big" id="packages">{}</span> exam and report packages</li><li><span class="big" id="dicom-objects">{}</span> DICOM objects</li><li><span class="big">{}</span> held</li></ul>"#,
        c.exams,
        c.packages,
        c.dicom_objects,
        human_bytes(c.bytes_held)
    );
    body.push_str(r#"<h2>Boxes</h2>"#);
    body.push_str(&boxes_table(&v.boxes));
    body.push_str(r#"<h2>Uploads per day (last 14 days)</h2><figure id="uploads-chart">"#);
    body.push_str(&bar_chart(
        &format!("Packages received per day, facility {}", v.facility),
        &v.uploads,
    ));
    body.push_str("</figure>");
    body.push_str(r#"<h2>Quarantine</h2>"#);
    body.push_str(&quarantine_table("quarantine", &v.quarantine));
    body.push_str(&footer(&v.generated, v.online_minutes));
    page(&format!("Facility {}", v.facility), Some(&v.operator), &body)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escape_covers_text_and_attributes() {
        assert_eq!(
            escape(r#"<a href="x" onclick='y'>&</a>"#),
            "&lt;a href=&quot;x&quot; onclick=&#39;y&#39;&gt;&amp;&lt;/a&gt;"
        );
        assert_eq!(escape("F0001 gw-1 2026-12-05T10:00:00Z"), "F0001 gw-1 2026-12-05T10:00:00Z");
        assert_eq!(escape("日本"), "日本");
    }

    fn a_box(device: &str) -> BoxRow {
        BoxRow {
            device: device.into(),
            facility: FacilityId::new("F0001").unwrap(),
            online: Presence::Online,
            last_heartbeat: Some("2026-12-05T10:00:00Z".into()),
            os_version: Some("<img src=x>".into()),
            policy_version: Some("jed-basic@1".into()),
            backlog: Some(2),
            packages: 3,
            last_upload: None,
            quarantined: Some(1),
        }
    }

    #[test]
    fn pages_escape_every_value_and_link_facilities() {
        let v = FleetView {
            operator: "<op>".into(),
            generated: "now".into(),
            online_minutes: 15,
            facilities: vec![FacilityRow {
                facility: FacilityId::new("F0001").unwrap(),
                boxes: 1,
                online: 1,
                packages: 3,
                quarantined: 1,
            }],
            boxes: vec![a_box("gw-<1>")],
            uploads: vec![("12-05".into(), 3)],
            quarantine: BTreeMap::from([("identifier-<in>-pixels".to_string(), 1)]),
            rollouts: vec![],
        };
        let html = fleet_page(&v);
        for raw in ["<op>", "gw-<1>", "<img", "-<in>-"] {
            assert!(!html.contains(raw), "{raw} unescaped");
        }
        assert!(html.contains("&lt;img src=x&gt;"));
        assert!(html.contains(r#"href="/dashboard/facility/F0001""#));
        assert!(html.contains("No rollouts."));
        assert!(html.contains(r#"id="logout""#));
        assert!(!html.contains("<script"), "no script at all");
        assert!(!html.contains("http://") && !html.contains("https://"), "nothing external");
    }

    #[test]
    fn rollouts_and_facility_pages_render() {
        let r = RolloutSummary {
            release: "1.2.0".into(),
            kind: "os".into(),
            waves: vec![(10, "2026-12-01T00:00:00Z".into(), "done".into())],
            state: "running".into(),
            updated: 4,
            failed: 1,
        };
        let s = rollouts_section(&[r]);
        assert!(s.contains("10% from 2026-12-01T00:00:00Z (done)") && s.contains("1.2.0"));
        let v = FacilityView {
            operator: "alice".into(),
            generated: "now".into(),
            online_minutes: 15,
            facility: FacilityId::new("F0001").unwrap(),
            boxes: vec![a_box("gw-1")],
            uploads: vec![],
            quarantine: BTreeMap::new(),
            counts: FacilityCounts { exams: 2, packages: 3, dicom_objects: 0, bytes_held: 2048 },
        };
        let html = facility_page(&v);
        assert!(html.contains(r#"<span id="facility-id">F0001</span>"#));
        assert!(html.contains("2.0 KiB") && html.contains("Nothing quarantined."));
        assert!(login_page(Some("Wrong <user>")).contains("Wrong &lt;user&gt;"));
    }
}
