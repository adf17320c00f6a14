//! Images (`images/<検査ID>/*`) and report (`reports/<検査ID>.txt`) of one exam, at the
//! places the profile's `images_dir` and `report_file` name.

use super::beneath::{
    list_dir, open_dir, open_entry, open_file, read_bounded, Entry, Listing, OpenError,
};
use super::encoding::{decode, TextEncoding};
use super::table::is_safe_exam_id;
use super::{BatchDir, ExportError, ExportLimits, Limit, Refusal};
use fgw_records::profile::Profile;
use fgw_records::{Column, RawExam, RawImage};
use std::cmp::Ordering;
use std::ffi::OsStr;
use std::io;
use std::os::fd::{AsFd, BorrowedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::Path;

/// [`load_attachments_with`] and the default [`ExportLimits`].
pub fn load_attachments(
    batch: &BatchDir,
    exam: &mut RawExam,
    encoding: TextEncoding,
    profile: &Profile,
) -> Result<(), ExportError> {
    load_attachments_with(batch, exam, encoding, profile, &ExportLimits::default())
}

/// Fill `exam.images`, `exam.missing_images` and `exam.report` from the batch folder
/// (replacing whatever was there).
///
/// Everything is opened beneath the batch's parent without following links
/// (`export::beneath`): a symlink anywhere on the way ([`Refusal::Symlink`]) or a FIFO,
/// device or socket where a file is expected refuses the exam ([`ExportError::Refused`]), as
/// does input over `limits` ([`ExportError::OverLimit`]); the exam then has no attachments.
///
/// Images: every regular file of `images/<検査ID>/` (the profile's `images_dir`; dot-files and
/// sub-folders are ignored), in natural file-name order (`2.jpg` before `10.jpg`), indexed 0..
/// in that order over the images actually read. A missing folder means an exam without
/// images. Unreadable or non-UTF-8-named files go to `missing_images` and the rest continue.
///
/// Report: `reports/<検査ID>.txt` (the profile's `report_file`), decoded with `encoding`
/// (a UTF-8 BOM always wins).
pub fn load_attachments_with(
    batch: &BatchDir,
    exam: &mut RawExam,
    encoding: TextEncoding,
    profile: &Profile,
    limits: &ExportLimits,
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

    let (anchor, rel) =
        batch.anchor().map_err(|source| ExportError::Io { file: batch.label.clone(), source })?;
    let at = Attachments { anchor: anchor.as_fd(), rel: &rel, batch, source_ref, profile, limits };
    let loaded = at.images(&id, exam).and_then(|()| at.report(&id, encoding));
    match loaded {
        Ok(report) => {
            exam.report = report;
            Ok(())
        }
        Err(e) => {
            if matches!(e, ExportError::Refused { .. } | ExportError::OverLimit { .. }) {
                // Refused as a whole: nothing read for it stays with the exam.
                exam.images.clear();
                exam.missing_images.clear();
            }
            Err(e)
        }
    }
}

/// One exam's attachments, opened beneath `anchor` (the batch's parent) at `rel/...`.
struct Attachments<'a> {
    anchor: BorrowedFd<'a>,
    rel: &'a Path,
    batch: &'a BatchDir,
    source_ref: String,
    profile: &'a Profile,
    limits: &'a ExportLimits,
}

