//! Vendor mapping profiles: how one department system's export maps onto the reference layout
//! (`docs/department-export.md`). A profile is configuration (TOML), not code; its format is
//! documented at the top of `profiles/reference.toml`.
//!
//! Ingest applies the profile so that [`RawExam`](super::RawExam) fields always hold reference
//! vocabulary and forms, whatever the vendor: the gate knows only the reference. Anything a
//! profile cannot map passes through unchanged, so the gate flags it rather than the profile
//! guessing.
//!
//! Errors name the profile and the key, never a cell value (profiles hold no personal data,
//! but the values they are applied to do).

use super::{Column, ColumnClass};
use chrono::format::{Item, StrftimeItems};
use chrono::{NaiveDate, NaiveTime};
use serde::Deserialize;
use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::Path;
use std::sync::OnceLock;
use unicode_normalization::UnicodeNormalization;

/// Built-in profiles, embedded so the appliance works without a profile file.
const BUILTIN: [(&str, &str); 2] = [
    ("reference", include_str!("../../../profiles/reference.toml")),
    ("vendor-b", include_str!("../../../profiles/vendor-b.toml")),
];

/// Placeholder for the 検査ID in `images_dir` and `report_file`.
pub const EXAM_ID_PLACEHOLDER: &str = "{exam_id}";

/// Why a profile could not be loaded.
#[derive(Debug, thiserror::Error)]
#[allow(missing_docs)] // variants and fields: the error message says what each is
pub enum ProfileError {
    #[error("profile {profile}: cannot read: {source}")]
    Read {
        profile: String,
        #[source]
        source: std::io::Error,
    },
    /// TOML syntax or type errors; the message quotes the profile file, never export data.
    #[error("profile {profile}: {message}")]
    Parse { profile: String, message: String },
    #[error("profile {profile}: key `{key}`: {what}")]
    Invalid { profile: String, key: String, what: String },
    #[error("profile `{name}` is neither a built-in profile ({known}) nor an existing file")]
    Unknown { name: String, known: String },
}

/// How the table and reports are decoded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ProfileEncoding {
    /// UTF-8 with BOM, else valid UTF-8, else CP932.
    Auto,
    /// CP932 (Windows-31J) only.
    Cp932,
    /// UTF-8 only (a BOM is dropped).
    Utf8,
}

/// One entry of a `[dates]` list.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DateFormat {
    /// A chrono format such as `%Y%m%d`.
    Chrono(String),
    /// Era and other reference forms: left to the gate's parser.
    Era,
}

/// A validated vendor mapping profile.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Profile {
    /// The profile's `id` key.
    pub id: String,
    /// Free text from the profile file.
    pub description: String,
    /// How the table and reports are decoded.
    pub encoding: ProfileEncoding,
    /// Candidate field delimiters (ASCII); with several, the header line decides.
    pub delimiters: Vec<u8>,
    /// Table file name inside a batch folder.
    pub table: String,
    /// File written last by the exporter.
    pub done_marker: String,
    /// Relative to the batch folder, `/`-separated, with [`EXAM_ID_PLACEHOLDER`].
    pub images_dir: String,
    /// Relative to the batch folder, `/`-separated, with [`EXAM_ID_PLACEHOLDER`].
    pub report_file: String,
    columns: BTreeMap<Column, Vec<String>>,
    values: BTreeMap<Column, BTreeMap<String, String>>,
    dates: BTreeMap<Column, Vec<DateFormat>>,
    times: BTreeMap<Column, Vec<String>>,
    term_separators: Vec<String>,
}

impl Default for Profile {
    fn default() -> Self {
        Profile::reference()
    }
}

#[derive(Deserialize)]
#[serde(untagged)]
enum OneOrMany {
    One(String),
    Many(Vec<String>),
}

impl OneOrMany {
    fn into_vec(self) -> Vec<String> {
        match self {
            OneOrMany::One(s) => vec![s],
            OneOrMany::Many(v) => v,
        }
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawProfile {
    id: String,
    #[serde(default)]
    description: String,
    encoding: Option<String>,
    delimiter: Option<OneOrMany>,
    table: Option<String>,
    done_marker: Option<String>,
    images_dir: Option<String>,
    report_file: Option<String>,
    term_separator: Option<OneOrMany>,
    columns: BTreeMap<String, OneOrMany>,
    #[serde(default)]
    values: BTreeMap<String, BTreeMap<String, String>>,
    #[serde(default)]
    dates: BTreeMap<String, OneOrMany>,
    #[serde(default)]
    times: BTreeMap<String, OneOrMany>,
}

impl Profile {
    /// The text of the built-in profile `name`, as embedded (a policy bundle carries it).
    pub fn builtin_source(name: &str) -> Option<&'static str> {
        BUILTIN.iter().find(|(n, _)| *n == name).map(|(_, text)| *text)
    }

    /// Names of the built-in profiles, for `export.profile`.
    pub fn builtin_names() -> Vec<&'static str> {
        BUILTIN.iter().map(|(n, _)| *n).collect()
    }

