//! The exam table (`exams.csv` in the reference layout): RFC 4180 rows to [`RawExam`]s, with
//! the vendor profile applied so that fields hold reference vocabulary and forms.

use super::beneath::{open_file, read_bounded, OpenError};
use super::encoding::{decode, detect, TextEncoding};
use super::{BatchDir, ExportError, ExportLimits, Limit};
use fgw_records::profile::{Profile, ProfileEncoding};
use fgw_records::{Column, RawExam, SourceRef};
use std::collections::{BTreeMap, HashMap};
use std::fmt;
use std::io;
use std::os::fd::AsFd;

/// All rows of one batch that could be read, plus the rows that could not.
#[derive(Debug)]
pub struct BatchRows {
    /// The batch's label ([`BatchDir::label`]), never the folder's name.
    pub batch: String,
    /// The table's detected (or profile-given) encoding; attachments are read in it too.
    pub encoding: TextEncoding,
    /// In file order; at most one per 検査ID (the later row wins). No attachments yet.
    pub exams: Vec<RawExam>,
    /// Rows left out, in file order.
    pub errors: Vec<RowError>,
}

/// A problem with one row. The row is left out of [`BatchRows::exams`]; the others go through.
/// `what` is a fixed description: never a value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RowError {
    /// The table under the batch's label, e.g. `batch-3f9c0a1b2c4d/exams.csv`.
    pub file: String,
    /// 1-based data row (the header is row 0).
    pub row: u64,
    /// 1-based physical line where the record starts.
    pub line: u64,
    /// [`Column::key`] of the offending column, if one.
    pub column: Option<&'static str>,
    /// What is wrong, in fixed words.
    pub what: String,
}

impl fmt::Display for RowError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} row {} (line {})", self.file, self.row, self.line)?;
        if let Some(c) = self.column {
            write!(f, " column {c}")?;
        }
        write!(f, ": {}", self.what)
    }
}

impl std::error::Error for RowError {}

/// Whether a 検査ID may be used as a single path component under `images/` and `reports/`.
/// Rejects separators, `..`, drive/stream colons and control characters, so that a crafted
/// row can never make us read outside the batch.
pub fn is_safe_exam_id(id: &str) -> bool {
    !id.is_empty()
        && id != "."
        && !id.contains("..")
        && !id.chars().any(|c| matches!(c, '/' | '\\' | ':' | '\0') || c.is_control())
}

#[derive(Clone)]
enum Slot {
    Known(Column),
    Extra(String),
}

/// [`read_batch_with`] and the default [`ExportLimits`].
pub fn read_batch(batch: &BatchDir, profile: &Profile) -> Result<BatchRows, ExportError> {
    read_batch_with(batch, profile, &ExportLimits::default())
}

/// Read the profile's table of a batch. Fails only when the file as a whole is unusable
/// (missing, a link or not a regular file, over `max_table_bytes`, undecodable, no header, no
/// 検査ID column, ambiguous header); row problems are collected in [`BatchRows::errors`].
/// The batch folder and the table are opened beneath the batch's parent without following
/// links, and at most `max_table_bytes + 1` bytes are read. Errors, rows and
/// [`SourceRef`]s name the batch by its label ([`BatchDir::label`]).
pub fn read_batch_with(
    batch: &BatchDir,
    profile: &Profile,
    limits: &ExportLimits,
) -> Result<BatchRows, ExportError> {
    let file = format!("{}/{}", batch.label, profile.table);
    let io_err = |source: io::Error| {
        if source.kind() == io::ErrorKind::NotFound {
            ExportError::Missing { file: file.clone() }
        } else {
            ExportError::Io { file: file.clone(), source }
        }
    };
    let (anchor, rel) = batch.anchor().map_err(io_err)?;
    let f = open_file(anchor.as_fd(), &rel.join(&profile.table)).map_err(|e| match e {
        OpenError::Refused(what) => ExportError::Refused { path: file.clone(), what },
        OpenError::Io(source) => io_err(source),
    })?;
    let cap = limits.max_table_bytes;
    let bytes = read_bounded(f, cap).map_err(io_err)?.ok_or_else(|| ExportError::OverLimit {
        path: file.clone(),
        limit: Limit::TableBytes,
        cap,
    })?;
    parse_batch_bytes(&batch.label, &bytes, profile)
}

