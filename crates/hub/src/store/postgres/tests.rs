//! The conformance cases against a real PostgreSQL (test_server), and what is particular to
//! several nodes sharing one database.

use super::test_server::PgServer;
use super::*;
use crate::store::conformance::{self, exam, Backend};
use std::sync::{Arc, Barrier};

/// One fresh database on the shared test server.
struct Pg {
    url: PostgresUrl,
}

fn pg() -> Option<Pg> {
    let server = PgServer::shared()?;
    Some(Pg { url: url(&server.database()) })
}

fn url(s: &str) -> PostgresUrl {
    match crate::config::MetaBackend::try_from(s.to_string()).unwrap() {
        crate::config::MetaBackend::Postgres(url) => url,
        crate::config::MetaBackend::Sqlite => unreachable!(),
    }
}

impl Pg {
    fn store(&self) -> PgMetaStore {
        PgMetaStore::open(&self.url, 4).unwrap()
    }
    fn client(&self) -> postgres::Client {
        postgres::Client::connect(self.url.expose(), NoTls).unwrap()
    }
}

impl Backend for Pg {
    fn open(&self) -> Box<dyn MetaStore> {
        Box::new(self.store())
    }
    fn stored_manifest(&self, id: &PackageId) -> Vec<u8> {
        self.client()
            .query_one("SELECT manifest FROM packages WHERE package_id = $1", &[&id.as_str()])
            .unwrap()
            .get(0)
    }
    fn execute(&self, sql: &str) {
        self.client().batch_execute(sql).unwrap();
    }
    fn count(&self, sql: &str) -> i64 {
        self.client().query_one(sql, &[]).unwrap().get(0)
    }
}

conformance::conformance_tests!(pg());