    /// The reference layout of `docs/department-export.md`.
    pub fn reference() -> Profile {
        static REFERENCE: OnceLock<Profile> = OnceLock::new();
        REFERENCE
            .get_or_init(|| {
                // The embedded file is checked by the unit tests; failing here is a build bug.
                Profile::builtin("reference").expect("built-in reference profile is valid")
            })
            .clone()
    }

    /// A profile shipped in the binary, by name.
    pub fn builtin(name: &str) -> Result<Profile, ProfileError> {
        let (_, text) = BUILTIN.iter().find(|(n, _)| *n == name).ok_or_else(|| {
            ProfileError::Unknown { name: name.to_owned(), known: Self::builtin_names().join(", ") }
        })?;
        Profile::from_toml(name, text)
    }

    /// A profile file.
    pub fn load(path: &Path) -> Result<Profile, ProfileError> {
        let origin = path.display().to_string();
        let text = std::fs::read_to_string(path)
            .map_err(|source| ProfileError::Read { profile: origin.clone(), source })?;
        Profile::from_toml(&origin, &text)
    }

    /// The value of `export.profile`: a built-in name, else a file path (relative paths are
    /// relative to `base`, the configuration file's folder).
    pub fn from_setting(setting: &str, base: &Path) -> Result<Profile, ProfileError> {
        if BUILTIN.iter().any(|(n, _)| *n == setting) {
            return Profile::builtin(setting);
        }
        let path = base.join(setting);
        if !path.is_file() {
            return Err(ProfileError::Unknown {
                name: setting.to_owned(),
                known: Self::builtin_names().join(", "),
            });
        }
        Profile::load(&path)
    }