/// The bytes of a batch's table (`exams.csv`) → rows: encoding detection (or the profile's),
/// strict decoding, RFC 4180 parsing, the profile's mapping. `batch` is the batch's label
/// ([`BatchDir::label`]), used in [`SourceRef`]s and errors. This is what [`read_batch`]
/// does once the file is read; the fuzz target and the mutation test call it directly.
pub fn parse_batch_bytes(
    batch: &str,
    bytes: &[u8],
    profile: &Profile,
) -> Result<BatchRows, ExportError> {
    let file = format!("{batch}/{}", profile.table);
    let encoding = table_encoding(bytes, profile.encoding);
    let text = decode(bytes, encoding).map_err(|line| ExportError::Undecodable {
        file: file.clone(),
        encoding,
        line,
    })?;
    parse_table(batch, &file, &text, profile).map(|(exams, errors)| BatchRows {
        batch: batch.to_owned(),
        encoding,
        exams,
        errors,
    })
}

/// The encoding to decode with: the profile's, except that a UTF-8 BOM always wins (as in
/// [`decode`]), so the reported encoding matches what was done.
fn table_encoding(bytes: &[u8], declared: ProfileEncoding) -> TextEncoding {
    match (detect(bytes), declared) {
        (TextEncoding::Utf8Bom, _) => TextEncoding::Utf8Bom,
        (detected, ProfileEncoding::Auto) => detected,
        (_, ProfileEncoding::Utf8) => TextEncoding::Utf8,
        (_, ProfileEncoding::Cp932) => TextEncoding::Cp932,
    }
}

type Parsed = (Vec<RawExam>, Vec<RowError>);

/// Parse decoded CSV text. `file` is the table under the batch's label, used in errors.
fn parse_table(
    batch: &str,
    file: &str,
    text: &str,
    profile: &Profile,
) -> Result<Parsed, ExportError> {
    let delimiter = profile.delimiter_for(text.lines().next().unwrap_or(""));
    let unbalanced_at = unbalanced_quote_offset(text, delimiter);
    let lines = LineIndex::new(text);
    let mut rdr = csv::ReaderBuilder::new()
        .has_headers(false)
        .flexible(true)
        .delimiter(delimiter)
        .from_reader(text.as_bytes());

    let mut record = csv::StringRecord::new();
    let read = |rdr: &mut csv::Reader<&[u8]>, record: &mut csv::StringRecord| {
        rdr.read_record(record).map_err(|e| ExportError::Csv {
            file: file.to_owned(),
            // Only the position is kept: csv errors may quote field content.
            line: e.position().map_or(0, |p| lines.line_of(p.byte())),
        })
    };

    if !read(&mut rdr, &mut record)? || is_blank(&record) {
        return Err(ExportError::NoHeader { file: file.to_owned() });
    }
    if unbalanced_at.is_some_and(|at| at < rdr.position().byte() as usize) {
        return Err(ExportError::Csv {
            file: file.to_owned(),
            line: record.position().map_or(1, |p| lines.line_of(p.byte())),
        });
    }
    let slots = header_slots(file, &record, profile)?;

    let mut exams: Vec<Option<RawExam>> = Vec::new();
    let mut errors = Vec::new();
    let mut by_id: HashMap<String, usize> = HashMap::new();
    let mut row = 0u64;
    while read(&mut rdr, &mut record)? {
        if is_blank(&record) {
            continue;
        }
        row += 1;
        let pos = record.position().cloned().unwrap_or_else(csv::Position::new);
        let line = lines.line_of(pos.byte());
        let err = |column: Option<&'static str>, what: String| RowError {
            file: file.to_owned(),
            row,
            line,
            column,
            what,
        };
        // The record holding an unclosed quote swallowed the rest of the file.
        let end = rdr.position().byte() as usize;
        if unbalanced_at.is_some_and(|at| (pos.byte() as usize..end).contains(&at)) {
            errors.push(err(
                None,
                "quoted field is never closed; this row and everything after it is unreadable"
                    .into(),
            ));
            break;
        }
        if record.len() != slots.len() {
            errors.push(err(
                None,
                format!("expected {} fields, found {}; row skipped", slots.len(), record.len()),
            ));
            continue;
        }
        let mut fields = BTreeMap::new();
        let mut extra = BTreeMap::new();
        for (slot, value) in slots.iter().zip(record.iter()) {
            let value = value.trim();
            match slot {
                Slot::Known(c) => {
                    fields.insert(*c, profile.map_value(*c, value));
                }
                Slot::Extra(name) => {
                    extra.insert(name.clone(), value.to_owned());
                }
            }
        }
        let id = fields.get(&Column::ExamId).cloned().unwrap_or_default();
        if id.is_empty() {
            errors.push(err(Some(Column::ExamId.key()), "empty; row skipped".into()));
            continue;
        }
        if !is_safe_exam_id(&id) {
            errors.push(err(
                Some(Column::ExamId.key()),
                "contains a path separator, `..` or a control character; row skipped".into(),
            ));
            continue;
        }
        let exam = RawExam {
            source: SourceRef { batch: batch.to_owned(), file: file.to_owned(), row, line },
            fields,
            extra,
            images: Vec::new(),
            missing_images: Vec::new(),
            report: None,
        };
        if let Some(prev) = by_id.insert(id, exams.len()) {
            if let Some(old) = exams[prev].take() {
                errors.push(RowError {
                    file: file.to_owned(),
                    row: old.source.row,
                    line: old.source.line,
                    column: Some(Column::ExamId.key()),
                    what: format!("duplicate exam_id in this batch; superseded by row {row}"),
                });
            }
        }
        exams.push(Some(exam));
    }
    // Duplicates are found late; report in file order.
    errors.sort_by_key(|e| e.row);
    Ok((exams.into_iter().flatten().collect(), errors))
}

