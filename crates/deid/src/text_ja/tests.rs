//! The Japanese patterns end to end, through `text::scrub`.

use crate::identifiers::{fold_mapped, IdentifierSet};
use crate::text::scrub;

fn s(t: &str) -> String {
    scrub(t, &IdentifierSet::default()).text
}

#[test]
fn building_and_room_follow_the_address() {
    let ids = crate::identifiers::IdentifierSet::from_exam(&fgw_records::RawExam::with_fields(&[]));
    for t in [
        "住所 京都府京都市左京区鞍馬本町1-2-3 パークサイド青葉 309号室 に在住",
        "東京都千代田区丸の内1-1 グランドハイツ",
        "大阪府大阪市北区梅田2-4-9 ABCタワー 12F",
        "宮城県仙台市青葉区一番町2丁目15番3号 パークサイド青葉 309号室",
        "福岡県福岡市中央区天神4丁目7番地 グランドハイツ",
    ] {
        let out = crate::text::scrub(t, &ids).text;
        for gone in ["パークサイド青葉", "309", "グランドハイツ", "ABCタワー", "12F"]
        {
            assert!(!out.contains(gone), "{gone} left in {out}");
        }
    }
    // Also when the address is the patient's own (matched as an identifier first).
    let own =
        crate::identifiers::IdentifierSet::from_exam(&fgw_records::RawExam::with_fields(&[(
            fgw_records::Column::Address,
            "京都府京都市左京区鞍馬本町1-2-3",
        )]));
    let out =
        crate::text::scrub("京都府京都市左京区鞍馬本町1-2-3 パークサイド青葉 309号室", &own).text;
    assert!(!out.contains("パークサイド") && !out.contains("309"), "{out}");
    // Text after an address that is not a building stays.
    let out = crate::text::scrub("京都府京都市左京区鞍馬本町1-2-3 胃体下部に潰瘍", &ids).text;
    assert!(out.contains("胃体下部に潰瘍"), "{out}");
}

#[test]
fn names_around_honorifics_and_roles() {
    assert_eq!(s("田中様に説明"), "[氏名]様に説明");
    assert_eq!(s("山田 太郎さん来院"), "[氏名]さん来院");
    assert_eq!(s("佐々木先生、林医師"), "[医師]先生、[医師]医師");
    assert_eq!(s("鈴木Dr、Dr.伊藤、Dr 加藤"), "[医師]Dr、Dr.[医師]、Dr [医師]");
    assert_eq!(s("Dr. Tanaka へ"), "Dr. [医師] へ");
    assert_eq!(s("TANAKA Taro様"), "[氏名]様");
    assert_eq!(s("タナカ ハナコ様、ｽｽﾞｷさん"), "[氏名]様、[氏名]さん");
    assert_eq!(s("小林氏、健太君、ゆいちゃん"), "[氏名]氏、[氏名]君、[氏名]ちゃん");
    assert_eq!(s("中村看護師、吉田Ns、松本技師"), "[氏名]看護師、[氏名]Ns、[氏名]技師");
    assert_eq!(s("担当:井上、主治医 木村 一郎"), "担当:[氏名]、主治医 [医師]");
    assert_eq!(s("長男 清水 健、妻 ヤマモト"), "長男 [氏名]、妻 [氏名]");
    assert_eq!(s("紹介元病院 斎藤先生"), "紹介元病院 [医師]先生");
    assert_eq!(s("一ノ瀬様"), "[氏名]様");
    assert_eq!(s("胃角 高橋様"), "胃角 [氏名]様");
}

#[test]
fn clinical_compounds_are_not_names() {
    for t in [
        "内視鏡医師が施行",
        "担当医師より説明",
        "主治医、研修医、専門医、看護師、患者様、家族様、皆様、先生方",
        "胃体下部様の隆起",
        "SMT様隆起、ポリープ様病変、びらん様変化",
        "検査技師、担当看護師、病棟看護師",
        "家族歴: 父 胃癌、母 大腸癌、妻 同伴",
        "こちらの先生にご紹介",
        "たくさんの白苔",
        "患者氏名欄",
        "ご本人様、奥様、お母さん",
        "ESD Dr判断",
    ] {
        assert_eq!(s(t), t);
    }
}