    /// Parse and validate. `origin` (built-in name or file path) names the profile in errors
    /// until its `id` is known.
    pub fn from_toml(origin: &str, text: &str) -> Result<Profile, ProfileError> {
        let raw: RawProfile = toml::from_str(text).map_err(|e| ProfileError::Parse {
            profile: origin.to_owned(),
            message: e.to_string(),
        })?;
        let id = raw.id.trim().to_owned();
        let label = if id.is_empty() || id == origin {
            origin.to_owned()
        } else {
            format!("{id} ({origin})")
        };
        let bad = |key: &str, what: String| ProfileError::Invalid {
            profile: label.clone(),
            key: key.to_owned(),
            what,
        };
        if id.is_empty() || id.chars().any(char::is_control) {
            return Err(bad("id", "must be a non-empty name".into()));
        }

        let encoding = match raw.encoding.as_deref().unwrap_or("auto") {
            "auto" => ProfileEncoding::Auto,
            "cp932" => ProfileEncoding::Cp932,
            "utf-8" => ProfileEncoding::Utf8,
            _ => return Err(bad("encoding", "unknown encoding; use auto, cp932 or utf-8".into())),
        };

        let delimiters = raw.delimiter.map_or_else(|| vec![",".into()], OneOrMany::into_vec);
        if delimiters.is_empty() {
            return Err(bad("delimiter", "empty list".into()));
        }
        let mut delims = Vec::new();
        for d in &delimiters {
            match d.as_bytes() {
                [b] if b.is_ascii() && !matches!(b, b'"' | b'\r' | b'\n') => delims.push(*b),
                _ => {
                    return Err(bad(
                        "delimiter",
                        "each delimiter must be one ASCII character other than a quote or line end"
                            .into(),
                    ))
                }
            }
        }

        let table = file_name(&bad, "table", raw.table.unwrap_or_else(|| "exams.csv".into()))?;
        let done_marker =
            file_name(&bad, "done_marker", raw.done_marker.unwrap_or_else(|| "DONE".into()))?;
        let images_dir = template(
            &bad,
            "images_dir",
            raw.images_dir.unwrap_or_else(|| "images/{exam_id}".into()),
        )?;
        let report_file = template(
            &bad,
            "report_file",
            raw.report_file.unwrap_or_else(|| "reports/{exam_id}.txt".into()),
        )?;

        let term_separators =
            raw.term_separator.map_or_else(|| vec![";".into()], OneOrMany::into_vec);
        if term_separators.is_empty() || term_separators.iter().any(|s| s.trim().is_empty()) {
            return Err(bad("term_separator", "empty separator".into()));
        }

        let mut columns: BTreeMap<Column, Vec<String>> = BTreeMap::new();
        let mut header_owner: BTreeMap<String, Column> = BTreeMap::new();
        for (k, names) in raw.columns {
            let key = format!("columns.{k}");
            let c = column_key(&bad, &key, &k)?;
            let names: Vec<String> =
                names.into_vec().into_iter().map(|n| n.trim().to_owned()).collect();
            if names.is_empty() || names.iter().any(String::is_empty) {
                return Err(bad(&key, "empty mapping: give the vendor header name".into()));
            }
            for n in &names {
                if let Some(other) = header_owner.insert(n.to_ascii_uppercase(), c) {
                    if other != c {
                        return Err(bad(
                            &key,
                            format!("header name also mapped to {}", other.key()),
                        ));
                    }
                }
            }
            columns.insert(c, names);
        }
        if !columns.contains_key(&Column::ExamId) {
            return Err(bad("columns.exam_id", "missing: every profile must map exam_id".into()));
        }

        let mut values = BTreeMap::new();
        for (k, table) in raw.values {
            let key = format!("values.{k}");
            let c = column_key(&bad, &key, &k)?;
            if !matches!(c.class(), ColumnClass::Categorical | ColumnClass::Terms) {
                return Err(bad(
                    &key,
                    "value tables apply to categorical and term columns only".into(),
                ));
            }
            mapped(&bad, &key, &columns, c)?;
            if table.is_empty() {
                return Err(bad(&key, "empty mapping".into()));
            }
            let table = table
                .into_iter()
                .map(|(v, r)| (v.trim().to_owned(), r.trim().to_owned()))
                .collect();
            values.insert(c, table);
        }

        let mut dates = BTreeMap::new();
        for (k, fmts) in raw.dates {
            let key = format!("dates.{k}");
            let c = column_key(&bad, &key, &k)?;
            if !matches!(c, Column::BirthDate | Column::ExamDate) {
                return Err(bad(&key, "not a date column (birth_date, exam_date)".into()));
            }
            mapped(&bad, &key, &columns, c)?;
            let fmts = fmts.into_vec();
            if fmts.is_empty() {
                return Err(bad(&key, "empty list of formats".into()));
            }
            let mut out = Vec::new();
            for f in fmts {
                if f == "era" {
                    out.push(DateFormat::Era);
                } else if date_format_ok(&f) {
                    out.push(DateFormat::Chrono(f));
                } else {
                    return Err(bad(
                        &key,
                        format!(
                            "format `{f}` is not a chrono date format giving year, month and day"
                        ),
                    ));
                }
            }
            dates.insert(c, out);
        }

        let mut times = BTreeMap::new();
        for (k, fmts) in raw.times {
            let key = format!("times.{k}");
            let c = column_key(&bad, &key, &k)?;
            if c != Column::ExamStartTime {
                return Err(bad(&key, "not a time column (exam_start_time)".into()));
            }
            mapped(&bad, &key, &columns, c)?;
            let fmts = fmts.into_vec();
            if fmts.is_empty() {
                return Err(bad(&key, "empty list of formats".into()));
            }
            if let Some(f) = fmts.iter().find(|f| !time_format_ok(f)) {
                return Err(bad(
                    &key,
                    format!("format `{f}` is not a chrono time format giving hour and minute"),
                ));
            }
            times.insert(c, fmts);
        }

        Ok(Profile {
            id,
            description: raw.description,
            encoding,
            delimiters: delims,
            table,
            done_marker,
            images_dir,
            report_file,
            columns,
            values,
            dates,
            times,
            term_separators,
        })
    }

    /// The reference column a vendor header names, if any (surrounding spaces and a BOM are
    /// ignored; ASCII case is not significant, as exporters differ in it).
    pub fn column_for_header(&self, header: &str) -> Option<Column> {
        let h = header.trim().trim_start_matches('\u{feff}').trim();
        self.columns
            .iter()
            .find(|(_, names)| names.iter().any(|n| n.eq_ignore_ascii_case(h)))
            .map(|(c, _)| *c)
    }

    /// Vendor header names of a column (first = the one exporters write); empty if unmapped.
    pub fn headers(&self, c: Column) -> &[String] {
        self.columns.get(&c).map_or(&[], Vec::as_slice)
    }