/// Record start offset → 1-based physical line. csv reports a record as starting right after
/// the previous record's `\r` (its `Position::line` lags on CRLF input), so line ends and
/// blank lines in front of the first field are skipped here.
struct LineIndex<'a> {
    text: &'a [u8],
    newlines: Vec<usize>,
}

impl<'a> LineIndex<'a> {
    fn new(text: &'a str) -> Self {
        let text = text.as_bytes();
        let newlines =
            text.iter().enumerate().filter(|&(_, &b)| b == b'\n').map(|(i, _)| i).collect();
        LineIndex { text, newlines }
    }

    fn line_of(&self, byte: u64) -> u64 {
        let mut at = (byte as usize).min(self.text.len());
        while at < self.text.len() && matches!(self.text[at], b'\r' | b'\n') {
            at += 1;
        }
        1 + self.newlines.partition_point(|&nl| nl < at) as u64
    }
}

fn is_blank(r: &csv::StringRecord) -> bool {
    r.iter().all(|f| f.trim().is_empty())
}

fn header_slots(
    file: &str,
    header: &csv::StringRecord,
    profile: &Profile,
) -> Result<Vec<Slot>, ExportError> {
    let mut slots = Vec::with_capacity(header.len());
    let mut seen_known = Vec::new();
    let mut seen_extra: Vec<String> = Vec::new();
    for (i, h) in header.iter().enumerate() {
        let dup = |column| ExportError::DuplicateColumn {
            file: file.to_owned(),
            position: i + 1,
            column,
        };
        if let Some(c) = profile.column_for_header(h) {
            if seen_known.contains(&c) {
                return Err(dup(c.key()));
            }
            seen_known.push(c);
            slots.push(Slot::Known(c));
        } else {
            let name = h.trim().trim_start_matches('\u{feff}').trim();
            // A nameless column (e.g. a trailing comma) still must not vanish silently.
            let name = if name.is_empty() { format!("#{}", i + 1) } else { name.to_owned() };
            if seen_extra.contains(&name) {
                return Err(dup("extra"));
            }
            seen_extra.push(name.clone());
            slots.push(Slot::Extra(name));
        }
    }
    if !seen_known.contains(&Column::ExamId) {
        return Err(ExportError::MissingColumn {
            file: file.to_owned(),
            column: Column::ExamId.key(),
        });
    }
    Ok(slots)
}

