//! The researchers' export (issue 15): exams made by the synthetic department system go
//! through a real gateway to the hub; `hub export --format parquet` writes one row per
//! current exam, read back with pyarrow against the data dictionary; a date range selects by
//! exam date; every export is in the per-researcher access log; no planted identifier reaches
//! the file.

use crate::common;
use common::*;
use fgw_synth::{self as synth, SynthOptions};
use std::collections::BTreeSet;
use std::path::Path;
use std::process::Command;
use std::time::Duration;

fn export(hub: &Hub, out: &Path, from: &str, to: &str, extra: &[&str]) -> serde_json::Value {
    let out = run_ok(
        Command::new(hub_bin())
            .args(["export", "--config"])
            .arg(&hub.config)
            .args(["--facility", FACILITY, "--from", from, "--to", to, "--format", "parquet"])
            .args(extra)
            .arg(out),
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

/// pyarrow's view of one file: rows, column names and Arrow types, and the values of the
/// columns the test checks, as JSON.
fn read_with_pyarrow(file: &Path) -> serde_json::Value {
    let script = r#"
import json, sys
import pyarrow.parquet as pq
t = pq.read_table(sys.argv[1])
print(json.dumps({
    "rows": t.num_rows,
    "columns": [f.name for f in t.schema],
    "types": {f.name: str(f.type) for f in t.schema},
    "nullable": {f.name: f.nullable for f in t.schema},
    "exam_pid": t.column("exam_pid").to_pylist(),
    "exam_date": t.column("exam_date").to_pylist(),
    "facility_id": t.column("facility_id").to_pylist(),
    "revision": t.column("revision").to_pylist(),
    "findings": t.column("findings").to_pylist(),
    "text": [json.dumps(r, ensure_ascii=False, default=str) for r in t.to_pylist()],
}))
"#;
    let out = run_ok(Command::new("python3").args(["-c", script]).arg(file));
    serde_json::from_slice(&out.stdout).unwrap()
}

#[test]
fn parquet_export_reads_in_pyarrow_with_the_documented_schema_and_is_logged() {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path();
    let mut hub = Hub::init(&root.join("hub"));
    hub.issue("gw-test", FACILITY, "device", &root.join("gw-pki"));
    hub.issue("operator", FACILITY, "operator", &root.join("op-pki"));
    let opts = SynthOptions {
        exams: 8,
        images_per_exam: 1,
        batch: "20261125T2300".into(),
        width: 160,
        height: 128,
        ..SynthOptions::default()
    };
    let truth = synth::generate(&root.join("export"), &opts).unwrap();
    hub.start();
    let gw =
        Gateway::new(&root.join("gw"), &hub.url(), &root.join("gw-pki"), &root.join("export"), "");
    let out = gw.run_until_idle(Duration::from_secs(180));
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let listing = hub.list(&root.join("op-pki"), FACILITY);
    assert_eq!(listing.len(), truth.exams.len());

    // Everything: one row per current exam.
    let all = root.join("all");
    let report = export(&hub, &all, "2000-01-01", "2099-12-31", &["--researcher", "tanaka.k"]);
    assert_eq!(report["rows"], truth.exams.len() as u64, "{report}");
    let files: Vec<_> = std::fs::read_dir(&all)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "parquet"))
        .collect();
    assert_eq!(files.len(), 1, "{files:?}");
    let t = read_with_pyarrow(&files[0]);
    assert_eq!(t["rows"], truth.exams.len() as u64);
    let pids: BTreeSet<String> =
        t["exam_pid"].as_array().unwrap().iter().map(|v| v.as_str().unwrap().into()).collect();
    let hub_pids: BTreeSet<String> =
        listing.iter().map(|r| r["exam_pid"].as_str().unwrap().into()).collect();
    assert_eq!(pids, hub_pids, "the rows are the hub's current exams, each once");
    assert!(t["facility_id"].as_array().unwrap().iter().all(|v| v == FACILITY));
    assert!(t["revision"].as_array().unwrap().iter().all(|v| v == 1));
    for f in t["findings"].as_array().unwrap() {
        let parsed: serde_json::Value = serde_json::from_str(f.as_str().unwrap()).unwrap();
        assert!(parsed.is_array(), "findings is a JSON array");
    }

    // The file's schema is the data dictionary written beside it (and in docs/export.md).
    let dict: serde_json::Value =
        serde_json::from_slice(&std::fs::read(all.join("data-dictionary.json")).unwrap()).unwrap();
    let dict_cols = dict["columns"].as_array().unwrap();
    let names: Vec<&str> = dict_cols.iter().map(|c| c["name"].as_str().unwrap()).collect();
    let file_names: Vec<&str> =
        t["columns"].as_array().unwrap().iter().map(|c| c.as_str().unwrap()).collect();
    assert_eq!(names, file_names);
    let doc = std::fs::read_to_string(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("docs").join("export.md"),
    )
    .unwrap();
    for c in dict_cols {
        let name = c["name"].as_str().unwrap();
        assert!(doc.contains(&format!("| `{name}` |")), "docs/export.md documents {name}");
        let arrow = t["types"][name].as_str().unwrap();
        let expected = match c["type"].as_str().unwrap() {
            "string" => "string",
            // pyarrow >= 19 reads Parquet's JSON type as its JSON extension type.
            "json" if arrow == "extension<arrow.json>" => arrow,
            "json" => "string",
            "int32" => "int32",
            "boolean" => "bool",
            "timestamp_millis_utc" => "timestamp[ms, tz=UTC]",
            other => panic!("unknown dictionary type {other}"),
        };
        assert_eq!(arrow, expected, "column {name}");
        assert_eq!(t["nullable"][name], c["nullable"], "column {name}");
    }

    // No planted identifier of any exam is in any value of the file.
    let text = t["text"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap())
        .collect::<Vec<_>>()
        .join("\n");
    for id in truth.all_identifiers() {
        assert!(!text.contains(&id), "an identifier planted by the generator is in the export");
    }

    // A range selects by exam date.
    let mut dates: Vec<&str> = truth.exams.iter().map(|e| e.exam_date.as_str()).collect();
    dates.sort();
    let cut = dates[dates.len() / 2];
    let expected = dates.iter().filter(|d| **d >= cut).count();
    let part = root.join("part");
    let report = export(&hub, &part, cut, "2099-12-31", &["--researcher", "sato.m"]);
    assert_eq!(report["rows"], expected as u64, "{report}");
    assert_eq!(report["outside_range"], (truth.exams.len() - expected) as u64);
    let file = std::fs::read_dir(&part)
        .unwrap()
        .map(|e| e.unwrap().path())
        .find(|p| p.extension().is_some_and(|e| e == "parquet"))
        .unwrap();
    let t = read_with_pyarrow(&file);
    assert!(t["exam_date"].as_array().unwrap().iter().all(|d| d.as_str().unwrap() >= cut));

    // The same export into the same folder is refused (and logged as failed).
    let again = Command::new(hub_bin())
        .args(["export", "--config"])
        .arg(&hub.config)
        .args([
            "--facility",
            FACILITY,
            "--from",
            cut,
            "--to",
            "2099-12-31",
            "--researcher",
            "sato.m",
        ])
        .arg(&part)
        .output()
        .unwrap();
    assert!(!again.status.success());
    assert!(String::from_utf8_lossy(&again.stderr).contains("already exists"));

    // The access log, per researcher.
    let log = |who: Option<&str>| -> Vec<serde_json::Value> {
        let mut c = Command::new(hub_bin());
        c.args(["exports", "--config"]).arg(&hub.config);
        if let Some(w) = who {
            c.args(["--researcher", w]);
        }
        serde_json::from_slice(&run_ok(&mut c).stdout).unwrap()
    };
    let everyone = log(None);
    assert_eq!(everyone.len(), 3, "{everyone:?}");
    let tanaka = log(Some("tanaka.k"));
    assert_eq!(tanaka.len(), 1);
    assert_eq!(tanaka[0]["rows"], truth.exams.len() as u64);
    assert_eq!(tanaka[0]["outcome"], "complete");
    assert_eq!(tanaka[0]["date_from"], "2000-01-01");
    let sato = log(Some("sato.m"));
    assert_eq!(
        sato.iter().map(|e| e["outcome"].as_str().unwrap()).collect::<Vec<_>>(),
        ["complete", "failed"]
    );

    // Without --researcher, the account running the command is recorded.
    let me = root.join("me");
    export(&hub, &me, "2000-01-01", "2099-12-31", &[]);
    let last = log(None).pop().unwrap();
    assert!(!last["researcher"].as_str().unwrap().is_empty());
}