    /// The `[values.<key>]` table of a column (vendor code → reference value).
    pub fn value_table(&self, c: Column) -> Option<&BTreeMap<String, String>> {
        self.values.get(&c)
    }

    /// The `[dates]` forms of a column, in the order they are tried.
    pub fn date_formats(&self, c: Column) -> &[DateFormat] {
        self.dates.get(&c).map_or(&[], Vec::as_slice)
    }

    /// The `[times]` forms of a column, in the order they are tried.
    pub fn time_formats(&self, c: Column) -> &[String] {
        self.times.get(&c).map_or(&[], Vec::as_slice)
    }

    /// The separators between items of a term column (`term_separator`, default `;`).
    pub fn term_separators(&self) -> &[String] {
        &self.term_separators
    }

    /// The delimiter of a table whose first line is `header_line`: the only candidate, or the
    /// candidate occurring most often in the header (ties: the first listed).
    pub fn delimiter_for(&self, header_line: &str) -> u8 {
        let mut best = self.delimiters[0];
        let mut best_n = 0;
        for &d in &self.delimiters {
            let n = header_line.bytes().filter(|&b| b == d).count();
            if n > best_n {
                best = d;
                best_n = n;
            }
        }
        best
    }

    /// `images_dir` for one exam (the caller checks the id is a safe path component).
    pub fn images_dir_for(&self, exam_id: &str) -> String {
        self.images_dir.replace(EXAM_ID_PLACEHOLDER, exam_id)
    }

    /// `report_file` for one exam (the caller checks the id is a safe path component).
    pub fn report_file_for(&self, exam_id: &str) -> String {
        self.report_file.replace(EXAM_ID_PLACEHOLDER, exam_id)
    }

    /// A vendor cell (already trimmed) in reference form: codes through `[values]`, dates and
    /// times through their formats, term lists re-joined with `; `. Whatever does not match is
    /// returned unchanged, for the gate to judge.
    pub fn map_value(&self, c: Column, value: &str) -> String {
        if c.class() == ColumnClass::Terms {
            return self.map_terms(c, value);
        }
        if let Some(fmts) = self.dates.get(&c) {
            for f in fmts {
                if let DateFormat::Chrono(f) = f {
                    if let Ok(d) = NaiveDate::parse_from_str(value, f) {
                        return d.format("%Y/%m/%d").to_string();
                    }
                }
            }
            return value.to_owned();
        }
        if let Some(fmts) = self.times.get(&c) {
            for f in fmts {
                if let Ok(t) = NaiveTime::parse_from_str(value, f) {
                    return t.format("%H:%M").to_string();
                }
            }
            return value.to_owned();
        }
        self.lookup(c, value).unwrap_or(value).to_owned()
    }

    fn map_terms(&self, c: Column, value: &str) -> String {
        let reference_only = self.term_separators.iter().all(|s| s == ";");
        if reference_only && !self.values.contains_key(&c) {
            return value.to_owned();
        }
        let mut parts = vec![value];
        for sep in &self.term_separators {
            parts = parts.into_iter().flat_map(|p| p.split(sep.as_str())).collect();
        }
        parts
            .into_iter()
            .map(str::trim)
            .filter(|t| !t.is_empty())
            .map(|t| self.lookup(c, t).unwrap_or(t))
            .collect::<Vec<_>>()
            .join("; ")
    }

    /// Exact match first; then NFKC, because exporters write codes full- or half-width.
    fn lookup(&self, c: Column, value: &str) -> Option<&str> {
        let table = self.values.get(&c)?;
        if let Some(v) = table.get(value) {
            return Some(v);
        }
        let n: String = value.nfkc().collect();
        table.iter().find(|(k, _)| k.nfkc().eq(n.chars())).map(|(_, v)| v.as_str())
    }
}

fn column_key<F>(bad: &F, key: &str, k: &str) -> Result<Column, ProfileError>
where
    F: Fn(&str, String) -> ProfileError,
{
    Column::ALL.iter().copied().find(|c| c.key() == k).ok_or_else(|| {
        let known: Vec<&str> = Column::ALL.iter().map(|c| c.key()).collect();
        bad(key, format!("unknown column key (known: {})", known.join(", ")))
    })
}

fn mapped<F>(
    bad: &F,
    key: &str,
    columns: &BTreeMap<Column, Vec<String>>,
    c: Column,
) -> Result<(), ProfileError>
where
    F: Fn(&str, String) -> ProfileError,
{
    if columns.contains_key(&c) {
        Ok(())
    } else {
        Err(bad(key, format!("column {} is not mapped in [columns]", c.key())))
    }
}