#[test]
fn dates_in_every_form() {
    for t in [
        "2026/11/25",
        "2026-11-25",
        "2026.11.25",
        "2026年11月25日",
        "２０２６年１１月２５日",
        "R8.11.25",
        "令和8年11月25日",
        "令和元年5月1日",
        "H31.4.30",
        "11/25",
        "11月25日",
        "2026年11月",
        "2026/11",
        "26/11/25",
    ] {
        assert_eq!(s(&format!("({t})")), "([日付])", "{t}");
    }
    for t in [
        "3日後",
        "10mm",
        "2cm",
        "1年後",
        "2/3周性",
        "Hb 12.3",
        "12-15mm",
        "2026年",
        "11月",
        "T1a",
        "0-IIc",
    ] {
        assert_eq!(s(t), t);
    }
}

#[test]
fn addresses() {
    assert_eq!(s("住所 京都府京都市上京区丸太町1-2-3 在住"), "住所 [住所] 在住");
    assert_eq!(s("東京都千代田区丸の内1丁目在住"), "[住所]在住");
    assert_eq!(s("横浜市中区山下町12番地、"), "[住所]、");
    assert_eq!(s("千代田区丸の内1-1"), "[住所]");
    for t in ["大阪府から来院", "京都市在住", "京都府立医科大学", "大阪市立病院"]
    {
        assert_eq!(s(t), t);
    }
}

#[test]
fn keyed_numbers() {
    assert_eq!(s("患者ID 123"), "患者ID [番号]");
    assert_eq!(s("ID:A12345"), "ID:[番号]");
    assert_eq!(s("カルテ番号 12345、受付番号 77"), "カルテ番号 [番号]、受付番号 [番号]");
    assert_eq!(
        s("保険者番号 06130012 記号 12 番号 345"),
        "保険者番号 [番号] 記号 [番号] 番号 [番号]"
    );
    for t in ["検体番号 1234-567", "ID 3分", "生検No.3"] {
        assert_eq!(s(t), t);
    }
}

#[test]
fn workflow_roles_lists_and_signatures() {
    assert_eq!(s("受付 山下"), "受付 [氏名]");
    assert_eq!(s("術者 小川 / 助手 北村"), "術者 [医師] / 助手 [医師]");
    assert_eq!(s("介助：吉川、宮本／技師：原田"), "介助：[氏名]、[氏名]／技師：[氏名]");
    assert_eq!(s("対応：吉川"), "対応：[氏名]");
    assert_eq!(s("記載 Kuroda、Ns. Yoshikawa"), "記載 [氏名]、Ns. [氏名]");
    assert_eq!(s("Reported by Kondo MD."), "Reported by [医師] MD.");
    assert_eq!(s("お願いします。谷 健司"), "お願いします。[医師]");
    assert_eq!(s("消化器内科 岡田 裕介\nTEL"), "消化器内科 [医師]\nTEL");
    assert_eq!(s("母親（森 恵子）"), "母親（[氏名]）");
    for t in [
        "職業 看護師",
        "IBD看護師",
        "健診センター Dr.",
        "受付 完了",
        "対応 不要",
        "氏名 記入、生年月日",
        "夫 小川 陽子、食道に病変",
        "食道 正常",
    ] {
        assert!(!s(t).contains("[氏名]") || t.contains("小川"), "{t}: {}", s(t));
    }
    assert_eq!(s("父 拓也さん"), "父 [氏名]さん");
    assert_eq!(s("記録 宮本看護師"), "記録 [氏名]看護師");
}

#[test]
fn english_and_era_year_month_dates() {
    for t in [
        "Dec 25, 1972",
        "December 25, 1972",
        "25 Dec 1972",
        "Apr 12, 2024",
        "May 2027",
        "Sept. 3",
        "R4.10",
        "H15.6",
        "H28年10月",
    ] {
        assert_eq!(s(&format!("({t})")), "([日付])", "{t}");
    }
    for t in ["NRS 2/10", "VAS: 3/10", "1/2陽性", "2/3程度", "2/3の日数", "T1.5", "may 5", "Dec"]
    {
        assert_eq!(s(t), t);
    }
    // Still a date when followed by an event.
    assert_eq!(s("8/22の結果説明"), "[日付]の結果説明");
}

#[test]
fn accession_and_card_numbers() {
    assert_eq!(s("標本番号 S24-01873"), "標本番号 [番号]");
    assert_eq!(s("Pathology No. P24-00931:"), "Pathology No. [番号]:");
    assert_eq!(s("検体番号 24-G-000512 生検"), "検体番号 [番号] 生検");
    assert_eq!(s("手帳 第1234-56号"), "手帳 第[番号]号");
    assert_eq!(s("（番号 AB12345678CD）"), "（番号 [番号]）");
    assert_eq!(s("内線 332、枝番 01"), "内線 [番号]、枝番 [番号]");
    for t in ["CA19-9 12", "LA-B", "0-IIc", "第3病日", "第2号"] {
        assert_eq!(s(t), t);
    }
}

