//! Multipart uploads a crash left incomplete: invisible, but they hold their parts' space.
//! object_store cannot list them, so ListMultipartUploads is sent here, signed with its
//! own SigV4 signer, and each upload under the store's prefix begun before the cutoff is
//! aborted through the client.

use super::{Inner, OBJECTS, PARTS, TMP};
use crate::store::{Result, StoreError};
use object_store::aws::{AwsAuthorizer, AwsCredential};
use object_store::client::{HttpClient, HttpConnector, HttpRequestBody, ReqwestConnector};
use object_store::multipart::MultipartStore;
use object_store::path::Path;
use object_store::ClientOptions;
use std::time::SystemTime;

/// What ListMultipartUploads needs beside the client.
pub(super) struct Lister {
    http: HttpClient,
    endpoint: String,
    region: String,
    credential: AwsCredential,
}

impl Lister {
    pub(super) fn new(
        options: &ClientOptions,
        endpoint: &str,
        region: &str,
        credential: AwsCredential,
    ) -> object_store::Result<Lister> {
        Ok(Lister {
            http: ReqwestConnector::default().connect(options)?,
            endpoint: endpoint.trim_end_matches('/').to_string(),
            region: region.to_string(),
            credential,
        })
    }
}

/// One incomplete upload.
struct Pending {
    key: String,
    id: String,
    initiated: SystemTime,
}

fn tag<'a>(xml: &'a str, name: &str) -> Option<&'a str> {
    let open = format!("<{name}>");
    let start = xml.find(&open)? + open.len();
    let end = xml[start..].find(&format!("</{name}>"))? + start;
    Some(&xml[start..end])
}

fn unescape(s: &str) -> String {
    s.replace("&lt;", "<")
        .replace("&gt;", ">")
        .replace("&quot;", "\"")
        .replace("&apos;", "'")
        .replace("&amp;", "&")
}

fn query_escape(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

impl Inner {
    /// Every incomplete upload under `prefix` (a key prefix ending in `/`).
    fn pending(&self, lister: &Lister, prefix: &str) -> Result<Vec<Pending>> {
        let fail = |source: Box<dyn std::error::Error + Send + Sync>| StoreError::S3 {
            bucket: self.bucket.clone(),
            key: prefix.to_string(),
            source,
        };
        let mut found = Vec::new();
        let (mut key_marker, mut id_marker) = (String::new(), String::new());
        loop {
            let mut url = format!(
                "{}/{}?uploads=&prefix={}",
                lister.endpoint,
                query_escape(&self.bucket),
                query_escape(prefix)
            );
            if !key_marker.is_empty() {
                url += &format!(
                    "&key-marker={}&upload-id-marker={}",
                    query_escape(&key_marker),
                    query_escape(&id_marker)
                );
            }
            let mut request = http::Request::builder()
                .method("GET")
                .uri(&url)
                .body(HttpRequestBody::empty())
                .map_err(|e| fail(Box::new(e)))?;
            AwsAuthorizer::new(&lister.credential, "s3", &lister.region)
                .authorize(&mut request, None);
            let xml = self.block_on(async {
                let response = lister.http.execute(request).await?;
                let status = response.status();
                let body = response.into_body().bytes().await?;
                Ok::<_, object_store::client::HttpError>((status, body))
            });
            let (status, body) = xml.map_err(|e| fail(Box::new(e)))?;
            let xml = String::from_utf8_lossy(&body);
            if !status.is_success() {
                let code = tag(&xml, "Code").unwrap_or("").to_string();
                return Err(fail(format!("ListMultipartUploads: {status} {code}").into()));
            }
            for upload in xml.split("<Upload>").skip(1) {
                let (Some(key), Some(id), Some(at)) =
                    (tag(upload, "Key"), tag(upload, "UploadId"), tag(upload, "Initiated"))
                else {
                    continue;
                };
                let Ok(at) = chrono::DateTime::parse_from_rfc3339(at) else { continue };
                found.push(Pending { key: unescape(key), id: unescape(id), initiated: at.into() });
            }
            let truncated = tag(&xml, "IsTruncated") == Some("true");
            let next = (tag(&xml, "NextKeyMarker"), tag(&xml, "NextUploadIdMarker"));
            match next {
                (Some(k), Some(i)) if truncated && !k.is_empty() => {
                    (key_marker, id_marker) = (unescape(k), unescape(i));
                }
                _ => return Ok(found),
            }
        }
    }

    /// Abort the store's multipart uploads begun before `cutoff`; returns how many.
    pub(super) fn abort_stale_uploads(&self, cutoff: SystemTime) -> Result<u64> {
        let Some(lister) = &self.lister else { return Ok(0) };
        let mut aborted = 0;
        for area in [TMP, PARTS, OBJECTS] {
            let prefix = format!("{}/", self.path(area));
            for p in self.pending(lister, &prefix)? {
                if p.initiated >= cutoff {
                    continue;
                }
                let key = Path::from(p.key.as_str());
                match self.block_on(self.client.abort_multipart(&key, &p.id)) {
                    Ok(()) => aborted += 1,
                    // Completed or aborted since the listing.
                    Err(object_store::Error::NotFound { .. }) => {}
                    Err(e) => return Err(self.err(&key)(e)),
                }
            }
        }
        Ok(aborted)
    }
}
