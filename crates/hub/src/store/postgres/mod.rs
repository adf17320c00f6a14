//! Shared metadata store: PostgreSQL (`[store] meta = "postgres://…"`), for several hub nodes
//! on one database. Same tables and semantics as the embedded [`super::SqliteMetaStore`].
//!
//! SQLite serializes writers with its single write lock, and its methods read then write
//! (quota checks, open-session limits, host indexes, "already recorded?"). Here every
//! writing method runs as one SERIALIZABLE transaction, retried when PostgreSQL reports a
//! serialization failure or deadlock: two nodes racing behave as if one went first. Keys the
//! race is about are also unique constraints (package id, facility and object, …), so a loser
//! that retries finds the winner's row and answers `Duplicate` or `Existing`.
//!
//! The synchronous `postgres` client runs a small runtime of its own per connection; the
//! API calls the store from `spawn_blocking` (never from an async task). Connections come
//! from an r2d2 pool of `[store] pool_size`. No TLS to the database yet (docs/decisions.md).

mod migrations;
#[cfg(test)]
pub(crate) mod test_server;
#[cfg(test)]
mod tests;

use super::{
    ChunkRecord, CredentialKind, CredentialRecord, DayCount, DeviceRecord, DeviceUploads,
    Enrollment, ExpiredUploads, ExportRecord, FacilityCounts, MetaStore, NewRollout, NewSerial,
    Opened, ReleaseRecord, Result, Revocation, RolloutRecord, RolloutState, SerialAdded,
    SerialRecord, SerialStatus, SessionRecord, StoreError, TunnelRecord, UploadAdmission,
    UploadRecord, UploadState,
};
use crate::config::PostgresUrl;
use crate::dashboard::OperatorName;
use crate::enroll::Serial;
use crate::Role;
use fgw_format::ids::{DeviceId, FacilityId, PackageId, Sha256Hex, UploadId};
use fgw_format::package::protocol::{DicomListing, ExamListing, FleetRow, Heartbeat, Stored};
use fgw_format::package::{Body, Manifest};
use postgres::error::SqlState;
use postgres::types::FromSql;
use postgres::{IsolationLevel, NoTls, Row, Transaction};
use r2d2_postgres::PostgresConnectionManager;
use std::time::{Duration, SystemTime};

type Pool = r2d2::Pool<PostgresConnectionManager<NoTls>>;
type Conn = r2d2::PooledConnection<PostgresConnectionManager<NoTls>>;

/// How often a transaction that lost a race (serialization failure, deadlock) is run again
/// before the error is returned.
const MAX_ATTEMPTS: u32 = 40;

/// The shared [`MetaStore`]: a pool of connections to one PostgreSQL database.
pub struct PgMetaStore {
    /// `postgres://host:port/db`, never the password: every error names it.
    database: String,
    /// Taken by `Drop` (see there).
    pool: Option<Pool>,
}

fn now() -> String {
    chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
}

fn ms_of(t: SystemTime) -> i64 {
    t.duration_since(SystemTime::UNIX_EPOCH).map(|d| d.as_millis() as i64).unwrap_or(0)
}

fn now_ms() -> i64 {
    ms_of(SystemTime::now())
}

/// Sizes are BIGINT; the config bounds them far below.
fn sql_size(n: u64) -> i64 {
    i64::try_from(n).unwrap_or(i64::MAX)
}

/// A transaction that lost a race with another (on this node or another): run it again.
fn retryable(e: &StoreError) -> bool {
    let StoreError::Postgres { source, .. } = e else { return false };
    let code = source.downcast_ref::<postgres::Error>().and_then(postgres::Error::code);
    // A unique violation is a lost race too when the loser had not read the key (an
    // INSERT racing an INSERT); run again, it sees the winner's row.
    code.is_some_and(|c| {
        *c == SqlState::T_R_SERIALIZATION_FAILURE
            || *c == SqlState::T_R_DEADLOCK_DETECTED
            || *c == SqlState::UNIQUE_VIOLATION
    })
}

impl PgMetaStore {
    /// Connect to `url` with a pool of up to `pool_size` connections, and create or migrate
    /// the schema (safe while other nodes do the same). Refuses a database a newer hub
    /// migrated ([`StoreError::SchemaTooNew`]).
    pub fn open(url: &PostgresUrl, pool_size: u32) -> Result<PgMetaStore> {
        let database = url.redacted();
        // The driver's parse error could quote the URL, password included: not passed on.
        let config: postgres::Config = url.expose().parse().map_err(|_| StoreError::Postgres {
            database: database.clone(),
            source: "the connection URL is not valid".into(),
        })?;
        // The synchronous client starts a runtime per connection, which tokio refuses on a
        // thread that runs one (`hub serve` opens its stores inside its runtime).
        std::thread::scope(|s| {
            s.spawn(|| Self::connect(database.clone(), config, pool_size))
                .join()
                .unwrap_or_else(|panic| std::panic::resume_unwind(panic))
        })
    }

    fn connect(database: String, config: postgres::Config, pool_size: u32) -> Result<PgMetaStore> {
        let manager = PostgresConnectionManager::new(config, NoTls);
        let pool = r2d2::Pool::builder()
            .max_size(pool_size.max(1))
            // Connections are opened as needed: a node of an idle cluster holds one.
            .min_idle(Some(1))
            .connection_timeout(Duration::from_secs(15))
            .build(manager)
            .map_err(|e| StoreError::Postgres {
                database: database.clone(),
                source: Box::new(e),
            })?;
        let store = PgMetaStore { database, pool: Some(pool) };
        let mut conn = store.conn()?;
        migrations::migrate(&store.database, &mut conn)?;
        drop(conn);
        Ok(store)
    }