/// A single file name inside the batch folder.
fn file_name<F>(bad: &F, key: &str, v: String) -> Result<String, ProfileError>
where
    F: Fn(&str, String) -> ProfileError,
{
    if safe_component(&v) {
        Ok(v)
    } else {
        Err(bad(key, "must be a single file name (no `/`, `\\`, `..`)".into()))
    }
}

/// A relative `/`-separated path with `{exam_id}`: rendered with a safe id, it stays inside
/// the batch folder.
fn template<F>(bad: &F, key: &str, v: String) -> Result<String, ProfileError>
where
    F: Fn(&str, String) -> ProfileError,
{
    if !v.contains(EXAM_ID_PLACEHOLDER) {
        return Err(bad(key, format!("must contain {EXAM_ID_PLACEHOLDER}")));
    }
    let rest = v.replace(EXAM_ID_PLACEHOLDER, "X");
    if rest.contains(['{', '}']) {
        return Err(bad(key, format!("only the placeholder {EXAM_ID_PLACEHOLDER} is known")));
    }
    if !rest.split('/').all(safe_component) {
        return Err(bad(key, "must be a relative path inside the batch folder".into()));
    }
    Ok(v)
}

fn safe_component(s: &str) -> bool {
    !s.is_empty()
        && s != "."
        && !s.contains("..")
        && !s.chars().any(|c| matches!(c, '/' | '\\' | ':' | '\0') || c.is_control())
}

/// chrono accepts the format and it pins down a whole date (a round trip gives it back).
fn date_format_ok(f: &str) -> bool {
    if f.trim().is_empty() || StrftimeItems::new(f).any(|i| matches!(i, Item::Error)) {
        return false;
    }
    let d = NaiveDate::from_ymd_opt(1987, 11, 23).expect("valid date");
    // A date-time sample, so formats that also carry the time of day (`%Y/%m/%d %H:%M`) pass.
    let sample = d.and_hms_opt(13, 45, 0).expect("valid time");
    let mut s = String::new();
    // write! rather than to_string: a format chrono cannot render must not panic.
    write!(s, "{}", sample.format(f)).is_ok() && NaiveDate::parse_from_str(&s, f) == Ok(d)
}

