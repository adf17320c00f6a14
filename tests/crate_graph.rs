//! The gate, enforced by the crate graph: asserted on `cargo metadata`'s resolved graph, so a
//! `use` that crosses a side cannot compile, and a dependency that would let it shows up here.
//!
//! Every workspace crate has a side; a new crate fails this test until it is given one.

use serde_json::Value;
use std::collections::{BTreeMap, BTreeSet};
use std::process::Command;

/// Edge kinds of `cargo metadata`: `None` is a normal dependency.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Edges {
    /// What is linked into the crate.
    Normal,
    /// What is linked, plus what its build scripts need (bindgen and libclang live there).
    NormalAndBuild,
}

/// A dependency edge: the package id it points at, and its kinds (`None` = normal).
type Edge = (String, Vec<Option<String>>);

struct Graph {
    /// package id -> (name, edges)
    nodes: BTreeMap<String, (String, Vec<Edge>)>,
    members: BTreeSet<String>,
}

impl Graph {
    fn load() -> Graph {
        let out = Command::new(env!("CARGO"))
            .args(["metadata", "--format-version", "1", "--locked"])
            .current_dir(env!("CARGO_MANIFEST_DIR"))
            .output()
            .expect("run cargo metadata");
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        let meta: Value = serde_json::from_slice(&out.stdout).unwrap();
        let names: BTreeMap<String, String> = meta["packages"]
            .as_array()
            .unwrap()
            .iter()
            .map(|p| (p["id"].as_str().unwrap().into(), p["name"].as_str().unwrap().into()))
            .collect();
        let members = meta["workspace_members"]
            .as_array()
            .unwrap()
            .iter()
            .map(|id| names[id.as_str().unwrap()].clone())
            .collect();
        let mut nodes = BTreeMap::new();
        for n in meta["resolve"]["nodes"].as_array().unwrap() {
            let id = n["id"].as_str().unwrap().to_string();
            let deps = n["deps"]
                .as_array()
                .unwrap()
                .iter()
                .map(|d| {
                    let kinds = d["dep_kinds"]
                        .as_array()
                        .unwrap()
                        .iter()
                        .map(|k| k["kind"].as_str().map(str::to_string))
                        .collect();
                    (d["pkg"].as_str().unwrap().to_string(), kinds)
                })
                .collect();
            nodes.insert(id.clone(), (names[&id].clone(), deps));
        }
        Graph { nodes, members }
    }

    fn id_of(&self, name: &str) -> &str {
        let ids: Vec<&String> =
            self.nodes.iter().filter(|(_, (n, _))| n == name).map(|(id, _)| id).collect();
        assert_eq!(ids.len(), 1, "{name}: expected one package of that name, found {ids:?}");
        ids[0]
    }

    /// Names of every package `name` reaches over `edges` (itself excluded).
    fn reaches(&self, name: &str, edges: Edges) -> BTreeSet<String> {
        let mut seen = BTreeSet::new();
        let mut todo = vec![self.id_of(name).to_string()];
        while let Some(id) = todo.pop() {
            for (dep, kinds) in &self.nodes[&id].1 {
                let follow = kinds.iter().any(|k| match k.as_deref() {
                    None => true,
                    Some("build") => edges == Edges::NormalAndBuild,
                    _ => false,
                });
                if follow && seen.insert(dep.clone()) {
                    todo.push(dep.clone());
                }
            }
        }
        seen.into_iter().map(|id| self.nodes[&id].0.clone()).collect()
    }

    /// Direct normal dependencies that are workspace crates.
    fn direct_members(&self, name: &str) -> BTreeSet<String> {
        self.nodes[self.id_of(name)]
            .1
            .iter()
            .filter(|(_, kinds)| kinds.iter().any(Option::is_none))
            .map(|(dep, _)| self.nodes[dep].0.clone())
            .filter(|n| self.members.contains(n))
            .collect()
    }
}

fn assert_none_of(graph: &Graph, krate: &str, edges: Edges, forbidden: &[&str]) {
    let reached = graph.reaches(krate, edges);
    let bad: Vec<&&str> = forbidden.iter().filter(|f| reached.contains(**f)).collect();
    assert!(bad.is_empty(), "{krate} reaches {bad:?}");
}

/// Networking, async runtimes, TLS and SQLite: what the gate must never link.
const NETWORK_AND_STORAGE: &[&str] = &[
    "tokio",
    "hyper",
    "hyper-util",
    "axum",
    "reqwest",
    "rustls",
    "tokio-rustls",
    "rusqlite",
    "dicom-ul",
];

