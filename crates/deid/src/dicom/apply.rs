//! Applying the table to a parsed object: every data set, at every sequence depth.
//!
//! Beyond the table (which lists what the standard knows to be identifying):
//! - person names (PN) the table does not list are removed: a name is a name;
//! - unlisted UIDs are remapped unless DICOM-defined or class UIDs ([`super::uid`]);
//! - unlisted opaque values (UN, OB, OW, OD, OF, OL, OV) are removed unless [`SAFE_BINARY`]
//!   lists the tag (pixel data, LUTs, the ICC profile): their bytes cannot be searched; a UN
//!   value goes even where the table says keep;
//! - unlisted dates and date-times (DA, DT) follow the longitudinal options like the table's
//!   dates: kept with Full Dates, shifted with Modified Dates, removed otherwise;
//! - unlisted text that is kept (and safe-listed private text) loses phone numbers, postal
//!   codes, e-mail addresses, dates and street addresses to `deid::text`'s generic patterns
//!   (a placeholder in text VRs; the value emptied in AE, CS and UR);
//! - group lengths go (stale after editing), nested Specific Character Sets go (the root
//!   one becomes `ISO_IR 192`);
//! - private attributes go unless Retain Safe Private is on and the policy lists them.
//!
//! Sequences are always entered. [`find_identifier`] then searches every text value, the
//! date part of every DA/DT value (for the birth date) and the bytes of any UN value left,
//! for the object's own identifiers.

use super::charset::{self, Redecode};
use super::options::{DicomOption, DicomPolicy};
use super::table::{Action, Clean, Table};
use super::uid;
use crate::identifiers::{IdKind, IdentifierSet};
use crate::text::{Hit, Pattern};
use crate::{text, Pseudonymizer};
use dicom_core::header::Header;
use dicom_core::value::{DataSetSequence, PrimitiveValue, Value};
use dicom_core::{DataElement, Length, Tag, VR};
use dicom_dictionary_std::tags::SPECIFIC_CHARACTER_SET;
use dicom_object::mem::InMemElement;
use dicom_object::InMemDicomObject;
use std::collections::{BTreeMap, BTreeSet};

pub(crate) struct Ctx<'a> {
    pub table: &'static Table,
    pub policy: &'a DicomPolicy,
    pub pseudo: &'a Pseudonymizer,
    /// The object's own identifiers: one set per spelling group (see `super::identify`).
    pub ids: &'a [IdentifierSet],
    /// Days to shift dates by (Modified Dates); `None` without a Patient ID, and then dates
    /// the option would shift are emptied instead.
    pub shift: Option<i64>,
}

/// VRs whose text is decoded with Specific Character Set (the rest are default repertoire).
fn charset_vr(vr: VR) -> bool {
    matches!(vr, VR::SH | VR::LO | VR::ST | VR::LT | VR::UT | VR::UC | VR::PN)
}

/// VRs that hold free or coded text, where an identifier could be written.
pub(crate) fn text_vr(vr: VR) -> bool {
    matches!(
        vr,
        VR::SH | VR::LO | VR::ST | VR::LT | VR::UT | VR::UC | VR::PN | VR::AE | VR::CS | VR::UR
    )
}

/// VRs whose value is bytes the gate cannot read as text or numbers.
fn opaque_vr(vr: VR) -> bool {
    matches!(vr, VR::UN | VR::OB | VR::OW | VR::OD | VR::OF | VR::OL | VR::OV)
}

/// Opaque attributes kept although the table does not list them: image data and what
/// renders it. Nothing here is written by people.
pub(crate) const SAFE_BINARY: [Tag; 16] = [
    Tag(0x7FE0, 0x0001), // Extended Offset Table
    Tag(0x7FE0, 0x0002), // Extended Offset Table Lengths
    Tag(0x7FE0, 0x0008), // Float Pixel Data
    Tag(0x7FE0, 0x0009), // Double Float Pixel Data
    Tag(0x7FE0, 0x0010), // Pixel Data
    Tag(0x0028, 0x1201), // Red Palette Color Lookup Table Data
    Tag(0x0028, 0x1202), // Green Palette Color Lookup Table Data
    Tag(0x0028, 0x1203), // Blue Palette Color Lookup Table Data
    Tag(0x0028, 0x1204), // Alpha Palette Color Lookup Table Data
    Tag(0x0028, 0x1221), // Segmented Red Palette Color Lookup Table Data
    Tag(0x0028, 0x1222), // Segmented Green Palette Color Lookup Table Data
    Tag(0x0028, 0x1223), // Segmented Blue Palette Color Lookup Table Data
    Tag(0x0028, 0x1224), // Segmented Alpha Palette Color Lookup Table Data
    Tag(0x0028, 0x2000), // ICC Profile
    Tag(0x0028, 0x3006), // LUT Data
    Tag(0x0028, 0x1408), // Blending Lookup Table Data
];

