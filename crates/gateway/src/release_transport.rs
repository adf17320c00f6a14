//! The TUF transport of the box: the repository's files fetched through the uplink's
//! connection pool (mutual TLS with the box's certificate, the hospital's proxy if any), or
//! read from a folder (a USB stick with a copy of the repository).
//!
//! A fetch that stalls longer than the uplink's request timeout between two chunks fails;
//! tough bounds the total by the signed length or its metadata limits.
//!
//! Targets whose signed length the updater announced ([`UplinkTransport::expect`]) are
//! downloaded into `<dir>/<name>.partial` first and resumed there after a cut
//! (`Range: bytes=N-`), never beyond the signed length; tough then reads the file and checks
//! length and hash as for any fetch. A partial file that fails the hash is removed by the
//! updater, so the next attempt starts over.

use fgw_release::transport::{
    async_trait, FilesystemTransport, Transport, TransportError, TransportErrorKind,
    TransportStream,
};
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use url::Url;

/// Fetches over HTTPS with the uplink's client.
#[derive(Debug, Clone)]
pub struct UplinkTransport {
    client: reqwest::Client,
    idle: Duration,
    resume: Option<Resume>,
}

/// Where resumable downloads go, and the signed length of each announced target.
#[derive(Debug, Clone)]
struct Resume {
    dir: PathBuf,
    expected: Arc<Mutex<HashMap<String, u64>>>,
}

/// The partial file of target `name` in `dir`.
pub fn partial_path(dir: &Path, name: &str) -> PathBuf {
    dir.join(format!("{name}.partial"))
}

impl UplinkTransport {
    /// Over `client`; a body that sends nothing for `idle` fails.
    pub fn new(client: reqwest::Client, idle: Duration) -> UplinkTransport {
        UplinkTransport { client, idle, resume: None }
    }

    /// Announced targets are downloaded resumably into `dir`.
    pub fn resumable(mut self, dir: PathBuf) -> UplinkTransport {
        self.resume = Some(Resume { dir, expected: Arc::default() });
        self
    }

    /// Target `name` is `length` bytes long (as signed): download it resumably.
    pub fn expect(&self, name: &str, length: u64) {
        if let Some(r) = &self.resume {
            r.expected.lock().unwrap_or_else(|p| p.into_inner()).insert(name.to_string(), length);
        }
    }

    /// The announced length of the target at `url`, with its partial file.
    fn resumable_target(&self, url: &Url) -> Option<(PathBuf, u64)> {
        let r = self.resume.as_ref()?;
        let name = url.path().strip_prefix(fgw_format::package::protocol::TUF_TARGETS)?;
        let len = *r.expected.lock().unwrap_or_else(|p| p.into_inner()).get(name)?;
        Some((partial_path(&r.dir, name), len))
    }

    /// Brings the partial file of a target to `len` bytes (or the server's end), resuming
    /// where an earlier attempt stopped.
    async fn download_to(&self, url: &Url, path: &Path, len: u64) -> Result<(), TransportError> {
        let other =
            |e: String| TransportError::new_with_cause(TransportErrorKind::Other, url.clone(), e);
        let io = |e: std::io::Error| other(format!("{}: {e}", path.display()));
        if let Some(dir) = path.parent() {
            tokio::fs::create_dir_all(dir).await.map_err(io)?;
        }
        let mut have = tokio::fs::metadata(path).await.map(|m| m.len()).unwrap_or(0);
        if have > len {
            have = 0;
        }
        if have == len {
            return Ok(());
        }
        let resp = tokio::time::timeout(
            self.idle,
            self.client
                .get(url.clone())
                .header(reqwest::header::RANGE, format!("bytes={have}-"))
                .send(),
        )
        .await
        .map_err(|_| other("no answer".into()))?
        .map_err(|e| other(fgw_outbound::uplink::describe(e)))?;
        let mut file = match resp.status() {
            reqwest::StatusCode::PARTIAL_CONTENT => {
                tracing::info!(target = %url.path(), from = have, "release download resumed");
                // A first download asks for `bytes=0-` too, and the hub answers 206: the
                // partial file may not exist yet (found by tests/system/run.sh --full).
                tokio::fs::OpenOptions::new()
                    .create(true)
                    .append(true)
                    .open(path)
                    .await
                    .map_err(io)?
            }
            s if s.is_success() => {
                have = 0;
                tokio::fs::File::create(path).await.map_err(io)?
            }
            reqwest::StatusCode::NOT_FOUND => {
                return Err(TransportError::new(TransportErrorKind::FileNotFound, url.clone()));
            }
            s => return Err(other(format!("hub answered {}", s.as_u16()))),
        };
        let mut resp = resp;
        while have < len {
            let chunk = match tokio::time::timeout(self.idle, resp.chunk()).await {
                Ok(Ok(Some(c))) => c,
                Ok(Ok(None)) => break,
                Ok(Err(e)) => return Err(other(fgw_outbound::uplink::describe(e))),
                Err(_) => return Err(other("stalled".into())),
            };
            // Never past the signed length: more is the endless-data attack.
            let take = chunk.len().min((len - have) as usize);
            file.write_all(&chunk[..take]).await.map_err(io)?;
            have += take as u64;
        }
        file.sync_all().await.map_err(io)
    }
}