#[test]
fn placeholders_never_match() {
    let t = "[氏名]様 [医師]先生 Dr.[医師] [日付] [住所] [番号] [患者ID] [生年月日] 担当:[氏名]";
    assert!(crate::text::find(t, &IdentifierSet::default()).is_empty());
    let c = super::narrow(&fold_mapped(t).original);
    let mut out = Vec::new();
    super::find_person_names(&c, &mut out);
    super::find_dates(&c, &mut out);
    super::find_addresses(&c, &mut out);
    super::find_keyed_numbers(&c, &mut out);
    assert!(out.is_empty());
}

#[test]
fn names_without_cues() {
    assert_eq!(s("説明は中村一郎に行った"), "説明は[氏名]に行った");
    assert_eq!(s("次回は小林直樹が予約を取る"), "次回は[氏名]が予約を取る");
    assert_eq!(s("同意書は森 実が署名した。"), "同意書は[氏名]が署名した。");
    assert_eq!(s("説明は太田に行った。"), "説明は[氏名]に行った。");
    assert_eq!(s("林と青木拓也が来院"), "[氏名]と[氏名]が来院");
    // Given names the dictionary does not know, after a surname it does.
    assert_eq!(s("説明は相沢蒼に行った"), "説明は[氏名]に行った");
    assert_eq!(s("説明は栗山悠真に行った"), "説明は[氏名]に行った");
    // Katakana and romaji.
    assert_eq!(s("連絡はナカムラ イチロウへ。"), "連絡は[氏名]へ。");
    assert_eq!(s("キムラハナコより電話"), "[氏名]より電話");
    assert_eq!(s("Kobayashi Naoki が来院"), "[氏名] が来院");
    assert_eq!(s("NAKAMURA Ichiro より"), "[氏名] より");
}

#[test]
fn a_replacement_is_finished() {
    // A surname found by a cue takes the given name after it, under its placeholder.
    assert_eq!(s("Dr.鈴木 健太より"), "Dr.[医師]より");
    let ids = IdentifierSet::from_exam(&fgw_records::RawExam::with_fields(&[(
        fgw_records::Column::ReferringPhysician,
        "鈴木",
    )]));
    assert_eq!(scrub("紹介元は鈴木健太。", &ids).text, "紹介元は[医師]。");
    // And a given name found alone takes the surname before it.
    assert_eq!(s("説明は東雲直樹に行った"), "説明は[氏名]に行った");
}

#[test]
fn clinical_words_are_not_names_without_cues() {
    for t in [
        "萎縮は木村・竹本分類でC-2。",
        "胃体上部に山田Ⅲ型のポリープ。",
        "pit patternは工藤分類 VI型。佐野分類でⅢA。",
        "既往に高安動脈炎、橋本病、川崎病。",
        "マロリー・ワイス症候群。ヘリコバクター・ピロリ陽性。",
        "タケキャブ、ワーファリン、バイアスピリン内服中。大建中湯、六君子湯。",
        "ファーター乳頭、バウヒン弁、十二指腸球部、脾弯曲まで観察。",
        "血管透見は消失。ケアマネと連絡。中村病院より紹介。",
    ] {
        assert_eq!(s(t), t);
    }
}

#[test]
fn no_term_list_spelling_is_taken_for_a_name() {
    // Verification runs the same matcher over every term label of a record.
    let list = fgw_records::terms::TermList::embedded();
    let terms = fgw_records::terms::TermCategory::ALL
        .iter()
        .flat_map(|cat| list.terms(*cat))
        .chain(list.site_qualifiers());
    for t in terms {
        for w in std::iter::once(&t.label).chain(&t.synonyms).chain(&t.organ_synonyms) {
            let found = crate::text::find(w, &IdentifierSet::default());
            assert!(
                !found.iter().any(|m| m.hit.key().ends_with("_name")),
                "{w}: {:?}",
                found.iter().map(|m| m.hit).collect::<Vec<_>>()
            );
        }
    }
}

#[test]
fn english_and_device_words_are_not_romaji_names() {
    for t in [
        "Kudo Pit pattern VI",
        "Sano Type II",
        "Forrest Ia, Paris 0-IIc",
        "Olympus Medical Systems",
        "Fuji Film EG-L600ZW7",
        "Upper Endo, Lower GI",
        "Barrett esophagus, Helicobacter pylori",
        "Lugol unstained area",
        "Mallory-Weiss tear",
        "Japan Gastroenterological Endoscopy Society",
    ] {
        assert_eq!(s(t), t);
    }
}