/// The generic patterns searched in kept text no table rule covers: ways to reach or place
/// someone, and dates. Not names or bare numbers: codes and model names would be hit.
fn contact(hit: Hit) -> bool {
    matches!(
        hit,
        Hit::Pattern(
            Pattern::Phone
                | Pattern::PostalCode
                | Pattern::Email
                | Pattern::Date
                | Pattern::Address
        )
    )
}

/// VRs with a single value that may contain backslashes.
fn single_valued_text(vr: VR) -> bool {
    matches!(vr, VR::ST | VR::LT | VR::UT | VR::UR)
}

/// String values of a primitive value (`None` for binary values).
pub(crate) fn strings(
    v: &Value<InMemDicomObject, dicom_core::value::InMemFragment>,
) -> Option<Vec<String>> {
    str_values(v).map(<[String]>::to_vec)
}

/// [`strings`], borrowed.
fn str_values(v: &Value<InMemDicomObject, dicom_core::value::InMemFragment>) -> Option<&[String]> {
    match v {
        Value::Primitive(PrimitiveValue::Str(s)) => Some(std::slice::from_ref(s)),
        Value::Primitive(PrimitiveValue::Strs(s)) => Some(&s[..]),
        Value::Primitive(PrimitiveValue::Empty) => Some(&[]),
        _ => None,
    }
}

fn items_of(e: InMemElement) -> Option<Vec<InMemDicomObject>> {
    match e.into_value() {
        Value::Sequence(s) => Some(s.into_items().into_vec()),
        _ => None,
    }
}

/// A rebuilt sequence is always written with undefined length: its content changed.
fn seq(tag: Tag, items: Vec<InMemDicomObject>) -> InMemElement {
    DataElement::new(tag, VR::SQ, Value::Sequence(DataSetSequence::new(items, Length::UNDEFINED)))
}

fn strs(tag: Tag, vr: VR, values: Vec<String>) -> InMemElement {
    let v = if values.is_empty() {
        PrimitiveValue::Empty
    } else if values.len() == 1 {
        PrimitiveValue::Str(values.into_iter().next().unwrap_or_default())
    } else {
        PrimitiveValue::Strs(values.into())
    };
    DataElement::new(tag, vr, v)
}

fn empty(tag: Tag, vr: VR) -> InMemElement {
    if vr == VR::SQ {
        seq(tag, Vec::new())
    } else {
        DataElement::new(tag, vr, PrimitiveValue::Empty)
    }
}

/// Fixed dummy of the VR: carries nothing of the original.
fn dummy(tag: Tag, vr: VR) -> InMemElement {
    let s = |v: &str| DataElement::new(tag, vr, PrimitiveValue::from(v));
    match vr {
        VR::PN | VR::CS | VR::SH | VR::LO | VR::ST | VR::LT | VR::UT | VR::UC | VR::AE => {
            s("ANONYMIZED")
        }
        VR::DA => s("19000101"),
        VR::TM => s("000000"),
        VR::DT => s("19000101000000"),
        VR::AS => s("000Y"),
        VR::DS | VR::IS => s("0"),
        VR::US => DataElement::new(tag, vr, PrimitiveValue::from(0u16)),
        VR::SS => DataElement::new(tag, vr, PrimitiveValue::from(0i16)),
        VR::UL => DataElement::new(tag, vr, PrimitiveValue::from(0u32)),
        VR::SL => DataElement::new(tag, vr, PrimitiveValue::from(0i32)),
        VR::FL => DataElement::new(tag, vr, PrimitiveValue::from(0f32)),
        VR::FD => DataElement::new(tag, vr, PrimitiveValue::from(0f64)),
        _ => empty(tag, vr),
    }
}

/// Re-decode every charset-affected text value where dicom-rs used the wrong decoder.
pub(crate) fn redecode(obj: InMemDicomObject, how: Redecode) -> InMemDicomObject {
    if how == Redecode::None {
        return obj;
    }
    let out = obj.into_iter().map(|e| {
        let (tag, vr) = (e.tag(), e.vr());
        if vr == VR::SQ {
            let items = items_of(e).unwrap_or_default();
            return seq(tag, items.into_iter().map(|i| redecode(i, how)).collect());
        }
        if !charset_vr(vr) {
            return e;
        }
        let Some(values) = strings(e.value()) else { return e };
        let joined = values.join("\\");
        match charset::redecode(&joined, how) {
            Some(t) if single_valued_text(vr) => strs(tag, vr, vec![t]),
            Some(t) => strs(tag, vr, t.split('\\').map(str::to_string).collect()),
            None => e,
        }
    });
    InMemDicomObject::from_element_iter(out)
}

