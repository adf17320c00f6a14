//! The TUF transport of the box: the repository's files fetched through the uplink's
//! connection pool (mutual TLS with the box's certificate, the hospital's proxy if any), or
//! read from a folder (a USB stick with a copy of the repository).
//!
//! A fetch that stalls longer than the uplink's request timeout between two chunks fails;
//! tough bounds the total by the signed length or its metadata limits.

use fgw_release::transport::{
    async_trait, FilesystemTransport, Transport, TransportError, TransportErrorKind,
    TransportStream,
};
use std::time::Duration;
use url::Url;

/// Fetches over HTTPS with the uplink's client.
#[derive(Debug, Clone)]
pub struct UplinkTransport {
    client: reqwest::Client,
    idle: Duration,
}

impl UplinkTransport {
    /// Over `client`; a body that sends nothing for `idle` fails.
    pub fn new(client: reqwest::Client, idle: Duration) -> UplinkTransport {
        UplinkTransport { client, idle }
    }
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