#[test]
fn every_workspace_crate_has_a_side() {
    let g = Graph::load();
    let sides: BTreeMap<&str, &[&str]> = BTreeMap::from([
        // crate -> the workspace crates it may depend on directly
        ("fgw-format", &[][..]),
        ("fgw-tls", &["fgw-format"][..]),
        // The box's keys (TPM or, for development, a file): below TLS users, above nothing
        // that reads exam data.
        ("fgw-identity", &["fgw-tls"][..]),
        // The WireGuard tunnel (box and hub): keys and an interface; reads no exam data.
        ("fgw-vpn", &[][..]),
        // Signed releases over TUF (box and hub): metadata and targets; reads no exam data.
        // It writes its files with fgw-format's durable writes.
        ("fgw-release", &["fgw-format"][..]),
        ("fgw-records", &["fgw-format"][..]),
        ("fgw-deid", &["fgw-format", "fgw-records"][..]),
        ("fgw-ingest", &["fgw-format", "fgw-records"][..]),
        ("fgw-outbound", &["fgw-format", "fgw-tls", "fgw-deid"][..]),
        (
            "fgw-gateway",
            &[
                "fgw-format",
                "fgw-tls",
                "fgw-identity",
                "fgw-vpn",
                "fgw-release",
                "fgw-records",
                "fgw-deid",
                "fgw-ingest",
                "fgw-outbound",
            ][..],
        ),
        ("fgw-hub", &["fgw-format", "fgw-tls", "fgw-vpn", "fgw-release"][..]),
        ("fgw-synth", &["fgw-records"][..]),
        // The hub's load generator: de-identified packages over mTLS, like the uplink; the
        // synthetic department and `gateway deid` run as separate processes.
        ("fgw-loadgen", &["fgw-format", "fgw-tls"][..]),
        ("fgw-system-tests", &[][..]),
    ]);
    for m in &g.members {
        let allowed = sides.get(m.as_str()).unwrap_or_else(|| {
            panic!("workspace crate {m} has no side in tests/crate_graph.rs; give it one")
        });
        let direct = g.direct_members(m);
        let extra: Vec<&String> =
            direct.iter().filter(|d| !allowed.contains(&d.as_str())).collect();
        assert!(extra.is_empty(), "{m} depends on {extra:?}, outside its side");
    }
}

#[test]
fn the_gate_links_no_network_runtime_tls_or_sqlite() {
    let g = Graph::load();
    assert_none_of(&g, "fgw-deid", Edges::Normal, NETWORK_AND_STORAGE);
    // What the gate is built from is no looser.
    assert_none_of(&g, "fgw-records", Edges::Normal, NETWORK_AND_STORAGE);
    assert_none_of(&g, "fgw-format", Edges::Normal, NETWORK_AND_STORAGE);
}

#[test]
fn the_hub_builds_without_tesseract_libclang_or_the_box_side() {
    let g = Graph::load();
    assert_none_of(
        &g,
        "fgw-hub",
        Edges::NormalAndBuild,
        &[
            "tesseract-plumbing",
            "tesseract-sys",
            "leptonica-plumbing",
            "leptonica-sys",
            "bindgen",
            "clang-sys",
            "fgw-deid",
            "fgw-ingest",
            "fgw-records",
            "fgw-outbound",
            "fgw-gateway",
            "fgw-synth",
        ],
    );
}

#[test]
fn the_load_generator_links_only_the_de_identified_side() {
    let g = Graph::load();
    assert_none_of(
        &g,
        "fgw-loadgen",
        Edges::Normal,
        &["fgw-records", "fgw-deid", "fgw-ingest", "fgw-gateway", "fgw-synth", "fgw-hub"],
    );
}

#[test]
fn the_box_binary_carries_no_synthetic_data_or_font_rasterizer() {
    let g = Graph::load();
    assert_none_of(&g, "fgw-gateway", Edges::Normal, &["fgw-synth", "ab_glyph", "fgw-hub"]);
}

#[test]
fn the_de_identified_side_reaches_records_only_through_the_gate() {
    let g = Graph::load();
    // fgw-outbound may name only what fgw-deid re-exports; Cargo lets a crate `use` only its
    // direct dependencies, so the direct edges are what decides.
    let direct = g.direct_members("fgw-outbound");
    assert!(!direct.contains("fgw-records") && !direct.contains("fgw-ingest"), "{direct:?}");
    assert_none_of(&g, "fgw-outbound", Edges::Normal, &["fgw-ingest", "fgw-gateway"]);
    // The identifiable side does not reach the outbound side.
    assert_none_of(&g, "fgw-ingest", Edges::Normal, &["fgw-deid", "fgw-outbound", "fgw-tls"]);
}

/// The checks above can fail: the same walk finds edges that do exist.
#[test]
fn the_walk_finds_existing_edges() {
    let g = Graph::load();
    let gw = g.reaches("fgw-gateway", Edges::Normal);
    for present in ["tokio", "rusqlite", "fgw-deid", "fgw-ingest", "tesseract-plumbing"] {
        assert!(gw.contains(present), "fgw-gateway should reach {present}");
    }
    assert!(g.reaches("fgw-deid", Edges::NormalAndBuild).contains("bindgen"));
    assert!(!g.reaches("fgw-deid", Edges::Normal).contains("bindgen"));
}
