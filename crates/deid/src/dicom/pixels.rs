//! DICOM pixel data through the burned-in text stage ([`crate::pixels`]): Burned In
//! Annotation is never trusted, so every single-frame 8-bit image is masked and verified like
//! an exported image, then Burned In Annotation is set to NO, which is then true.
//!
//! Taken: JPEG Baseline (encapsulated, one frame: masked in the DCT domain, kept as JPEG
//! Baseline) and native (uncompressed) 8-bit RGB or MONOCHROME2 (masked per pixel, kept
//! native). When a JPEG cannot be masked in the DCT domain, the masked picture is stored
//! native RGB in Explicit VR Little Endian: lossless from the decoded picture. Anything else
//! (multi-frame, 16-bit, other compressions) stays on the box, `pixels-not-cleaned` with the
//! reason.

use super::apply::strings;
use super::parse::TailPixels;
use crate::identifiers::IdentifierSet;
use crate::image_meta::{self, CleanImage};
use crate::pixels::{PixelError, PixelStage};
use crate::QuarantineReason;
use dicom_core::value::{PixelFragmentSequence, PrimitiveValue, Value};
use dicom_core::{DataElement, Tag, VR};
use dicom_dictionary_std::tags::{
    BITS_ALLOCATED, BITS_STORED, BURNED_IN_ANNOTATION, COLUMNS, HIGH_BIT, NUMBER_OF_FRAMES,
    PHOTOMETRIC_INTERPRETATION as PHOTOMETRIC, PIXEL_DATA, PIXEL_REPRESENTATION,
    PLANAR_CONFIGURATION as PLANAR, ROWS, SAMPLES_PER_PIXEL as SAMPLES,
};
use dicom_dictionary_std::uids::{
    EXPLICIT_VR_LITTLE_ENDIAN as EXPLICIT_LE, IMPLICIT_VR_LITTLE_ENDIAN as IMPLICIT_LE,
    JPEG_BASELINE8_BIT as JPEG_BASELINE,
};
use dicom_object::InMemDicomObject;
use std::borrow::Cow;

fn unsupported(what: &str) -> QuarantineReason {
    QuarantineReason::PixelStageFailed(format!("dicom pixel data: {what}"))
}

fn int(obj: &InMemDicomObject, t: Tag) -> Option<u32> {
    obj.get(t).and_then(|e| e.value().to_int::<u32>().ok())
}

fn text(obj: &InMemDicomObject, t: Tag) -> Option<String> {
    obj.get(t)
        .and_then(|e| strings(e.value()))
        .and_then(|v| v.into_iter().next())
        .map(|s| s.trim_end_matches(['\0', ' ']).trim().to_string())
}

/// Where the pixel data to clean is.
pub(crate) enum Source<'a> {
    /// Still in the input file (`parse::TailPixels`), not parsed into the object.
    Input(&'a [u8], TailPixels),
    /// The object's own Pixel Data element.
    Object,
}

impl Source<'_> {
    fn fragments<'o>(&'o self, obj: &'o InMemDicomObject) -> Option<Vec<&'o [u8]>> {
        match self {
            Source::Input(bytes, t) => t.encapsulated.then(|| t.fragments(bytes)),
            Source::Object => obj
                .get(PIXEL_DATA)
                .and_then(|e| e.value().fragments())
                .map(|f| f.iter().map(Vec::as_slice).collect()),
        }
    }

    fn native<'o>(&'o self, obj: &'o InMemDicomObject) -> Option<Cow<'o, [u8]>> {
        match self {
            Source::Input(bytes, t) => (!t.encapsulated).then(|| Cow::Borrowed(&bytes[t.value..])),
            Source::Object => obj.get(PIXEL_DATA).and_then(|e| e.value().to_bytes().ok()),
        }
    }
}