fn time_format_ok(f: &str) -> bool {
    if f.trim().is_empty() || StrftimeItems::new(f).any(|i| matches!(i, Item::Error)) {
        return false;
    }
    let t = NaiveTime::from_hms_opt(13, 45, 0).expect("valid time");
    let mut s = String::new();
    write!(s, "{}", t.format(f)).is_ok() && NaiveTime::parse_from_str(&s, f) == Ok(t)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn builtins_are_valid_and_reference_is_the_spec() {
        for name in Profile::builtin_names() {
            let p = Profile::builtin(name).unwrap();
            assert_eq!(p.id, name);
        }
        let r = Profile::reference();
        for c in Column::ALL {
            assert_eq!(r.headers(c), [c.header().to_owned()], "{}", c.key());
            assert_eq!(r.column_for_header(c.header()), Some(c));
            // Reference values pass through untouched.
            for v in ["1", "M", "S25.01.02", "早期胃癌 0-Ⅱc;逆流性食道炎", "a; b"] {
                assert_eq!(r.map_value(c, v), v);
            }
        }
        assert_eq!(r.column_for_header("\u{feff} 検査ID "), Some(Column::ExamId));
    }

    #[test]
    fn vendor_b_maps_codes_dates_times_terms() {
        let p = Profile::builtin("vendor-b").unwrap();
        assert_eq!(p.column_for_header("exam_no"), Some(Column::ExamId));
        assert_eq!(p.column_for_header("REMARK"), Some(Column::Comment));
        assert_eq!(p.map_value(Column::Sex, "2"), "女");
        assert_eq!(p.map_value(Column::Sex, "２"), "女");
        assert_eq!(p.map_value(Column::Sex, "3"), "3");
        assert_eq!(p.map_value(Column::BirthDate, "19500102"), "1950/01/02");
        assert_eq!(p.map_value(Column::BirthDate, "S25.01.02"), "S25.01.02");
        assert_eq!(p.map_value(Column::ExamDate, "20261325"), "20261325");
        assert_eq!(p.map_value(Column::ExamStartTime, "0915"), "09:15");
        assert_eq!(
            p.map_value(Column::Diagnoses, "早期胃癌 0-Ⅱc| 逆流性食道炎|"),
            "早期胃癌 0-Ⅱc; 逆流性食道炎"
        );
        assert_eq!(p.map_value(Column::AdverseEvents, "NONE"), "なし");
        assert_eq!(p.map_value(Column::PatientName, "1"), "1");
        assert_eq!(p.delimiter_for("A\tB\tC"), b'\t');
        assert_eq!(p.delimiter_for("A,B,C"), b',');
        assert_eq!(p.images_dir_for("E1"), "img/E1");
        assert_eq!(p.report_file_for("E1"), "txt/E1.txt");
    }

    fn err(text: &str) -> String {
        Profile::from_toml("t.toml", text).unwrap_err().to_string()
    }

    #[test]
    fn validation_names_profile_and_key() {
        let base = "id = \"x\"\n[columns]\nexam_id = \"NO\"\n";
        assert!(Profile::from_toml("t.toml", base).is_ok());
        let e = err("id = \"x\"\n[columns]\nexam_idd = \"NO\"\n");
        assert!(e.contains("x (t.toml)") && e.contains("columns.exam_idd"), "{e}");
        let e = err(&format!("{base}sex = []\n"));
        assert!(e.contains("columns.sex") && e.contains("empty"), "{e}");
        let e = err("id = \"x\"\n[columns]\nsex = \"S\"\n");
        assert!(e.contains("columns.exam_id"), "{e}");
        let e = err(&format!("encoding = \"latin1\"\n{base}"));
        assert!(e.contains("`encoding`"), "{e}");
        let e = err(&format!("delimiter = \";;\"\n{base}"));
        assert!(e.contains("`delimiter`"), "{e}");
        let e = err(&format!("images_dir = \"img\"\n{base}"));
        assert!(e.contains("images_dir") && e.contains("{exam_id}"), "{e}");
        let e = err(&format!("report_file = \"../{{exam_id}}.txt\"\n{base}"));
        assert!(e.contains("report_file"), "{e}");
        let e = err(&format!("table = \"a/b.csv\"\n{base}"));
        assert!(e.contains("`table`"), "{e}");
        let e = err(&format!("{base}birth_date = \"B\"\n[dates]\nbirth_date = [\"%Y%q\"]\n"));
        assert!(e.contains("dates.birth_date"), "{e}");
        let e = err(&format!("{base}birth_date = \"B\"\n[dates]\nbirth_date = [\"%Y%m\"]\n"));
        assert!(e.contains("dates.birth_date"), "{e}");
        let e = err(&format!("{base}[dates]\nbirth_date = [\"%Y%m%d\"]\n"));
        assert!(e.contains("dates.birth_date") && e.contains("not mapped"), "{e}");
        let e = err(&format!("{base}sex = \"S\"\n[dates]\nsex = [\"%Y%m%d\"]\n"));
        assert!(e.contains("dates.sex"), "{e}");
        let e = err(&format!("{base}sex = \"S\"\n[values.sex]\n"));
        assert!(e.contains("values.sex") && e.contains("empty"), "{e}");
        let e = err(&format!("{base}[values.sexx]\n\"1\" = \"男\"\n"));
        assert!(e.contains("values.sexx"), "{e}");
        let e =
            err(&format!("{base}exam_start_time = \"T\"\n[times]\nexam_start_time = [\"%H\"]\n"));
        assert!(e.contains("times.exam_start_time"), "{e}");
        let e = err(&format!("{base}sex = \"NO\"\n"));
        assert!(e.contains("columns.sex") && e.contains("also mapped"), "{e}");
        let e = err(&format!("bogus = 1\n{base}"));
        assert!(e.contains("t.toml") && e.contains("bogus"), "{e}");
        let e = Profile::builtin("vendor-z").unwrap_err().to_string();
        assert!(e.contains("vendor-z") && e.contains("vendor-b"), "{e}");
    }

    #[test]
    fn date_format_check() {
        for ok in ["%Y%m%d", "%Y/%m/%d", "%d.%m.%Y", "%Y-%m-%d %H:%M"] {
            assert!(date_format_ok(ok), "{ok}");
        }
        for bad in ["", "%Y", "%Y%m", "%Q", "%Y%m%d%"] {
            assert!(!date_format_ok(bad), "{bad}");
        }
        assert!(time_format_ok("%H%M") && time_format_ok("%H:%M:%S"));
        assert!(!time_format_ok("%H") && !time_format_ok("%Y"));
    }
}
