//! Writing a planned batch: report files, images with their metadata, and the table.

use crate::imaging::{self, exif_payload, jpeg_insert_segment, png_insert_text, Fov};
use crate::overlay;
use crate::plan::{era_short, Planned};
use crate::rng::Rng;
use crate::{SynthEncoding, SynthExam, SynthImage, SynthOptions, SynthOverlay};
use chrono::{NaiveDate, NaiveTime};
use encoding_rs::SHIFT_JIS;
use fgw_records::profile::{DateFormat, Profile};
use fgw_records::{Column, ColumnClass};
use std::collections::BTreeSet;
use std::fs;
use std::io;
use std::path::Path;

pub(crate) fn encode_text(text: &str, enc: SynthEncoding) -> io::Result<Vec<u8>> {
    match enc {
        SynthEncoding::Utf8 => Ok(text.as_bytes().to_vec()),
        SynthEncoding::Utf8Bom => {
            let mut v = b"\xEF\xBB\xBF".to_vec();
            v.extend_from_slice(text.as_bytes());
            Ok(v)
        }
        SynthEncoding::Cp932 => {
            let (bytes, _, unmappable) = SHIFT_JIS.encode(text);
            if unmappable {
                // encoding_rs would silently write &#NNNN; escapes instead.
                return Err(io::Error::new(
                    io::ErrorKind::InvalidData,
                    "synthetic text not representable in CP932",
                ));
            }
            Ok(bytes.into_owned())
        }
    }
}

/// Rewrite the reference cells of `exam` into the profile's forms (identity for the reference
/// profile), adding the new written forms of identifiers to `exam.identifiers`.
pub(crate) fn to_layout(profile: &Profile, exam: &mut SynthExam) {
    let date_of = |iso: &str| NaiveDate::parse_from_str(iso, "%Y-%m-%d").ok();
    let (birth, exam_date) = (date_of(&exam.birth_date), date_of(&exam.exam_date));
    let mut ids: BTreeSet<String> = exam.identifiers.iter().cloned().collect();
    for c in Column::ALL {
        let Some(cell) = exam.fields.get_mut(c.key()) else { continue };
        let reverse = |v: &str| -> String {
            profile
                .value_table(c)
                .and_then(|t| t.iter().find(|(_, r)| r.as_str() == v))
                .map_or_else(|| v.to_owned(), |(code, _)| code.clone())
        };
        let chrono_date = profile.date_formats(c).iter().find_map(|f| match f {
            DateFormat::Chrono(f) => Some(f.clone()),
            DateFormat::Era => None,
        });
        let new = if let Some(f) = chrono_date {
            let d = if c == Column::BirthDate { birth } else { exam_date };
            d.map_or_else(|| cell.clone(), |d| d.format(&f).to_string())
        } else if let Some(f) = profile.time_formats(c).first() {
            NaiveTime::parse_from_str(cell, "%H:%M")
                .map_or_else(|_| cell.clone(), |t| t.format(f).to_string())
        } else if c.class() == ColumnClass::Terms {
            let sep = &profile.term_separators()[0];
            if sep == ";" && profile.value_table(c).is_none() {
                cell.clone()
            } else {
                cell.split(';').map(|t| reverse(t.trim())).collect::<Vec<_>>().join(sep)
            }
        } else if c == Column::Sex && profile.value_table(c).is_some() {
            // The reference synth writes 男/M/1; vendor codes exist for one spelling only.
            let canonical = if matches!(cell.as_str(), "男" | "M" | "1") { "男" } else { "女" };
            reverse(canonical)
        } else {
            reverse(cell)
        };
        if c.class() == ColumnClass::DirectIdentifier && !new.is_empty() {
            ids.insert(new.clone());
        }
        *cell = new;
    }
    exam.identifiers = ids.into_iter().collect();
}

/// `rel` (`/`-separated, from a validated profile) below `base`.
fn under(base: &Path, rel: &str) -> std::path::PathBuf {
    rel.split('/').fold(base.to_path_buf(), |p, c| p.join(c))
}

