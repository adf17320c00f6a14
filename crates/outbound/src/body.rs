//! Request bodies streamed from a byte range of a staged file, through the [`Throttle`], never
//! held whole in memory. The range is hashed as it is read; if its bytes no longer match the
//! hash they were named by, the body stops before its last piece, so the hub never receives a
//! whole body under a name it does not match (it would refuse one anyway: 422).
//!
//! A task reads the file and paces the pieces; the body takes them from a short channel
//! (at most two pieces in flight), so a dropped request stops the task at its next piece.

use crate::throttle::Throttle;
use bytes::Bytes;
use http_body::{Frame, SizeHint};
use std::io::SeekFrom;
use std::path::PathBuf;
use std::pin::Pin;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use tokio::io::{AsyncReadExt, AsyncSeekExt};
use tokio::sync::mpsc;

/// Why a body stopped on our side (the request then fails; the caller reports this instead).
#[derive(Debug, thiserror::Error)]
pub(crate) enum RangeFault {
    /// The bytes read do not hash to the name they are sent under, or the file is shorter.
    #[error("the staged bytes no longer match their hash")]
    Changed,
    /// The file could not be read.
    #[error("reading the staged file: {0}")]
    Io(#[from] std::io::Error),
}

/// A byte range of a staged file and the SHA-256 (lowercase hex) it must have.
#[derive(Debug, Clone)]
pub(crate) struct FileRange {
    pub(crate) path: PathBuf,
    pub(crate) offset: u64,
    pub(crate) len: u64,
    pub(crate) sha256: String,
}

/// What the caller reads after a failed request: whether the body stopped itself, and why.
#[derive(Debug, Clone, Default)]
pub(crate) struct BodyOutcome(Arc<Mutex<Option<RangeFault>>>);

impl BodyOutcome {
    /// The fault that stopped the body, if it stopped itself.
    pub(crate) fn take(&self) -> Option<RangeFault> {
        self.0.lock().unwrap_or_else(|p| p.into_inner()).take()
    }

    fn set(&self, fault: RangeFault) {
        *self.0.lock().unwrap_or_else(|p| p.into_inner()) = Some(fault);
    }
}

/// The error the body gives the HTTP client when it stops (details are in [`BodyOutcome`]).
#[derive(Debug, thiserror::Error)]
#[error("request body stopped by the uplink")]
pub(crate) struct BodyStopped;

/// The body of one request: pieces from the reading task.
struct RangeBody {
    rx: mpsc::Receiver<Result<Bytes, BodyStopped>>,
    left: u64,
}

impl http_body::Body for RangeBody {
    type Data = Bytes;
    type Error = BodyStopped;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BodyStopped>>> {
        if self.left == 0 {
            return Poll::Ready(None);
        }
        match self.rx.poll_recv(cx) {
            Poll::Pending => Poll::Pending,
            Poll::Ready(Some(Ok(piece))) => {
                self.left = self.left.saturating_sub(piece.len() as u64);
                Poll::Ready(Some(Ok(Frame::data(piece))))
            }
            Poll::Ready(Some(Err(e))) => Poll::Ready(Some(Err(e))),
            // The task ended before the range did (it cannot without a fault, but a short
            // body must never look complete).
            Poll::Ready(None) => Poll::Ready(Some(Err(BodyStopped))),
        }
    }

    fn is_end_stream(&self) -> bool {
        self.left == 0
    }

