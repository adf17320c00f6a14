//! ORU^R01 → [`RawReport`]s: one per OBR (order observation), with the identifiers of the
//! PID before it keyed like export columns, and the text of its OBX segments.

use super::ack::{AckCode, Hl7ErrorCode, Nak};
use super::message::{Location, Message, Segment};
use crate::export::is_safe_exam_id;
use fgw_records::{Column, RawReport};
use std::collections::BTreeMap;
use std::fmt;

/// MSH-9 as `TYPE^EVENT`, only ever built from short alphanumeric codes (never free text),
/// so it may be named in NAKs and logs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct MessageType(String);

impl MessageType {
    fn from_msh(msh: &Segment) -> MessageType {
        let part = |c: usize| {
            let v = msh.get(9, 0, c, 1);
            let ok = !v.is_empty() && v.len() <= 3 && v.bytes().all(|b| b.is_ascii_alphanumeric());
            if ok {
                v
            } else {
                "?".to_string()
            }
        };
        MessageType(format!("{}^{}", part(1), part(2)))
    }
}

impl fmt::Display for MessageType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

#[derive(Debug, thiserror::Error)]
pub(crate) enum OruError {
    #[error("MSH-9: unsupported message type {0}")]
    UnsupportedType(MessageType),
    #[error("MSH-11: only production (P) messages are accepted")]
    ProcessingId,
    #[error("{0}: segment missing")]
    MissingSegment(&'static str),
    #[error("{0}: required field missing")]
    MissingField(Location),
    #[error("{field}: {what}")]
    InvalidField { field: Location, what: &'static str },
}

impl OruError {
    pub(crate) fn nak(&self) -> Nak {
        let (code, location, error) = match self {
            OruError::UnsupportedType(t) => {
                let error = if t.0.starts_with("ORU^") {
                    Hl7ErrorCode::UnsupportedEventCode
                } else {
                    Hl7ErrorCode::UnsupportedMessageType
                };
                (AckCode::Reject, Location::new("MSH", 9), error)
            }
            OruError::ProcessingId => {
                (AckCode::Reject, Location::new("MSH", 11), Hl7ErrorCode::UnsupportedProcessingId)
            }
            OruError::MissingSegment(s) => {
                (AckCode::Error, Location::new(s, 0), Hl7ErrorCode::SegmentSequence)
            }
            OruError::MissingField(l) => (AckCode::Error, *l, Hl7ErrorCode::RequiredFieldMissing),
            OruError::InvalidField { field, .. } => {
                (AckCode::Error, *field, Hl7ErrorCode::DataType)
            }
        };
        Nak { code, location: Some(location), error, text: self.to_string() }
    }
}

struct Group<'a> {
    pid: Option<&'a Segment>,
    orc: Option<&'a Segment>,
    obr: &'a Segment,
    obx: Vec<&'a Segment>,
}

/// The reports of an ORU^R01. `source` names where it came from (no values); with more than
/// one OBR, each report's source gets ` obr <k>`.
pub(crate) fn reports_from_oru(msg: &Message, source: &str) -> Result<Vec<RawReport>, OruError> {
    let msh = msg.msh();
    if msh.get(9, 0, 1, 1).trim() != "ORU" || msh.get(9, 0, 2, 1).trim() != "R01" {
        return Err(OruError::UnsupportedType(MessageType::from_msh(msh)));
    }
    // Training and debugging messages carry test patients; they must not reach the registry.
    if msh.get(11, 0, 1, 1).trim() != "P" {
        return Err(OruError::ProcessingId);
    }
    let mut groups: Vec<Group> = Vec::new();
    let (mut pid, mut orc) = (None, None);
    for seg in &msg.segments()[1..] {
        match seg.id() {
            "PID" => {
                pid = Some(seg);
                orc = None;
            }
            "ORC" => orc = Some(seg),
            // An ORC belongs to the OBR right after it only.
            "OBR" => groups.push(Group { pid, orc: orc.take(), obr: seg, obx: Vec::new() }),
            "OBX" => {
                if let Some(g) = groups.last_mut() {
                    g.obx.push(seg);
                }
            }
            _ => {}
        }
    }
    if groups.is_empty() {
        return Err(if msg.segment("PID").is_none() {
            OruError::MissingSegment("PID")
        } else {
            OruError::MissingSegment("OBR")
        });
    }
    let many = groups.len() > 1;
    groups
        .iter()
        .enumerate()
        .map(|(i, g)| {
            let src = if many { format!("{source} obr {}", i + 1) } else { source.to_string() };
            report(g, src)
        })
        .collect()
}

fn first_nonempty(v: impl IntoIterator<Item = String>) -> Option<String> {
    v.into_iter().map(|s| s.trim().to_string()).find(|s| !s.is_empty())
}

fn report(g: &Group, source: String) -> Result<RawReport, OruError> {
    let pid = g.pid.ok_or(OruError::MissingSegment("PID"))?;
    let mut fields = BTreeMap::new();
    let mut put = |c: Column, v: Option<String>| {
        if let Some(v) = v.map(|v| v.trim().to_string()).filter(|v| !v.is_empty()) {
            fields.insert(c, v);
        }
    };
    put(Column::ExamId, Some(exam_id(g)?));
    put(Column::PatientId, patient_id(pid));
    let (name, kana) = names(pid);
    put(Column::PatientName, name);
    put(Column::PatientKana, kana);
    put(Column::BirthDate, birth_date(&pid.get(7, 0, 1, 1)));
    put(Column::Address, address(pid));
    put(Column::Phone, phone(pid));
    let observed = first_nonempty([g.obr.get(7, 0, 1, 1)]);
    let status = first_nonempty([g.obr.get(25, 0, 1, 1)]);
    Ok(RawReport { source, fields, observed, status, text: text(&g.obx) })
}

/// 検査ID: filler order number (OBR-3), else placer (OBR-2), else ORC-3, ORC-2.
fn exam_id(g: &Group) -> Result<String, OruError> {
    let mut candidates = vec![(Location::new("OBR", 3), g.obr), (Location::new("OBR", 2), g.obr)];
    if let Some(orc) = g.orc {
        candidates.push((Location::new("ORC", 3), orc));
        candidates.push((Location::new("ORC", 2), orc));
    }
    for (loc, seg) in candidates {
        let v = seg.get(loc.field as usize, 0, 1, 1).trim().to_string();
        if v.is_empty() {
            continue;
        }
        // It may become a file name downstream, like an export's 検査ID.
        if !is_safe_exam_id(&v) {
            return Err(OruError::InvalidField { field: loc, what: "not usable as an exam id" });
        }
        return Ok(v);
    }
    Err(OruError::MissingField(Location::new("OBR", 3)))
}

/// PID-3: the repetition typed `PI` (patient internal id) if any, else the first.
fn patient_id(pid: &Segment) -> Option<String> {
    let n = pid.repetitions(3).len();
    let typed = (0..n).find(|&r| pid.get(3, r, 5, 1).trim().eq_ignore_ascii_case("PI"));
    first_nonempty([pid.get(3, typed.unwrap_or(0), 1, 1)])
}

/// PID-5: by XPN-8 (I ideographic = 漢字, P phonetic = カナ); without codes, Japanese practice:
/// repetition 1 = 漢字, repetition 2 = カナ. An alphabetic name fills the name only if there
/// is no other, so that the gate still knows it.
fn names(pid: &Segment) -> (Option<String>, Option<String>) {
    let reps = pid.repetitions(5).len();
    let coded = |want: &str| -> Option<String> {
        (0..reps)
            .filter(|&r| pid.get(5, r, 8, 1).trim().eq_ignore_ascii_case(want))
            .find_map(|r| xpn(pid, r))
    };
    let ideographic = coded("I");
    let phonetic = coded("P");
    let alphabetic = coded("A");
    let uncoded = |r: usize| {
        if r < reps && pid.get(5, r, 8, 1).trim().is_empty() {
            xpn(pid, r)
        } else {
            None
        }
    };
    let name = ideographic.or_else(|| uncoded(0)).or(alphabetic);
    let kana = phonetic.or_else(|| uncoded(1));
    (name, kana)
}

/// Family (XPN-1, its surname subcomponent), given (XPN-2), middle (XPN-3), space-separated
/// like the export's names.
fn xpn(pid: &Segment, rep: usize) -> Option<String> {
    let parts: Vec<String> = [pid.get(5, rep, 1, 1), pid.get(5, rep, 2, 1), pid.get(5, rep, 3, 1)]
        .into_iter()
        .map(|s| s.trim().to_string())
        .filter(|s| !s.is_empty())
        .collect();
    (!parts.is_empty()).then(|| parts.join(" "))
}

/// HL7 `YYYYMMDD[...]` → `YYYY/MM/DD`; anything else is kept as sent (it is still an
/// identifier the gate must know).
fn birth_date(ts: &str) -> Option<String> {
    let ts = ts.trim();
    let d = ts.get(..8).filter(|d| d.bytes().all(|b| b.is_ascii_digit()));
    match d.and_then(|d| chrono::NaiveDate::parse_from_str(d, "%Y%m%d").ok()) {
        Some(date) => Some(date.format("%Y/%m/%d").to_string()),
        None => first_nonempty([ts.to_string()]),
    }
}

/// PID-11 (first repetition) in Japanese order: prefecture (XAD-4), city (XAD-3), street
/// (XAD-1), other designation (XAD-2), without separators; postal code, country and type
/// are not part of the written address.
fn address(pid: &Segment) -> Option<String> {
    let joined: String =
        [4, 3, 1, 2].iter().map(|&c| pid.component(11, 0, c, "").trim().to_string()).collect();
    first_nonempty([joined])
}

/// PID-13 (first repetition): XTN-1, else the unformatted number (XTN-12), else country,
/// area and local number (XTN-5..7).
fn phone(pid: &Segment) -> Option<String> {
    let parts: Vec<String> = (5..=7)
        .map(|c| pid.get(13, 0, c, 1).trim().to_string())
        .filter(|s| !s.is_empty())
        .collect();
    first_nonempty([pid.get(13, 0, 1, 1), pid.get(13, 0, 12, 1), parts.join("-")])
}

/// OBX-5 of text observations (TX, FT, ST; CE/CWE by their text), in order, one line per
/// repetition. Deleted (D) and wrong (W) observations are left out.
fn text(obx: &[&Segment]) -> String {
    let mut lines: Vec<String> = Vec::new();
    for seg in obx {
        if matches!(seg.get(11, 0, 1, 1).trim(), "D" | "W") {
            continue;
        }
        let kind = seg.get(2, 0, 1, 1).trim().to_ascii_uppercase();
        let reps = seg.repetitions(5).len();
        for r in 0..reps {
            let line = match kind.as_str() {
                "TX" | "FT" | "ST" => seg.repetition_text(5, r),
                "CE" | "CWE" | "CNE" => {
                    first_nonempty([seg.get(5, r, 2, 1), seg.get(5, r, 1, 1)]).unwrap_or_default()
                }
                _ => continue,
            };
            lines.push(line);
        }
    }
    let text = lines.join("\n");
    text.replace("\r\n", "\n").replace('\r', "\n")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::hl7::message::decode;

    const MSH: &str =
        "MSH|^~\\&|RIS|HOSP|FGW|FAC|20261125||ORU^R01^ORU_R01|C1|P|2.5||||||UNICODE UTF-8";

    fn reports(body: &str) -> Result<Vec<RawReport>, OruError> {
        let m = decode(format!("{MSH}\r{body}").as_bytes()).unwrap();
        reports_from_oru(&m, "hl7 test msg 1")
    }

    fn one(body: &str) -> RawReport {
        let mut r = reports(body).unwrap();
        assert_eq!(r.len(), 1);
        r.pop().unwrap()
    }

    #[test]
    fn maps_pid_obr_obx() {
        let r = one("PID|1||X9^^^H^MR~00123^^^H^PI||検証^花子^^^^^L^I~ケンショウ^ハナコ^^^^^L^P||19600102|F|||1-2-3 本町^ハイツ101^港区^東京都^1050001^JPN^H||03-0000-0000\r\
             OBR|1|PL1|E2026112500123||||20261125091500||||||||||||||||||F\r\
             OBX|1|TX|||所見1~所見2||||||F\r\
             OBX|2|NM|||3||||||F\r\
             OBX|3|CE|||K25^胃潰瘍^ICD10||||||F\r\
             OBX|4|FT|||a\\.br\\b||||||D\r\
             OBX|5|ST|||x\\F\\y||||||F");
        let get = |c| r.get(c).map(str::to_string);
        assert_eq!(get(Column::ExamId).as_deref(), Some("E2026112500123"));
        assert_eq!(get(Column::PatientId).as_deref(), Some("00123"));
        assert_eq!(get(Column::PatientName).as_deref(), Some("検証 花子"));
        assert_eq!(get(Column::PatientKana).as_deref(), Some("ケンショウ ハナコ"));
        assert_eq!(get(Column::BirthDate).as_deref(), Some("1960/01/02"));
        assert_eq!(get(Column::Address).as_deref(), Some("東京都港区1-2-3 本町ハイツ101"));
        assert_eq!(get(Column::Phone).as_deref(), Some("03-0000-0000"));
        assert_eq!(r.observed.as_deref(), Some("20261125091500"));
        assert_eq!(r.status.as_deref(), Some("F"));
        assert_eq!(r.text, "所見1\n所見2\n胃潰瘍\nx|y");
        assert_eq!(r.source, "hl7 test msg 1");
    }

    #[test]
    fn names_by_position_or_code() {
        let r = one("PID|1||1||ヤマ^ハナ^^^^^L^P~山^花^^^^^L^I\rOBR|1||E1");
        assert_eq!(r.get(Column::PatientName), Some("山 花"));
        assert_eq!(r.get(Column::PatientKana), Some("ヤマ ハナ"));
        let r = one("PID|1||1||山^花~ヤマ^ハナ\rOBR|1||E1");
        assert_eq!(r.get(Column::PatientName), Some("山 花"));
        assert_eq!(r.get(Column::PatientKana), Some("ヤマ ハナ"));
        let r = one("PID|1||1||YAMA^HANA^^^^^L^A\rOBR|1||E1");
        assert_eq!(r.get(Column::PatientName), Some("YAMA HANA"));
        assert_eq!(r.get(Column::PatientKana), None);
    }

    #[test]
    fn exam_id_fallbacks() {
        let id = |body: &str| one(body).get(Column::ExamId).map(str::to_string);
        assert_eq!(id("PID|1\rOBR|1|P1|F1").as_deref(), Some("F1"));
        assert_eq!(id("PID|1\rOBR|1|P1").as_deref(), Some("P1"));
        assert_eq!(id("PID|1\rORC|RE|O2|O3\rOBR|1").as_deref(), Some("O3"));
        assert_eq!(id("PID|1\rORC|RE|O2\rOBR|1").as_deref(), Some("O2"));
    }

    #[test]
    fn errors_name_positions_not_values() {
        let e = reports("PID|1||SECRET1||秘密^花子\rOBR|1").unwrap_err();
        assert_eq!(e.to_string(), "OBR-3: required field missing");
        let nak = e.nak();
        assert_eq!(nak.code, AckCode::Error);
        assert_eq!(nak.location, Some(Location::new("OBR", 3)));
        let e = reports("PID|1||SECRET1\rOBR|1||../SECRET").unwrap_err();
        assert_eq!(e.to_string(), "OBR-3: not usable as an exam id");
        let e = reports("OBR|1||E1").unwrap_err();
        assert_eq!(e.to_string(), "PID: segment missing");
        assert_eq!(e.nak().code, AckCode::Error);
        let e = reports("PID|1||SECRET1").unwrap_err();
        assert_eq!(e.to_string(), "OBR: segment missing");
    }

    #[test]
    fn other_types_and_processing_ids_are_rejected() {
        let m = decode(b"MSH|^~\\&|A|B|C|D|2026||ADT^A01^ADT_A01|C1|P|2.5\rPID|1").unwrap();
        let e = reports_from_oru(&m, "s").unwrap_err();
        assert_eq!(e.to_string(), "MSH-9: unsupported message type ADT^A01");
        assert_eq!(e.nak().code, AckCode::Reject);
        let m = decode(b"MSH|^~\\&|A|B|C|D|2026||ORU^R01|C1|T|2.5\rPID|1\rOBR|1||E1").unwrap();
        let e = reports_from_oru(&m, "s").unwrap_err();
        assert_eq!(e.nak().location, Some(Location::new("MSH", 11)));
        let m = decode(b"MSH|^~\\&|A|B|C|D|2026||SECRET NAME^X Y|C1|P|2.5").unwrap();
        let e = reports_from_oru(&m, "s").unwrap_err();
        assert_eq!(e.to_string(), "MSH-9: unsupported message type ?^?");
    }

    #[test]
    fn one_report_per_obr() {
        let r =
            reports("PID|1||1||山^花\rOBR|1||E1\rOBX|1|TX|||a\rORC|RE||O3\rOBR|2\rOBX|1|TX|||b")
                .unwrap();
        assert_eq!(r.len(), 2);
        assert_eq!((r[0].get(Column::ExamId), r[0].text.as_str()), (Some("E1"), "a"));
        assert_eq!((r[1].get(Column::ExamId), r[1].text.as_str()), (Some("O3"), "b"));
        assert_eq!(r[1].get(Column::PatientName), Some("山 花"));
        assert_eq!(r[1].source, "hl7 test msg 1 obr 2");
    }

    #[test]
    fn birth_dates() {
        assert_eq!(birth_date("19600102").as_deref(), Some("1960/01/02"));
        assert_eq!(birth_date("196001021230").as_deref(), Some("1960/01/02"));
        assert_eq!(birth_date("1960").as_deref(), Some("1960"));
        assert_eq!(birth_date("19601399").as_deref(), Some("19601399"));
        assert_eq!(birth_date(""), None);
    }
}
