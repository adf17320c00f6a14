//! The PostgreSQL schema, as numbered migrations tracked in `schema_version`.
//!
//! Several hub nodes may start at once against one database: each migrates inside one
//! transaction holding a transaction-scoped advisory lock, so exactly one of them applies a
//! step and the others find it applied. PostgreSQL's DDL is transactional, so a step is
//! applied whole or not at all.
//!
//! The tables are those of the SQLite store (same names, same meaning), with BIGINT for
//! every integer, BYTEA for the exact manifest bytes and `COLLATE "C"` on text, so listings
//! sort by byte like SQLite's whatever locale the database was created with.

use super::super::{Result, StoreError};
use postgres::Client;

/// The advisory lock key every hub node takes while migrating ("fgw-hub-meta" in ASCII,
/// truncated to 8 bytes); any constant works, it only has to be the same on every node.
const MIGRATION_LOCK: i64 = 0x6667_772d_6875_622d;

/// Migration `i` brings the schema from version `i` to `i + 1`. Append only.
pub(super) const MIGRATIONS: &[&str] = &[
    r#"
CREATE TABLE devices (
    fingerprint   TEXT COLLATE "C" PRIMARY KEY,
    device_id     TEXT COLLATE "C" NOT NULL,
    facility_id   TEXT COLLATE "C" NOT NULL,
    role          TEXT COLLATE "C" NOT NULL CHECK (role IN ('device', 'operator')),
    registered_at TEXT COLLATE "C" NOT NULL
);
CREATE INDEX devices_by_device ON devices (device_id);

CREATE TABLE packages (
    package_id      TEXT COLLATE "C" PRIMARY KEY,
    facility_id     TEXT COLLATE "C" NOT NULL,
    device_id       TEXT COLLATE "C" NOT NULL,
    kind            TEXT COLLATE "C" NOT NULL CHECK (kind IN ('exam', 'report')),
    exam_pid        TEXT COLLATE "C" NOT NULL,
    revision        BIGINT NOT NULL,
    hub_revision    BIGINT NOT NULL,
    files           BIGINT NOT NULL,
    images_withheld BIGINT NOT NULL,
    received_at     TEXT COLLATE "C" NOT NULL,
    manifest        BYTEA NOT NULL
);
CREATE INDEX packages_by_exam ON packages (facility_id, exam_pid);
CREATE INDEX packages_by_received ON packages (received_at);

-- The current package of each exam (ranked as record_package says).
CREATE TABLE exams (
    facility_id  TEXT COLLATE "C" NOT NULL,
    exam_pid     TEXT COLLATE "C" NOT NULL,
    package_id   TEXT COLLATE "C" NOT NULL REFERENCES packages (package_id),
    revision     BIGINT NOT NULL,
    hub_revision BIGINT NOT NULL,
    PRIMARY KEY (facility_id, exam_pid)
);

-- DICOM objects, one package each; a re-sent instance replaces the earlier row.
CREATE TABLE dicom_objects (
    package_id       TEXT COLLATE "C" PRIMARY KEY,
    facility_id      TEXT COLLATE "C" NOT NULL,
    device_id        TEXT COLLATE "C" NOT NULL,
    study_uid        TEXT COLLATE "C" NOT NULL,
    series_uid       TEXT COLLATE "C",
    sop_instance_uid TEXT COLLATE "C" NOT NULL,
    sop_class        TEXT COLLATE "C" NOT NULL,
    exam_pid         TEXT COLLATE "C",
    patient_pid      TEXT COLLATE "C",
    received_at      TEXT COLLATE "C" NOT NULL,
    manifest         BYTEA NOT NULL,
    UNIQUE (facility_id, sop_instance_uid)
);
CREATE INDEX dicom_by_study ON dicom_objects (facility_id, study_uid);
CREATE INDEX dicom_by_exam ON dicom_objects (facility_id, exam_pid);
CREATE INDEX dicom_by_received ON dicom_objects (received_at);

-- The objects each facility holds (HEAD, manifest references, quota, GC).
CREATE TABLE held_objects (
    facility_id TEXT COLLATE "C" NOT NULL,
    sha256      TEXT COLLATE "C" NOT NULL,
    size        BIGINT NOT NULL CHECK (size >= 0),
    held_at_ms  BIGINT NOT NULL,
    PRIMARY KEY (facility_id, sha256)
);
CREATE INDEX held_objects_by_sha ON held_objects (sha256);

-- The files of every stored manifest (what garbage collection keeps).
CREATE TABLE package_files (
    package_id  TEXT COLLATE "C" NOT NULL,
    facility_id TEXT COLLATE "C" NOT NULL,
    sha256      TEXT COLLATE "C" NOT NULL,
    PRIMARY KEY (package_id, sha256)
);
CREATE INDEX package_files_by_object ON package_files (facility_id, sha256);

-- Chunked upload sessions: one per facility and object.
CREATE TABLE upload_sessions (
    upload_id     TEXT COLLATE "C" PRIMARY KEY,
    facility_id   TEXT COLLATE "C" NOT NULL,
    sha256        TEXT COLLATE "C" NOT NULL,
    size          BIGINT NOT NULL CHECK (size >= 0),
    chunk_bytes   BIGINT NOT NULL CHECK (chunk_bytes > 0),
    opened_by     TEXT COLLATE "C" NOT NULL,
    created_at_ms BIGINT NOT NULL,
    touched_at_ms BIGINT NOT NULL,
    UNIQUE (facility_id, sha256)
);
CREATE INDEX upload_sessions_by_touch ON upload_sessions (touched_at_ms);

CREATE TABLE upload_chunks (
    upload_id   TEXT COLLATE "C" NOT NULL
                REFERENCES upload_sessions (upload_id) ON DELETE CASCADE,
    chunk_index BIGINT NOT NULL CHECK (chunk_index >= 0),
    sha256      TEXT COLLATE "C" NOT NULL,
    size        BIGINT NOT NULL CHECK (size >= 0),
    PRIMARY KEY (upload_id, chunk_index)
);

-- Sessions committed lately, so a retried commit is answered.
CREATE TABLE upload_commits (
    upload_id       TEXT COLLATE "C" PRIMARY KEY,
    facility_id     TEXT COLLATE "C" NOT NULL,
    sha256          TEXT COLLATE "C" NOT NULL,
    committed_at_ms BIGINT NOT NULL
);
CREATE INDEX upload_commits_by_time ON upload_commits (committed_at_ms);

-- Boxes registered by `hub device add`. Times are RFC 3339 UTC with seconds ('...Z').
CREATE TABLE device_serials (
    serial                TEXT COLLATE "C" PRIMARY KEY,
    facility_id           TEXT COLLATE "C" NOT NULL,
    status                TEXT COLLATE "C" NOT NULL
                          CHECK (status IN ('assigned', 'enrolled', 'revoked')),
    idevid_key_sha256     TEXT COLLATE "C" NOT NULL,
    idevid_cert           TEXT COLLATE "C" NOT NULL,
    added_at              TEXT COLLATE "C" NOT NULL,
    enrolled_at           TEXT COLLATE "C",
    operational_not_after TEXT COLLATE "C",
    revoked_at            TEXT COLLATE "C"
);
CREATE INDEX device_serials_by_facility ON device_serials (facility_id);

CREATE TABLE device_credentials (
    fingerprint TEXT COLLATE "C" PRIMARY KEY,
    serial      TEXT COLLATE "C" NOT NULL REFERENCES device_serials (serial),
    kind        TEXT COLLATE "C" NOT NULL CHECK (kind IN ('idevid', 'operational')),
    not_after   TEXT COLLATE "C" NOT NULL,
    issued_at   TEXT COLLATE "C" NOT NULL
);
CREATE INDEX device_credentials_by_serial ON device_credentials (serial);

-- Each box's WireGuard key and host index; an index is never given to two boxes.
CREATE TABLE device_tunnels (
    serial        TEXT COLLATE "C" PRIMARY KEY REFERENCES device_serials (serial),
    wg_public_key TEXT COLLATE "C" NOT NULL UNIQUE,
    host_index    BIGINT NOT NULL UNIQUE CHECK (host_index > 0),
    updated_at    TEXT COLLATE "C" NOT NULL
);

CREATE TABLE device_heartbeats (
    device_id   TEXT COLLATE "C" PRIMARY KEY,
    facility_id TEXT COLLATE "C" NOT NULL,
    received_at TEXT COLLATE "C" NOT NULL,
    heartbeat   TEXT COLLATE "C" NOT NULL
);

CREATE TABLE releases (
    kind         TEXT COLLATE "C" NOT NULL,
    version      TEXT COLLATE "C" NOT NULL,
    target       TEXT COLLATE "C" NOT NULL UNIQUE,
    sha256       TEXT COLLATE "C" NOT NULL,
    length       BIGINT NOT NULL,
    published_at TEXT COLLATE "C" NOT NULL,
    PRIMARY KEY (kind, version)
);
CREATE TABLE rollouts (
    id           BIGINT GENERATED BY DEFAULT AS IDENTITY PRIMARY KEY,
    kind         TEXT COLLATE "C" NOT NULL,
    version      TEXT COLLATE "C" NOT NULL,
    previous     TEXT COLLATE "C",
    waves        TEXT COLLATE "C" NOT NULL,
    state        TEXT COLLATE "C" NOT NULL,
    halt_percent BIGINT NOT NULL,
    halt_min     BIGINT NOT NULL,
    force        BOOLEAN NOT NULL,
    reason       TEXT COLLATE "C",
    created_at   TEXT COLLATE "C" NOT NULL,
    updated_at   TEXT COLLATE "C" NOT NULL,
    FOREIGN KEY (kind, version) REFERENCES releases (kind, version)
);

-- The dashboard's operators (Argon2id PHC strings) and their sessions, by token SHA-256.
CREATE TABLE operators (
    name       TEXT COLLATE "C" PRIMARY KEY,
    password   TEXT COLLATE "C" NOT NULL,
    updated_at TEXT COLLATE "C" NOT NULL
);
CREATE TABLE operator_sessions (
    token_sha256 TEXT COLLATE "C" PRIMARY KEY,
    operator     TEXT COLLATE "C" NOT NULL,
    created_ms   BIGINT NOT NULL,
    last_seen_ms BIGINT NOT NULL
);
CREATE INDEX operator_sessions_by_operator ON operator_sessions (operator);
"#,
    r#"
-- Issue 15. The researchers' export access log: one row per `hub export`, from any node.
CREATE TABLE exports (
    id          BIGSERIAL PRIMARY KEY,
    researcher  TEXT COLLATE "C" NOT NULL,
    facility_id TEXT COLLATE "C" NOT NULL,
    date_from   TEXT COLLATE "C" NOT NULL,
    date_to     TEXT COLLATE "C" NOT NULL,
    format      TEXT COLLATE "C" NOT NULL,
    destination TEXT NOT NULL,
    rows        BIGINT NOT NULL,
    outcome     TEXT COLLATE "C" NOT NULL CHECK (outcome IN ('complete', 'failed')),
    started_at  TEXT COLLATE "C" NOT NULL,
    finished_at TEXT COLLATE "C" NOT NULL
);
CREATE INDEX exports_by_researcher ON exports (researcher);
"#,
];