impl Attachments<'_> {
    /// `<batch label>/<template> of <row>`: the path with the batch as its label and the
    /// exam-named part as the profile's template, never the folder's name or the 検査ID.
    fn path(&self, template: &str) -> String {
        format!("{}/{template} of {}", self.batch.label, self.source_ref)
    }

    fn refused(&self, template: &str, what: Refusal) -> ExportError {
        ExportError::Refused { path: self.path(template), what }
    }

    fn over(&self, template: &str, limit: Limit) -> ExportError {
        ExportError::OverLimit { path: self.path(template), limit, cap: limit.of(self.limits) }
    }

    fn images(&self, id: &str, exam: &mut RawExam) -> Result<(), ExportError> {
        let tpl = &self.profile.images_dir;
        let dir_err = |source| ExportError::ImageDir {
            batch: self.batch.label.clone(),
            dir: tpl.clone(),
            source_ref: self.source_ref.clone(),
            source,
        };
        let rel = self.profile.images_dir_for(id);
        let dir = match open_dir(self.anchor, &self.rel.join(&rel)) {
            Ok(d) => d,
            Err(OpenError::Io(e)) if e.kind() == io::ErrorKind::NotFound => return Ok(()),
            Err(OpenError::Io(e)) => return Err(dir_err(e)),
            Err(OpenError::Refused(what)) => return Err(self.refused(tpl, what)),
        };
        // Entries known to be folders are not counted; any other non-hidden entry is.
        let cap = self.limits.max_images_per_exam as usize;
        let (dir, names) = list_dir(dir, cap, |name, is_dir| !name.starts_with(b".") && !is_dir)
            .map_err(dir_err)?;
        let Listing::Names(names) = names else {
            return Err(self.over(tpl, Limit::ImagesPerExam));
        };
        // Under the batch's label: `rel_path` and `missing_images` never hold the folder's
        // name (they do hold the 検査ID and file names, and stay in the encrypted spool).
        let rel_dir = format!("{}/{rel}", self.batch.label);
        let entry_tpl = format!("{tpl}/(an entry)");
        let (mut files, mut odd) = (Vec::new(), Vec::new());
        for raw in names {
            match String::from_utf8(raw) {
                Ok(name) => files.push(name),
                Err(e) => odd.push(e.into_bytes()),
            }
        }
        files.sort_by(|a, b| natural_cmp(a, b));

        let open = |name: &OsStr| match open_entry(dir.as_fd(), Path::new(name)) {
            Ok(Entry::File(f)) => Ok(Some(f)),
            Ok(Entry::Dir(_)) => Ok(None),
            Ok(Entry::Special) => Err(Ok(self.refused(&entry_tpl, Refusal::NotRegularFile))),
            Err(OpenError::Refused(what)) => Err(Ok(self.refused(&entry_tpl, what))),
            Err(OpenError::Io(e)) => Err(Err(e)),
        };
        for raw in odd {
            let shown = String::from_utf8_lossy(&raw).into_owned();
            match open(OsStr::from_bytes(&raw)) {
                Ok(None) => {}
                Ok(Some(_)) | Err(Err(_)) => exam
                    .missing_images
                    .push((format!("{rel_dir}/{shown}"), "file name is not valid UTF-8".into())),
                Err(Ok(refused)) => return Err(refused),
            }
        }
        for name in files {
            let rel_path = format!("{rel_dir}/{name}");
            let f = match open(OsStr::new(&name)) {
                Ok(Some(f)) => f,
                Ok(None) => continue,
                Err(Ok(refused)) => return Err(refused),
                Err(Err(e)) => {
                    exam.missing_images.push((rel_path, format!("cannot read: {}", e.kind())));
                    continue;
                }
            };
            match read_bounded(f, self.limits.max_image_bytes) {
                Ok(Some(bytes)) => {
                    let index = exam.images.len() as u32;
                    exam.images.push(RawImage { index, rel_path, bytes });
                }
                Ok(None) => return Err(self.over(&entry_tpl, Limit::ImageBytes)),
                Err(e) => {
                    exam.missing_images.push((rel_path, format!("cannot read: {}", e.kind())))
                }
            }
        }
        Ok(())
    }

    fn report(&self, id: &str, encoding: TextEncoding) -> Result<Option<String>, ExportError> {
        let tpl = &self.profile.report_file;
        let io_err = |source| ExportError::ReportIo {
            batch: self.batch.label.clone(),
            file: tpl.clone(),
            source_ref: self.source_ref.clone(),
            source,
        };
        let f = match open_file(self.anchor, &self.rel.join(self.profile.report_file_for(id))) {
            Ok(f) => f,
            Err(OpenError::Io(e)) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
            Err(OpenError::Io(e)) => return Err(io_err(e)),
            Err(OpenError::Refused(what)) => return Err(self.refused(tpl, what)),
        };
        let bytes = read_bounded(f, self.limits.max_report_bytes)
            .map_err(io_err)?
            .ok_or_else(|| self.over(tpl, Limit::ReportBytes))?;
        decode(&bytes, encoding).map(Some).map_err(|line| ExportError::ReportUndecodable {
            batch: self.batch.label.clone(),
            file: tpl.clone(),
            source_ref: self.source_ref.clone(),
            encoding,
            line,
        })
    }
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
}
