//! JED term mapping: the embedded list, normalization, term columns and findings.

use fgw_format::package::TermRef;
use fgw_records::terms::{normalize, split_terms, TermCategory, TermList, TermsError};

fn list() -> &'static TermList {
    TermList::embedded()
}

fn codes(refs: &[TermRef]) -> Vec<&str> {
    refs.iter().map(|r| r.code.as_deref().unwrap_or("UNMAPPED")).collect()
}

#[test]
fn embedded_list_parses_and_validates() {
    let l = list();
    assert_eq!(l.version(), "fgw-jed-terms 2026.1");
    // It re-validates from its own text too (the same path a society list takes).
    let text = std::fs::read_to_string(
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("data/terms/jed-terms.toml"),
    )
    .unwrap();
    assert_eq!(TermList::from_toml(&text).unwrap().version(), l.version());
    for cat in TermCategory::ALL {
        assert!(!l.terms(cat).is_empty(), "{cat}");
    }
}

#[test]
fn exam_type_codes_match_the_gate() {
    let l = list();
    for (text, code) in [
        ("上部消化管", "upper_gi"),
        ("下部消化管", "lower_gi"),
        ("小腸", "small_bowel"),
        ("ERCP", "ercp"),
        ("ｅｕｓ", "eus"),
        ("上部", "upper_gi"),
    ] {
        assert_eq!(l.lookup(TermCategory::ExamType, text).map(|t| t.code.as_str()), Some(code));
    }
}

#[test]
fn macroscopic_spellings_are_one_code() {
    let l = list();
    for s in ["0-Ⅱc", "0-IIc", "0-2c", "０－Ⅱｃ", "0-Ⅱ c", "Ⅱc型", "0-Ⅱc病変", "0－ⅡC"]
    {
        let t = l.lookup(TermCategory::Diagnosis, s).unwrap_or_else(|| panic!("{s}"));
        assert_eq!(t.code, "macro.0-IIc", "{s}");
        assert_eq!(t.label, "0-Ⅱc");
    }
    assert_eq!(normalize("0-Ⅰs"), normalize("0-1s"));
    assert_eq!(l.lookup(TermCategory::Diagnosis, "0-Ⅲ").unwrap().code, "macro.0-III");
    assert_eq!(l.lookup(TermCategory::Diagnosis, "2型").unwrap().code, "macro.type2");
    assert_eq!(l.lookup(TermCategory::Diagnosis, "LST-NG").unwrap().code, "macro.lst-ng");
}

#[test]
fn compound_item_gives_two_codes() {
    let l = list();
    let r = l.map_all(TermCategory::Diagnosis, "早期胃癌 0-Ⅱc");
    assert_eq!(codes(&r), ["dx.early_gastric_cancer", "macro.0-IIc"]);
    assert!(r.iter().all(|t| !t.unmapped));
    let r = l.map_all(TermCategory::Diagnosis, "早期胃癌 0-Ⅱa+Ⅱc");
    assert_eq!(codes(&r), ["dx.early_gastric_cancer", "macro.0-IIa", "macro.0-IIc"]);
    let r = l.map_all(TermCategory::Diagnosis, "大腸腺腫（0-Ⅰs）");
    assert_eq!(codes(&r), ["dx.colorectal_adenoma", "macro.0-Is"]);
}

#[test]
fn remainder_is_one_unmapped_ref() {
    let l = list();
    let r = l.map_all(TermCategory::Diagnosis, "早期胃癌疑い");
    assert_eq!(codes(&r), ["dx.early_gastric_cancer", "UNMAPPED"]);
    assert_eq!(r[1].label, "疑い");
    assert!(r[1].unmapped);
    // Particles and 施行 are not worth a reference of their own.
    assert_eq!(codes(&l.map_all(TermCategory::Treatment, "ESD施行")), ["tx.esd"]);
    assert_eq!(codes(&l.map_all(TermCategory::Treatment, "生検 ")), ["tx.biopsy"]);
    assert!(l.map_all(TermCategory::Treatment, "  ").is_empty());
}

