//! The integration suite on the national stores (issue 15): with `FGW_TEST_STORES` naming an
//! env file written by `scripts/test-scaled-stores.sh` (PostgreSQL and a Garage cluster it
//! started), every hub a test starts gets its own PostgreSQL database and its own key prefix
//! in the S3 bucket (`[store]` appended to its hub.toml), instead of SQLite and files. Without
//! it, hubs run on the embedded defaults.

use std::collections::BTreeMap;
use std::path::Path;
use std::process::Command;

/// `KEY=value` lines of the env file (values optionally single-quoted).
fn settings() -> Option<BTreeMap<String, String>> {
    let path = std::env::var_os("FGW_TEST_STORES")?;
    let text = std::fs::read_to_string(&path).expect("FGW_TEST_STORES names a readable file");
    Some(
        text.lines()
            .filter_map(|l| l.split_once('='))
            .map(|(k, v)| (k.trim().to_string(), v.trim().trim_matches('\'').to_string()))
            .collect(),
    )
}

/// Whether hubs run on PostgreSQL + S3 in this test process.
pub fn active() -> bool {
    std::env::var_os("FGW_TEST_STORES").is_some()
}

fn get<'a>(s: &'a BTreeMap<String, String>, key: &str) -> &'a str {
    s.get(key).unwrap_or_else(|| panic!("FGW_TEST_STORES file lacks {key}"))
}

/// The `[store]` table for a new hub in `dir` (empty on the embedded defaults): a fresh
/// database, created here, and a fresh prefix.
pub fn store_table(dir: &Path) -> String {
    let Some(s) = settings() else { return String::new() };
    let name = format!(
        "hub_{}",
        dir.to_string_lossy().bytes().fold(0xcbf2_9ce4_8422_2325u64, |h, b| {
            (h ^ u64::from(b)).wrapping_mul(0x100_0000_01b3)
        }) ^ u64::from(std::process::id())
    );
    let admin = get(&s, "PG_URL");
    let out = Command::new("psql")
        .args([admin, "-X", "-q", "-v", "ON_ERROR_STOP=1", "-c"])
        .arg(format!("CREATE DATABASE {name}"))
        .output()
        .expect("psql (postgresql-client) must be installed");
    assert!(out.status.success(), "CREATE DATABASE: {}", String::from_utf8_lossy(&out.stderr));
    let base = admin.rsplit_once('/').expect("PG_URL ends in /database").0;
    format!(
        "[store]\nmeta = \"{base}/{name}\"\nobjects = \"s3\"\n[store.s3]\nendpoint = \"{}\"\n\
         bucket = \"{}\"\nregion = \"{}\"\naccess_key_id = \"{}\"\nsecret_access_key = \"{}\"\n\
         prefix = \"{name}\"\n",
        get(&s, "S3_ENDPOINT"),
        get(&s, "S3_BUCKET"),
        get(&s, "S3_REGION"),
        get(&s, "S3_ACCESS_KEY_ID"),
        get(&s, "S3_SECRET_ACCESS_KEY"),
    )
}

/// The `[store]` table of an existing hub.toml, for a second node of the same hub.
pub fn same_stores(config: &Path) -> String {
    let text = std::fs::read_to_string(config).unwrap();
    text.find("[store]").map_or(String::new(), |i| text[i..].to_string())
}

/// What a hub on the national stores holds outside its data directory: its PostgreSQL
/// database (all rows, by pg_dump) and every object in its S3 prefix (empty on the embedded defaults,
/// where `data_dir` holds it all). For the planted-identifier checks.
pub fn stored_outside(config: &Path) -> Vec<(String, Vec<u8>)> {
    if !active() {
        return Vec::new();
    }
    let cfg = fgw_hub::HubConfig::load(config).unwrap();
    let mut out = Vec::new();
    if let fgw_hub::MetaBackend::Postgres(url) = &cfg.store.meta {
        // Every row of every table, as pg_dump writes them (the whole database, as the
        // SQLite file is on the embedded store).
        let dump = Command::new("pg_dump")
            .args(["--data-only", "--no-owner", url.expose()])
            .output()
            .expect("pg_dump (postgresql-client) must be installed");
        assert!(dump.status.success(), "{}", String::from_utf8_lossy(&dump.stderr));
        out.push(("postgres:dump".to_string(), dump.stdout));
        // Manifests are bytea, which pg_dump writes as hex: as text too, so a planted
        // identifier in one would be seen.
        for table in ["packages", "dicom_objects"] {
            let text = Command::new("psql")
                .args([url.expose(), "-X", "-q", "-v", "ON_ERROR_STOP=1", "-c"])
                .arg(format!("COPY (SELECT convert_from(manifest, 'UTF8') FROM {table}) TO STDOUT"))
                .output()
                .unwrap();
            assert!(text.status.success(), "{}", String::from_utf8_lossy(&text.stderr));
            out.push((format!("postgres:{table}.manifest"), text.stdout));
        }
    }
    // On its own thread: the S3 store blocks on its runtime.
    std::thread::scope(|s| {
        s.spawn(|| {
            let objects = fgw_hub::store::open_objects(&cfg).unwrap();
            let mut shas = Vec::new();
            objects
                .for_each(&mut |e| {
                    shas.push(e.sha256);
                    Ok(())
                })
                .unwrap();
            for sha in shas {
                out.push((format!("object:{sha}"), objects.get(&sha).unwrap().unwrap_or_default()));
            }
        })
        .join()
        .unwrap()
    });
    out
}

/// Rows of a query on the hub's PostgreSQL database (tab-separated fields), or `None` when
/// the hub runs on SQLite (the caller reads its file).
pub fn query_rows(config: &Path, sql: &str) -> Option<Vec<Vec<String>>> {
    let cfg = fgw_hub::HubConfig::load(config).unwrap();
    let fgw_hub::MetaBackend::Postgres(url) = &cfg.store.meta else { return None };
    let out = Command::new("psql")
        .args([
            url.expose(),
            "-X",
            "-q",
            "-A",
            "-t",
            "-F",
            "\t",
            "-v",
            "ON_ERROR_STOP=1",
            "-c",
            sql,
        ])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    Some(
        String::from_utf8(out.stdout)
            .unwrap()
            .lines()
            .filter(|l| !l.is_empty())
            .map(|l| l.split('\t').map(str::to_string).collect())
            .collect(),
    )
}

/// Run statements on the hub's PostgreSQL database; `false` (nothing run) on SQLite.
pub fn execute(config: &Path, sql: &str) -> bool {
    let cfg = fgw_hub::HubConfig::load(config).unwrap();
    let fgw_hub::MetaBackend::Postgres(url) = &cfg.store.meta else { return false };
    let out = Command::new("psql")
        .args([url.expose(), "-X", "-q", "-v", "ON_ERROR_STOP=1", "-c", sql])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    true
}