    fn size_hint(&self) -> SizeHint {
        SizeHint::with_exact(self.left)
    }
}

/// A body sending `range` through `throttle`. An empty range is checked at once
/// (`Err(Changed)` if the empty string is not what its hash names). Must be called inside a
/// tokio runtime (the reading task is spawned here).
pub(crate) fn range_body(
    range: FileRange,
    throttle: Throttle,
) -> Result<(reqwest::Body, BodyOutcome), RangeFault> {
    if range.len == 0 {
        if hex::encode(ring::digest::digest(&ring::digest::SHA256, b"")) != range.sha256 {
            return Err(RangeFault::Changed);
        }
        return Ok((reqwest::Body::from(Vec::new()), BodyOutcome::default()));
    }
    let (tx, rx) = mpsc::channel(1);
    let outcome = BodyOutcome::default();
    let fault = outcome.clone();
    let len = range.len;
    tokio::spawn(async move {
        if let Err(e) = produce(&range, &throttle, &tx).await {
            fault.set(e);
            let _ = tx.send(Err(BodyStopped)).await;
        }
    });
    Ok((reqwest::Body::wrap(RangeBody { rx, left: len }), outcome))
}

/// A body sending `bytes` (already read and hashed) through `throttle`, in pieces so the cap
/// and the byte counter follow it. Must be called inside a tokio runtime.
pub(crate) fn memory_body(bytes: Bytes, throttle: Throttle) -> reqwest::Body {
    if bytes.is_empty() {
        return reqwest::Body::from(bytes);
    }
    let (tx, rx) = mpsc::channel(1);
    let len = bytes.len() as u64;
    tokio::spawn(async move {
        let mut rest = bytes;
        while !rest.is_empty() {
            let n = throttle.piece_len().min(rest.len() as u64);
            throttle.pace(n).await;
            let piece = rest.split_to(n as usize);
            if tx.send(Ok(piece)).await.is_err() {
                return;
            }
            throttle.sent().fetch_add(n, Ordering::Relaxed);
        }
    });
    reqwest::Body::wrap(RangeBody { rx, left: len })
}

/// Reads, hashes, paces and hands over the pieces of `range`; stops quietly when the request
/// is gone (the receiver dropped).
async fn produce(
    range: &FileRange,
    throttle: &Throttle,
    tx: &mpsc::Sender<Result<Bytes, BodyStopped>>,
) -> Result<(), RangeFault> {
    let mut file = tokio::fs::File::open(&range.path).await?;
    file.seek(SeekFrom::Start(range.offset)).await?;
    let mut ctx = ring::digest::Context::new(&ring::digest::SHA256);
    let mut left = range.len;
    while left > 0 {
        let n = throttle.piece_len().min(left);
        let mut piece = vec![0u8; n as usize];
        match file.read_exact(&mut piece).await {
            Ok(_) => {}
            Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => {
                return Err(RangeFault::Changed)
            }
            Err(e) => return Err(e.into()),
        }
        ctx.update(&piece);
        left -= n;
        // Checked before the last piece goes: a body that does not match is never whole.
        if left == 0 && hex::encode(ctx.clone().finish()) != range.sha256 {
            return Err(RangeFault::Changed);
        }
        throttle.pace(n).await;
        if tx.send(Ok(Bytes::from(piece))).await.is_err() {
            return Ok(());
        }
        throttle.sent().fetch_add(n, Ordering::Relaxed);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::throttle::RateSchedule;
    use http_body_util::BodyExt;

    fn unlimited() -> Throttle {
        Throttle::new(RateSchedule::new(0, &[], 1024).unwrap())
    }

    fn sha(bytes: &[u8]) -> String {
        hex::encode(ring::digest::digest(&ring::digest::SHA256, bytes))
    }

    async fn collect(body: reqwest::Body) -> Result<Vec<u8>, String> {
        let mut body = body;
        let mut out = Vec::new();
        while let Some(frame) = body.frame().await {
            let frame = frame.map_err(|e| e.to_string())?;
            out.extend_from_slice(frame.data_ref().unwrap());
        }
        Ok(out)
    }

    fn file_of(len: usize) -> (tempfile::NamedTempFile, Vec<u8>) {
        let bytes: Vec<u8> = (0..len).map(|i| (i * 7 % 251) as u8).collect();
        let f = tempfile::NamedTempFile::new().unwrap();
        std::fs::write(f.path(), &bytes).unwrap();
        (f, bytes)
    }

    #[tokio::test]
    async fn a_range_is_streamed_whole_and_counted() {
        let (f, bytes) = file_of(300_000);
        let throttle = unlimited();
        let range = FileRange {
            path: f.path().into(),
            offset: 100_000,
            len: 150_000,
            sha256: sha(&bytes[100_000..250_000]),
        };
        let (body, outcome) = range_body(range, throttle.clone()).unwrap();
        assert_eq!(body.as_bytes(), None, "streamed, not buffered");
        assert_eq!(collect(body).await.unwrap(), &bytes[100_000..250_000]);
        assert!(outcome.take().is_none());
        assert_eq!(throttle.sent().load(Ordering::Relaxed), 150_000);
    }

    #[tokio::test]
    async fn changed_bytes_stop_the_body_before_its_end() {
        let (f, bytes) = file_of(200_000);
        let mut changed = bytes.clone();
        changed[199_999] ^= 1;
        std::fs::write(f.path(), &changed).unwrap();
        let throttle = unlimited();
        let range =
            FileRange { path: f.path().into(), offset: 0, len: 200_000, sha256: sha(&bytes) };
        let (body, outcome) = range_body(range, throttle.clone()).unwrap();
        assert!(collect(body).await.is_err(), "the body does not complete");
        assert!(matches!(outcome.take(), Some(RangeFault::Changed)));
        assert!(throttle.sent().load(Ordering::Relaxed) < 200_000, "the last piece never went");

        // A file shorter than the range is changed too.
        let range =
            FileRange { path: f.path().into(), offset: 100_000, len: 200_000, sha256: sha(&bytes) };
        let (body, outcome) = range_body(range, unlimited()).unwrap();
        assert!(collect(body).await.is_err());
        assert!(matches!(outcome.take(), Some(RangeFault::Changed)));
    }

    #[tokio::test]
    async fn an_empty_range_is_checked_at_once() {
        let range = FileRange { path: "/nonexistent".into(), offset: 0, len: 0, sha256: sha(b"") };
        let (body, _) = range_body(range.clone(), unlimited()).unwrap();
        assert_eq!(collect(body).await.unwrap(), b"");
        let wrong = FileRange { sha256: sha(b"x"), ..range };
        assert!(matches!(range_body(wrong, unlimited()), Err(RangeFault::Changed)));
    }
}
