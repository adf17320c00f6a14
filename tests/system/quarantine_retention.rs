//! Issue 10, finding 14: raw data kept on the box has a retention period.
//!
//! Every image withheld (`[deid.pixels] mode = "withhold"`): each exam is uploaded and its raw
//! export kept, encrypted, in quarantine. The daemon deletes what is older than
//! `quarantine.retention_days` (90) when it starts; `gateway quarantine purge --older-than
//! DAYS` does it on demand. Each purge writes an audit line (ids, reason codes, counts; no
//! personal data) to the log and the `audit` table. Before: raw data stayed forever, and
//! there was no purge command.

use crate::common;
use common::*;
use fgw_synth::{self as synth, SynthOptions};
use std::time::Duration;

#[test]
fn quarantined_raw_data_is_purged_after_its_retention_with_an_audit_record() {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path();
    let opts =
        SynthOptions { exams: 2, images_per_exam: 1, width: 64, height: 64, ..Default::default() };
    let truth = synth::generate(&root.join("export"), &opts).unwrap();
    let mut hub = Hub::init(&root.join("hub"));
    hub.issue("gw-test", FACILITY, "device", &root.join("gw-pki"));
    hub.start();
    let gw = Gateway::new(
        &root.join("gw"),
        &hub.url(),
        &root.join("gw-pki"),
        &root.join("export"),
        "[deid.pixels]\nmode = \"withhold\"\n",
    );
    let out = gw.run_until_idle(Duration::from_secs(120));
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert_eq!(gw.status_json()["counts"]["acked"], 2);
    let kept = || all_files(&gw.state_dir().join("quarantine")).len();
    assert_eq!(kept(), 2, "each exam's raw export is kept for its withheld image");

    // Nothing is older than 30 days: nothing goes.
    let out = gw.cmd().args(["quarantine", "purge", "--older-than", "30"]).output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(String::from_utf8_lossy(&out.stdout).contains("raw data of 0 item(s)"));
    assert_eq!(kept(), 2);

    // One exam kept since long ago: the daemon's retention (90 days) takes it at start.
    let db = gw.db();
    let old: String = db
        .query_row("SELECT id FROM items WHERE kind = 'exam' ORDER BY id LIMIT 1", [], |r| r.get(0))
        .unwrap();
    db.execute("UPDATE items SET updated_at = '2000-01-01T00:00:00.000Z' WHERE id = ?1", [&old])
        .unwrap();
    let out = gw.run_until_idle(Duration::from_secs(120));
    let log = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(out.status.success(), "{log}");
    assert_eq!(kept(), 1, "the old exam's raw data was not purged");
    let line = log.lines().find(|l| l.contains("quarantine purge")).expect("an audit log line");
    assert!(line.contains(&old) && line.contains("images-withheld"), "{line}");

    // On demand, everything kept longer than 0 days.
    let out = gw.cmd().args(["quarantine", "purge", "--older-than", "0"]).output().unwrap();
    let said = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(out.status.success(), "{said} {}", String::from_utf8_lossy(&out.stderr));
    assert!(said.contains("raw data of 1 item(s)") && said.contains("images-withheld"), "{said}");
    assert_eq!(kept(), 0);

    // The audit table: one row per purge, ids and codes, no personal data. The items stay.
    let mut st = db.prepare("SELECT action, items, detail FROM audit ORDER BY rowid").unwrap();
    let rows: Vec<(String, i64, String)> = st
        .query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap();
    assert_eq!(rows.len(), 2, "{rows:?}");
    assert!(rows.iter().all(|(a, n, _)| a == "purge" && *n == 1), "{rows:?}");
    assert!(rows[0].2.contains(&old) && rows[0].2.contains("\"images-withheld\""));
    for (_, _, detail) in &rows {
        for id in truth.all_identifiers() {
            for form in byte_forms(&id) {
                assert!(!contains(detail.as_bytes(), &form), "audit holds {id:?}");
            }
        }
    }
    let purged: i64 = db
        .query_row("SELECT COUNT(*) FROM items WHERE raw_purged_at IS NOT NULL", [], |r| r.get(0))
        .unwrap();
    assert_eq!(purged, 2);
    assert_eq!(gw.status_json()["counts"]["acked"], 2, "the items themselves stay");
    hub.stop();
}
