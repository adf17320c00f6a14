//! Keyed pseudonyms (HMAC-SHA-256 with the box's pseudonym key).
//!
//! The same person or exam must get the same pseudonym however the department system happened
//! to write the identifier (full/half width, spaces, leading zeros), so values are normalized
//! before hashing. The message is domain-separated (`<domain>\0<facility>\0<value>`) so a
//! patient id and an exam id with the same text never share a pseudonym, and the facility is
//! included so two facilities' pseudonyms never collide even if a key were ever shared.

use fgw_format::ids::FacilityId;
use ring::hmac;
use unicode_normalization::UnicodeNormalization;

/// Hex characters kept from the HMAC: 96 bits, ample against collisions within a registry.
const TAG_HEX_LEN: usize = 24;

/// Makes keyed pseudonyms, date shifts and replacement UIDs with the box's pseudonym key.
pub struct Pseudonymizer {
    key: hmac::Key,
}

impl std::fmt::Debug for Pseudonymizer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The key must never be printed.
        f.write_str("Pseudonymizer(..)")
    }
}

impl Pseudonymizer {
    /// With the box's pseudonym key (HMAC-SHA-256).
    pub fn new(key: hmac::Key) -> Self {
        Self { key }
    }

    /// `p-` + 24 hex. All-digit ids lose their leading zeros (00123456 == 123456).
    pub fn patient(&self, facility: &FacilityId, id: &str) -> String {
        self.tag("p-", "patient", facility, &patient_key(id))
    }

    /// Days to shift every date of this patient by, in -182..=182 and never 0: one offset
    /// per patient (so intervals between a patient's exams survive), unknowable without the
    /// box's key. Keyed like `patient`, in its own domain.
    pub fn date_shift_days(&self, facility: &FacilityId, patient_id: &str) -> i64 {
        let t = self.tag("", "date-shift", facility, &patient_key(patient_id));
        let v = u64::from_str_radix(&t[..12], 16).expect("hex");
        let d = (v % 364) as i64 - 182; // -182..=181
        if d >= 0 {
            d + 1
        } else {
            d
        }
    }

    /// `e-` + 24 hex of the department's exam id.
    pub fn exam(&self, facility: &FacilityId, exam_id: &str) -> String {
        self.tag("e-", "exam", facility, &normalize(exam_id))
    }

    /// `d-` + 24 hex of a physician's name.
    pub fn doctor(&self, facility: &FacilityId, name: &str) -> String {
        self.tag("d-", "doctor", facility, &normalize(name))
    }

    /// A replacement DICOM UID in the `2.25.<decimal>` form (PS3.5 B.2): the first 128 bits
    /// of HMAC-SHA-256 over the original UID, made a version-8 (custom) RFC 9562 UUID by
    /// setting its version and variant bits (122 keyed bits remain). Same key, same input, same
    /// output: study/series/instance structure survives across files and days. No facility in
    /// the message: UIDs are already globally unique, and one study may reach two boxes only
    /// if they share a key. Trailing NUL/space padding is ignored.
    pub fn uid(&self, uid: &str) -> String {
        let uid = uid.trim_end_matches(['\0', ' ']).trim_start();
        let mut msg = Vec::with_capacity(uid.len() + 10);
        msg.extend_from_slice(b"dicom-uid\0");
        msg.extend_from_slice(uid.as_bytes());
        let t = hmac::sign(&self.key, &msg);
        let mut b = [0u8; 16];
        b.copy_from_slice(&t.as_ref()[..16]);
        b[6] = (b[6] & 0x0f) | 0x80; // version 8
        b[8] = (b[8] & 0x3f) | 0x80; // RFC variant
        format!("2.25.{}", u128::from_be_bytes(b))
    }

