//! `[store]` of `hub.toml`: which engines hold the hub's metadata and objects. The embedded
//! defaults (SQLite under `data_dir`, files under `data_dir/objects`) need nothing else;
//! several hub nodes share one PostgreSQL database and one S3-compatible bucket instead
//! (docs/hub-scale.md).

use serde::{Deserialize, Serialize};
use std::fmt;

/// `[store]`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StoreSettings {
    /// `"sqlite"` (default: `<data_dir>/hub.sqlite`) or a `postgres://user:password@host/db`
    /// connection URL.
    #[serde(default)]
    pub meta: MetaBackend,
    /// `"fs"` (default: `<data_dir>/objects`) or `"s3"` (then `[store.s3]` is required).
    #[serde(default)]
    pub objects: ObjectBackend,
    /// Connections in the PostgreSQL pool of this node. Default 16 (1 ..= 1024); the
    /// database's `max_connections` must cover every node's pool.
    #[serde(default = "default_pool_size")]
    pub pool_size: u32,
    /// `[store.s3]`: the bucket, when `objects = "s3"`.
    #[serde(default)]
    pub s3: Option<S3Settings>,
}

fn default_pool_size() -> u32 {
    16
}

// By hand: a derived Default would give `pool_size` 0, which `validate` refuses (a hub.toml
// without `[store]` is all defaults).
impl Default for StoreSettings {
    fn default() -> StoreSettings {
        StoreSettings {
            meta: MetaBackend::default(),
            objects: ObjectBackend::default(),
            pool_size: default_pool_size(),
            s3: None,
        }
    }
}

/// Where metadata lives.
#[derive(Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub enum MetaBackend {
    /// SQLite in the data directory (one node).
    #[default]
    Sqlite,
    /// A PostgreSQL database (any number of nodes).
    Postgres(PostgresUrl),
}

/// A `postgres://` or `postgresql://` URL. Its password never appears in `Debug` output.
#[derive(Clone, PartialEq, Eq)]
pub struct PostgresUrl(String);

impl PostgresUrl {
    /// The URL, with its password, for the driver.
    pub fn expose(&self) -> &str {
        &self.0
    }
    /// Host, port and database, for messages.
    pub fn redacted(&self) -> String {
        let rest = self.0.split_once("://").map_or(self.0.as_str(), |(_, r)| r);
        let rest = rest.rsplit_once('@').map_or(rest, |(_, r)| r);
        let rest = rest.split_once('?').map_or(rest, |(r, _)| r);
        format!("postgres://{rest}")
    }
}

impl fmt::Debug for PostgresUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "PostgresUrl({})", self.redacted())
    }
}

impl fmt::Debug for MetaBackend {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            MetaBackend::Sqlite => f.write_str("Sqlite"),
            MetaBackend::Postgres(url) => write!(f, "Postgres({})", url.redacted()),
        }
    }
}

impl TryFrom<String> for MetaBackend {
    type Error = String;
    fn try_from(s: String) -> Result<Self, String> {
        if s == "sqlite" {
            return Ok(MetaBackend::Sqlite);
        }
        if (s.starts_with("postgres://") || s.starts_with("postgresql://"))
            && !s.chars().any(|c| c.is_whitespace() || c.is_control())
        {
            return Ok(MetaBackend::Postgres(PostgresUrl(s)));
        }
        Err("expected \"sqlite\" or a postgres:// URL".into())
    }
}

impl From<MetaBackend> for String {
    fn from(m: MetaBackend) -> String {
        match m {
            MetaBackend::Sqlite => "sqlite".into(),
            MetaBackend::Postgres(url) => url.0,
        }
    }
}

/// Where objects (and the chunks of upload sessions) live.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ObjectBackend {
    /// Files under `<data_dir>/objects` (one node, or a shared POSIX file system).
    #[default]
    Fs,
    /// An S3-compatible bucket (`[store.s3]`).
    S3,
}