/// De-identify one data set (root or item).
pub(crate) fn dataset(ctx: &Ctx, obj: InMemDicomObject, depth: usize) -> InMemDicomObject {
    let elems: Vec<InMemElement> = obj.into_iter().collect();
    // Private creators of this data set: (group, block) -> creator.
    let mut creators = BTreeMap::new();
    for e in &elems {
        let t = e.tag();
        if t.group() % 2 == 1 && (0x0010..=0x00FF).contains(&t.element()) {
            if let Some(v) = strings(e.value()).and_then(|v| v.into_iter().next()) {
                creators.insert((t.group(), t.element() as u8), v.trim().to_string());
            }
        }
    }
    let mut kept_blocks = BTreeSet::new();
    let mut out = Vec::with_capacity(elems.len());
    let mut creator_elems = Vec::new();
    for e in elems {
        let t = e.tag();
        if t.group() % 2 == 1 {
            if (0x0010..=0x00FF).contains(&t.element()) {
                creator_elems.push(e);
            } else if t.element() >= 0x1000 {
                let block = (t.group(), (t.element() >> 8) as u8);
                if safe_private(ctx, &creators, block, t) {
                    kept_blocks.insert(block);
                    out.push(keep_unlisted(ctx, e, depth));
                }
            }
            // (gggg,0000-000F): group length and reserved: always removed.
            continue;
        }
        if let Some(e) = element(ctx, e, depth) {
            out.push(e);
        }
    }
    out.extend(
        creator_elems
            .into_iter()
            .filter(|e| kept_blocks.contains(&(e.tag().group(), e.tag().element() as u8))),
    );
    InMemDicomObject::from_element_iter(out)
}

fn safe_private(
    ctx: &Ctx,
    creators: &BTreeMap<(u16, u8), String>,
    block: (u16, u8),
    t: Tag,
) -> bool {
    if !ctx.policy.has(DicomOption::RetainSafePrivate) {
        return false;
    }
    let Some(creator) = creators.get(&block) else { return false };
    ctx.policy.safe_private.iter().any(|s| {
        s.group == t.group()
            && s.element == (t.element() & 0xff) as u8
            && s.creator.trim() == creator
    })
}

fn element(ctx: &Ctx, e: InMemElement, depth: usize) -> Option<InMemElement> {
    let (tag, vr) = (e.tag(), e.vr());
    if tag.element() == 0x0000 || tag.group() == 0x0000 || tag.group() == 0x0002 {
        return None;
    }
    if tag == SPECIFIC_CHARACTER_SET {
        // Root: rewritten to ISO_IR 192 by the caller. Items: text is UTF-8 like the root.
        return (depth == 0).then_some(e);
    }
    let rule = ctx.table.rule(tag);
    let action = match rule {
        Some(r) => r.action(ctx.policy),
        None if vr == VR::PN => Action::Remove,
        None if vr == VR::UI => {
            let keep_it = strings(e.value())
                .is_some_and(|v| v.iter().all(|s| s.is_empty() || uid::keep_unlisted(tag, s)));
            if keep_it {
                Action::Keep
            } else {
                Action::Uid
            }
        }
        None if opaque_vr(vr) && !SAFE_BINARY.contains(&tag) => Action::Remove,
        None if matches!(vr, VR::DA | VR::DT) => unlisted_date(ctx.policy),
        None => Action::Keep,
    };
    match action {
        Action::Remove => None,
        Action::Empty => Some(empty(tag, vr)),
        Action::Dummy => Some(dummy(tag, vr)),
        // Bytes the parser could not type: nothing to check them against.
        Action::Keep if vr == VR::UN && !SAFE_BINARY.contains(&tag) => None,
        Action::Keep if rule.is_none() => Some(keep_unlisted(ctx, e, depth)),
        Action::Keep => Some(keep(ctx, e, depth)),
        Action::Uid => Some(remap(ctx, e, depth)),
        Action::Clean(Clean::ShiftDates) => Some(shift(ctx, e, depth)),
        Action::Clean(Clean::Text) => Some(clean_text(ctx, e, depth)),
    }
}