#[test]
fn english_and_abbreviations() {
    let l = list();
    for (cat, text, code) in [
        (TermCategory::Treatment, "ESD", "tx.esd"),
        (TermCategory::Treatment, "esd", "tx.esd"),
        (TermCategory::Treatment, "ＥＭＲ", "tx.emr"),
        (TermCategory::Treatment, "内視鏡的粘膜下層剥離術", "tx.esd"),
        (TermCategory::Treatment, "cold snare polypectomy", "tx.csp"),
        (TermCategory::Diagnosis, "early gastric cancer", "dx.early_gastric_cancer"),
        (TermCategory::Diagnosis, "Early  Gastric Cancer", "dx.early_gastric_cancer"),
        (TermCategory::Diagnosis, "SSA/P", "dx.ssl"),
        (TermCategory::Diagnosis, "LA-B", "dx.reflux_esophagitis.la_b"),
        (TermCategory::Diagnosis, "Mallory-Weiss症候群", "dx.mallory_weiss"),
        (TermCategory::AdverseEvent, "PEP", "ae.post_ercp_pancreatitis"),
        (TermCategory::AdverseEvent, "ERCP後膵炎", "ae.post_ercp_pancreatitis"),
    ] {
        let r = l.map(cat, text);
        assert_eq!(r.code.as_deref(), Some(code), "{text}");
        assert!(!r.unmapped);
    }
}

#[test]
fn unmapped_text_is_flagged_and_kept() {
    let l = list();
    let r = l.map(TermCategory::Diagnosis, "[氏名]様の所見");
    assert_eq!(r, TermRef { code: None, label: "[氏名]様の所見".into(), unmapped: true });
    let r = l.map_all(TermCategory::Treatment, "謎の処置");
    assert_eq!(r, vec![TermRef { code: None, label: "謎の処置".into(), unmapped: true }]);
    // Organ-specific spellings need an organ.
    assert!(l.map(TermCategory::Diagnosis, "腺腫").unmapped);
    let r = l.map_all_in(TermCategory::Diagnosis, "腺腫", Some("colon"));
    assert_eq!(codes(&r), ["dx.colorectal_adenoma"]);
}

#[test]
fn split_term_lists() {
    assert_eq!(
        split_terms("ESD；生検、クリップ止血; EVL,APC / EIS"),
        ["ESD", "生検", "クリップ止血", "EVL", "APC", "EIS"]
    );
    assert_eq!(split_terms("早期胃癌 0-Ⅱa+Ⅱc；SSA/P"), ["早期胃癌 0-Ⅱa+Ⅱc", "SSA/P"]);
    assert_eq!(split_terms("EBD/ステント留置"), ["EBD", "ステント留置"]);
    assert!(split_terms(" ; 、").is_empty());
    let l = list();
    assert_eq!(
        codes(&l.map_list(TermCategory::Treatment, "EBD/ステント留置；EST")),
        ["tx.ebd", "tx.stent", "tx.est"]
    );
}

#[test]
fn findings_from_sentences() {
    let l = list();
    let text = "胃体下部小弯に0-Ⅱc病変。\n上行結腸に腺腫 5mm、CSP施行。食道胃接合部にLA-Bの逆流性食道炎を認める；\
                十二指腸球部前壁に潰瘍瘢痕。S状結腸に憩室多発。観察範囲に出血なし。残胃吻合部に異常なし";
    let f = l.extract_findings(text);
    assert_eq!(f.len(), 7);

    let site = |i: usize| f[i].site.as_ref().map(|s| (s.code.clone().unwrap(), s.label.clone()));
    assert_eq!(
        site(0),
        Some(("site.stomach.lower_body/lesser_curvature".into(), "胃体下部小弯".into()))
    );
    assert_eq!(codes(&f[0].terms), ["macro.0-IIc"]);
    assert_eq!(f[0].text, "胃体下部小弯に0-Ⅱc病変");

    assert_eq!(site(1).unwrap().0, "site.colon.ascending");
    assert_eq!(codes(&f[1].terms), ["dx.colorectal_adenoma"]);
    assert_eq!(f[1].text, "上行結腸に腺腫 5mm、CSP施行");

    assert_eq!(site(2).unwrap().0, "site.egj");
    assert_eq!(codes(&f[2].terms), ["dx.reflux_esophagitis.la_b", "dx.reflux_esophagitis"]);

    assert_eq!(
        site(3),
        Some(("site.duodenum.bulb/anterior_wall".into(), "十二指腸球部前壁".into()))
    );
    assert_eq!(codes(&f[3].terms), ["dx.duodenal_ulcer_scar"]);

    assert_eq!(site(4).unwrap().0, "site.colon.sigmoid");
    assert_eq!(codes(&f[4].terms), ["dx.colonic_diverticulum"]);

    // A sentence with no site and no (non-negated) term is kept as it is.
    assert_eq!(f[5].site, None);
    assert!(f[5].terms.is_empty());
    assert_eq!(f[5].text, "観察範囲に出血なし");

    assert_eq!(site(6).unwrap().0, "site.stomach.remnant");
    assert_eq!(codes(&f[6].terms), ["dx.normal"]);
}