/// The newest schema version this hub knows.
pub(super) fn supported() -> i64 {
    MIGRATIONS.len() as i64
}

/// Bring the database to [`supported`], or refuse one a newer hub migrated
/// ([`StoreError::SchemaTooNew`]). Safe to run from several nodes at once.
pub(super) fn migrate(database: &str, client: &mut Client) -> Result<()> {
    let pg = |e: postgres::Error| StoreError::Postgres {
        database: database.to_string(),
        source: Box::new(e),
    };
    let mut tx = client.transaction().map_err(pg)?;
    // Held until commit or rollback: the second node waits here, then sees the new version.
    tx.execute("SELECT pg_advisory_xact_lock($1)", &[&MIGRATION_LOCK]).map_err(pg)?;
    tx.batch_execute(
        // The NOTICE "relation already exists" of every start after the first is no news.
        "SET LOCAL client_min_messages = warning;
         CREATE TABLE IF NOT EXISTS schema_version (
             one     BOOLEAN PRIMARY KEY DEFAULT TRUE CHECK (one),
             version BIGINT NOT NULL
         );
         INSERT INTO schema_version (one, version) VALUES (TRUE, 0) ON CONFLICT DO NOTHING;",
    )
    .map_err(pg)?;
    let version: i64 = tx.query_one("SELECT version FROM schema_version", &[]).map_err(pg)?.get(0);
    if version > supported() {
        return Err(StoreError::SchemaTooNew {
            path: database.into(),
            found: version,
            supported: supported(),
        });
    }
    for (i, step) in MIGRATIONS.iter().enumerate().skip(version.max(0) as usize) {
        tx.batch_execute(step).map_err(pg)?;
        tx.execute("UPDATE schema_version SET version = $1", &[&(i as i64 + 1)]).map_err(pg)?;
    }
    tx.commit().map_err(pg)
}
