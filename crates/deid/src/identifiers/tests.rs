//! Identifier sets, romaji spellings and folding.

use super::*;
use fgw_records::{Column, RawExam};

fn exam(fields: &[(Column, &str)]) -> RawExam {
    RawExam::with_fields(fields)
}

fn has(set: &IdentifierSet, kind: IdKind, raw: &str) -> bool {
    let (f, _) = fold(raw);
    set.variants().any(|(k, v)| k == kind && v == f)
}

#[test]
fn fold_normalizes_and_maps() {
    assert_eq!(fold("ﾀｶﾊｼ ﾊﾅｺ").0, "たかはしはなこ");
    assert_eq!(fold("タカハシ　ハナコ").0, "たかはしはなこ");
    assert_eq!(fold("髙橋").0, "高橋");
    assert_eq!(fold("山﨑").0, "山崎");
    assert_eq!(fold("０９０‐１２３４‐５６７８").0, "09012345678");
    assert_eq!(fold("090ー1234ー5678").0, "09012345678");
    assert_eq!(fold("ユーコ").0, "ゆーこ");
    assert_eq!(fold("e2026").0, "E2026");
    assert_eq!(fold("㍼25年").0, "昭和25年");
    assert_eq!(fold("ヤマ・ダ").0, "やまだ");
    // ﾀﾞ is two original chars folded into one; the map points at the first.
    let (f, map) = fold("aﾀﾞb");
    assert_eq!(f, "AだB");
    assert_eq!(map, vec![0, 1, 3]);
    let m = fold_mapped("aﾀﾞb");
    assert_eq!(m.original_range(1, 2), (1, 3));
}

#[test]
fn from_exam_variants() {
    let e = exam(&[
        (Column::PatientName, "髙橋　花子"),
        (Column::PatientKana, "ﾀｶﾊｼ ﾊﾅｺ"),
        (Column::PatientId, "00123456"),
        (Column::BirthDate, "S25.01.02"),
        (Column::Phone, "０９０‐１２３４‐５６７８"),
        (Column::Address, "京都府京都市上京区丸太町通烏丸西入ル123"),
        (Column::ExamId, "E2026112500123"),
        (Column::ReferringPhysician, "佐藤 一郎"),
        (Column::Operator, "鈴木 花"),
    ]);
    let s = IdentifierSet::from_exam(&e);
    assert!(has(&s, IdKind::PatientName, "高橋花子"));
    assert!(has(&s, IdKind::PatientName, "高橋"));
    assert!(has(&s, IdKind::PatientName, "花子"));
    assert!(has(&s, IdKind::PatientKana, "たかはしはなこ"));
    assert!(has(&s, IdKind::PatientKana, "タカハシ"));
    assert!(has(&s, IdKind::PatientId, "00123456"));
    assert!(has(&s, IdKind::PatientId, "123456"));
    assert!(has(&s, IdKind::BirthDate, "昭和25年1月2日"));
    assert!(has(&s, IdKind::BirthDate, "1950/1/2"));
    assert!(has(&s, IdKind::Phone, "09012345678"));
    assert!(has(&s, IdKind::Address, "京都府京都市上京区"));
    assert!(has(&s, IdKind::Address, "京都市上京区"));
    assert!(has(&s, IdKind::ExamId, "E2026112500123"));
    assert!(has(&s, IdKind::Physician, "佐藤一郎"));
    assert!(has(&s, IdKind::Physician, "佐藤"));
    assert!(has(&s, IdKind::Physician, "鈴木"));
    // Given names of physicians and 1-char parts are not searched alone.
    assert!(!has(&s, IdKind::Physician, "一郎"));
    assert!(!has(&s, IdKind::Physician, "花"));
    assert!(s.variants().all(|(_, v)| searchable(v)));
    assert!(!format!("{s:?}").contains("123456"));
}

#[test]
fn romaji_hepburn_variants() {
    let has = |kana: &str, want: &[&str]| {
        let v = romaji_variants(kana);
        for w in want {
            assert!(v.iter().any(|x| x == w), "{kana}: {w} not in {v:?}");
        }
    };
    has("カトウ", &["katou", "kato", "katoo", "katoh"]);
    has("ｹﾝｲﾁ", &["ken'ichi", "kenichi", "keniti"]);
    has("ちひろ", &["chihiro", "tihiro"]);
    has("コバヤシ", &["kobayashi", "kobayasi"]);
    has("ジュンペイ", &["junpei", "jumpei", "zyunpei", "jyunpe"]);
    has("ハットリ", &["hattori"]);
    has("ホッチ", &["hotchi", "hotti"]);
    has("ユーコ", &["yuuko", "yuko"]);
    has("シュウヘイ", &["shuuhei", "shuhei", "syuhei"]);
    has("オオノ", &["oono", "ono", "ohno"]);
    assert!(romaji_variants("山田").is_empty());
}

#[test]
fn romaji_and_short_parts_of_the_patient_name() {
    let s = IdentifierSet::from_exam(&exam(&[
        (Column::PatientName, "田村 正"),
        (Column::PatientKana, "タムラ タダシ"),
    ]));
    for v in ["TAMURA", "TADASHI", "TADASI", "TAMURATADASHI", "TADASHITAMURA"] {
        assert!(has(&s, IdKind::PatientName, v), "{v}");
    }
    assert_eq!(s.short_names().collect::<Vec<_>>(), vec!["正"]);
    assert!(!format!("{s:?}").contains('正'));
    // Parts under 3 letters are not searched alone.
    let s = IdentifierSet::from_exam(&exam(&[(Column::PatientKana, "モリ アイ")]));
    assert!(has(&s, IdKind::PatientName, "MORI"));
    assert!(!has(&s, IdKind::PatientName, "AI"));
    assert!(has(&s, IdKind::PatientName, "MORIAI"));
}

#[test]
fn short_ids_and_city_splits() {
    let s = IdentifierSet::from_exam(&exam(&[(Column::PatientId, "00000123")]));
    assert!(has(&s, IdKind::PatientId, "00000123"));
    assert!(!has(&s, IdKind::PatientId, "123"));
    let s = IdentifierSet::from_exam(&exam(&[(Column::Address, "東京都千代田区丸の内1-1")]));
    assert!(has(&s, IdKind::Address, "東京都千代田区"));
    let s = IdentifierSet::from_exam(&exam(&[(Column::Address, "北海道札幌市中央区北1条")]));
    assert!(has(&s, IdKind::Address, "北海道札幌市中央区"));
    let s = IdentifierSet::from_exam(&exam(&[(Column::Address, "長野県北佐久郡軽井沢町長倉")]));
    assert!(has(&s, IdKind::Address, "長野県北佐久郡軽井沢町"));
}

#[test]
fn the_town_without_its_block_numbers_is_an_identifier() {
    for (address, town) in [
        ("東京都千代田区永田町9-8-7", "永田町"),
        ("東京都港区六本木六丁目10-1", "六本木"),
        ("北海道札幌市中央区北1条西2丁目", "北"),
        ("京都府京都市上京区丸太町通烏丸西入ル123", "丸太町通烏丸西入ル"),
    ] {
        let s = IdentifierSet::from_exam(&exam(&[(Column::Address, address)]));
        assert_eq!(has(&s, IdKind::Address, town), town.chars().count() >= 2, "{address}");
    }
}