pub(crate) fn write_exam(
    dir: &Path,
    opts: &SynthOptions,
    profile: &Profile,
    p: Planned,
) -> io::Result<SynthExam> {
    let Planned { mut exam, report_text, romaji, kanji } = p;
    if let Some(text) = report_text {
        let path = under(dir, &profile.report_file_for(&exam.exam_id));
        if let Some(parent) = path.parent() {
            fs::create_dir_all(parent)?;
        }
        fs::write(path, encode_text(&text, opts.encoding)?)?;
    }
    if opts.images_per_exam == 0 {
        return Ok(exam);
    }
    let rel_dir = profile.images_dir_for(&exam.exam_id);
    let img_dir = under(dir, &rel_dir);
    fs::create_dir_all(&img_dir)?;
    let mut exam_rng = Rng::derive(opts.seed, exam.row, 0);
    let fov = if exam_rng.chance(0.5) { Fov::Circle } else { Fov::Octagon };
    let pid = exam.patient_id.clone();
    let to_io = |e: image::ImageError| io::Error::other(e.to_string());
    let font = match opts.overlay {
        SynthOverlay::None => None,
        SynthOverlay::Processor => Some(
            overlay::system_font(overlay::FontChoice::NotoSansCjkJp)
                .map_err(|e| io::Error::other(e.to_string()))?,
        ),
    };
    let lines = [
        format!("ID:{pid}"),
        romaji.clone(),
        NaiveDate::parse_from_str(&exam.birth_date, "%Y-%m-%d").map(era_short).unwrap_or_default(),
        exam.exam_date.replace('-', "/"),
    ];
    for n in 1..=opts.images_per_exam as u64 {
        let mut rng = Rng::derive(opts.seed, exam.row, n);
        let mut img = imaging::render(&mut rng, opts.width, opts.height, fov);
        if let Some(font) = &font {
            let px = (opts.height as f32 / 22.0).max(12.0);
            for (i, line) in lines.iter().enumerate() {
                let y = (px * 1.2) as i32 + (i as f32 * px * 1.5) as i32;
                overlay::draw_text(&mut img, font, px, 10, y, line, [235, 235, 235]);
            }
        }
        let png = rng.chance(0.15);
        let mut meta =
            SynthImage { rel_path: String::new(), exif: false, com: false, text_chunk: false };
        let bytes = if png {
            let mut b = imaging::encode_png(&img).map_err(to_io)?;
            if rng.chance(0.5) {
                b = png_insert_text(&b, "Comment", &format!("{romaji} ID {pid}"));
                meta.text_chunk = true;
            }
            b
        } else {
            let mut b = imaging::encode_jpeg(&img, 85).map_err(to_io)?;
            if rng.chance(1.0 / 3.0) {
                let which = rng.below(3);
                if which != 1 {
                    let payload = exif_payload(&format!("Patient: {romaji} ID {pid}"), &romaji);
                    b = jpeg_insert_segment(&b, 0xE1, &payload);
                    meta.exif = true;
                }
                if which != 0 {
                    let com = if rng.chance(0.5) {
                        format!("Patient: {romaji} ID {pid}")
                    } else {
                        format!("患者: {kanji} ID {pid}")
                    };
                    b = jpeg_insert_segment(&b, 0xFE, com.as_bytes());
                    meta.com = true;
                }
            }
            b
        };
        let name = format!("{n}.{}", if png { "png" } else { "jpg" });
        fs::write(img_dir.join(&name), bytes)?;
        meta.rel_path = format!("{}/{rel_dir}/{name}", opts.batch);
        exam.images.push(meta);
    }
    Ok(exam)
}

pub(crate) fn write_table(
    path: &Path,
    exams: &[SynthExam],
    opts: &SynthOptions,
    profile: &Profile,
) -> io::Result<()> {
    let enc = opts.encoding;
    let mut w = csv::WriterBuilder::new()
        .terminator(opts.layout.terminator())
        .delimiter(profile.delimiters[0])
        .from_writer(Vec::new());
    let to_io = |e: csv::Error| io::Error::other(e.to_string());
    // Columns the profile does not map are not written (every built-in maps all 23).
    let cols: Vec<(Column, &str)> = Column::ALL
        .iter()
        .filter_map(|&c| profile.headers(c).first().map(|h| (c, h.as_str())))
        .collect();
    w.write_record(cols.iter().map(|(_, h)| *h)).map_err(to_io)?;
    for e in exams {
        w.write_record(cols.iter().map(|(c, _)| e.fields[c.key()].as_str())).map_err(to_io)?;
    }
    let bytes = w.into_inner().map_err(|e| io::Error::other(e.to_string()))?;
    let text = String::from_utf8(bytes)
        .map_err(|_| io::Error::new(io::ErrorKind::InvalidData, "csv output not UTF-8"))?;
    fs::write(path, encode_text(&text, enc)?)
}