/// The bytes of `path`, as a stream.
fn file_stream(file: tokio::fs::File, url: Url) -> TransportStream {
    let stream = futures_util::stream::unfold(Some(file), move |state| {
        let url = url.clone();
        async move {
            let mut file = state?;
            let mut buf = vec![0u8; 64 * 1024];
            match file.read(&mut buf).await {
                Ok(0) => None,
                Ok(n) => {
                    buf.truncate(n);
                    Some((Ok(bytes::Bytes::from(buf)), Some(file)))
                }
                Err(e) => Some((
                    Err(TransportError::new_with_cause(TransportErrorKind::Other, url, e)),
                    None,
                )),
            }
        }
    });
    Box::pin(sync_wrapper::SyncStream::new(stream))
}

#[async_trait]
impl Transport for UplinkTransport {
    async fn fetch(&self, url: Url) -> Result<TransportStream, TransportError> {
        if url.scheme() != "https" {
            return Err(TransportError::new(TransportErrorKind::UnsupportedUrlScheme, url));
        }
        let other = |url: &Url, e: String| {
            TransportError::new_with_cause(TransportErrorKind::Other, url.clone(), e)
        };
        if let Some((path, len)) = self.resumable_target(&url) {
            self.download_to(&url, &path, len).await?;
            let file = tokio::fs::File::open(&path)
                .await
                .map_err(|e| other(&url, format!("{}: {e}", path.display())))?;
            return Ok(file_stream(file, url));
        }
        let resp = tokio::time::timeout(self.idle, self.client.get(url.clone()).send())
            .await
            .map_err(|_| other(&url, "no answer".into()))?
            .map_err(|e| other(&url, fgw_outbound::uplink::describe(e)))?;
        match resp.status() {
            s if s.is_success() => {}
            reqwest::StatusCode::NOT_FOUND => {
                return Err(TransportError::new(TransportErrorKind::FileNotFound, url));
            }
            s => return Err(other(&url, format!("hub answered {}", s.as_u16()))),
        }
        let idle = self.idle;
        let stream = futures_util::stream::unfold(Some(resp), move |state| {
            let url = url.clone();
            async move {
                let mut resp = state?;
                match tokio::time::timeout(idle, resp.chunk()).await {
                    Ok(Ok(Some(bytes))) => Some((Ok(bytes), Some(resp))),
                    Ok(Ok(None)) => None,
                    Ok(Err(e)) => Some((Err(other(&url, fgw_outbound::uplink::describe(e))), None)),
                    Err(_) => Some((Err(other(&url, "stalled".into())), None)),
                }
            }
        });
        Ok(Box::pin(sync_wrapper::SyncStream::new(stream)))
    }
}

/// Where the box reads the repository from.
#[derive(Debug, Clone)]
pub enum RepoSource {
    /// The hub, through the uplink (`/v1/tuf/…`).
    Hub(UplinkTransport, String),
    /// A folder holding `metadata/` and `targets/` (a USB stick).
    Folder(std::path::PathBuf),
}

impl RepoSource {
    /// Metadata and targets base URLs.
    pub fn urls(&self) -> Option<(Url, Url)> {
        match self {
            RepoSource::Hub(_, base) => {
                use fgw_format::package::protocol::{TUF_METADATA, TUF_TARGETS};
                Some((
                    Url::parse(&format!("{base}{TUF_METADATA}")).ok()?,
                    Url::parse(&format!("{base}{TUF_TARGETS}")).ok()?,
                ))
            }
            RepoSource::Folder(dir) => {
                let abs = std::path::absolute(dir).ok()?;
                Some((
                    Url::from_directory_path(abs.join(fgw_release::METADATA_DIR)).ok()?,
                    Url::from_directory_path(abs.join(fgw_release::TARGETS_DIR)).ok()?,
                ))
            }
        }
    }

    /// Loads and verifies the repository with `verifier`.
    pub async fn load(
        &self,
        verifier: &fgw_release::Verifier,
    ) -> Result<fgw_release::Trusted, fgw_release::VerifyError> {
        let Some((m, t)) = self.urls() else {
            return Err(fgw_release::VerifyError::Unavailable {
                url: "(repository)".into(),
                reason: "not a valid base URL or folder".into(),
            });
        };
        match self {
            RepoSource::Hub(transport, _) => verifier.load(transport.clone(), m, t).await,
            RepoSource::Folder(_) => verifier.load(FilesystemTransport, m, t).await,
        }
    }
}
