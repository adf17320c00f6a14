//! Images (`images/<検査ID>/*`) and report (`reports/<検査ID>.txt`) of one exam, at the
//! places the profile's `images_dir` and `report_file` name.

use super::encoding::{decode, TextEncoding};
use super::table::is_safe_exam_id;
use super::{BatchDir, ExportError};
use fgw_records::profile::Profile;
use fgw_records::{Column, RawExam, RawImage};
use std::cmp::Ordering;
use std::fs::{self, File};
use std::io::{self, Read};
use std::path::{Path, PathBuf};

/// Images above this size are not read (memory guard); they are listed as missing.
pub const MAX_IMAGE_BYTES: u64 = 64 * 1024 * 1024;
/// Reports above this size are refused: a text report is a few KiB.
pub const MAX_REPORT_BYTES: u64 = 16 * 1024 * 1024;

/// Fill `exam.images`, `exam.missing_images` and `exam.report` from the batch folder
/// (replacing whatever was there).
///
/// Images: every regular file of `images/<検査ID>/` (the profile's `images_dir`; symlinks and dot-files are ignored),
/// in natural file-name order (`2.jpg` before `10.jpg`), indexed 0.. in that order over the
/// images actually read. A missing folder means an exam without images. Unreadable, oversized
/// or non-UTF-8-named files go to `missing_images` and the rest continue.
///
/// Report: `reports/<検査ID>.txt` (the profile's `report_file`), decoded with `encoding`
/// (a UTF-8 BOM always wins).
pub fn load_attachments(
    batch: &BatchDir,
    exam: &mut RawExam,
    encoding: TextEncoding,
    profile: &Profile,
) -> Result<(), ExportError> {
    let source_ref = exam.source.to_string();
    let id = exam.fields.get(&Column::ExamId).map(String::as_str).unwrap_or("");
    // read_batch already rejects these rows; checked again because RawExam is a plain struct.
    if !is_safe_exam_id(id) {
        return Err(ExportError::UnsafeExamId { source_ref });
    }
    let id = id.to_owned();
    exam.images.clear();
    exam.missing_images.clear();
    exam.report = None;

    load_images(batch, &id, &source_ref, exam, profile)?;
    exam.report = load_report(batch, &id, &source_ref, encoding, profile)?;
    Ok(())
}

fn load_images(
    batch: &BatchDir,
    id: &str,
    source_ref: &str,
    exam: &mut RawExam,
    profile: &Profile,
) -> Result<(), ExportError> {
    let dir_err = |source| ExportError::ImageDir {
        batch: batch.name.clone(),
        dir: profile.images_dir.clone(),
        source_ref: source_ref.to_owned(),
        source,
    };
    let rel = profile.images_dir_for(id);
    let dir = under(&batch.path, &rel);
    let entries = match fs::read_dir(&dir) {
        Ok(e) => e,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(dir_err(e)),
    };
    let rel_dir = format!("{}/{rel}", batch.name);
    let mut files = Vec::new();
    for entry in entries {
        let entry = entry.map_err(dir_err)?;
        // file_type() does not follow symlinks: a link could point outside the export.
        let Ok(ft) = entry.file_type() else { continue };
        if !ft.is_file() {
            continue;
        }
        match entry.file_name().into_string() {
            Ok(name) if name.starts_with('.') => {}
            Ok(name) => files.push(name),
            Err(raw) => exam.missing_images.push((
                format!("{rel_dir}/{}", raw.to_string_lossy()),
                "file name is not valid UTF-8".into(),
            )),
        }
    }
    files.sort_by(|a, b| natural_cmp(a, b));

    for name in files {
        let rel_path = format!("{rel_dir}/{name}");
        match read_limited(&dir.join(&name), MAX_IMAGE_BYTES) {
            Ok(Some(bytes)) => {
                let index = exam.images.len() as u32;
                exam.images.push(RawImage { index, rel_path, bytes });
            }
            Ok(None) => exam
                .missing_images
                .push((rel_path, format!("larger than {MAX_IMAGE_BYTES} bytes; skipped"))),
            Err(e) => exam.missing_images.push((rel_path, format!("cannot read: {}", e.kind()))),
        }
    }
    Ok(())
}