/// Byte offset of an opening quote that is never closed, following csv-core's rules
/// (a quote opens a quoted field only at the start of a field; `""` inside is an escape).
/// csv-core itself silently runs such a field to end of file.
fn unbalanced_quote_offset(text: &str, delimiter: u8) -> Option<usize> {
    #[derive(Clone, Copy)]
    enum St {
        Start,
        Unquoted,
        Quoted(usize),
        QuoteInQuoted(usize),
    }
    let mut st = St::Start;
    for (i, b) in text.bytes().enumerate() {
        st = match (st, b) {
            (St::Start, b'"') => St::Quoted(i),
            (St::Start | St::Unquoted | St::QuoteInQuoted(_), b'\r' | b'\n') => St::Start,
            (St::Start | St::Unquoted | St::QuoteInQuoted(_), d) if d == delimiter => St::Start,
            (St::Start | St::Unquoted, _) => St::Unquoted,
            (St::Quoted(o), b'"') => St::QuoteInQuoted(o),
            (St::Quoted(o), _) => St::Quoted(o),
            (St::QuoteInQuoted(o), b'"') => St::Quoted(o),
            (St::QuoteInQuoted(_), _) => St::Unquoted,
        };
    }
    match st {
        St::Quoted(o) => Some(o),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const HEADER: &str = "検査ID,患者ID,所見";

    fn parse(body: &str) -> Parsed {
        table(&format!("{HEADER}\r\n{body}")).unwrap()
    }

    fn table(text: &str) -> Result<Parsed, ExportError> {
        parse_table("B", "B/exams.csv", text, &Profile::reference())
    }

    #[test]
    fn multiline_quotes_and_lines() {
        let (exams, errors) =
            parse("E1,001,\"一行目\r\n二行目 \"\"引用\"\"\"\r\nE2, 002 ,x\r\n\r\nE3,003,\r\n");
        assert!(errors.is_empty(), "{errors:?}");
        assert_eq!(exams.len(), 3);
        assert_eq!(exams[0].fields[&Column::Findings], "一行目\r\n二行目 \"引用\"");
        assert_eq!((exams[0].source.row, exams[0].source.line), (1, 2));
        assert_eq!((exams[1].source.row, exams[1].source.line), (2, 4));
        assert_eq!(exams[1].fields[&Column::PatientId], "002");
        // blank line skipped, not counted as a row
        assert_eq!((exams[2].source.row, exams[2].source.line), (3, 6));
        assert_eq!(exams[2].get(Column::Findings), None);
    }

    #[test]
    fn unbalanced_quote_at_eof() {
        let (exams, errors) = parse("E1,001,ok\r\nE2,002,\"never closed\r\nE3,003,x\r\n");
        assert_eq!(exams.len(), 1);
        assert_eq!(errors.len(), 1);
        assert_eq!((errors[0].row, errors[0].line), (2, 3));
        assert!(errors[0].what.contains("never closed"));
    }

    #[test]
    fn unbalanced_detector() {
        assert_eq!(unbalanced_quote_offset("a,\"b\"\"c\"\n", b','), None);
        assert_eq!(unbalanced_quote_offset("a,b\"c\n", b','), None);
        assert_eq!(unbalanced_quote_offset("a,\"b\nc", b','), Some(2));
        assert_eq!(unbalanced_quote_offset("\"a\"x,\"\n", b','), Some(5));
        assert_eq!(unbalanced_quote_offset("a\t\"b\nc", b'\t'), Some(2));
        assert_eq!(unbalanced_quote_offset("a,\"b\nc", b'\t'), None);
    }

    #[test]
    fn duplicate_exam_id_later_wins() {
        let (exams, errors) = parse("E1,001,old\r\nE2,002,x\r\nE1,001,new\r\n");
        assert_eq!(exams.len(), 2);
        assert_eq!(exams[1].fields[&Column::Findings], "new");
        assert_eq!(exams[1].source.row, 3);
        assert_eq!(errors.len(), 1);
        assert_eq!((errors[0].row, errors[0].column), (1, Some("exam_id")));
        assert!(!errors[0].to_string().contains("E1"));
    }

    #[test]
    fn header_problems() {
        let e = table("患者ID,所見\r\n1,2\r\n").unwrap_err();
        assert!(matches!(e, ExportError::MissingColumn { .. }));
        let e = table("検査ID,検査ID\r\n").unwrap_err();
        assert!(matches!(e, ExportError::DuplicateColumn { position: 2, .. }));
        let e = table("").unwrap_err();
        assert!(matches!(e, ExportError::NoHeader { .. }));
        let e = table("\r\n\r\n").unwrap_err();
        assert!(matches!(e, ExportError::NoHeader { .. }));
    }

    #[test]
    fn nameless_extra_column() {
        let (exams, _) = table("検査ID,\r\nE1,v\r\n").unwrap();
        assert_eq!(exams[0].extra["#2"], "v");
    }

    #[test]
    fn safe_ids() {
        assert!(is_safe_exam_id("E2026112500123"));
        assert!(is_safe_exam_id("Ｅ２０２６"));
        for bad in ["", ".", "..", "../x", "a/b", "a\\b", "C:x", "a\nb", "a..b"] {
            assert!(!is_safe_exam_id(bad), "{bad:?}");
        }
    }
}
