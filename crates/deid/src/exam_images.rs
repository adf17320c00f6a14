//! An exam's images through the gate: metadata stripped, then the burned-in text stage
//! ([`pixels`]), in parallel up to the OCR pool's size. An image that passes becomes a file of
//! the package; any other is withheld with its reason while the rest of the exam goes on.
//!
//! Frames of one exam come from one processor: a frame too dark for its field to be found
//! borrows the field detected on another frame of the same size in the same exam.

use super::actions::Action;
use super::identifiers::IdentifierSet;
use super::image_meta::{self, CleanImage, ImageMetaError};
use super::pixels::{fov::Field, FieldSource, PixelError, PixelMode, PixelStage};
use super::{QuarantineReason, Withheld};
use fgw_format::ids::Sha256Hex;
use fgw_format::package::{FileEntry, ImageRef};
use fgw_records::RawImage;
use std::collections::BTreeMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;

/// What the exam's images came to.
#[derive(Default)]
pub(super) struct ImagesOut {
    pub refs: Vec<ImageRef>,
    pub files: Vec<(FileEntry, Vec<u8>)>,
    pub withheld: Vec<Withheld>,
    pub actions: Vec<Action>,
}

enum Step {
    Done(Result<CleanImage, QuarantineReason>, usize),
    /// Field not found on this frame; retry with a borrowed one.
    NeedField(CleanImage),
}

pub(super) fn process(images: &[RawImage], ids: &IdentifierSet, stage: &PixelStage) -> ImagesOut {
    let stripped: Vec<Result<CleanImage, QuarantineReason>> = images
        .iter()
        .map(|img| {
            image_meta::strip(&img.bytes).map_err(|e| match e {
                ImageMetaError::Unsupported => QuarantineReason::ImageFormatUnsupported,
                ImageMetaError::Dicom => QuarantineReason::DicomInExport,
                e => QuarantineReason::ImageUnreadable(e.what()),
            })
        })
        .collect();

    let mut results: Vec<Option<Result<CleanImage, QuarantineReason>>> = vec![None; images.len()];
    let mut text_regions = 0usize;
    if stage.settings().mode == PixelMode::Withhold {
        for (r, s) in results.iter_mut().zip(&stripped) {
            *r = Some(s.clone().and(Err(QuarantineReason::PixelsNotCleaned)));
        }
    } else {
        // First pass: every image with its own field; fields kept by frame size for borrowing.
        let fields: Mutex<BTreeMap<(u32, u32), Field>> = Mutex::new(BTreeMap::new());
        let steps = parallel(stripped.len(), stage.parallelism(), |i| match &stripped[i] {
            Err(r) => Step::Done(Err(r.clone()), 0),
            Ok(img) => match PixelStage::decode(img) {
                Err(e) => Step::Done(Err(reason(e)), 0),
                Ok(rgb) => match stage.field(img, &rgb) {
                    None => Step::NeedField(img.clone()),
                    Some((f, src)) => {
                        if src == FieldSource::Detected {
                            let mut m = fields.lock().unwrap_or_else(|p| p.into_inner());
                            m.entry(rgb.dimensions()).or_insert_with(|| f.clone());
                        }
                        done(stage.clean(img, &rgb, Some((f, src)), ids))
                    }
                },
            },
        });
        let fields = fields.into_inner().unwrap_or_else(|p| p.into_inner());
        let mut retry = Vec::new();
        for (i, s) in steps.into_iter().enumerate() {
            match s {
                Step::Done(r, n) => {
                    text_regions += n;
                    results[i] = Some(r);
                }
                Step::NeedField(img) => retry.push((i, img)),
            }
        }
        let second = parallel(retry.len(), stage.parallelism(), |k| {
            let img = &retry[k].1;
            match PixelStage::decode(img) {
                Err(e) => Step::Done(Err(reason(e)), 0),
                Ok(rgb) => {
                    let f =
                        fields.get(&rgb.dimensions()).map(|f| (f.clone(), FieldSource::SameExam));
                    done(stage.clean(img, &rgb, f, ids))
                }
            }
        });
        for ((i, _), s) in retry.iter().zip(second) {
            if let Step::Done(r, n) = s {
                text_regions += n;
                results[*i] = Some(r);
            }
        }
    }

    let mut out = ImagesOut::default();
    for (img, r) in images.iter().zip(results) {
        match r.unwrap_or(Err(QuarantineReason::PixelStageFailed("not processed".into()))) {
            Ok(clean) => {
                let path = format!("images/{:03}.{}", img.index, clean.ext);
                let entry = FileEntry {
                    path: path.clone(),
                    sha256: Sha256Hex::of(&clean.bytes),
                    size: clean.bytes.len() as u64,
                    media_type: clean.media_type.into(),
                };
                out.refs.push(ImageRef { index: img.index, path: Some(path), withheld: None });
                out.files.push((entry, clean.bytes));
            }
            Err(reason) => {
                out.refs.push(ImageRef {
                    index: img.index,
                    path: None,
                    withheld: Some(reason.code().into()),
                });
                out.withheld.push(Withheld { image_index: img.index, reason });
            }
        }
    }
    if !images.is_empty() {
        out.actions.push(Action::ImageMetadataStripped);
    }
    if !out.files.is_empty() {
        out.actions.push(Action::PixelsCleaned(out.files.len()));
        out.actions.push(Action::TextRegionsMasked(text_regions));
    }
    if !out.withheld.is_empty() {
        out.actions.push(Action::PixelsWithheld(out.withheld.len()));
    }
    out
}

fn done(r: Result<super::pixels::Cleaned, PixelError>) -> Step {
    match r {
        Ok(c) => {
            let n = c.report.text_regions;
            Step::Done(Ok(c.image), n)
        }
        Err(e) => Step::Done(Err(reason(e)), 0),
    }
}

fn reason(e: PixelError) -> QuarantineReason {
    match e {
        PixelError::Decode(what) => {
            QuarantineReason::ImageUnreadable(format!("{what}: cannot be decoded"))
        }
        PixelError::FieldNotFound { .. } => QuarantineReason::FieldNotFound,
        PixelError::IdentifierFound(kind) => {
            QuarantineReason::IdentifierInPixels(kind.key().into())
        }
        // No dedicated code: the gateway's reason table (another crate) would need one.
        PixelError::IdentifierShaped(shape) => {
            QuarantineReason::IdentifierInPixels(format!("shaped-{}", shape.key()))
        }
        e @ (PixelError::Ocr(_) | PixelError::Encode(_)) => {
            QuarantineReason::PixelStageFailed(e.to_string())
        }
    }
}

/// Runs `f(0..n)` on up to `threads` scoped threads; results in index order.
fn parallel<T: Send>(n: usize, threads: usize, f: impl Fn(usize) -> T + Sync) -> Vec<T> {
    let next = AtomicUsize::new(0);
    let out: Mutex<Vec<Option<T>>> = Mutex::new((0..n).map(|_| None).collect());
    std::thread::scope(|s| {
        for _ in 0..threads.clamp(1, n.max(1)) {
            s.spawn(|| loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                if i >= n {
                    break;
                }
                let r = f(i);
                out.lock().unwrap_or_else(|p| p.into_inner())[i] = Some(r);
            });
        }
    });
    out.into_inner()
        .unwrap_or_else(|p| p.into_inner())
        .into_iter()
        .map(|o| o.expect("every index ran"))
        .collect()
}