/// `[store.s3]`: an S3-compatible bucket (Garage, Ceph RGW, AWS S3, …).
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct S3Settings {
    /// `http(s)://host:port` of the S3 API.
    pub endpoint: String,
    /// The bucket; it must exist.
    pub bucket: String,
    /// The region the store signs with. Default `"garage"` (Garage's default; AWS and RGW
    /// take e.g. `"us-east-1"`).
    #[serde(default = "default_region")]
    pub region: String,
    /// Access key id.
    pub access_key_id: String,
    /// Secret access key. Never logged.
    pub secret_access_key: String,
    /// Key prefix inside the bucket, so several hubs may share one bucket. Default none.
    #[serde(default)]
    pub prefix: Option<String>,
    /// Objects larger than this go up as a multipart upload, in parts of this size.
    /// Default 8 MiB (5 MiB ..= 1 GiB: S3's smallest part is 5 MiB).
    #[serde(default = "default_part_bytes")]
    pub part_bytes: u64,
}

fn default_region() -> String {
    "garage".into()
}
fn default_part_bytes() -> u64 {
    8 << 20
}

impl fmt::Debug for S3Settings {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("S3Settings")
            .field("endpoint", &self.endpoint)
            .field("bucket", &self.bucket)
            .field("region", &self.region)
            .field("access_key_id", &self.access_key_id)
            .field("secret_access_key", &"<redacted>")
            .field("prefix", &self.prefix)
            .field("part_bytes", &self.part_bytes)
            .finish()
    }
}

impl StoreSettings {
    /// Checks the combination: `objects = "s3"` needs `[store.s3]` with an http(s) endpoint,
    /// a bucket and keys. Returns the offending key and what it must be.
    pub fn check(&self) -> Result<(), (&'static str, &'static str)> {
        if !(1..=1024).contains(&self.pool_size) {
            return Err(("store.pool_size", "1 ..= 1024"));
        }
        if self.objects == ObjectBackend::S3 {
            let Some(s3) = &self.s3 else {
                return Err(("store.s3", "a [store.s3] table when objects = \"s3\""));
            };
            if !(s3.endpoint.starts_with("http://") || s3.endpoint.starts_with("https://")) {
                return Err(("store.s3.endpoint", "an http:// or https:// URL"));
            }
            if s3.bucket.is_empty() || s3.bucket.len() > 63 {
                return Err(("store.s3.bucket", "a bucket name (1 ..= 63 characters)"));
            }
            if s3.access_key_id.is_empty() || s3.secret_access_key.is_empty() {
                return Err(("store.s3.access_key_id", "access_key_id and secret_access_key"));
            }
            if !((5 << 20)..=(1 << 30)).contains(&s3.part_bytes) {
                return Err(("store.s3.part_bytes", "5242880 ..= 1073741824 (5 MiB ..= 1 GiB)"));
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_the_embedded_stores() {
        let s: StoreSettings = toml::from_str("").unwrap();
        assert_eq!(s, StoreSettings::default());
        assert_eq!(s.pool_size, 16);
        assert_eq!(s.meta, MetaBackend::Sqlite);
        assert_eq!(s.objects, ObjectBackend::Fs);
        assert!(s.check().is_ok());
    }

    #[test]
    fn postgres_url_is_parsed_and_its_password_kept_out_of_debug() {
        let s: StoreSettings =
            toml::from_str("meta = \"postgres://hub:s3cr3t-pw@db.example:5432/fgw\"").unwrap();
        let MetaBackend::Postgres(url) = &s.meta else { panic!("postgres expected") };
        assert_eq!(url.expose(), "postgres://hub:s3cr3t-pw@db.example:5432/fgw");
        let shown = format!("{s:?}");
        assert!(!shown.contains("s3cr3t-pw"), "{shown}");
        assert!(shown.contains("db.example:5432/fgw"), "{shown}");
    }

    #[test]
    fn unknown_meta_engine_is_refused() {
        assert!(toml::from_str::<StoreSettings>("meta = \"mysql://x\"").is_err());
    }

    #[test]
    fn s3_needs_its_table_and_hides_its_secret() {
        let s: StoreSettings = toml::from_str("objects = \"s3\"").unwrap();
        assert_eq!(s.check().unwrap_err().0, "store.s3");
        let s: StoreSettings = toml::from_str(
            "objects = \"s3\"\n[s3]\nendpoint = \"http://127.0.0.1:3900\"\nbucket = \"fgw\"\n\
             access_key_id = \"GK1\"\nsecret_access_key = \"topsecretvalue\"\n",
        )
        .unwrap();
        assert!(s.check().is_ok());
        assert!(!format!("{s:?}").contains("topsecretvalue"));
    }
}