fn load_report(
    batch: &BatchDir,
    id: &str,
    source_ref: &str,
    encoding: TextEncoding,
    profile: &Profile,
) -> Result<Option<String>, ExportError> {
    let path = under(&batch.path, &profile.report_file_for(id));
    let file = || profile.report_file.clone();
    let bytes = match read_limited(&path, MAX_REPORT_BYTES) {
        Ok(Some(b)) => b,
        Ok(None) => {
            return Err(ExportError::ReportTooLarge {
                batch: batch.name.clone(),
                file: file(),
                source_ref: source_ref.to_owned(),
                limit: MAX_REPORT_BYTES,
            })
        }
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(source) => {
            return Err(ExportError::ReportIo {
                batch: batch.name.clone(),
                file: file(),
                source_ref: source_ref.to_owned(),
                source,
            })
        }
    };
    decode(&bytes, encoding).map(Some).map_err(|line| ExportError::ReportUndecodable {
        batch: batch.name.clone(),
        file: file(),
        source_ref: source_ref.to_owned(),
        encoding,
        line,
    })
}

/// `rel` (`/`-separated, validated by the profile, exam id checked) below `base`.
fn under(base: &Path, rel: &str) -> PathBuf {
    rel.split('/').fold(base.to_path_buf(), |p, c| p.join(c))
}

/// Read a regular file of at most `limit` bytes; `Ok(None)` if larger. The limit is enforced
/// while reading too, in case the file grows after the size check.
fn read_limited(path: &std::path::Path, limit: u64) -> io::Result<Option<Vec<u8>>> {
    let f = File::open(path)?;
    let meta = f.metadata()?;
    if !meta.is_file() {
        return Err(io::Error::new(io::ErrorKind::InvalidInput, "not a regular file"));
    }
    if meta.len() > limit {
        return Ok(None);
    }
    let mut buf = Vec::with_capacity(meta.len() as usize);
    f.take(limit + 1).read_to_end(&mut buf)?;
    if buf.len() as u64 > limit {
        return Ok(None);
    }
    Ok(Some(buf))
}

/// Natural order: digit runs compare by numeric value (`2` < `10`), the rest by character.
/// Ties (e.g. `01` vs `1`) fall back to plain string order so the order is total.
pub fn natural_cmp(a: &str, b: &str) -> Ordering {
    let (mut x, mut y) = (a, b);
    loop {
        match (x.chars().next(), y.chars().next()) {
            (None, None) => return a.cmp(b),
            (None, Some(_)) => return Ordering::Less,
            (Some(_), None) => return Ordering::Greater,
            (Some(c), Some(d)) if c.is_ascii_digit() && d.is_ascii_digit() => {
                let (nx, rx) = split_digits(x);
                let (ny, ry) = split_digits(y);
                let (tx, ty) = (nx.trim_start_matches('0'), ny.trim_start_matches('0'));
                let ord = tx.len().cmp(&ty.len()).then_with(|| tx.cmp(ty));
                if ord != Ordering::Equal {
                    return ord;
                }
                x = rx;
                y = ry;
            }
            (Some(c), Some(d)) => {
                if c != d {
                    return c.cmp(&d);
                }
                x = &x[c.len_utf8()..];
                y = &y[d.len_utf8()..];
            }
        }
    }
}

fn split_digits(s: &str) -> (&str, &str) {
    let n = s.bytes().take_while(u8::is_ascii_digit).count();
    s.split_at(n)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn natural_order() {
        let mut v = vec!["10.jpg", "2.jpg", "1.png", "1.jpg", "01.jpg", "a.jpg", "100.jpg"];
        v.sort_by(|a, b| natural_cmp(a, b));
        assert_eq!(v, ["01.jpg", "1.jpg", "1.png", "2.jpg", "10.jpg", "100.jpg", "a.jpg"]);
        assert_eq!(natural_cmp("img2_10", "img2_9"), Ordering::Greater);
        assert_eq!(natural_cmp("x", "x"), Ordering::Equal);
    }

    #[test]
    fn read_limit() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("f");
        fs::write(&p, [0u8; 10]).unwrap();
        assert_eq!(read_limited(&p, 10).unwrap().unwrap().len(), 10);
        assert!(read_limited(&p, 9).unwrap().is_none());
    }
}