/// Run `f(i)` on `n` threads released at once; their results in order.
fn race<T: Send>(n: usize, f: impl Fn(usize) -> T + Sync) -> Vec<T> {
    let barrier = Barrier::new(n);
    std::thread::scope(|s| {
        let handles: Vec<_> = (0..n)
            .map(|i| {
                let (barrier, f) = (&barrier, &f);
                s.spawn(move || {
                    barrier.wait();
                    f(i)
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    })
}

#[test]
fn two_nodes_migrating_at_once_make_one_schema() {
    let Some(db) = pg() else { return };
    let stores = race(4, |_| PgMetaStore::open(&db.url, 2));
    for s in &stores {
        assert!(s.is_ok(), "{:?}", s.as_ref().err().map(ToString::to_string));
    }
    let version = db.count("SELECT version FROM schema_version");
    assert_eq!(version, migrations::supported());
    assert_eq!(db.count("SELECT COUNT(*) FROM schema_version"), 1);
    // Reopening applies nothing again, and every node sees the others' rows.
    let (a, b) = (stores[0].as_ref().unwrap(), db.store());
    let f = FacilityId::new("F0001").unwrap();
    a.hold_object(&f, &Sha256Hex::of(b"x"), 1, 10).unwrap();
    assert_eq!(b.facility_usage(&f).unwrap(), 1);
}

#[test]
fn a_package_recorded_by_two_nodes_at_once_is_one_record_and_a_duplicate() {
    let Some(db) = pg() else { return };
    let nodes = [Arc::new(db.store()), Arc::new(db.store())];
    let f = FacilityId::new("F0001").unwrap();
    let dev = DeviceId::new("gw-1").unwrap();
    for round in 0..10 {
        let (m, raw, id) = exam(&f, &format!("e-{round}"), 1);
        let answers = race(2, |i| nodes[i].record_package(&f, &dev, &id, &m, &raw).unwrap());
        let mut answers = answers;
        answers.sort_by_key(|s| *s == Stored::Duplicate);
        assert_eq!(answers, vec![Stored::New, Stored::Duplicate], "round {round}");
    }
    assert_eq!(nodes[0].package_count().unwrap(), 10);
    assert_eq!(db.count("SELECT COUNT(*) FROM exams"), 10);
    // The same object held from both at once: one holding, one duplicate.
    let x = Sha256Hex::of(b"shared");
    let mut held = race(2, |i| nodes[i].hold_object(&f, &x, 5, u64::MAX).unwrap());
    held.sort_by_key(|s| *s == Stored::Duplicate);
    assert_eq!(held, vec![Stored::New, Stored::Duplicate]);
    assert_eq!(nodes[1].facility_usage(&f).unwrap(), 5);
}

#[test]
fn holdings_racing_on_several_nodes_never_exceed_the_quota() {
    let Some(db) = pg() else { return };
    let nodes: Vec<_> = (0..3).map(|_| db.store()).collect();
    let f = FacilityId::new("F0001").unwrap();
    // Twelve objects of 10 bytes against a quota of 55: five fit, whoever asks.
    let answers = race(12, |i| {
        let sha = Sha256Hex::of(format!("object {i}").as_bytes());
        nodes[i % nodes.len()].hold_object(&f, &sha, 10, 55)
    });
    let held = answers.iter().filter(|a| matches!(a, Ok(Stored::New))).count();
    for a in &answers {
        assert!(
            matches!(a, Ok(Stored::New) | Err(StoreError::QuotaExceeded { quota: 55, .. })),
            "{:?}",
            a.as_ref().map_err(ToString::to_string)
        );
    }
    assert_eq!(held, 5);
    assert_eq!(nodes[0].facility_usage(&f).unwrap(), 50);
}

#[test]
fn open_sessions_racing_on_several_nodes_keep_the_limit() {
    let Some(db) = pg() else { return };
    let nodes: Vec<_> = (0..2).map(|_| db.store()).collect();
    let f = FacilityId::new("F0001").unwrap();
    let admit = UploadAdmission { max_open: 3, quota: u64::MAX };
    let answers = race(8, |i| {
        let rec = conformance::session(&f, format!("object {i}").as_bytes(), 4);
        nodes[i % 2].open_upload(&rec, admit).map(|(_, how)| how)
    });
    let opened = answers.iter().filter(|a| matches!(a, Ok(Opened::New))).count();
    assert!(answers
        .iter()
        .all(|a| matches!(a, Ok(Opened::New) | Err(StoreError::TooManyOpenUploads { .. }))));
    assert_eq!(opened, 3);
    assert_eq!(db.count("SELECT COUNT(*) FROM upload_sessions"), 3);
}

#[test]
fn boxes_enrolling_on_two_nodes_get_distinct_host_indexes() {
    let Some(db) = pg() else { return };
    let nodes = [db.store(), db.store()];
    let f = FacilityId::new("F0001").unwrap();
    let serials: Vec<_> = (0..6).map(|i| Serial::new(format!("fgw-{i:016x}")).unwrap()).collect();
    for s in &serials {
        let n =
            conformance::new_serial(s.as_str(), &f, s.as_str().as_bytes(), s.as_str().as_bytes());
        nodes[0].add_serial(&n).unwrap();
    }
    let mut indexes =
        race(6, |i| nodes[i % 2].set_tunnel_key(&serials[i], &format!("key-{i}")).unwrap());
    indexes.sort();
    assert_eq!(indexes, vec![1, 2, 3, 4, 5, 6]);
}

#[test]
fn a_schema_newer_than_this_hub_is_refused() {
    let Some(db) = pg() else { return };
    drop(db.store());
    db.execute(&format!("UPDATE schema_version SET version = {}", migrations::supported() + 1));
    match PgMetaStore::open(&db.url, 2) {
        Err(StoreError::SchemaTooNew { found, supported, path }) => {
            assert_eq!((found, supported), (migrations::supported() + 1, migrations::supported()));
            assert!(path.to_string_lossy().starts_with("postgres://"));
        }
        other => {
            panic!("expected SchemaTooNew, got {:?}", other.map(|_| ()).map_err(|e| e.to_string()))
        }
    }
}

#[test]
fn errors_name_the_database_never_the_password() {
    let Some(server) = PgServer::shared() else { return };
    let good = server.database();
    // A role that does not exist, with a password: refused, and the message keeps it out.
    let bad = good.replace("postgres@", "nobody:s3cret-pw@");
    let err = PgMetaStore::open(&url(&bad), 1).err().expect("unknown role refused").to_string();
    assert!(err.contains("127.0.0.1"), "{err}");
    assert!(!err.contains("s3cret-pw"), "{err}");
}

#[test]
fn the_store_works_from_spawn_blocking_and_is_dropped_in_a_runtime() {
    let Some(db) = pg() else { return };
    let rt =
        tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
    rt.block_on(async {
        // Opened inside the runtime, as `hub serve` does.
        let store: Arc<dyn MetaStore> = Arc::new(PgMetaStore::open(&db.url, 2).unwrap());
        let s = store.clone();
        let n = tokio::task::spawn_blocking(move || s.package_count().unwrap()).await.unwrap();
        assert_eq!(n, 0);
        drop(store);
    });
}