/// Cleans the pixel data of `obj` (and `ts`, when the storage changes): the cleaned pixels
/// are put into `obj`. On success Burned In Annotation is NO; on refusal, the reason to keep
/// the object on the box.
pub(crate) fn clean(
    obj: &mut InMemDicomObject,
    ts: &mut String,
    ids: &IdentifierSet,
    stage: &PixelStage,
    source: Source,
) -> Result<(), QuarantineReason> {
    if int(obj, NUMBER_OF_FRAMES).unwrap_or(1) > 1 {
        return Err(unsupported("multi-frame"));
    }
    if int(obj, BITS_ALLOCATED) != Some(8) {
        return Err(unsupported("not 8 bits allocated"));
    }
    let (rows, cols) = match (int(obj, ROWS), int(obj, COLUMNS)) {
        (Some(r), Some(c)) if r > 0 && c > 0 => (r, c),
        _ => return Err(unsupported("rows/columns missing")),
    };
    if !image_meta::picture_size_ok(cols, rows) {
        return Err(unsupported("rows x columns over the picture size limit"));
    }
    let input = match ts.as_str() {
        JPEG_BASELINE => {
            let frags =
                source.fragments(obj).ok_or_else(|| unsupported("no encapsulated fragments"))?;
            let mut jpeg: Vec<u8> = frags.concat();
            // Fragments are padded to even length after EOI.
            while jpeg.len() > 2 && !jpeg.ends_with(&[0xFF, 0xD9]) && jpeg.last() == Some(&0) {
                jpeg.pop();
            }
            image_meta::strip(&jpeg).map_err(|e| unsupported(&e.what()))?
        }
        IMPLICIT_LE | EXPLICIT_LE => {
            let data =
                source.native(obj).ok_or_else(|| unsupported("native pixel data unreadable"))?;
            native_as_png(obj, &data, rows, cols)?
        }
        _ => return Err(unsupported("transfer syntax not taken by the pixel stage")),
    };
    let rgb = PixelStage::decode(&input).map_err(|_| unsupported("cannot be decoded"))?;
    if rgb.dimensions() != (cols, rows) {
        return Err(unsupported("size differs from rows/columns"));
    }
    let field = stage.field(&input, &rgb);
    let cleaned = stage.clean(&input, &rgb, field, ids).map_err(|e| match e {
        PixelError::FieldNotFound { .. } => QuarantineReason::FieldNotFound,
        PixelError::IdentifierFound(k) => QuarantineReason::IdentifierInPixels(k.key().into()),
        PixelError::IdentifierShaped(s) => {
            QuarantineReason::IdentifierInPixels(format!("shaped-{}", s.key()))
        }
        e => QuarantineReason::PixelStageFailed(e.to_string()),
    })?;
    let out = cleaned.image;
    match (ts.as_str(), out.media_type) {
        (JPEG_BASELINE, "image/jpeg") => {
            let mut frag = out.bytes;
            if frag.len() % 2 == 1 {
                frag.push(0);
            }
            obj.put(DataElement::new(
                PIXEL_DATA,
                VR::OB,
                Value::from(PixelFragmentSequence::new(vec![], vec![frag])),
            ));
        }
        _ => {
            // Native out: the masked picture, losslessly, in the object's own sample layout
            // (RGB when it came from a JPEG that could not be masked in the DCT domain).
            let px =
                PixelStage::decode(&out).map_err(|_| unsupported("masked image unreadable"))?;
            let gray = text(obj, PHOTOMETRIC).as_deref() == Some("MONOCHROME2")
                && ts.as_str() != JPEG_BASELINE;
            let bytes: Vec<u8> =
                if gray { px.pixels().map(|p| p.0[0]).collect() } else { px.into_raw() };
            if ts.as_str() == JPEG_BASELINE {
                *ts = EXPLICIT_LE.to_string();
                obj.put(DataElement::new(PHOTOMETRIC, VR::CS, "RGB"));
                obj.put(DataElement::new(SAMPLES, VR::US, PrimitiveValue::from(3u16)));
                obj.put(DataElement::new(PLANAR, VR::US, PrimitiveValue::from(0u16)));
                obj.put(DataElement::new(BITS_STORED, VR::US, PrimitiveValue::from(8u16)));
                obj.put(DataElement::new(HIGH_BIT, VR::US, PrimitiveValue::from(7u16)));
                obj.put(DataElement::new(PIXEL_REPRESENTATION, VR::US, PrimitiveValue::from(0u16)));
            }
            obj.put(DataElement::new(PIXEL_DATA, VR::OB, PrimitiveValue::from(bytes)));
        }
    }
    obj.put(DataElement::new(BURNED_IN_ANNOTATION, VR::CS, "NO"));
    Ok(())
}

/// Native 8-bit pixel data (RGB interleaved or MONOCHROME2) as a PNG for the stage.
fn native_as_png(
    obj: &InMemDicomObject,
    data: &[u8],
    rows: u32,
    cols: u32,
) -> Result<CleanImage, QuarantineReason> {
    let samples = int(obj, SAMPLES).unwrap_or(1);
    let photometric = text(obj, PHOTOMETRIC).unwrap_or_default();
    let n = (rows * cols) as usize;
    let rgb: Vec<u8> = match (samples, photometric.as_str()) {
        (3, "RGB") if int(obj, PLANAR).unwrap_or(0) == 0 && data.len() >= 3 * n => {
            data[..3 * n].to_vec()
        }
        (1, "MONOCHROME2") if data.len() >= n => {
            data[..n].iter().flat_map(|&v| [v, v, v]).collect()
        }
        _ => return Err(unsupported("photometric interpretation or planar layout not taken")),
    };
    let img = image::RgbImage::from_raw(cols, rows, rgb).ok_or_else(|| unsupported("size"))?;
    let mut png = std::io::Cursor::new(Vec::new());
    img.write_to(&mut png, image::ImageFormat::Png).map_err(|_| unsupported("png"))?;
    Ok(CleanImage { bytes: png.into_inner(), media_type: "image/png", ext: "png" })
}