    fn tag(&self, prefix: &str, domain: &str, facility: &FacilityId, value: &str) -> String {
        let mut msg = Vec::with_capacity(domain.len() + facility.as_str().len() + value.len() + 2);
        msg.extend_from_slice(domain.as_bytes());
        msg.push(0);
        msg.extend_from_slice(facility.as_str().as_bytes());
        msg.push(0);
        msg.extend_from_slice(value.as_bytes());
        let t = hmac::sign(&self.key, &msg);
        let mut out = String::with_capacity(prefix.len() + TAG_HEX_LEN);
        out.push_str(prefix);
        out.push_str(&hex::encode(t.as_ref())[..TAG_HEX_LEN]);
        out
    }
}

fn patient_key(id: &str) -> String {
    let n = normalize(id);
    if !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()) {
        let stripped = n.trim_start_matches('0');
        return if stripped.is_empty() { "0".to_string() } else { stripped.to_string() };
    }
    n
}

/// NFKC, all whitespace removed, uppercase.
fn normalize(s: &str) -> String {
    s.nfkc().filter(|c| !c.is_whitespace()).flat_map(char::to_uppercase).collect()
}

/// True if `s` has the shape of a pseudonym with `prefix` (`p-`, `e-`, `d-`).
pub fn is_pseudonym(s: &str, prefix: &str) -> bool {
    s.len() == prefix.len() + TAG_HEX_LEN
        && s.starts_with(prefix)
        && s[prefix.len()..].bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(k: u8) -> Pseudonymizer {
        Pseudonymizer::new(hmac::Key::new(hmac::HMAC_SHA256, &[k; 32]))
    }

    fn fac() -> FacilityId {
        FacilityId::new("F0001").unwrap()
    }

    #[test]
    fn stable_and_shaped() {
        let a = p(1).patient(&fac(), "00123456");
        assert_eq!(a, p(1).patient(&fac(), "00123456"));
        assert!(is_pseudonym(&a, "p-"));
        assert!(is_pseudonym(&p(1).exam(&fac(), "E1"), "e-"));
        assert!(is_pseudonym(&p(1).doctor(&fac(), "鈴木 花子"), "d-"));
    }

    #[test]
    fn keys_domains_and_facilities_differ() {
        assert_ne!(p(1).patient(&fac(), "123456"), p(2).patient(&fac(), "123456"));
        assert_ne!(p(1).patient(&fac(), "123456")[2..], p(1).exam(&fac(), "123456")[2..]);
        let other = FacilityId::new("F0002").unwrap();
        assert_ne!(p(1).patient(&fac(), "123456"), p(1).patient(&other, "123456"));
    }

    #[test]
    fn normalization() {
        let x = p(1);
        let a = x.patient(&fac(), "00123456");
        assert_eq!(a, x.patient(&fac(), "０１２３４５６"));
        assert_eq!(a, x.patient(&fac(), "123456"));
        assert_eq!(a, x.patient(&fac(), " 123 456 "));
        assert_eq!(x.exam(&fac(), "e2026"), x.exam(&fac(), "Ｅ２０２６"));
        // Exam ids keep their zeros: they are not numbers.
        assert_ne!(x.exam(&fac(), "0012"), x.exam(&fac(), "12"));
        assert_eq!(x.doctor(&fac(), "鈴木 花子"), x.doctor(&fac(), "鈴木　花子"));
        assert_ne!(x.patient(&fac(), "0"), x.patient(&fac(), "1"));
    }

    #[test]
    fn uid_is_2_25_stable_and_keyed() {
        let a = p(1).uid("1.2.392.200036.9116.2.1");
        assert!(a.starts_with("2.25.") && a.len() <= 64, "{a}");
        assert!(a[5..].bytes().all(|b| b.is_ascii_digit()) && !a[5..].starts_with('0'));
        assert_eq!(a, p(1).uid("1.2.392.200036.9116.2.1\0"));
        assert_ne!(a, p(2).uid("1.2.392.200036.9116.2.1"));
        assert_ne!(a, p(1).uid("1.2.392.200036.9116.2.2"));
        // Version 8 UUID: the 4 bits after the top 48 are 1000.
        let v: u128 = a[5..].parse().unwrap();
        assert_eq!((v >> 76) & 0xf, 8);
    }

    #[test]
    fn debug_hides_key() {
        assert_eq!(format!("{:?}", p(1)), "Pseudonymizer(..)");
    }
}
