//! Unit tests of the term lists, normalization and matching.

use super::normalize::norm_chars;
use super::*;

fn code(r: &TermRef) -> &str {
    r.code.as_deref().unwrap_or("-")
}

#[test]
fn embedded_list_parses() {
    let l = TermList::from_toml(EMBEDDED).unwrap();
    assert_eq!(l.version(), "fgw-jed-terms 2026.1");
    assert!(l.note().contains("NOT the official JED master"));
    assert!(l.terms(TermCategory::Diagnosis).len() >= 60);
    assert!(l.terms(TermCategory::Treatment).len() >= 25);
    assert!(l.terms(TermCategory::AdverseEvent).len() >= 12);
    let codes: Vec<&str> =
        l.terms(TermCategory::ExamType).iter().map(|t| t.code.as_str()).collect();
    assert_eq!(codes, ["upper_gi", "lower_gi", "small_bowel", "ercp", "eus"]);
}

#[test]
fn normalize_macroscopic_variants() {
    for s in ["0-Ⅱc", "0-IIc", "0-2c", "０－Ⅱｃ", "0-Ⅱ c", "Ⅱc型", "0ーⅡc", "0‐Ⅱc病変", "0 - ii c"]
    {
        assert_eq!(normalize(s), "0-IIC", "{s}");
    }
    assert_eq!(normalize("0-Ⅱa+Ⅱc"), "0-IIA+0-IIC");
    assert_eq!(normalize("0-Ⅰsp"), "0-ISP");
    assert_eq!(normalize("0-3"), "0-III");
    // Not macroscopic: upper-case abbreviations, words, sizes.
    assert_eq!(normalize("IS"), "IS");
    assert_eq!(normalize("this"), "THIS");
    assert_eq!(normalize("2cm"), "2CM");
    assert_eq!(normalize("ポリープ"), "ポリープ");
    assert_eq!(normalize("マロリー・ワイス"), "マロリーワイス");
    assert_eq!(normalize("ｶﾞｽ"), "ガス");
}

#[test]
fn norm_chars_keep_source_ranges() {
    let s = "早期胃癌 0-Ⅱc型";
    let v = norm_chars(s);
    assert_eq!(&s[v[0].start..v[3].end], "早期胃癌");
    let last = v.last().unwrap();
    assert_eq!(&s[v[4].start..last.end], "0-Ⅱc型");
}

#[test]
fn ascii_boundaries() {
    let l = TermList::embedded();
    assert!(l.extract_findings("ERCP施行")[0].site.is_none());
    let f = &l.extract_findings("Raに腺腫")[0];
    assert_eq!(code(f.site.as_ref().unwrap()), "site.rectum.ra");
    assert_eq!(code(&f.terms[0]), "dx.colorectal_adenoma");
}

#[test]
fn negation_is_not_coded() {
    let l = TermList::embedded();
    let f = &l.extract_findings("胃体部に潰瘍は認めない")[0];
    assert!(f.terms.is_empty());
    assert_eq!(f.text, "胃体部に潰瘍は認めない");
    let r = l.map_all(TermCategory::AdverseEvent, "出血なし");
    assert_eq!(r, vec![unmapped("出血なし")]);
}

#[test]
fn organ_context_carries_forward() {
    let l = TermList::embedded();
    let f = l.extract_findings("上行結腸にポリープ。周囲に腺腫。");
    assert_eq!(code(&f[0].terms[0]), "dx.colorectal_polyp");
    assert!(f[1].site.is_none());
    assert_eq!(code(&f[1].terms[0]), "dx.colorectal_adenoma");
    let f = l.extract_findings("腺腫あり");
    assert_eq!(f[0].terms, vec![]);
}

#[test]
fn bad_code_and_unknown_organ() {
    let bad = "version = \"t\"\n[[treatment]]\ncode = \"tx/a\"\nlabel = \"A\"\n";
    assert!(matches!(TermList::from_toml(bad), Err(TermsError::BadCode { .. })));
    let bad = "version = \"t\"\n[[diagnosis]]\ncode = \"dx.a\"\nlabel = \"A\"\norgan = \"lung\"\n";
    let e = TermList::from_toml(bad).unwrap_err();
    assert!(e.to_string().contains("dx.a") && e.to_string().contains("lung"), "{e}");
    let bad = "version = \"t\"\n[[site]]\ncode = \"s\"\nlabel = \"S\"\n";
    assert!(matches!(TermList::from_toml(bad), Err(TermsError::MissingOrgan { .. })));
    let bad = "version = \"\"\n";
    assert!(matches!(TermList::from_toml(bad), Err(TermsError::EmptyVersion)));
}