#[test]
fn findings_keep_sentences_without_terms() {
    let f = list().extract_findings("前処置は良好。\n\n。");
    assert_eq!(f.len(), 1);
    assert_eq!(f[0].text, "前処置は良好");
    assert!(f[0].site.is_none() && f[0].terms.is_empty());
    assert!(list().extract_findings("").is_empty());
}

#[test]
fn duplicate_code_names_the_code() {
    let bad = r#"
version = "test 1"
[[treatment]]
code = "tx.same"
label = "A"
[[treatment]]
code = "tx.same"
label = "B"
"#;
    let e = TermList::from_toml(bad).unwrap_err();
    assert!(matches!(e, TermsError::DuplicateCode { .. }));
    let msg = e.to_string();
    assert!(msg.contains("tx.same") && msg.contains("treatment"), "{msg}");
}

#[test]
fn duplicate_spelling_and_empty_label_are_rejected() {
    let bad = r#"
version = "test 1"
[[treatment]]
code = "tx.a"
label = "ESD"
[[treatment]]
code = "tx.b"
label = "B"
synonyms = ["ｅｓｄ"]
"#;
    let msg = TermList::from_toml(bad).unwrap_err().to_string();
    assert!(msg.contains("tx.a") && msg.contains("tx.b"), "{msg}");
    let bad = "version = \"t\"\n[[adverse_event]]\ncode = \"ae.x\"\nlabel = \" \"\n";
    let msg = TermList::from_toml(bad).unwrap_err().to_string();
    assert!(msg.contains("ae.x") && msg.contains("adverse_event"), "{msg}");
    assert!(TermList::from_toml("version = ").is_err());
}

#[test]
fn every_spelling_maps_back_to_its_term() {
    let l = list();
    for cat in TermCategory::ALL {
        for t in l.terms(cat) {
            for s in std::iter::once(&t.label).chain(&t.synonyms) {
                let got = l.lookup(cat, s).map(|x| x.code.as_str());
                assert_eq!(got, Some(t.code.as_str()), "{cat} {s}");
                // Also as a whole item among other text.
                let r = l.map_all(cat, s);
                assert_eq!(codes(&r), [t.code.as_str()], "{cat} map_all {s}");
            }
            if let Some(o) = &t.organ {
                for s in &t.organ_synonyms {
                    let got = l.lookup_in(cat, s, Some(o)).map(|x| x.code.as_str());
                    assert_eq!(got, Some(t.code.as_str()), "{cat} {o} {s}");
                }
            }
        }
    }
    for q in l.site_qualifiers() {
        for s in std::iter::once(&q.label).chain(&q.synonyms) {
            let f = l.extract_findings(&format!("胃角{s}"));
            let site = f[0].site.as_ref().unwrap().code.as_deref().unwrap();
            assert_eq!(site, format!("site.stomach.angle/{}", q.code), "{s}");
        }
    }
}

#[test]
fn findings_in_other_organs() {
    let l = list();
    let f = l.extract_findings(
        "総胆管に結石を認め、EST後に砕石。胃角部に2型進行胃癌。Mtに表在癌 0-Ⅱc。",
    );
    assert_eq!(f.len(), 3);
    let site = |i: usize| f[i].site.as_ref().and_then(|s| s.code.clone()).unwrap();
    assert_eq!(site(0), "site.bile_duct.common");
    assert_eq!(codes(&f[0].terms), ["dx.bile_duct_stone"]);
    assert_eq!(site(1), "site.stomach.angle");
    assert_eq!(codes(&f[1].terms), ["macro.type2", "dx.advanced_gastric_cancer"]);
    assert_eq!(site(2), "site.esophagus.middle_thoracic");
    assert_eq!(codes(&f[2].terms), ["dx.superficial_esophageal_cancer", "macro.0-IIc"]);
    // 胃 is not taken out of a diagnosis as a site.
    let f = l.extract_findings("早期胃癌の疑い");
    assert!(f[0].site.is_none());
    assert_eq!(codes(&f[0].terms), ["dx.early_gastric_cancer"]);
}

#[test]
fn negated_terms_are_not_coded() {
    let l = list();
    let r = l.map_all(TermCategory::Treatment, "ESD、生検なし");
    assert_eq!(codes(&r), ["tx.esd", "UNMAPPED"]);
    assert_eq!(r[1].label, "生検なし");
    let f = l.extract_findings("胃体上部に潰瘍なし");
    assert_eq!(f[0].site.as_ref().unwrap().code.as_deref(), Some("site.stomach.upper_body"));
    assert!(f[0].terms.is_empty());
    assert_eq!(codes(&l.map_all(TermCategory::AdverseEvent, "なし")), ["ae.none"]);
}
