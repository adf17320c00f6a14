//! The module boundaries of docs/ARCHITECTURE.md, checked on the source: the gate never
//! depends on networking, and the de-identified side never imports the identifiable side.

use std::path::{Path, PathBuf};

fn rust_files(dir: &Path) -> Vec<PathBuf> {
    let mut out = vec![];
    if dir.is_file() {
        out.push(dir.to_path_buf());
        return out;
    }
    for e in std::fs::read_dir(dir).unwrap().flatten() {
        let p = e.path();
        if p.is_dir() {
            out.extend(rust_files(&p));
        } else if p.extension().is_some_and(|x| x == "rs") {
            out.push(p);
        }
    }
    out
}

fn violations(paths: &[&str], forbidden: &[&str]) -> Vec<String> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut found = vec![];
    for p in paths {
        let files = rust_files(&root.join(p));
        assert!(!files.is_empty(), "no sources under src/{p}: test would pass vacuously");
        for f in files {
            let text = std::fs::read_to_string(&f).unwrap();
            for (n, line) in text.lines().enumerate() {
                let code = line.split("//").next().unwrap_or("");
                for bad in forbidden {
                    if code.contains(bad) {
                        found.push(format!("{}:{}: uses {bad}", f.display(), n + 1));
                    }
                }
            }
        }
    }
    found
}

#[test]
fn the_gate_does_not_depend_on_networking() {
    let v = violations(
        &["deid"],
        &[
            "reqwest",
            "hyper",
            "axum",
            "rustls",
            "tokio::net",
            "std::net",
            "crate::uplink",
            "crate::hub",
            "crate::outbox",
            "crate::pipeline",
        ],
    );
    assert!(v.is_empty(), "{v:#?}");
}

#[test]
fn the_deidentified_side_does_not_import_the_identifiable_side() {
    let v = violations(
        &["outbox.rs", "uplink.rs", "package.rs", "hub"],
        &["crate::ingest", "crate::record", "crate::spool", "crate::offline", "crate::pipeline"],
    );
    assert!(v.is_empty(), "{v:#?}");
}

#[test]
fn the_hub_shares_only_the_format_with_the_gateway() {
    let v =
        violations(&["hub"], &["crate::deid", "crate::state", "crate::config", "crate::secrets"]);
    assert!(v.is_empty(), "{v:#?}");
}

#[test]
fn the_check_itself_catches_a_violation() {
    // Guard against a vacuous pass: the identifiable side does use `crate::record`.
    assert!(!violations(&["spool.rs"], &["crate::record"]).is_empty());
}