fn recurse(ctx: &Ctx, e: InMemElement, depth: usize) -> InMemElement {
    let tag = e.tag();
    let items = items_of(e).unwrap_or_default();
    seq(tag, items.into_iter().map(|i| dataset(ctx, i, depth + 1)).collect())
}

fn keep(ctx: &Ctx, e: InMemElement, depth: usize) -> InMemElement {
    if e.vr() == VR::SQ {
        recurse(ctx, e, depth)
    } else {
        e
    }
}

/// An unlisted date or date-time, as the table's dates are treated under the selected
/// longitudinal option.
fn unlisted_date(policy: &DicomPolicy) -> Action {
    if policy.has(DicomOption::RetainLongitudinalFullDates) {
        Action::Keep
    } else if policy.has(DicomOption::RetainLongitudinalModifiedDates) {
        Action::Clean(Clean::ShiftDates)
    } else {
        Action::Remove
    }
}

/// [`keep`] for what no table rule covers: text loses the [`contact`] patterns.
fn keep_unlisted(ctx: &Ctx, e: InMemElement, depth: usize) -> InMemElement {
    let (tag, vr) = (e.tag(), e.vr());
    if vr == VR::SQ || !text_vr(vr) {
        return keep(ctx, e, depth);
    }
    let Some(values) = str_values(e.value()) else { return e };
    let cleaned: Vec<Option<String>> = values.iter().map(|v| without_contacts(v)).collect();
    if cleaned.iter().all(Option::is_none) {
        return e;
    }
    // AE, CS and UR are default repertoire: no placeholder can be written there.
    if !charset_vr(vr) {
        return empty(tag, vr);
    }
    let out = values.iter().zip(cleaned).map(|(v, c)| c.unwrap_or_else(|| v.clone())).collect();
    strs(tag, vr, out)
}

/// `v` with its [`contact`] matches replaced by their placeholders; `None` when it has none.
fn without_contacts(v: &str) -> Option<String> {
    // Every contact pattern needs a digit, `@`, `〒` or (addresses, dates in words) a
    // non-ASCII character: plain codes and model names skip the search.
    if v.bytes().all(|b| b.is_ascii() && !b.is_ascii_digit() && b != b'@') {
        return None;
    }
    let found = text::find(v, &IdentifierSet::default());
    let hits: Vec<&text::Match> = found.iter().filter(|m| contact(m.hit)).collect();
    if hits.is_empty() {
        return None;
    }
    let chars: Vec<char> = v.chars().collect();
    let mut out = String::with_capacity(v.len());
    let mut i = 0;
    for m in hits {
        out.extend(&chars[i..m.start]);
        out.push_str(m.hit.placeholder());
        i = m.end;
    }
    out.extend(&chars[i..]);
    Some(out)
}

fn remap(ctx: &Ctx, e: InMemElement, depth: usize) -> InMemElement {
    let (tag, vr) = (e.tag(), e.vr());
    if vr == VR::SQ {
        return recurse(ctx, e, depth);
    }
    match strings(e.value()) {
        Some(v) => strs(tag, vr, v.iter().map(|s| uid::remap(ctx.pseudo, s)).collect()),
        // A UID attribute holding bytes (wrong VR): nothing to remap safely.
        None => empty(tag, vr),
    }
}

fn shift(ctx: &Ctx, e: InMemElement, depth: usize) -> InMemElement {
    let (tag, vr) = (e.tag(), e.vr());
    match vr {
        VR::SQ => return recurse(ctx, e, depth),
        // A whole-day shift leaves the time of day as it was.
        VR::TM => return e,
        VR::DA | VR::DT => {}
        _ => return empty(tag, vr),
    }
    let (Some(days), Some(values)) = (ctx.shift, strings(e.value())) else {
        return empty(tag, vr);
    };
    let mut out = Vec::with_capacity(values.len());
    for v in &values {
        let v = v.trim();
        if v.is_empty() {
            out.push(String::new());
            continue;
        }
        match shift_one(v, days) {
            Some(s) => out.push(s),
            // Partial or invalid dates cannot be shifted faithfully: drop the value.
            None => return empty(tag, vr),
        }
    }
    strs(tag, vr, out)
}

/// `YYYYMMDD[rest]` shifted by `days`; `rest` (time and offset of a DT) kept.
fn shift_one(v: &str, days: i64) -> Option<String> {
    let date = v.get(..8)?;
    let d = chrono::NaiveDate::parse_from_str(date, "%Y%m%d").ok()?;
    let d = d.checked_add_signed(chrono::Duration::days(days))?;
    Some(format!("{}{}", d.format("%Y%m%d"), &v[8..]))
}