    fn pg(&self) -> impl Fn(postgres::Error) -> StoreError + '_ {
        move |e| StoreError::Postgres { database: self.database.clone(), source: Box::new(e) }
    }

    fn corrupt(&self, what: &str) -> StoreError {
        StoreError::Corrupt { path: self.database.clone().into(), what: what.to_string() }
    }

    fn conn(&self) -> Result<Conn> {
        let pool = self.pool.as_ref().ok_or(StoreError::Poisoned)?;
        pool.get().map_err(|e| StoreError::Postgres {
            database: self.database.clone(),
            source: Box::new(e),
        })
    }

    /// Column `i` of `row` (a type mismatch is the driver's error, not a panic).
    fn col<'a, T: FromSql<'a>>(&self, row: &'a Row, i: usize) -> Result<T> {
        row.try_get(i).map_err(self.pg())
    }

    /// Run `f` in a SERIALIZABLE transaction, again while it loses races; an error `f`
    /// returns rolls the transaction back.
    fn write<T>(&self, mut f: impl FnMut(&mut Transaction<'_>) -> Result<T>) -> Result<T> {
        let mut conn = self.conn()?;
        let mut attempt = 0;
        loop {
            attempt += 1;
            let result = (|| {
                let mut tx = conn
                    .build_transaction()
                    .isolation_level(IsolationLevel::Serializable)
                    .start()
                    .map_err(self.pg())?;
                let value = f(&mut tx)?;
                tx.commit().map_err(self.pg())?;
                Ok(value)
            })();
            match result {
                Err(e) if attempt < MAX_ATTEMPTS && retryable(&e) => {
                    // Back off a little, unevenly, so the racers do not meet again at once.
                    let jitter = u64::from(
                        SystemTime::now()
                            .duration_since(SystemTime::UNIX_EPOCH)
                            .map(|d| d.subsec_nanos())
                            .unwrap_or(0)
                            % 5,
                    );
                    std::thread::sleep(Duration::from_millis(
                        u64::from(attempt.min(10)) * 2 + jitter,
                    ));
                }
                result => return result,
            }
        }
    }

    /// One read-only snapshot (REPEATABLE READ): rows read together belong together.
    fn read<T>(&self, f: impl FnOnce(&mut Transaction<'_>) -> Result<T>) -> Result<T> {
        let mut conn = self.conn()?;
        let mut tx = conn
            .build_transaction()
            .isolation_level(IsolationLevel::RepeatableRead)
            .read_only(true)
            .start()
            .map_err(self.pg())?;
        let value = f(&mut tx)?;
        tx.commit().map_err(self.pg())?;
        Ok(value)
    }

    fn serial_status(
        &self,
        tx: &mut Transaction<'_>,
        serial: &Serial,
    ) -> Result<Option<SerialStatus>> {
        let row = tx
            .query_opt("SELECT status FROM device_serials WHERE serial = $1", &[&serial.as_str()])
            .map_err(self.pg())?;
        row.map(|r| {
            let s: String = self.col(&r, 0)?;
            SerialStatus::parse(&s).ok_or_else(|| self.corrupt("device_serials.status"))
        })
        .transpose()
    }

    fn require_live_serial(&self, tx: &mut Transaction<'_>, serial: &Serial) -> Result<()> {
        match self.serial_status(tx, serial)? {
            None => Err(StoreError::UnknownSerial { serial: serial.clone() }),
            Some(SerialStatus::Revoked) => {
                Err(StoreError::SerialRevoked { serial: serial.clone() })
            }
            Some(_) => Ok(()),
        }
    }

    fn session_row(
        &self,
        tx: &mut Transaction<'_>,
        facility: &FacilityId,
        upload: &UploadId,
    ) -> Result<Option<UploadRecord>> {
        let row = tx
            .query_opt(
                "SELECT sha256, size, chunk_bytes, opened_by FROM upload_sessions
                 WHERE upload_id = $1 AND facility_id = $2",
                &[&upload.as_str(), &facility.as_str()],
            )
            .map_err(self.pg())?;
        let Some(row) = row else { return Ok(None) };
        Ok(Some(UploadRecord {
            upload_id: upload.clone(),
            facility: facility.clone(),
            sha256: Sha256Hex::new(self.col::<String>(&row, 0)?)
                .map_err(|_| self.corrupt("upload_sessions.sha256"))?,
            size: u64::try_from(self.col::<i64>(&row, 1)?)
                .map_err(|_| self.corrupt("upload_sessions.size"))?,
            chunk_bytes: u64::try_from(self.col::<i64>(&row, 2)?)
                .ok()
                .filter(|&n| n > 0)
                .ok_or_else(|| self.corrupt("upload_sessions.chunk_bytes"))?,
            opened_by: DeviceId::new(self.col::<String>(&row, 3)?)
                .map_err(|_| self.corrupt("upload_sessions.opened_by"))?,
        }))
    }

    fn chunk_rows(&self, tx: &mut Transaction<'_>, upload: &UploadId) -> Result<Vec<ChunkRecord>> {
        let rows = tx
            .query(
                "SELECT chunk_index, sha256, size FROM upload_chunks
                 WHERE upload_id = $1 ORDER BY chunk_index",
                &[&upload.as_str()],
            )
            .map_err(self.pg())?;
        rows.iter()
            .map(|r| {
                Ok(ChunkRecord {
                    index: u32::try_from(self.col::<i64>(r, 0)?)
                        .map_err(|_| self.corrupt("upload_chunks.chunk_index"))?,
                    sha256: Sha256Hex::new(self.col::<String>(r, 1)?)
                        .map_err(|_| self.corrupt("upload_chunks.sha256"))?,
                    size: u64::try_from(self.col::<i64>(r, 2)?)
                        .map_err(|_| self.corrupt("upload_chunks.size"))?,
                })
            })
            .collect()
    }

    /// A single BIGINT (COUNT, SUM cast to BIGINT) as a u64.
    fn count(&self, row: &Row, i: usize) -> Result<u64> {
        Ok(self.col::<i64>(row, i)?.max(0) as u64)
    }
}

impl Drop for PgMetaStore {
    fn drop(&mut self) {
        // Closing a connection blocks on its runtime, which tokio forbids inside an async
        // task: when the last handle goes away in one, the pool is closed on a thread of its
        // own.
        if let Some(pool) = self.pool.take() {
            if tokio::runtime::Handle::try_current().is_ok() {
                let _ = std::thread::spawn(move || drop(pool));
            }
        }
    }
}

/// Delete a session and its chunk rows.
fn delete_session(tx: &mut Transaction<'_>, upload: &UploadId) -> Result<u64, postgres::Error> {
    tx.execute("DELETE FROM upload_chunks WHERE upload_id = $1", &[&upload.as_str()])?;
    tx.execute("DELETE FROM upload_sessions WHERE upload_id = $1", &[&upload.as_str()])
}

impl MetaStore for PgMetaStore {
    fn register_device(
        &self,
        fingerprint: &Sha256Hex,
        device: &DeviceId,
        facility: &FacilityId,
        role: Role,
    ) -> Result<()> {
        self.write(|tx| {
            let bound = tx
                .query_opt(
                    "SELECT facility_id FROM devices WHERE device_id = $1
                     UNION ALL SELECT facility_id FROM device_serials WHERE serial = $1
                     LIMIT 1",
                    &[&device.as_str()],
                )
                .map_err(self.pg())?;
            if let Some(row) = bound {
                let registered: String = self.col(&row, 0)?;
                if registered != facility.as_str() {
                    return Err(StoreError::DeviceFacilityConflict {
                        device: device.clone(),
                        registered: FacilityId::new(registered)
                            .map_err(|_| self.corrupt("devices.facility_id"))?,
                        requested: facility.clone(),
                    });
                }
            }
            let holder = tx
                .query_opt(
                    "SELECT device_id FROM devices WHERE fingerprint = $1",
                    &[&fingerprint.as_str()],
                )
                .map_err(self.pg())?;
            match holder {
                Some(row) => {
                    let d: String = self.col(&row, 0)?;
                    if d != device.as_str() {
                        return Err(StoreError::FingerprintTaken {
                            fingerprint: fingerprint.clone(),
                            device: DeviceId::new(d)
                                .map_err(|_| self.corrupt("devices.device_id"))?,
                        });
                    }
                    tx.execute(
                        "UPDATE devices SET role = $2 WHERE fingerprint = $1",
                        &[&fingerprint.as_str(), &role.as_str()],
                    )
                    .map_err(self.pg())?;
                }
                None => {
                    tx.execute(
                        "INSERT INTO devices (fingerprint, device_id, facility_id, role,
                                              registered_at)
                         VALUES ($1, $2, $3, $4, $5)",
                        &[
                            &fingerprint.as_str(),
                            &device.as_str(),
                            &facility.as_str(),
                            &role.as_str(),
                            &now(),
                        ],
                    )
                    .map_err(self.pg())?;
                }
            }
            Ok(())
        })
    }

    fn device_by_fingerprint(&self, fingerprint: &Sha256Hex) -> Result<Option<DeviceRecord>> {
        let mut conn = self.conn()?;
        let row = conn
            .query_opt(
                "SELECT device_id, facility_id, role, registered_at FROM devices
                 WHERE fingerprint = $1",
                &[&fingerprint.as_str()],
            )
            .map_err(self.pg())?;
        let Some(row) = row else { return Ok(None) };
        Ok(Some(DeviceRecord {
            fingerprint: fingerprint.clone(),
            device: DeviceId::new(self.col::<String>(&row, 0)?)
                .map_err(|_| self.corrupt("devices.device_id"))?,
            facility: FacilityId::new(self.col::<String>(&row, 1)?)
                .map_err(|_| self.corrupt("devices.facility_id"))?,
            role: self.col::<String>(&row, 2)?.parse().map_err(|_| self.corrupt("devices.role"))?,
            registered_at: self.col(&row, 3)?,
        }))
    }

    fn add_serial(&self, new: &NewSerial) -> Result<SerialAdded> {
        self.write(|tx| {
            let row = tx
                .query_opt(
                    "SELECT facility_id, status, idevid_key_sha256, idevid_cert
                     FROM device_serials WHERE serial = $1",
                    &[&new.serial.as_str()],
                )
                .map_err(self.pg())?;
            if let Some(row) = row {
                let (facility, status, key, pem): (String, String, String, String) = (
                    self.col(&row, 0)?,
                    self.col(&row, 1)?,
                    self.col(&row, 2)?,
                    self.col(&row, 3)?,
                );
                let status = SerialStatus::parse(&status)
                    .ok_or_else(|| self.corrupt("device_serials.status"))?;
                if status == SerialStatus::Revoked {
                    return Err(StoreError::SerialRevoked { serial: new.serial.clone() });
                }
                if facility != new.facility.as_str() || key != new.idevid_key.as_str() {
                    return Err(StoreError::SerialTaken { serial: new.serial.clone() });
                }
                return Ok(SerialAdded::Existing { idevid_pem: pem });
            }
            let bound = tx
                .query_opt(
                    "SELECT facility_id FROM devices WHERE device_id = $1 AND facility_id <> $2
                     LIMIT 1",
                    &[&new.serial.as_str(), &new.facility.as_str()],
                )
                .map_err(self.pg())?;
            if let Some(row) = bound {
                return Err(StoreError::DeviceFacilityConflict {
                    device: new.serial.device_id(),
                    registered: FacilityId::new(self.col::<String>(&row, 0)?)
                        .map_err(|_| self.corrupt("devices.facility_id"))?,
                    requested: new.facility.clone(),
                });
            }
            let at = now();
            tx.execute(
                "INSERT INTO device_serials (serial, facility_id, status, idevid_key_sha256,
                                             idevid_cert, added_at)
                 VALUES ($1, $2, 'assigned', $3, $4, $5)",
                &[
                    &new.serial.as_str(),
                    &new.facility.as_str(),
                    &new.idevid_key.as_str(),
                    &new.idevid_pem,
                    &at,
                ],
            )
            .map_err(self.pg())?;
            tx.execute(
                "INSERT INTO device_credentials (fingerprint, serial, kind, not_after, issued_at)
                 VALUES ($1, $2, 'idevid', $3, $4)",
                &[
                    &new.idevid_fingerprint.as_str(),
                    &new.serial.as_str(),
                    &new.idevid_not_after,
                    &at,
                ],
            )
            .map_err(self.pg())?;
            Ok(SerialAdded::New)
        })
    }

    fn serial(&self, serial: &Serial) -> Result<Option<SerialRecord>> {
        let mut conn = self.conn()?;
        let row = conn
            .query_opt(
                "SELECT facility_id, status, added_at, enrolled_at, operational_not_after,
                        revoked_at
                 FROM device_serials WHERE serial = $1",
                &[&serial.as_str()],
            )
            .map_err(self.pg())?;
        let Some(row) = row else { return Ok(None) };
        Ok(Some(SerialRecord {
            serial: serial.clone(),
            facility: FacilityId::new(self.col::<String>(&row, 0)?)
                .map_err(|_| self.corrupt("device_serials.facility_id"))?,
            status: SerialStatus::parse(&self.col::<String>(&row, 1)?)
                .ok_or_else(|| self.corrupt("device_serials.status"))?,
            added_at: self.col(&row, 2)?,
            enrolled_at: self.col(&row, 3)?,
            operational_not_after: self.col(&row, 4)?,
            revoked_at: self.col(&row, 5)?,
        }))
    }

    fn credential_by_fingerprint(
        &self,
        fingerprint: &Sha256Hex,
    ) -> Result<Option<CredentialRecord>> {
        let mut conn = self.conn()?;
        let row = conn
            .query_opt(
                "SELECT c.kind, c.serial, s.facility_id, s.status
                 FROM device_credentials c JOIN device_serials s ON s.serial = c.serial
                 WHERE c.fingerprint = $1",
                &[&fingerprint.as_str()],
            )
            .map_err(self.pg())?;
        let Some(row) = row else { return Ok(None) };
        Ok(Some(CredentialRecord {
            fingerprint: fingerprint.clone(),
            kind: CredentialKind::parse(&self.col::<String>(&row, 0)?)
                .ok_or_else(|| self.corrupt("device_credentials.kind"))?,
            serial: Serial::new(self.col::<String>(&row, 1)?)
                .map_err(|_| self.corrupt("device_credentials.serial"))?,
            facility: FacilityId::new(self.col::<String>(&row, 2)?)
                .map_err(|_| self.corrupt("device_serials.facility_id"))?,
            status: SerialStatus::parse(&self.col::<String>(&row, 3)?)
                .ok_or_else(|| self.corrupt("device_serials.status"))?,
        }))
    }

    fn record_operational(
        &self,
        serial: &Serial,
        fingerprint: &Sha256Hex,
        not_after: &str,
        enrollment: Enrollment,
    ) -> Result<()> {
        self.write(|tx| {
            self.require_live_serial(tx, serial)?;
            let at = now();
            // Expired operational certificates are refused by TLS already; their rows go.
            tx.execute(
                "DELETE FROM device_credentials
                 WHERE serial = $1 AND kind = 'operational' AND not_after < $2",
                &[&serial.as_str(), &at],
            )
            .map_err(self.pg())?;
            tx.execute(
                "INSERT INTO device_credentials (fingerprint, serial, kind, not_after, issued_at)
                 VALUES ($1, $2, 'operational', $3, $4)",
                &[&fingerprint.as_str(), &serial.as_str(), &not_after, &at],
            )
            .map_err(self.pg())?;
            let enrolled_at = match enrollment {
                Enrollment::Initial => Some(at.as_str()),
                Enrollment::Renewal => None,
            };
            tx.execute(
                "UPDATE device_serials SET status = 'enrolled', operational_not_after = $2,
                        enrolled_at = COALESCE($3, enrolled_at)
                 WHERE serial = $1",
                &[&serial.as_str(), &not_after, &enrolled_at],
            )
            .map_err(self.pg())?;
            Ok(())
        })
    }

    fn revoke_serial(&self, serial: &Serial) -> Result<Revocation> {
        self.write(|tx| {
            let previous = self.serial_status(tx, serial)?;
            if matches!(previous, Some(SerialStatus::Assigned | SerialStatus::Enrolled)) {
                tx.execute(
                    "UPDATE device_serials SET status = 'revoked', revoked_at = $2
                     WHERE serial = $1",
                    &[&serial.as_str(), &now()],
                )
                .map_err(self.pg())?;
            }
            let removed = tx
                .execute("DELETE FROM devices WHERE device_id = $1", &[&serial.as_str()])
                .map_err(self.pg())?;
            Ok(Revocation { previous, device_certificates_removed: removed })
        })
    }

    fn set_tunnel_key(&self, serial: &Serial, key: &str) -> Result<u32> {
        let index = self.write(|tx| {
            self.require_live_serial(tx, serial)?;
            let owner = tx
                .query_opt("SELECT serial FROM device_tunnels WHERE wg_public_key = $1", &[&key])
                .map_err(self.pg())?;
            if let Some(row) = owner {
                if self.col::<String>(&row, 0)? != serial.as_str() {
                    return Err(StoreError::TunnelKeyTaken { serial: serial.clone() });
                }
            }
            let existing = tx
                .query_opt(
                    "UPDATE device_tunnels SET wg_public_key = $2, updated_at = $3
                     WHERE serial = $1 RETURNING host_index",
                    &[&serial.as_str(), &key, &now()],
                )
                .map_err(self.pg())?;
            if let Some(row) = existing {
                return self.col::<i64>(&row, 0);
            }
            // MAX + 1 under SERIALIZABLE: two boxes enrolling at once on two nodes cannot
            // take the same index (and host_index is UNIQUE besides).
            let row = tx
                .query_one(
                    "INSERT INTO device_tunnels (serial, wg_public_key, host_index, updated_at)
                     SELECT $1, $2, COALESCE(MAX(host_index), 0) + 1, $3 FROM device_tunnels
                     RETURNING host_index",
                    &[&serial.as_str(), &key, &now()],
                )
                .map_err(self.pg())?;
            self.col::<i64>(&row, 0)
        })?;
        u32::try_from(index).map_err(|_| self.corrupt("device_tunnels.host_index"))
    }

    fn active_tunnels(&self) -> Result<Vec<TunnelRecord>> {
        let mut conn = self.conn()?;
        let rows = conn
            .query(
                "SELECT t.serial, t.wg_public_key, t.host_index
                 FROM device_tunnels t JOIN device_serials s ON s.serial = t.serial
                 WHERE s.status <> 'revoked' ORDER BY t.host_index",
                &[],
            )
            .map_err(self.pg())?;
        rows.iter()
            .map(|r| {
                Ok(TunnelRecord {
                    serial: Serial::new(self.col::<String>(r, 0)?)
                        .map_err(|_| self.corrupt("device_tunnels.serial"))?,
                    wg_public_key: self.col(r, 1)?,
                    host_index: u32::try_from(self.col::<i64>(r, 2)?)
                        .map_err(|_| self.corrupt("device_tunnels.host_index"))?,
                })
            })
            .collect()
    }

    fn record_heartbeat(
        &self,
        device: &DeviceId,
        facility: &FacilityId,
        heartbeat: &Heartbeat,
    ) -> Result<String> {
        let received_at = now();
        let json = serde_json::to_string(heartbeat).map_err(|_| self.corrupt("heartbeat"))?;
        let mut conn = self.conn()?;
        conn.execute(
            "INSERT INTO device_heartbeats (device_id, facility_id, received_at, heartbeat)
             VALUES ($1, $2, $3, $4)
             ON CONFLICT (device_id) DO UPDATE SET facility_id = excluded.facility_id,
                received_at = excluded.received_at, heartbeat = excluded.heartbeat",
            &[&device.as_str(), &facility.as_str(), &received_at, &json],
        )
        .map_err(self.pg())?;
        Ok(received_at)
    }

    fn fleet(&self) -> Result<Vec<FleetRow>> {
        let mut conn = self.conn()?;
        let rows = conn
            .query(
                "SELECT device_id, facility_id, received_at, heartbeat FROM device_heartbeats
                 ORDER BY facility_id, device_id",
                &[],
            )
            .map_err(self.pg())?;
        rows.iter()
            .map(|r| {
                let heartbeat: Heartbeat = serde_json::from_str(&self.col::<String>(r, 3)?)
                    .map_err(|_| self.corrupt("device_heartbeats.heartbeat"))?;
                Ok(FleetRow {
                    device: self.col(r, 0)?,
                    facility: FacilityId::new(self.col::<String>(r, 1)?)
                        .map_err(|_| self.corrupt("device_heartbeats.facility_id"))?,
                    last_heartbeat: self.col(r, 2)?,
                    os_version: heartbeat.os_version.clone(),
                    policy_version: heartbeat.policy_version.clone(),
                    queue: heartbeat.queue.clone(),
                    heartbeat,
                })
            })
            .collect()
    }

    fn record_release(&self, r: &ReleaseRecord) -> Result<()> {
        let mut conn = self.conn()?;
        conn.execute(
            "INSERT INTO releases (kind, version, target, sha256, length, published_at)
             VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT (kind, version) DO NOTHING",
            &[&r.kind, &r.version, &r.target, &r.sha256, &sql_size(r.length), &r.published_at],
        )
        .map_err(self.pg())?;
        Ok(())
    }

    fn releases(&self) -> Result<Vec<ReleaseRecord>> {
        let mut conn = self.conn()?;
        let rows = conn
            .query(
                "SELECT kind, version, target, sha256, length, published_at FROM releases
                 ORDER BY published_at, kind, version",
                &[],
            )
            .map_err(self.pg())?;
        rows.iter()
            .map(|r| {
                Ok(ReleaseRecord {
                    kind: self.col(r, 0)?,
                    version: self.col(r, 1)?,
                    target: self.col(r, 2)?,
                    sha256: self.col(r, 3)?,
                    length: self.count(r, 4)?,
                    published_at: self.col(r, 5)?,
                })
            })
            .collect()
    }

    fn create_rollout(&self, n: &NewRollout) -> Result<i64> {
        let waves = serde_json::to_string(&n.waves).map_err(|_| self.corrupt("rollout waves"))?;
        self.write(|tx| {
            let at = now();
            tx.execute(
                "UPDATE rollouts SET state = 'superseded', updated_at = $2
                 WHERE kind = $1 AND state IN ('active', 'paused', 'halted')",
                &[&n.kind, &at],
            )
            .map_err(self.pg())?;
            let row = tx
                .query_one(
                    "INSERT INTO rollouts (kind, version, previous, waves, state, halt_percent,
                                           halt_min, force, reason, created_at, updated_at)
                     VALUES ($1, $2, $3, $4, 'active', $5, $6, $7, NULL, $8, $8)
                     RETURNING id",
                    &[
                        &n.kind,
                        &n.version,
                        &n.previous,
                        &waves,
                        &i64::from(n.halt_percent),
                        &i64::from(n.halt_min),
                        &n.force,
                        &at,
                    ],
                )
                .map_err(self.pg())?;
            self.col::<i64>(&row, 0)
        })
    }

    fn rollouts(&self) -> Result<Vec<RolloutRecord>> {
        let mut conn = self.conn()?;
        let rows = conn
            .query(
                "SELECT id, kind, version, previous, waves, state, halt_percent, halt_min, force,
                        reason, created_at, updated_at FROM rollouts ORDER BY id DESC",
                &[],
            )
            .map_err(self.pg())?;
        rows.iter()
            .map(|r| {
                Ok(RolloutRecord {
                    id: self.col(r, 0)?,
                    kind: self.col(r, 1)?,
                    version: self.col(r, 2)?,
                    previous: self.col(r, 3)?,
                    waves: serde_json::from_str(&self.col::<String>(r, 4)?)
                        .map_err(|_| self.corrupt("rollout waves"))?,
                    state: RolloutState::parse(&self.col::<String>(r, 5)?)
                        .ok_or_else(|| self.corrupt("rollout state"))?,
                    halt_percent: self.col::<i64>(r, 6)?.clamp(0, 100) as u8,
                    halt_min: self.col::<i64>(r, 7)?.clamp(0, i64::from(u32::MAX)) as u32,
                    force: self.col(r, 8)?,
                    reason: self.col(r, 9)?,
                    created_at: self.col(r, 10)?,
                    updated_at: self.col(r, 11)?,
                })
            })
            .collect()
    }

    fn set_rollout_state(
        &self,
        id: i64,
        state: RolloutState,
        reason: Option<&str>,
    ) -> Result<bool> {
        let mut conn = self.conn()?;
        let n = conn
            .execute(
                "UPDATE rollouts SET state = $2, reason = $3, updated_at = $4 WHERE id = $1",
                &[&id, &state.as_str(), &reason, &now()],
            )
            .map_err(self.pg())?;
        Ok(n > 0)
    }

    fn record_package(
        &self,
        facility: &FacilityId,
        device: &DeviceId,
        package_id: &PackageId,
        manifest: &Manifest,
        raw: &[u8],
    ) -> Result<Stored> {
        self.write(|tx| {
            let exists = tx
                .query(
                    "SELECT 1 FROM packages WHERE package_id = $1
                     UNION ALL SELECT 1 FROM dicom_objects WHERE package_id = $1",
                    &[&package_id.as_str()],
                )
                .map_err(self.pg())?;
            if !exists.is_empty() {
                return Ok(Stored::Duplicate);
            }
            // Checked in this transaction, so a collection cannot release an object between
            // the check and the package that references it.
            let mut missing = std::collections::BTreeSet::new();
            for f in &manifest.files {
                let held = tx
                    .query_opt(
                        "SELECT size FROM held_objects WHERE facility_id = $1 AND sha256 = $2",
                        &[&facility.as_str(), &f.sha256.as_str()],
                    )
                    .map_err(self.pg())?;
                match held {
                    None => {
                        missing.insert(f.sha256.clone());
                    }
                    Some(row) if self.col::<i64>(&row, 0)? != sql_size(f.size) => {
                        return Err(StoreError::ObjectSize {
                            path: f.path.clone(),
                            sha256: f.sha256.clone(),
                        });
                    }
                    Some(_) => {}
                }
            }
            if !missing.is_empty() {
                return Err(StoreError::ObjectsNotHeld {
                    facility: facility.clone(),
                    missing: missing.into_iter().collect(),
                });
            }
            for f in &manifest.files {
                tx.execute(
                    "INSERT INTO package_files (package_id, facility_id, sha256)
                     VALUES ($1, $2, $3) ON CONFLICT DO NOTHING",
                    &[&package_id.as_str(), &facility.as_str(), &f.sha256.as_str()],
                )
                .map_err(self.pg())?;
            }
            if let Body::Dicom(d) = &manifest.body {
                // A re-sent instance replaces the earlier package's row; that manifest is
                // gone, so its files no longer keep objects from collection.
                tx.execute(
                    "DELETE FROM package_files WHERE package_id IN (
                        SELECT package_id FROM dicom_objects
                        WHERE facility_id = $1 AND sop_instance_uid = $2)",
                    &[&facility.as_str(), &d.sop_instance_uid],
                )
                .map_err(self.pg())?;
                tx.execute(
                    "INSERT INTO dicom_objects (package_id, facility_id, device_id, study_uid,
                            series_uid, sop_instance_uid, sop_class, exam_pid, patient_pid,
                            received_at, manifest)
                     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)
                     ON CONFLICT (facility_id, sop_instance_uid) DO UPDATE SET
                        package_id = excluded.package_id, device_id = excluded.device_id,
                        study_uid = excluded.study_uid, series_uid = excluded.series_uid,
                        sop_class = excluded.sop_class, exam_pid = excluded.exam_pid,
                        patient_pid = excluded.patient_pid, received_at = excluded.received_at,
                        manifest = excluded.manifest",
                    &[
                        &package_id.as_str(),
                        &facility.as_str(),
                        &device.as_str(),
                        &d.study_uid,
                        &d.series_uid,
                        &d.sop_instance_uid,
                        &d.sop_class,
                        &d.exam_pid,
                        &d.patient_pid,
                        &now(),
                        &raw,
                    ],
                )
                .map_err(self.pg())?;
                return Ok(Stored::New);
            }
            let (kind, revision, withheld) = match manifest.exam() {
                Some(e) => ("exam", i64::from(e.revision), i64::from(e.images_withheld())),
                None => ("report", 0, 0),
            };
            // The rank the hub gives a revision: at most one above the highest so far, so a
            // revision far ahead (u32::MAX) cannot outrank every later export.
            let hub_revision = if manifest.exam().is_some() {
                let row = tx
                    .query_one(
                        "SELECT COALESCE(MAX(hub_revision), 0) FROM packages
                         WHERE facility_id = $1 AND exam_pid = $2 AND kind = 'exam'",
                        &[&facility.as_str(), &manifest.exam_pid()],
                    )
                    .map_err(self.pg())?;
                revision.min(self.col::<i64>(&row, 0)? + 1)
            } else {
                0
            };
            tx.execute(
                "INSERT INTO packages (package_id, facility_id, device_id, kind, exam_pid,
                        revision, files, images_withheld, received_at, manifest, hub_revision)
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)",
                &[
                    &package_id.as_str(),
                    &facility.as_str(),
                    &device.as_str(),
                    &kind,
                    &manifest.exam_pid(),
                    &revision,
                    &(manifest.files.len() as i64),
                    &withheld,
                    &now(),
                    &raw,
                    &hub_revision,
                ],
            )
            .map_err(self.pg())?;
            let Some(exam) = manifest.exam() else {
                // Reports join their exam by exam_pid at listing time.
                return Ok(Stored::New);
            };
            tx.execute(
                "INSERT INTO exams (facility_id, exam_pid, package_id, revision, hub_revision)
                 VALUES ($1, $2, $3, $4, $5)
                 ON CONFLICT (facility_id, exam_pid) DO UPDATE
                    SET package_id = excluded.package_id, revision = excluded.revision,
                        hub_revision = excluded.hub_revision
                    WHERE (excluded.hub_revision, excluded.revision)
                          >= (exams.hub_revision, exams.revision)",
                &[
                    &facility.as_str(),
                    &exam.exam_pid,
                    &package_id.as_str(),
                    &i64::from(exam.revision),
                    &hub_revision,
                ],
            )
            .map_err(self.pg())?;
            Ok(Stored::New)
        })
    }

    fn hold_object(
        &self,
        facility: &FacilityId,
        sha: &Sha256Hex,
        size: u64,
        quota: u64,
    ) -> Result<Stored> {
        self.write(|tx| {
            let refreshed = tx
                .execute(
                    "UPDATE held_objects SET held_at_ms = $3
                     WHERE facility_id = $1 AND sha256 = $2",
                    &[&facility.as_str(), &sha.as_str(), &now_ms()],
                )
                .map_err(self.pg())?;
            if refreshed > 0 {
                return Ok(Stored::Duplicate);
            }
            // Read, then insert: SERIALIZABLE makes two nodes holding objects of one
            // facility at once conflict, so the sum one of them checked is still true.
            let row = tx
                .query_one(
                    "SELECT COALESCE(SUM(size), 0)::BIGINT FROM held_objects
                     WHERE facility_id = $1",
                    &[&facility.as_str()],
                )
                .map_err(self.pg())?;
            if self.count(&row, 0)?.saturating_add(size) > quota {
                return Err(StoreError::QuotaExceeded { facility: facility.clone(), quota });
            }
            tx.execute(
                "INSERT INTO held_objects (facility_id, sha256, size, held_at_ms)
                 VALUES ($1, $2, $3, $4)",
                &[&facility.as_str(), &sha.as_str(), &sql_size(size), &now_ms()],
            )
            .map_err(self.pg())?;
            Ok(Stored::New)
        })
    }

    fn held_size(&self, facility: &FacilityId, sha: &Sha256Hex) -> Result<Option<u64>> {
        let mut conn = self.conn()?;
        let row = conn
            .query_opt(
                "SELECT size FROM held_objects WHERE facility_id = $1 AND sha256 = $2",
                &[&facility.as_str(), &sha.as_str()],
            )
            .map_err(self.pg())?;
        row.map(|r| {
            u64::try_from(self.col::<i64>(&r, 0)?).map_err(|_| self.corrupt("held_objects.size"))
        })
        .transpose()
    }

    fn facility_usage(&self, facility: &FacilityId) -> Result<u64> {
        let mut conn = self.conn()?;
        let row = conn
            .query_one(
                "SELECT COALESCE(SUM(size), 0)::BIGINT FROM held_objects WHERE facility_id = $1",
                &[&facility.as_str()],
            )
            .map_err(self.pg())?;
        u64::try_from(self.col::<i64>(&row, 0)?).map_err(|_| self.corrupt("held_objects.size"))
    }

    fn object_held(&self, sha: &Sha256Hex) -> Result<bool> {
        let mut conn = self.conn()?;
        let row = conn
            .query_opt("SELECT 1 FROM held_objects WHERE sha256 = $1 LIMIT 1", &[&sha.as_str()])
            .map_err(self.pg())?;
        Ok(row.is_some())
    }

    fn release_unreferenced(&self, cutoff: SystemTime) -> Result<u64> {
        // One statement: a package recorded meanwhile either sees the holding (and its file
        // row then keeps it: SERIALIZABLE) or is refused as ObjectsNotHeld.
        self.write(|tx| {
            tx.execute(
                "DELETE FROM held_objects
                 WHERE held_at_ms < $1
                   AND NOT EXISTS (SELECT 1 FROM package_files f
                                   WHERE f.facility_id = held_objects.facility_id
                                     AND f.sha256 = held_objects.sha256)",
                &[&ms_of(cutoff)],
            )
            .map_err(self.pg())
        })
    }

    fn list_exams(&self, facility: &FacilityId) -> Result<Vec<ExamListing>> {
        let rows = self.read(|tx| {
            tx.query(
                "SELECT p.exam_pid, p.revision, p.package_id, p.received_at, p.files,
                        p.images_withheld,
                        (SELECT COUNT(*) FROM packages r WHERE r.kind = 'report'
                           AND r.facility_id = e.facility_id AND r.exam_pid = e.exam_pid),
                        (SELECT COUNT(*) FROM dicom_objects d
                           WHERE d.facility_id = e.facility_id AND d.exam_pid = e.exam_pid)
                 FROM exams e JOIN packages p ON p.package_id = e.package_id
                 WHERE e.facility_id = $1
                 ORDER BY e.exam_pid",
                &[&facility.as_str()],
            )
            .map_err(self.pg())
        })?;
        let u32_of = |r: &Row, i: usize, what: &str| -> Result<u32> {
            u32::try_from(self.col::<i64>(r, i)?).map_err(|_| self.corrupt(what))
        };
        rows.iter()
            .map(|r| {
                Ok(ExamListing {
                    exam_pid: self.col(r, 0)?,
                    revision: u32_of(r, 1, "packages.revision")?,
                    package_id: Sha256Hex::new(self.col::<String>(r, 2)?)
                        .map_err(|_| self.corrupt("packages.package_id"))?,
                    received_at: self.col(r, 3)?,
                    files: u32_of(r, 4, "packages.files")?,
                    images_withheld: u32_of(r, 5, "packages.images_withheld")?,
                    reports: u32_of(r, 6, "packages.kind")?,
                    dicom_objects: u32_of(r, 7, "dicom_objects.exam_pid")?,
                })
            })
            .collect()
    }

    fn list_dicom(&self, facility: &FacilityId) -> Result<Vec<DicomListing>> {
        let mut conn = self.conn()?;
        let rows = conn
            .query(
                "SELECT study_uid, series_uid, sop_instance_uid, sop_class, exam_pid, package_id,
                        received_at
                 FROM dicom_objects WHERE facility_id = $1
                 ORDER BY study_uid, series_uid NULLS FIRST, sop_instance_uid",
                &[&facility.as_str()],
            )
            .map_err(self.pg())?;
        rows.iter()
            .map(|r| {
                Ok(DicomListing {
                    study_uid: self.col(r, 0)?,
                    series_uid: self.col(r, 1)?,
                    sop_instance_uid: self.col(r, 2)?,
                    sop_class: self.col(r, 3)?,
                    exam_pid: self.col(r, 4)?,
                    package_id: Sha256Hex::new(self.col::<String>(r, 5)?)
                        .map_err(|_| self.corrupt("dicom_objects.package_id"))?,
                    received_at: self.col(r, 6)?,
                })
            })
            .collect()
    }

    fn package_count(&self) -> Result<u64> {
        let mut conn = self.conn()?;
        let row = conn
            .query_one(
                "SELECT (SELECT COUNT(*) FROM packages) + (SELECT COUNT(*) FROM dicom_objects)",
                &[],
            )
            .map_err(self.pg())?;
        self.count(&row, 0)
    }

    fn open_upload(
        &self,
        upload: &UploadRecord,
        admit: UploadAdmission,
    ) -> Result<(UploadState, Opened)> {
        let facility = &upload.facility;
        let id = upload.upload_id.as_str();
        self.write(|tx| {
            let opened = match self.session_row(tx, facility, &upload.upload_id)? {
                Some(rec) if rec.sha256 == upload.sha256 && rec.size == upload.size => {
                    tx.execute(
                        "UPDATE upload_sessions SET touched_at_ms = $2 WHERE upload_id = $1",
                        &[&id, &now_ms()],
                    )
                    .map_err(self.pg())?;
                    let received = self.chunk_rows(tx, &upload.upload_id)?;
                    return Ok((UploadState { record: rec, received }, Opened::Existing));
                }
                Some(_) => {
                    delete_session(tx, &upload.upload_id).map_err(self.pg())?;
                    Opened::Replaced
                }
                None => Opened::New,
            };
            // Count, then insert: SERIALIZABLE keeps two nodes from both taking the last
            // open slot or the last bytes of the quota.
            let row = tx
                .query_one(
                    "SELECT COUNT(*) FROM upload_sessions WHERE facility_id = $1",
                    &[&facility.as_str()],
                )
                .map_err(self.pg())?;
            if self.count(&row, 0)? >= u64::from(admit.max_open) {
                return Err(StoreError::TooManyOpenUploads {
                    facility: facility.clone(),
                    limit: admit.max_open,
                });
            }
            let held = tx
                .query_opt(
                    "SELECT 1 FROM held_objects WHERE facility_id = $1 AND sha256 = $2",
                    &[&facility.as_str(), &upload.sha256.as_str()],
                )
                .map_err(self.pg())?
                .is_some();
            if !held {
                // What the facility holds plus what its open sessions will bring.
                let row = tx
                    .query_one(
                        "SELECT ((SELECT COALESCE(SUM(size), 0) FROM held_objects
                                  WHERE facility_id = $1)
                               + (SELECT COALESCE(SUM(size), 0) FROM upload_sessions
                                  WHERE facility_id = $1))::BIGINT",
                        &[&facility.as_str()],
                    )
                    .map_err(self.pg())?;
                if self.count(&row, 0)?.saturating_add(upload.size) > admit.quota {
                    return Err(StoreError::QuotaExceeded {
                        facility: facility.clone(),
                        quota: admit.quota,
                    });
                }
            }
            let now = now_ms();
            tx.execute(
                "INSERT INTO upload_sessions (upload_id, facility_id, sha256, size, chunk_bytes,
                                              opened_by, created_at_ms, touched_at_ms)
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $7)",
                &[
                    &id,
                    &facility.as_str(),
                    &upload.sha256.as_str(),
                    &sql_size(upload.size),
                    &sql_size(upload.chunk_bytes),
                    &upload.opened_by.as_str(),
                    &now,
                ],
            )
            .map_err(self.pg())?;
            // A session opened again after a commit is not that commit any more.
            tx.execute("DELETE FROM upload_commits WHERE upload_id = $1", &[&id])
                .map_err(self.pg())?;
            Ok((UploadState { record: upload.clone(), received: Vec::new() }, opened))
        })
    }

    fn upload_state(
        &self,
        facility: &FacilityId,
        upload: &UploadId,
    ) -> Result<Option<UploadState>> {
        // One snapshot: the chunks belong to the session row read.
        self.read(|tx| {
            let Some(record) = self.session_row(tx, facility, upload)? else { return Ok(None) };
            let received = self.chunk_rows(tx, upload)?;
            Ok(Some(UploadState { record, received }))
        })
    }

    fn touch_upload(
        &self,
        facility: &FacilityId,
        upload: &UploadId,
    ) -> Result<Option<UploadRecord>> {
        self.write(|tx| {
            let n = tx
                .execute(
                    "UPDATE upload_sessions SET touched_at_ms = $3
                     WHERE upload_id = $1 AND facility_id = $2",
                    &[&upload.as_str(), &facility.as_str(), &now_ms()],
                )
                .map_err(self.pg())?;
            if n == 0 {
                return Ok(None);
            }
            self.session_row(tx, facility, upload)
        })
    }

    fn record_chunk(
        &self,
        facility: &FacilityId,
        upload: &UploadId,
        chunk: &ChunkRecord,
    ) -> Result<bool> {
        self.write(|tx| {
            let n = tx
                .execute(
                    "UPDATE upload_sessions SET touched_at_ms = $3
                     WHERE upload_id = $1 AND facility_id = $2",
                    &[&upload.as_str(), &facility.as_str(), &now_ms()],
                )
                .map_err(self.pg())?;
            if n == 0 {
                return Ok(false);
            }
            tx.execute(
                "INSERT INTO upload_chunks (upload_id, chunk_index, sha256, size)
                 VALUES ($1, $2, $3, $4)
                 ON CONFLICT (upload_id, chunk_index) DO UPDATE
                    SET sha256 = excluded.sha256, size = excluded.size",
                &[
                    &upload.as_str(),
                    &i64::from(chunk.index),
                    &chunk.sha256.as_str(),
                    &sql_size(chunk.size),
                ],
            )
            .map_err(self.pg())?;
            Ok(true)
        })
    }

    fn drop_upload(&self, facility: &FacilityId, upload: &UploadId) -> Result<bool> {
        self.write(|tx| {
            if self.session_row(tx, facility, upload)?.is_none() {
                return Ok(false);
            }
            delete_session(tx, upload).map_err(self.pg())?;
            Ok(true)
        })
    }

    fn finish_upload(&self, facility: &FacilityId, upload: &UploadId) -> Result<()> {
        self.write(|tx| {
            let Some(rec) = self.session_row(tx, facility, upload)? else { return Ok(()) };
            delete_session(tx, upload).map_err(self.pg())?;
            tx.execute(
                "INSERT INTO upload_commits (upload_id, facility_id, sha256, committed_at_ms)
                 VALUES ($1, $2, $3, $4)
                 ON CONFLICT (upload_id) DO UPDATE
                    SET sha256 = excluded.sha256, committed_at_ms = excluded.committed_at_ms",
                &[&upload.as_str(), &facility.as_str(), &rec.sha256.as_str(), &now_ms()],
            )
            .map_err(self.pg())?;
            Ok(())
        })
    }

    fn committed_upload(
        &self,
        facility: &FacilityId,
        upload: &UploadId,
    ) -> Result<Option<Sha256Hex>> {
        let mut conn = self.conn()?;
        let row = conn
            .query_opt(
                "SELECT sha256 FROM upload_commits WHERE upload_id = $1 AND facility_id = $2",
                &[&upload.as_str(), &facility.as_str()],
            )
            .map_err(self.pg())?;
        row.map(|r| {
            Sha256Hex::new(self.col::<String>(&r, 0)?)
                .map_err(|_| self.corrupt("upload_commits.sha256"))
        })
        .transpose()
    }

    fn upload_open(&self, upload: &UploadId) -> Result<bool> {
        let mut conn = self.conn()?;
        let row = conn
            .query_opt("SELECT 1 FROM upload_sessions WHERE upload_id = $1", &[&upload.as_str()])
            .map_err(self.pg())?;
        Ok(row.is_some())
    }

    fn expire_uploads(&self, cutoff: SystemTime) -> Result<ExpiredUploads> {
        let cutoff = ms_of(cutoff);
        self.write(|tx| {
            let rows = tx
                .query(
                    "SELECT upload_id FROM upload_sessions WHERE touched_at_ms < $1
                     ORDER BY upload_id",
                    &[&cutoff],
                )
                .map_err(self.pg())?;
            let mut sessions = Vec::with_capacity(rows.len());
            for row in &rows {
                let id = UploadId::new(self.col::<String>(row, 0)?)
                    .map_err(|_| self.corrupt("upload_sessions.upload_id"))?;
                delete_session(tx, &id).map_err(self.pg())?;
                sessions.push(id);
            }
            let commits = tx
                .execute("DELETE FROM upload_commits WHERE committed_at_ms < $1", &[&cutoff])
                .map_err(self.pg())?;
            Ok(ExpiredUploads { sessions, commits })
        })
    }

    fn set_operator(&self, name: &OperatorName, password_phc: &str) -> Result<bool> {
        self.write(|tx| {
            // xmax = 0 only on a row this statement inserted (not on one it updated).
            let row = tx
                .query_one(
                    "INSERT INTO operators (name, password, updated_at) VALUES ($1, $2, $3)
                     ON CONFLICT (name) DO UPDATE
                        SET password = excluded.password, updated_at = excluded.updated_at
                     RETURNING (xmax = 0)",
                    &[&name.as_str(), &password_phc, &now()],
                )
                .map_err(self.pg())?;
            let added: bool = self.col(&row, 0)?;
            // A new password ends the sessions made with the old one.
            tx.execute("DELETE FROM operator_sessions WHERE operator = $1", &[&name.as_str()])
                .map_err(self.pg())?;
            Ok(added)
        })
    }

    fn remove_operator(&self, name: &OperatorName) -> Result<bool> {
        self.write(|tx| {
            tx.execute("DELETE FROM operator_sessions WHERE operator = $1", &[&name.as_str()])
                .map_err(self.pg())?;
            let n = tx
                .execute("DELETE FROM operators WHERE name = $1", &[&name.as_str()])
                .map_err(self.pg())?;
            Ok(n > 0)
        })
    }

    fn operator_password(&self, name: &OperatorName) -> Result<Option<String>> {
        let mut conn = self.conn()?;
        let row = conn
            .query_opt("SELECT password FROM operators WHERE name = $1", &[&name.as_str()])
            .map_err(self.pg())?;
        row.map(|r| self.col(&r, 0)).transpose()
    }

    fn insert_session(
        &self,
        token_sha256: &Sha256Hex,
        operator: &OperatorName,
        now_ms: i64,
    ) -> Result<()> {
        let mut conn = self.conn()?;
        conn.execute(
            "INSERT INTO operator_sessions (token_sha256, operator, created_ms, last_seen_ms)
             VALUES ($1, $2, $3, $3)",
            &[&token_sha256.as_str(), &operator.as_str(), &now_ms],
        )
        .map_err(self.pg())?;
        Ok(())
    }

    fn session(&self, token_sha256: &Sha256Hex) -> Result<Option<SessionRecord>> {
        let mut conn = self.conn()?;
        let row = conn
            .query_opt(
                "SELECT s.operator, s.created_ms, s.last_seen_ms FROM operator_sessions s
                 JOIN operators o ON o.name = s.operator WHERE s.token_sha256 = $1",
                &[&token_sha256.as_str()],
            )
            .map_err(self.pg())?;
        let Some(row) = row else { return Ok(None) };
        Ok(Some(SessionRecord {
            operator: OperatorName::new(self.col::<String>(&row, 0)?)
                .map_err(|_| self.corrupt("operator_sessions.operator"))?,
            created_ms: self.col(&row, 1)?,
            last_seen_ms: self.col(&row, 2)?,
        }))
    }

    fn touch_session(&self, token_sha256: &Sha256Hex, now_ms: i64) -> Result<()> {
        let mut conn = self.conn()?;
        conn.execute(
            "UPDATE operator_sessions SET last_seen_ms = GREATEST(last_seen_ms, $2)
             WHERE token_sha256 = $1",
            &[&token_sha256.as_str(), &now_ms],
        )
        .map_err(self.pg())?;
        Ok(())
    }

    fn delete_session(&self, token_sha256: &Sha256Hex) -> Result<bool> {
        let mut conn = self.conn()?;
        let n = conn
            .execute(
                "DELETE FROM operator_sessions WHERE token_sha256 = $1",
                &[&token_sha256.as_str()],
            )
            .map_err(self.pg())?;
        Ok(n > 0)
    }

    fn expire_sessions(&self, idle_cutoff_ms: i64, created_cutoff_ms: i64) -> Result<u64> {
        let mut conn = self.conn()?;
        conn.execute(
            "DELETE FROM operator_sessions WHERE last_seen_ms < $1 OR created_ms < $2",
            &[&idle_cutoff_ms, &created_cutoff_ms],
        )
        .map_err(self.pg())
    }

    fn uploads_per_day(&self, facility: Option<&FacilityId>, since: &str) -> Result<Vec<DayCount>> {
        let mut conn = self.conn()?;
        let rows = conn
            .query(
                "SELECT substr(received_at, 1, 10) AS day, COUNT(*) FROM (
                     SELECT facility_id, received_at FROM packages
                     UNION ALL SELECT facility_id, received_at FROM dicom_objects) AS p
                 WHERE received_at >= $1 AND ($2::TEXT IS NULL OR facility_id = $2)
                 GROUP BY day ORDER BY day",
                &[&since, &facility.map(FacilityId::as_str)],
            )
            .map_err(self.pg())?;
        rows.iter()
            .map(|r| Ok(DayCount { day: self.col(r, 0)?, count: self.count(r, 1)? }))
            .collect()
    }

    fn device_uploads(&self) -> Result<Vec<DeviceUploads>> {
        let mut conn = self.conn()?;
        let rows = conn
            .query(
                "SELECT device_id, facility_id, COUNT(*), MAX(received_at) FROM (
                     SELECT device_id, facility_id, received_at FROM packages
                     UNION ALL SELECT device_id, facility_id, received_at FROM dicom_objects)
                     AS p
                 GROUP BY device_id, facility_id ORDER BY facility_id, device_id",
                &[],
            )
            .map_err(self.pg())?;
        rows.iter()
            .map(|r| {
                Ok(DeviceUploads {
                    device: self.col(r, 0)?,
                    facility: FacilityId::new(self.col::<String>(r, 1)?)
                        .map_err(|_| self.corrupt("packages.facility_id"))?,
                    packages: self.count(r, 2)?,
                    last_received: self.col(r, 3)?,
                })
            })
            .collect()
    }

    fn facility_counts(&self, facility: &FacilityId) -> Result<FacilityCounts> {
        let row = self.read(|tx| {
            tx.query_one(
                "SELECT (SELECT COUNT(*) FROM exams WHERE facility_id = $1),
                        (SELECT COUNT(*) FROM packages WHERE facility_id = $1),
                        (SELECT COUNT(*) FROM dicom_objects WHERE facility_id = $1),
                        (SELECT COALESCE(SUM(size), 0)::BIGINT FROM held_objects
                         WHERE facility_id = $1)",
                &[&facility.as_str()],
            )
            .map_err(self.pg())
        })?;
        Ok(FacilityCounts {
            exams: self.count(&row, 0)?,
            packages: self.count(&row, 1)?,
            dicom_objects: self.count(&row, 2)?,
            bytes_held: self.count(&row, 3)?,
        })
    }

    fn package_manifest(
        &self,
        facility: &FacilityId,
        package: &PackageId,
    ) -> Result<Option<String>> {
        let mut conn = self.conn()?;
        let row = conn
            .query_opt(
                "SELECT manifest FROM packages WHERE facility_id = $1 AND package_id = $2
                 UNION ALL
                 SELECT manifest FROM dicom_objects WHERE facility_id = $1 AND package_id = $2
                 LIMIT 1",
                &[&facility.as_str(), &package.as_str()],
            )
            .map_err(self.pg())?;
        row.map(|r| {
            String::from_utf8(self.col::<Vec<u8>>(&r, 0)?)
                .map_err(|_| self.corrupt("packages.manifest"))
        })
        .transpose()
    }

    fn record_export(&self, e: &ExportRecord) -> Result<i64> {
        let rows = i64::try_from(e.rows).unwrap_or(i64::MAX);
        let mut conn = self.conn()?;
        let row = conn
            .query_one(
                "INSERT INTO exports (researcher, facility_id, date_from, date_to, format,
                                      destination, rows, outcome, started_at, finished_at)
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10) RETURNING id",
                &[
                    &e.researcher,
                    &e.facility.as_str(),
                    &e.date_from,
                    &e.date_to,
                    &e.format,
                    &e.destination,
                    &rows,
                    &e.outcome,
                    &e.started_at,
                    &e.finished_at,
                ],
            )
            .map_err(self.pg())?;
        self.col(&row, 0)
    }

    fn exports(&self, researcher: Option<&str>) -> Result<Vec<ExportRecord>> {
        let mut conn = self.conn()?;
        let rows = conn
            .query(
                "SELECT id, researcher, facility_id, date_from, date_to, format, destination,
                        rows, outcome, started_at, finished_at
                 FROM exports WHERE $1::TEXT IS NULL OR researcher = $1 ORDER BY id",
                &[&researcher],
            )
            .map_err(self.pg())?;
        rows.iter()
            .map(|r| {
                Ok(ExportRecord {
                    id: self.col(r, 0)?,
                    researcher: self.col(r, 1)?,
                    facility: FacilityId::new(self.col::<String>(r, 2)?)
                        .map_err(|_| self.corrupt("exports.facility_id"))?,
                    date_from: self.col(r, 3)?,
                    date_to: self.col(r, 4)?,
                    format: self.col(r, 5)?,
                    destination: self.col(r, 6)?,
                    rows: self.count(r, 7)?,
                    outcome: self.col(r, 8)?,
                    started_at: self.col(r, 9)?,
                    finished_at: self.col(r, 10)?,
                })
            })
            .collect()
    }
}