fn clean_text(ctx: &Ctx, e: InMemElement, depth: usize) -> InMemElement {
    let (tag, vr) = (e.tag(), e.vr());
    match vr {
        VR::SQ => return recurse(ctx, e, depth),
        VR::UI => return remap(ctx, e, depth),
        // Someone's name: the scrubber finds this patient's names, not other people's.
        VR::PN => return empty(tag, vr),
        v if text_vr(v) => {}
        _ => return empty(tag, vr),
    }
    let Some(values) = strings(e.value()) else { return empty(tag, vr) };
    let cleaned: Vec<String> = values.iter().map(|v| scrub(ctx.ids, v)).collect();
    // AE, CS and UR are default repertoire: a placeholder cannot be written there, and a
    // value that needed one says nothing without it.
    if !charset_vr(vr) && cleaned != values {
        return empty(tag, vr);
    }
    strs(tag, vr, cleaned)
}

/// Scrub with every identifier set in turn.
pub(crate) fn scrub(ids: &[IdentifierSet], v: &str) -> String {
    if ids.is_empty() {
        return text::scrub(v, &IdentifierSet::default()).text;
    }
    text::scrub_each(v, ids)
}

/// The first own identifier still present in any text value: (tag path, kind key).
pub(crate) fn find_identifier(
    obj: &InMemDicomObject,
    ids: &[IdentifierSet],
    path: &str,
) -> Option<(String, &'static str)> {
    // The path is only formatted where it is needed: for items and for a hit.
    let here = |tag: Tag| format!("{path}{}", super::parse::tag_str(tag));
    for e in obj {
        let tag = e.tag();
        if let Value::Sequence(s) = e.value() {
            for (i, item) in s.items().iter().enumerate() {
                if let Some(hit) = find_identifier(item, ids, &format!("{}[{i}]", here(tag))) {
                    return Some(hit);
                }
            }
            continue;
        }
        match e.vr() {
            vr if text_vr(vr) => {
                for v in str_values(e.value()).unwrap_or_default() {
                    if let Some(m) = text::find_own_each(v, ids) {
                        return Some((here(tag), m.hit.key()));
                    }
                }
            }
            // A date is identifying here only as the birth date (other own identifiers that
            // are all digits could sit inside any date by chance).
            VR::DA | VR::DT => {
                for v in str_values(e.value()).unwrap_or_default() {
                    for part in v.split('-').filter_map(|p| p.trim().get(..8)) {
                        let birth = text::find_own_each(part, ids)
                            .filter(|m| m.hit == Hit::Id(IdKind::BirthDate));
                        if let Some(m) = birth {
                            return Some((here(tag), m.hit.key()));
                        }
                    }
                }
            }
            // What is left of UN (safe-listed private values): searched as the text it may
            // well be. Image data is not text.
            VR::UN if !SAFE_BINARY.contains(&tag) => {
                if let Value::Primitive(p) = e.value() {
                    let bytes = p.to_bytes();
                    if let Some(m) = text::find_own_each(&String::from_utf8_lossy(&bytes), ids) {
                        return Some((here(tag), m.hit.key()));
                    }
                }
            }
            _ => {}
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Kept unlisted text: model names, versions and codes stay as written; contacts go.
    #[test]
    fn contacts_go_from_kept_text_codes_and_versions_stay() {
        for keep in [
            "OLYMPUS MEDICAL SYSTEMS CORP.",
            "EVIS X1 CV-1500",
            "CV-1500",
            "V2.10",
            "1.05.02",
            "4.1.0.27",
            "ES",
            "T-56000",
            "113100",
            "上部消化管",
            "胃 前庭部",
        ] {
            assert_eq!(without_contacts(keep), None, "{keep}");
        }
        for (v, want) in [
            ("service 03-5550-1234", "service [電話]"),
            ("kensa.desk@example.jp", "[メール]"),
            ("〒100-0001", "[郵便番号]"),
            ("built 2019/03/01", "built [日付]"),
        ] {
            assert_eq!(without_contacts(v).as_deref(), Some(want), "{v}");
        }
    }

    #[test]
    fn shifts_dates_and_datetimes() {
        assert_eq!(shift_one("20240301", -1).unwrap(), "20240229");
        assert_eq!(shift_one("20240301101010.5+0900", 1).unwrap(), "20240302101010.5+0900");
        assert!(shift_one("2024", 1).is_none());
        assert!(shift_one("2024ABCD", 1).is_none());
    }
}
