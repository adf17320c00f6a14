//! Japanese free-text patterns that do not depend on the exam's own identifiers: other
//! people's names next to an honorific or role word, dates in every written form, street
//! addresses, and numbers announced by an identifying keyword (患者ID, カルテ番号, 保険者番号…).
//!
//! These finders read the original chars through a 1:1 narrowed view (full-width ASCII made
//! ASCII, dashes unified) instead of the folded form: here the separators (`/`, `-`, the space
//! between surname and given name) and the script (katakana vs hiragana) carry meaning, and
//! `fold` removes or merges them.
//!
//! Precision rules, on purpose conservative on the side of replacing:
//! - a name is only looked for next to a cue (honorific, role, family word, `Dr`); bare names
//!   without a cue are not found (except this exam's own, by `text::find_ids`);
//! - clinical compounds before a role word (内視鏡医師, 担当看護師, 胃体下部様, 隆起様) are
//!   rejected by a stop-list and by "breaker" kanji that never occur in names (癌, 胃, 医…);
//! - durations and sizes (`3日後`, `1年後`, `10mm`) and fractions (`2/3周`) are not dates; a
//!   bare year (`2026年`) or month (`11月`) is kept; `M/D` after a score word (`NRS 2/10`) or
//!   before 陽性/陰性 or "の + a quantity" (`2/3の日数`) is a fraction. A bare `1/2` elsewhere
//!   is still read as a date: the two cannot be told apart without context;
//! - a prefecture alone or a city alone (`京都市在住`) is not an address.

use super::dates;
use super::identifiers::{fold, IdKind};
use super::text::{Hit, Match, Pattern};

/// The original chars, full-width ASCII narrowed, ideographic space made ASCII, dashes
/// unified; one char per original char so indices are original indices.
pub(super) fn narrow(orig: &[char]) -> Vec<char> {
    let mut c: Vec<char> = orig
        .iter()
        .map(|&ch| match ch {
            '\u{FF01}'..='\u{FF5E}' => char::from_u32(ch as u32 - 0xFEE0).unwrap_or(ch),
            '\u{3000}' | '\t' => ' ',
            '\u{2010}'..='\u{2015}' | '\u{2212}' | '\u{FE63}' => '-',
            _ => ch,
        })
        .collect();
    // ー typed between digits in kana mode is a dash.
    for i in 1..c.len().saturating_sub(1) {
        if matches!(c[i], 'ー' | 'ｰ') && c[i - 1].is_ascii_digit() && c[i + 1].is_ascii_digit() {
            c[i] = '-';
        }
    }
    c
}

pub(super) fn is_kanji(ch: char) -> bool {
    matches!(ch,
        '\u{3400}'..='\u{4DBF}' | '\u{4E00}'..='\u{9FFF}' | '\u{F900}'..='\u{FAFF}'
        | '\u{20000}'..='\u{3FFFF}' | '々' | '〆')
}

fn is_katakana(ch: char) -> bool {
    matches!(ch, '\u{30A1}'..='\u{30FA}' | 'ー' | 'ヽ' | 'ヾ' | '・' | '\u{FF65}'..='\u{FF9F}')
}

fn is_hiragana(ch: char) -> bool {
    matches!(ch, '\u{3041}'..='\u{3096}' | 'ゝ' | 'ゞ')
}

/// Kanji, or ノ/ヶ/ケ between two kanji (一ノ瀬, 霞ヶ関).
fn kanji_at(c: &[char], i: usize) -> bool {
    is_kanji(c[i])
        || (matches!(c[i], 'ノ' | 'ヶ' | 'ケ')
            && i > 0
            && i + 1 < c.len()
            && is_kanji(c[i - 1])
            && is_kanji(c[i + 1]))
}

/// Kanji that do not occur in Japanese personal names: disease, organ, procedure and role
/// characters. A name candidate never extends over one, so 病院田中先生 yields 田中 and
/// 内視鏡医師 yields nothing.
const BREAKERS: &str = "癌瘍炎症疾患病腫痛胃腸肝膵肺腎疹痢嚥梗塞亡歳術療薬剤査検診院科死鏡臓便吐嘔痺裂潰瘢腺粘血者医師的等菌錠量値率度様殿状斑粒凹瘤褪萎縮苔孔襞皺膜脈陥変性型線網像影溝層壁弯門管";

fn breaker(ch: char) -> bool {
    BREAKERS.contains(ch)
}

/// Words (folded: kana as hiragana) that look like a name next to a cue but are roles,
/// relations, clinical or administrative words. Also stripped when they start a candidate
/// (紹介 田中先生 → 田中).
const STOP: &[&str] = &[
    // roles and places
    "内視鏡",
    "担当",
    "担当医",
    "主治",
    "主治医",
    "研修",
    "専門",
    "看護",
    "看護師",
    "患者",
    "家族",
    "先生",
    "先生方",
    "医師",
    "技師",
    "当直",
    "当番",
    "常勤",
    "非常勤",
    "指導",
    "上級",
    "若手",
    "紹介",
    "紹介元",
    "依頼",
    "依頼元",
    "施行",
    "執刀",
    "介助",
    "前医",
    "当院",
    "貴院",
    "同院",
    "他院",
    "院長",
    "部長",
    "科長",
    "医長",
    "師長",
    "主任",
    "病棟",
    "外来",
    "救急",
    "消化器",
    "内科",
    "外科",
    "本人",
    "主人",
    "両親",
    "旦那",
    "息子",
    "家内",
    "長男",
    "長女",
    "次男",
    "次女",
    "三男",
    "三女",
    "祖父",
    "祖母",
    "叔父",
    "叔母",
    "伯父",
    "伯母",
    "義父",
    "義母",
    "配偶",
    "友人",
    "知人",
    "介護",
    "施設",
    "職員",
    "事務",
    "受付",
    "管理",
    "担当者",
    "責任者",
    "代表",
    "各位",
    "御中",
    "侍史",
    "御侍史",
    "机下",
    "訪問",
    "認定",
    "正看護",
    "准看護",
    "当該",
    "複数",
    "全員",
    "皆々",
    "皆さん",
    "諸先生",
    "お客",
    "客",
    "嬢",
    "お嬢",
    "赤",
    "坊",
    "キーパーソン",
    "生年月日",
    "氏名",
    "住所",
    "電話",
    "連絡先",
    "携帯",
    "自宅",
    "助手",
    "職業",
    "記録",
    "記録者",
    "説明者",
    "読影",
    "病理",
    "病理医",
    "栄養士",
    "医事課",
    "ケアマネ",
    // facilities before Dr (健診センター Dr.上田)
    "せんたー",
    "くりにっく",
    "ほすぴたる",
    // time and workflow
    "本日",
    "次回",
    "前回",
    "今回",
    "後日",
    "翌日",
    "当日",
    "同日",
    "明日",
    "昨日",
    "今日",
    "午前",
    "午後",
    "説明",
    "連絡",
    "報告",
    "相談",
    "確認",
    "来院",
    "同伴",
    "付添",
    "同席",
    "面会",
    "不在",
    "健在",
    "在宅",
    "同居",
    "既往",
    "特記",
    "死去",
    "他界",
    "存命",
    "記載",
    "入院",
    "退院",
    "受診",
    "再診",
    "初診",
    "予約",
    "経過",
    "観察",
    "以上",
    "以下",
    "所見",
    "診断",
    "治療",
    "処置",
    "生検",
    "切除",
    "止血",
    "送付",
    "不明",
    "高齢",
    "判断",
    "指示",
    "了承",
    "許可",
    "対応",
    "不要",
    "無し",
    "有り",
    "別居",
    "独居",
    "同意",
    "立会",
    "立ち会い",
    "完了",
    "終了",
    "開始",
    "継続",
    "中止",
    "変更",
    "予定",
    "時間",
    "窓口",
    "内容",
    "事項",
    "結果",
    "済み",
    "待ち",
    "記入",
    // anatomy and findings without a breaker kanji
    "上部",
    "中部",
    "下部",
    "体上部",
    "体中部",
    "体下部",
    "前庭部",
    "角部",
    "体部",
    "球部",
    "下行脚",
    "上行",
    "下行",
    "横行",
    "隆起",
    "発赤",
    "狭窄",
    "憩室",
    "過形成",
    "結節",
    "顆粒",
    "乳頭",
    "絨毛",
    "敷石",
    "地図",
    "白斑",
    "帯状",
    "蛇行",
    "樹枝",
    "網目",
    "亀甲",
    "鳥肌",
    "縦走",
    "粗造",
    "平坦",
    "表面",
    "側方",
    "発育",
    "鋸歯",
    "扁平",
    "肉眼",
    "拡大",
    "色素",
    "散布",
    "染色",
    "鉗子",
    "局注",
    "切開",
    "剥離",
    "出血",
    "穿孔",
    "送気",
    "吸引",
    "噴門",
    "幽門",
    "穹窿",
    "穹窿部",
    "十二指腸",
    "下咽頭",
    "咽頭",
    "喉頭",
    "上皮",
    "白色",
    "発疹",
    "びらん",
    "たこいぼ",
    "いぼ",
    "ひだ",
    "ただれ",
    "くぼみ",
    // katakana words (as hiragana)
    "なーす",
    "すたっふ",
    "どくたー",
    "へるぱー",
    "けあまね",
    "けあまねーじゃー",
    "まま",
    "ぱぱ",
    "べびー",
    "ぼらんてぃあ",
    "ぽりーぷ",
    "たこいぼ",
    "びらん",
    "くれーたー",
    "もざいく",
    "あふた",
    "かるちのいど",
    "へるにあ",
    "ばれっと",
    "ぴろり",
    "すてんと",
    "くりっぷ",
    "ねっと",
    "ごむ",
    "ちーむ",
    "めんばー",
    "おぺれーたー",
    "ふぁみりー",
    "きーぱーそん",
    // hiragana words before さん/様/ちゃん
    "みな",
    "たく",
    "おばあ",
    "おじい",
    "おかあ",
    "おとう",
    "おにい",
    "おねえ",
    "おく",
    "おじ",
    "おば",
    "おじょう",
    "おこ",
    "おまご",
    "だんな",
    "ごしゅじん",
    "ごかぞく",
    "ごほんにん",
    "かんじゃ",
    "かんごし",
    "おきゃく",
    "あか",
    "おいしゃ",
    "せんせい",
    "ごくろう",
    "おつかれ",
    "おひさま",
];

/// One-kanji words that are not names before an honorific (皆様, 同氏, 奥様, 母さん).
const SINGLE_STOP: &str = "皆各同本両貴諸奥神客子孫母父姉兄弟妹嫁婿娘夫妻主王仏方某故当前元新旧御他先後彼私僕俺我准正副若老済中時無有要可否不受";

/// Hiragana a hiragana candidate must not end with: it is a particle or verb ending, so the
/// run is grammar (こちらの先生), not a name. Before さん/ちゃん/くん, where grammar is rarer,
/// た and て may end a name (しょうたくん).
const PARTICLE_END: &str = "のはがをにでへもたて";
const PARTICLE_END_FAMILIAR: &str = "のはがをにでへも";

/// Abbreviations that look like a romaji name.
const ROMAJI_STOP: &[&str] = &[
    "DR", "NS", "MR", "MRS", "MS", "PROF", "ESD", "EMR", "CSP", "EUS", "ERCP", "NBI", "BLI", "LCI",
    "GIF", "PCF", "CF", "CT", "MRI", "PET", "ASA", "HP", "HB", "PPI", "NSAID", "NSAIDS", "DOAC",
    "II", "III", "IV", "LA", "SMT", "GIST", "MALT", "IPMN", "FAP", "UC", "CD", "GERD", "NERD",
    "TEL", "FAX", "ID", "NO", "OK", "NG", "ICU", "HCU", "OPE", "POST", "PRE", "THE", "AND", "IBD",
    "GI", "ER", "OR", "WOC", "NST", "ICT", "RST", "PT", "OT", "ST", "MSW", "MD", "BY",
];

fn key(c: &[char], s: usize, e: usize) -> String {
    let raw: String = c[s..e].iter().collect();
    fold(&raw).0
}

fn is_stop(k: &str) -> bool {
    STOP.contains(&k)
}

/// Stop word that the folded candidate `k` starts with and is longer than, if any (longest).
fn stop_prefix(k: &str) -> Option<&'static str> {
    STOP.iter()
        .filter(|w| k.len() > w.len() && k.starts_with(**w) && w.chars().count() >= 2)
        .max_by_key(|w| w.len())
        .copied()
}

/// Start, after skipping `chars` name chars (and spaces) from `s`.
fn skip_chars(c: &[char], mut s: usize, chars: usize) -> usize {
    let mut k = 0;
    while k < chars && s < c.len() {
        if c[s] != ' ' {
            k += 1;
        }
        s += 1;
    }
    while s < c.len() && c[s] == ' ' {
        s += 1;
    }
    s
}

/// A kanji candidate `[s, e)` after stop-word checks, with leading stop words stripped.
fn accept_kanji(c: &[char], mut s: usize, e: usize) -> Option<usize> {
    let mut k = key(c, s, e);
    while let Some(w) = stop_prefix(&k) {
        s = skip_chars(c, s, w.chars().count());
        k = key(c, s, e);
    }
    let n = k.chars().count();
    let one = n == 1 && k.chars().all(|ch| SINGLE_STOP.contains(ch));
    let ends_stop = STOP.iter().any(|w| k.ends_with(*w) && w.chars().count() >= 3);
    (s < e && n > 0 && !one && !is_stop(&k) && !ends_stop).then_some(s)
}

/// Run of name kanji ending at `e`, at most `max` long, stopping at a breaker.
fn kanji_back(c: &[char], e: usize, max: usize) -> usize {
    let mut a = e;
    while a > 0 && e - a < max && kanji_at(c, a - 1) && !breaker(c[a - 1]) {
        a -= 1;
    }
    a
}

/// Run of name kanji starting at `s`, stopping at a breaker or an honorific (木村氏).
fn kanji_forward(c: &[char], s: usize, max: usize) -> usize {
    let mut e = s;
    while e < c.len()
        && e - s < max
        && kanji_at(c, e)
        && !breaker(c[e])
        && !(e > s && starts_honorific(c, e))
    {
        e += 1;
    }
    e
}

fn katakana_letter(ch: char) -> bool {
    is_katakana(ch) && !matches!(ch, '・' | '･' | 'ﾞ' | 'ﾟ' | 'ー' | 'ｰ')
}

fn accept_kana(c: &[char], mut s: usize, e: usize) -> Option<usize> {
    while s < e && matches!(c[s], '・' | '･' | 'ー' | 'ｰ' | ' ') {
        s += 1;
    }
    let letters = c[s..e].iter().filter(|&&ch| katakana_letter(ch)).count();
    let k = key(c, s, e);
    let ends_stop = STOP.iter().any(|w| k.ends_with(*w) && w.chars().count() >= 3);
    ((2..=12).contains(&letters) && !is_stop(&k) && !ends_stop).then_some(s)
}

fn romaji_word(w: &[char]) -> bool {
    if w.len() < 2 {
        return false;
    }
    let upper: String = w.iter().collect::<String>().to_ascii_uppercase();
    let first_up = w.first().is_some_and(|ch| ch.is_ascii_uppercase());
    let rest_lower = w[1..].iter().all(|ch| ch.is_ascii_lowercase());
    let all_upper = w.iter().all(|ch| ch.is_ascii_uppercase());
    first_up
        && (rest_lower || (all_upper && w.len() >= 3))
        && !ROMAJI_STOP.contains(&upper.as_str())
}

fn punct_boundary(ch: char) -> bool {
    ch.is_whitespace() || "、。,.:;：；「」『』()（）[]【】〈〉<>!?！？/・\"'".contains(ch)
}

/// The name ending at `p` (the start of an honorific), if any: `(start, end)`.
fn name_before(c: &[char], p: usize) -> Option<(usize, usize)> {
    let familiar = ["さん", "ちゃん", "くん", "君"].iter().any(|w| starts_with(c, p, w));
    let mut e = p;
    if e > 0 && c[e - 1] == ' ' {
        e -= 1;
    }
    if e == 0 {
        return None;
    }
    let last = c[e - 1];
    if kanji_at(c, e - 1) {
        let a = kanji_back(c, e, 6);
        if a == e {
            return None;
        }
        // The part next to the honorific must be acceptable alone (3日後 担当看護師).
        let mut s = accept_kanji(c, a, e)?;
        // Surname, one space, given name (田中 太郎様).
        if s == a && e - a <= 3 && a >= 2 && c[a - 1] == ' ' && kanji_at(c, a - 2) {
            let b = kanji_back(c, a - 1, 3);
            // Only a whole word joins (胃角 高橋様 is not 角高橋), and not a counter word
            // after a number (3日後 田中様).
            let whole = b == 0 || !(kanji_at(c, b - 1) || c[b - 1].is_ascii_alphanumeric());
            // A relation or role word before the space is not a surname (父 拓也さん).
            let k0 = key(c, b, a - 1);
            let role = is_stop(&k0)
                || (k0.chars().count() == 1 && k0.chars().all(|ch| SINGLE_STOP.contains(ch)));
            if b < a - 1 && whole && !role && (a - 1 - b) + (e - a) <= 6 {
                s = accept_kanji(c, b, e).unwrap_or(s);
            }
        }
        // One kanji glued to the end of a longer word (病棟看護師) is that word's tail; kanji
        // right after a digit are a counter or unit (生検2個 Dr, 3日後 様).
        let glued = s > 0 && ((e - s == 1 && kanji_at(c, s - 1)) || c[s - 1].is_ascii_digit());
        (!glued).then_some((s, e))
    } else if is_katakana(last) && last != '・' {
        let mut a = e;
        while a > 0 && e - a < 14 && is_katakana(c[a - 1]) {
            a -= 1;
        }
        if a >= 2 && c[a - 1] == ' ' && is_katakana(c[a - 2]) {
            let mut b = a - 1;
            while b > 0 && (a - 1 - b) < 10 && is_katakana(c[b - 1]) {
                b -= 1;
            }
            if accept_kana(c, b, a - 1).is_some() {
                a = b;
            }
        }
        accept_kana(c, a, e).map(|s| (s, e))
    } else if is_hiragana(last) {
        let mut a = e;
        while a > 0 && is_hiragana(c[a - 1]) {
            a -= 1;
        }
        let len = e - a;
        let k = key(c, a, e);
        let bounded = a == 0 || punct_boundary(c[a - 1]);
        let ends = if familiar { PARTICLE_END_FAMILIAR } else { PARTICLE_END };
        let particle = k.chars().last().is_some_and(|ch| ends.contains(ch));
        ((2..=8).contains(&len) && bounded && !particle && !is_stop(&k)).then_some((a, e))
    } else if last.is_ascii_alphabetic() {
        romaji_back(c, e)
    } else {
        None
    }
}

fn romaji_back(c: &[char], e: usize) -> Option<(usize, usize)> {
    let word_back = |e: usize| {
        let mut a = e;
        while a > 0 && c[a - 1].is_ascii_alphabetic() {
            a -= 1;
        }
        let bounded = a == 0 || !(c[a - 1].is_ascii_alphanumeric() || c[a - 1] == '.');
        (bounded && romaji_word(&c[a..e])).then_some(a)
    };
    let a = word_back(e)?;
    let s = if a >= 2 && c[a - 1] == ' ' && c[a - 2].is_ascii_alphabetic() {
        word_back(a - 1).unwrap_or(a)
    } else {
        a
    };
    Some((s, e))
}

/// A kanji name read forward may end at `e`: at a non-kanji or an honorific (田中医師), not
/// at a breaker inside a clinical word (父 大腸癌), and not before okurigana (大きさ, 付き添い).
fn kanji_name_ends(c: &[char], e: usize) -> bool {
    let Some(&next) = c.get(e) else {
        return true;
    };
    (!kanji_at(c, e) || starts_honorific(c, e))
        && (!is_hiragana(next) || AFTER_NAME_KANA.contains(next))
}

/// The name starting at `s` (after a role word and its separator), if any.
fn name_after(c: &[char], s: usize) -> Option<(usize, usize)> {
    let n = c.len();
    if s >= n {
        return None;
    }
    if kanji_at(c, s) {
        let e = kanji_forward(c, s, 7);
        if e == s || e - s > 6 {
            return None;
        }
        if !kanji_name_ends(c, e) {
            return None;
        }
        // A relation or role word after the role (キーパーソン: 母 太郎) is not the name;
        // the name after it is found from that word.
        let k1 = key(c, s, e);
        let one = k1.chars().count() == 1 && k1.chars().all(|ch| SINGLE_STOP.contains(ch));
        if one || is_stop(&k1) {
            return None;
        }
        let mut end = e;
        if e - s <= 3 && e + 1 < n && c[e] == ' ' && kanji_at(c, e + 1) {
            let e2 = kanji_forward(c, e + 1, 4);
            let k2 = key(c, e + 1, e2);
            let ok = e2 > e + 1 && e2 - (e + 1) <= 3 && kanji_name_ends(c, e2);
            if ok && !is_stop(&k2) && stop_prefix(&k2).is_none() {
                end = e2;
            }
        }
        let k = key(c, s, end);
        let one = k.chars().count() == 1 && k.chars().all(|ch| SINGLE_STOP.contains(ch));
        (!is_stop(&k) && stop_prefix(&k).is_none() && !one).then_some((s, end))
    } else if is_katakana(c[s]) && c[s] != '・' {
        let run = |from: usize| {
            let mut e = from;
            while e < n && e - from < 12 && is_katakana(c[e]) {
                e += 1;
            }
            e
        };
        let e = run(s);
        let mut end = e;
        if e + 1 < n && c[e] == ' ' && is_katakana(c[e + 1]) {
            let e2 = run(e + 1);
            if accept_kana(c, e + 1, e2).is_some() {
                end = e2;
            }
        }
        accept_kana(c, s, end)?;
        let k = key(c, s, e);
        (!is_stop(&k)).then_some((s, end))
    } else if c[s].is_ascii_alphabetic() {
        let word = |from: usize| {
            let mut e = from;
            while e < n && c[e].is_ascii_alphabetic() {
                e += 1;
            }
            (romaji_word(&c[from..e]) && (e >= n || !c[e].is_ascii_alphanumeric())).then_some(e)
        };
        let e = word(s)?;
        let end = if e + 1 < n && c[e] == ' ' { word(e + 1).unwrap_or(e) } else { e };
        Some((s, end))
    } else {
        None
    }
}

// Char by char, stopping at the first mismatch: these run for every position and every
// word of the lists, so counting the word's chars first would dominate.
fn starts_with_by(c: &[char], i: usize, w: &str, same: impl Fn(&char, &char) -> bool) -> bool {
    let mut rest = c.get(i..).unwrap_or_default().iter();
    w.chars().all(|b| rest.next().is_some_and(|a| same(a, &b)))
}

fn starts_with(c: &[char], i: usize, w: &str) -> bool {
    starts_with_by(c, i, w, char::eq)
}

fn starts_with_ascii_ci(c: &[char], i: usize, w: &str) -> bool {
    starts_with_by(c, i, w, char::eq_ignore_ascii_case)
}

/// Honorifics and roles after a name; `true` for the doctor ones.
const HONORIFICS: &[(&str, bool)] = &[
    ("看護師", false),
    ("薬剤師", false),
    ("技師", false),
    ("先生", true),
    ("医師", true),
    ("ちゃん", false),
    ("さん", false),
    ("くん", false),
    ("様", false),
    ("殿", false),
    ("氏", false),
    ("君", false),
];

fn starts_honorific(c: &[char], i: usize) -> bool {
    HONORIFICS.iter().any(|(w, _)| starts_with(c, i, w))
}

/// After 様, words that make it "-like" (隆起様の変化, SMT様隆起) rather than an honorific.
const LIKE_AFTER: &[&str] = &[
    "子",
    "式",
    "態",
    "相",
    "々",
    "変",
    "隆起",
    "病変",
    "変化",
    "所見",
    "構造",
    "陥凹",
    "粘膜",
    "形態",
    "外観",
    "発赤",
    "びらん",
    "の隆起",
    "の病変",
    "の変化",
    "の所見",
    "の構造",
    "の陥凹",
    "の粘膜",
    "の形態",
    "のびらん",
    "の発赤",
    "な",
    "に見",
];

/// Hiragana that may follow a name (particles, さん/ちゃん/くん); other hiragana after a
/// kanji run make it a word stem with okurigana.
const AFTER_NAME_KANA: &str = "よとのはがにへでもやさちくか";

/// Role and relation words before a name; `true` for doctor roles. A separator (space or
/// colon) must follow, except after `Dr`.
const ROLES: &[(&str, bool)] = &[
    ("内視鏡医", true),
    ("主治医", true),
    ("担当医", true),
    ("依頼医", true),
    ("紹介医", true),
    ("施行医", true),
    ("報告医", true),
    ("記載医", true),
    ("検査医", true),
    ("指導医", true),
    ("執刀医", true),
    ("読影医", true),
    ("研修医", true),
    ("上級医", true),
    ("術者", true),
    ("医師", true),
    ("患者氏名", false),
    ("患者名", false),
    ("氏名", false),
    ("患者", false),
    ("本人", false),
    ("担当看護師", false),
    ("担当技師", false),
    ("担当者", false),
    ("担当", false),
    ("看護師", false),
    ("介助者", false),
    ("介助", false),
    ("技師", false),
    ("記載者", false),
    ("確認者", false),
    ("入力者", false),
    ("報告者", false),
    ("依頼者", false),
    ("連絡者", false),
    ("キーパーソン", false),
    ("家族", false),
    ("付添", false),
    ("付き添い", false),
    ("配偶者", false),
    ("長男", false),
    ("長女", false),
    ("次男", false),
    ("次女", false),
    ("三男", false),
    ("三女", false),
    ("息子", false),
    ("祖父", false),
    ("祖母", false),
    ("叔父", false),
    ("叔母", false),
    ("伯父", false),
    ("伯母", false),
    ("義父", false),
    ("義母", false),
    ("友人", false),
    ("知人", false),
    ("妻", false),
    ("夫", false),
    ("娘", false),
    ("父", false),
    ("母", false),
    ("兄", false),
    ("姉", false),
    ("弟", false),
    ("妹", false),
    ("孫", false),
    ("嫁", false),
    ("婿", false),
    ("甥", false),
    ("姪", false),
    // Workflow roles: who took the call, assisted, read or wrote (受付 山下, 助手 北村).
    ("受付", false),
    ("受", false),
    ("助手", true),
    ("対応者", false),
    ("対応", false),
    ("記載", false),
    ("記録者", false),
    ("説明者", true),
    ("読影", true),
    ("病理医", true),
    ("栄養士", false),
    ("ケアマネ", false),
    ("母親", false),
    ("父親", false),
];

/// The first chars of `words` (both cases of ASCII letters), sorted: most positions of a
/// text start none of a list's words, and a lookup here rules them out before the list is
/// walked word by word.
fn first_chars<'a>(words: impl Iterator<Item = &'a str>) -> Vec<char> {
    let mut v: Vec<char> = words
        .filter_map(|w| w.chars().next())
        .flat_map(|ch| [ch.to_ascii_lowercase(), ch.to_ascii_uppercase()])
        .collect();
    v.sort_unstable();
    v.dedup();
    v
}

type FirstChars = std::sync::LazyLock<Vec<char>>;
static ROLE_FIRST_CHARS: FirstChars =
    FirstChars::new(|| first_chars(ROLES.iter().map(|(w, _)| *w)));
static HONORIFIC_FIRST_CHARS: FirstChars =
    FirstChars::new(|| first_chars(HONORIFICS.iter().map(|(w, _)| *w)));
static NUMBER_KEY_FIRST_CHARS: FirstChars =
    FirstChars::new(|| first_chars(NUMBER_KEYS.iter().copied()));
static PREFECTURE_FIRST_CHARS: FirstChars =
    FirstChars::new(|| first_chars(PREFECTURES.split_whitespace()));

fn name_hit(doctor: bool) -> Hit {
    Hit::Pattern(if doctor { Pattern::Doctor } else { Pattern::PersonName })
}

/// Other people's names: `〇〇様/さん/先生/医師/Dr/氏/君/ちゃん/看護師/Ns/技師`,
/// `Dr.〇〇`, `担当:〇〇`, `主治医 〇〇`, `長男 〇〇`.
pub(super) fn find_person_names(c: &[char], out: &mut Vec<Match>) {
    let n = c.len();
    let mut push = |(s, e): (usize, usize), doctor: bool| {
        if s < e {
            out.push(Match { start: s, end: e, hit: name_hit(doctor) });
        }
    };
    for p in 0..=n {
        if p == n || c[p] == '\n' {
            if let Some(m) = signature_before(c, p) {
                push(m, true);
            }
            continue;
        }
        // Honorific after the name.
        let honorifics =
            if HONORIFIC_FIRST_CHARS.binary_search(&c[p]).is_ok() { HONORIFICS } else { &[] };
        for &(w, doctor) in honorifics {
            if !starts_with(c, p, w) {
                continue;
            }
            let after = p + w.chars().count();
            let next = c.get(after).copied();
            let skip = match w {
                "氏" => matches!(next, Some('名' | '病' | '症')),
                "君" => next.is_some_and(is_kanji),
                "様" => LIKE_AFTER.iter().any(|l| starts_with(c, after, l)),
                _ => false,
            };
            if !skip {
                if let Some(m) = name_before(c, p) {
                    push(m, doctor);
                }
            }
        }
        // "Kondo MD": a romaji name before the degree.
        if starts_with(c, p, "MD")
            && p >= 2
            && c[p - 1] == ' '
            && c.get(p + 2).is_none_or(|ch| !ch.is_ascii_alphanumeric())
        {
            if let Some(m) = romaji_back(c, p - 1) {
                push(m, true);
            }
        }
        // Dr / Ns after the name (田中Dr, 鈴木 Ns): ASCII, so not inside a longer word.
        for (w, doctor) in [("dr", true), ("ns", false)] {
            let after = p + 2;
            if starts_with_ascii_ci(c, p, w)
                && (p == 0 || !c[p - 1].is_ascii_alphabetic())
                && c.get(after).is_none_or(|ch| !ch.is_ascii_alphabetic())
            {
                if let Some(m) = name_before(c, p) {
                    push(m, doctor);
                }
                if w == "dr" || at(c, after, '.') || at(c, after, ' ') {
                    // Dr.田中, Dr 田中, Dr:Tanaka; Ns. Yoshikawa, 外来Ns 杉本.
                    let mut s = after;
                    while s < n && s - after < 3 && matches!(c[s], '.' | ' ' | ':') {
                        s += 1;
                    }
                    if let Some(m) = name_after(c, s) {
                        push(m, doctor);
                    }
                }
            }
        }
        // Role word before the name; the longest one (母親 rather than 母).
        if ROLE_FIRST_CHARS.binary_search(&c[p]).is_err() {
            continue;
        }
        let role = ROLES
            .iter()
            .filter(|(w, _)| starts_with(c, p, w))
            .max_by_key(|(w, _)| w.chars().count());
        if let Some(&(w, doctor)) = role {
            let len = w.chars().count();
            // A one-kanji relation word inside a longer word (夫妻, 祖父) is not the role.
            if len == 1 && p > 0 && is_kanji(c[p - 1]) {
                continue;
            }
            let mut s = p + len;
            while s < n && s - (p + len) < 3 && matches!(c[s], ' ' | ':' | '=' | '(' | '（') {
                s += 1;
            }
            if s > p + len {
                let mut next = name_after(c, s);
                // A list of names after one role (介助：吉川、宮本, 読影 西村／上野).
                while let Some(m) = next {
                    push(m, doctor);
                    let mut k = m.1;
                    while k < n && c[k] == ' ' {
                        k += 1;
                    }
                    if k < n && "、,・/／".contains(c[k]) {
                        // Only short surnames continue a list; a longer word after 、 is the
                        // next item of the sentence (氏名 …、生年月日).
                        next = name_after(c, sp(c, k + 1)).filter(|&(a, b)| {
                            b - a <= 3
                                && c.get(b).is_none_or(|&ch| {
                                    " \n、,・/／。)）".contains(ch) || starts_honorific(c, b)
                                })
                        });
                    } else {
                        next = None;
                    }
                }
            }
        }
    }
}

/// A signature: surname, one space, given name (1–3 kanji each) closing a line or the
/// text, after the line start, 。 or a space (消化器内科 岡田 裕介, …お願いします。谷 健司).
fn signature_before(c: &[char], end: usize) -> Option<(usize, usize)> {
    let mut e = end;
    while e > 0 && c[e - 1] == ' ' {
        e -= 1;
    }
    let g = kanji_back(c, e, 4);
    if g == e || e - g > 3 || g < 2 || c[g - 1] != ' ' {
        return None;
    }
    let s = kanji_back(c, g - 1, 4);
    if s == g - 1 || (g - 1) - s > 3 {
        return None;
    }
    let before_ok = s == 0 || matches!(c[s - 1], '\n' | '。' | ' ');
    let part_ok = |a: usize, b: usize| {
        let k = key(c, a, b);
        let one = k.chars().count() == 1 && k.chars().all(|ch| SINGLE_STOP.contains(ch));
        !one && !is_stop(&k) && stop_prefix(&k).is_none()
    };
    (before_ok && part_ok(s, g - 1) && part_ok(g, e)).then_some((s, e))
}

/// A given name after a found surname and one space (田村 ミチ子, 大西 節子): 1–3 kanji, or
/// up to 4 katakana with at most one kanji after (ミチ子), ending where a name may end.
/// Returns the new end. Clinical and workflow words are excluded by the stop-list and the
/// breaker kanji, as for any name.
fn given_name_after(c: &[char], e: usize) -> Option<usize> {
    if !at(c, e, ' ') || e == 0 || !(kanji_at(c, e - 1) || katakana_letter(c[e - 1])) {
        return None;
    }
    let s = e + 1;
    let mut k = s;
    while k < c.len() && k - s < 4 && katakana_letter(c[k]) {
        k += 1;
    }
    let kana = k - s;
    let max_kanji = if kana > 0 { 1 } else { 3 };
    let ke = kanji_forward(c, k, max_kanji + 1);
    if ke - s == 0 || ke - k > max_kanji || !kanji_name_ends(c, ke) {
        return None;
    }
    let next = c.get(ke).copied();
    let ends = next.is_none_or(|ch| {
        punct_boundary(ch) || ch == '\n' || starts_honorific(c, ke) || AFTER_NAME_KANA.contains(ch)
    });
    let k1 = key(c, s, ke);
    let one = k1.chars().count() == 1 && k1.chars().all(|ch| SINGLE_STOP.contains(ch));
    (ends && !one && !is_stop(&k1) && stop_prefix(&k1).is_none()).then_some(ke)
}

/// Widen name matches (the patient's, a relative's, a doctor's) over a given name written
/// after a space, when only the surname was found.
pub(super) fn extend_given_names(c: &[char], out: &mut [Match]) {
    for m in out.iter_mut() {
        let name = matches!(
            m.hit,
            Hit::Id(IdKind::PatientName | IdKind::PatientKana | IdKind::Physician)
                | Hit::Pattern(Pattern::PersonName | Pattern::Doctor)
        );
        // Only a lone surname is widened; a full name is complete (松本 拓也 携帯).
        if name && !c[m.start..m.end].contains(&' ') {
            if let Some(e) = given_name_after(c, m.end) {
                m.end = e;
            }
        }
    }
}

const ERAS: &[&str] = &["令和", "平成", "昭和", "大正", "明治", "㋿", "㍻", "㍼", "㍽", "㍾"];

/// Up to `max` digits at `i` (at least `min`), not followed by another digit.
fn num(c: &[char], i: usize, min: usize, max: usize) -> Option<(u32, usize)> {
    let mut e = i;
    let mut v = 0u32;
    while e < c.len() && e - i < max && c[e].is_ascii_digit() {
        v = v * 10 + c[e].to_digit(10).unwrap_or(0);
        e += 1;
    }
    let more = e < c.len() && c[e].is_ascii_digit();
    (e - i >= min && !more).then_some((v, e))
}

fn sp(c: &[char], mut i: usize) -> usize {
    while i < c.len() && c[i] == ' ' {
        i += 1;
    }
    i
}

fn at(c: &[char], i: usize, ch: char) -> bool {
    c.get(i) == Some(&ch)
}

fn md_ok(m: u32, d: u32) -> bool {
    (1..=12).contains(&m) && (1..=31).contains(&d)
}

/// `M月[D日]` at `i`: end after 月 or after 日.
fn month_day_kanji(c: &[char], i: usize) -> Option<usize> {
    let (m, e) = num(c, i, 1, 2)?;
    let e = sp(c, e);
    if !(1..=12).contains(&m) || !at(c, e, '月') {
        return None;
    }
    let e1 = e + 1;
    let d = sp(c, e1);
    if let Some((dd, e2)) = num(c, d, 1, 2) {
        let e2 = sp(c, e2);
        if (1..=31).contains(&dd) && at(c, e2, '日') {
            return Some(e2 + 1);
        }
    }
    Some(e1)
}

/// `sep M sep D` with one separator repeated; end after D.
fn sep_md(c: &[char], i: usize, seps: &str) -> Option<usize> {
    let sep = *c.get(i)?;
    if !seps.contains(sep) {
        return None;
    }
    let (m, e) = num(c, i + 1, 1, 2)?;
    if !at(c, e, sep) {
        return None;
    }
    let (d, e) = num(c, e + 1, 1, 2)?;
    md_ok(m, d).then_some(e)
}

/// Quantities a fraction is "of" (2/3の日数で胸やけ); a date is followed by events instead
/// (8/22の結果説明).
const FRACTION_OF: &[&str] = &["日数", "頻度", "割合", "確率", "症例", "回数", "期間", "患者"];

/// Scales whose value is written `n/max` (NRS 2/10, VAS 3/10): `M/D` right after one is a
/// score, not a date.
const SCORE_WORDS: &[&str] = &["NRS", "VAS", "FRS", "MMT", "スコア", "スケール", "score", "Score"];

fn after_score_word(c: &[char], i: usize) -> bool {
    let mut b = i;
    while b > 0 && matches!(c[b - 1], ' ' | ':' | '：' | '=') && i - b < 3 {
        b -= 1;
    }
    SCORE_WORDS.iter().any(|w| {
        let n = w.chars().count();
        b >= n && starts_with_ascii_ci(c, b - n, w)
    })
}

/// What may follow `M/D` without it being a fraction or a ratio (2/3周, 1/2個, 1/2陽性).
fn fraction_follows(c: &[char], e: usize) -> bool {
    let Some(&next) = c.get(e) else {
        return false;
    };
    "周個程以回本枚箇例件人名倍量割陽陰%/".contains(next)
        || (next == 'の' && FRACTION_OF.iter().any(|w| starts_with(c, e + 1, w)))
        || (next == '.' && c.get(e + 1).is_some_and(|ch| ch.is_ascii_digit()))
        || starts_with_ascii_ci(c, e, "mm")
        || starts_with_ascii_ci(c, e, "cm")
}

/// An English month name at `i` as a word (`Dec`, `Dec.`, `December`, `DEC`): month and end.
/// Capitalized only, so the verb "may" and "mar" inside prose are not months.
fn month_en(c: &[char], i: usize) -> Option<(u32, usize)> {
    if i > 0 && c[i - 1].is_ascii_alphabetic() || !c.get(i)?.is_ascii_uppercase() {
        return None;
    }
    let word_end = |e: usize| !c.get(e).is_some_and(|ch| ch.is_ascii_alphabetic());
    for (m, (full, abbr)) in dates::MONTHS_EN.iter().enumerate() {
        let m = m as u32 + 1;
        for w in [*full, "Sept", *abbr] {
            if w == "Sept" && m != 9 {
                continue;
            }
            if !starts_with_ascii_ci(c, i, w) {
                continue;
            }
            let n = w.chars().count();
            if word_end(i + n) {
                let e = if at(c, i + n, '.') && w.len() < full.len() { i + n + 1 } else { i + n };
                return Some((m, e));
            }
        }
    }
    None
}

/// `[,] YYYY` after a day or month ending at `e`: end after the year.
fn english_year(c: &[char], e: usize) -> Option<usize> {
    let mut k = e;
    if at(c, k, ',') {
        k += 1;
    }
    let k2 = sp(c, k);
    if k2 == k && k == e {
        return None;
    }
    let (y, ye) = num(c, k2, 4, 4)?;
    (1868..=2099).contains(&y).then_some(ye)
}

/// `Dec 25, 1972`, `December 25 1972`, `Apr 12`, `May 2027`: end of the date at `i`.
/// A month name alone is not a date.
fn english_date(c: &[char], i: usize) -> Option<usize> {
    let (_, me) = month_en(c, i)?;
    let k = sp(c, me);
    if k == me {
        return None;
    }
    if let Some(ye) = num(c, k, 4, 4).filter(|(y, _)| (1868..=2099).contains(y)).map(|x| x.1) {
        return Some(ye);
    }
    let (d, de) = num(c, k, 1, 2)?;
    if !(1..=31).contains(&d) || c.get(de).is_some_and(|ch| ch.is_ascii_alphanumeric()) {
        return None;
    }
    Some(english_year(c, de).unwrap_or(de))
}

/// After an era letter and year ending at `e`: `H28年10月[5日]` or year and month alone
/// (`H15.6`, `R4.10`). The bare year-month form only for Showa, Heisei and Reiwa within
/// the era's years and not followed by a letter, digit or unit, since `T1.5` or `M2.5`
/// read as stages and sizes.
fn era_year_month(c: &[char], era: char, y: u32, e: usize) -> Option<usize> {
    let j = sp(c, e);
    if at(c, j, '年') {
        let k = sp(c, j + 1);
        if c.get(k).is_some_and(|ch| ch.is_ascii_digit()) {
            return month_day_kanji(c, k);
        }
        return None;
    }
    let max_year = match era {
        'S' => 64,
        'H' => 31,
        'R' => 30,
        _ => return None,
    };
    if y == 0 || y > max_year || !matches!(c.get(e), Some('.' | '/')) {
        return None;
    }
    let (m, e2) = num(c, e + 1, 1, 2)?;
    let unit = c.get(e2).is_some_and(|ch| ch.is_ascii_alphanumeric() || "%.°".contains(*ch));
    ((1..=12).contains(&m) && !unit).then_some(e2)
}

/// End of a date starting at `i`, if one does.
fn date_at(c: &[char], i: usize) -> Option<usize> {
    let prev = if i > 0 { Some(c[i - 1]) } else { None };
    if let Some(era) = ERAS.iter().find(|e| starts_with(c, i, e)) {
        let j = sp(c, i + era.chars().count());
        let e = if at(c, j, '元') { j + 1 } else { num(c, j, 1, 2)?.1 };
        let e = sp(c, e);
        if !at(c, e, '年') {
            return None;
        }
        return month_day_kanji(c, sp(c, e + 1));
    }
    let ch = c[i];
    if let Some(e) = english_date(c, i) {
        return Some(e);
    }
    if "MTSHRmtshr".contains(ch) && !prev.is_some_and(|p| p.is_ascii_alphanumeric()) {
        let (y, e) = num(c, i + 1, 1, 2)?;
        if let Some(end) = sep_md(c, e, "./-") {
            return Some(end);
        }
        return era_year_month(c, ch.to_ascii_uppercase(), y, e);
    }
    if !ch.is_ascii_digit() || prev.is_some_and(|p| p.is_ascii_digit()) {
        return None;
    }
    if let Some((d, e)) = num(c, i, 1, 2) {
        // 25 Dec 1972, 3 March
        let k = if matches!(c.get(e), Some(' ' | '-')) { e + 1 } else { e };
        if (1..=31).contains(&d) && k > e {
            if let Some((_, me)) = month_en(c, k) {
                return Some(english_year(c, me).unwrap_or(me));
            }
        }
    }
    let after_sep = prev.is_some_and(|p| "./-".contains(p));
    if let Some((y, e)) = num(c, i, 4, 4) {
        if !(1868..=2099).contains(&y) {
            return None;
        }
        if let Some(end) = sep_md(c, e, "/-.") {
            return Some(end);
        }
        if matches!(c.get(e), Some('/' | '-')) {
            if let Some((m, e2)) = num(c, e + 1, 1, 2) {
                let cont = matches!(c.get(e2), Some('/' | '-' | '.'))
                    && c.get(e2 + 1).is_some_and(|ch| ch.is_ascii_digit());
                if (1..=12).contains(&m) && !cont {
                    return Some(e2);
                }
            }
        }
        let j = sp(c, e);
        if at(c, j, '年') {
            let k = sp(c, j + 1);
            if c.get(k).is_some_and(|ch| ch.is_ascii_digit()) {
                return month_day_kanji(c, k);
            }
        }
        return None;
    }
    if after_sep {
        return None;
    }
    if let Some((_, e)) = num(c, i, 2, 2) {
        if let Some(end) = sep_md(c, e, "/") {
            return Some(end);
        }
    }
    let (m, e) = num(c, i, 1, 2)?;
    if at(c, e, '/') {
        let (d, e2) = num(c, e + 1, 1, 2)?;
        return (md_ok(m, d) && !fraction_follows(c, e2) && !after_score_word(c, i)).then_some(e2);
    }
    let k = sp(c, e);
    if at(c, k, '月') {
        let end = month_day_kanji(c, i)?;
        // A bare month (11月) is kept; only month and day together are a date.
        return (c[end - 1] == '日').then_some(end);
    }
    None
}

/// Dates: `2026/11/25`, `2026-11-25`, `2026.11.25`, `2026年11月25日`, `2026年11月`, `2026/11`,
/// `26/11/25`, `R8.11.25`, `令和8年11月25日`, `令和元年5月1日`, `11/25`, `11月25日`.
pub(super) fn find_dates(c: &[char], out: &mut Vec<Match>) {
    let mut i = 0;
    while i < c.len() {
        match date_at(c, i) {
            Some(e) => {
                out.push(Match { start: i, end: e, hit: Hit::Pattern(Pattern::Date) });
                i = e;
            }
            None => i += 1,
        }
    }
}

const PREFECTURES: &str = "北海道 青森県 岩手県 宮城県 秋田県 山形県 福島県 茨城県 栃木県 群馬県 \
埼玉県 千葉県 東京都 神奈川県 新潟県 富山県 石川県 福井県 山梨県 長野県 岐阜県 静岡県 愛知県 三重県 \
滋賀県 京都府 大阪府 兵庫県 奈良県 和歌山県 鳥取県 島根県 岡山県 広島県 山口県 徳島県 香川県 愛媛県 \
高知県 福岡県 佐賀県 長崎県 熊本県 大分県 宮崎県 鹿児島県 沖縄県";

/// [`PREFECTURES`] as char slices, split once rather than on every search.
static PREFECTURE_CHARS: std::sync::LazyLock<Vec<Vec<char>>> = std::sync::LazyLock::new(|| {
    PREFECTURES.split_whitespace().map(|p| p.chars().collect()).collect()
});

/// Words that end an address run (京都市上京区在住, 大阪市北区の病院).
const ADDRESS_END: &[&str] = &[
    "在住",
    "出身",
    "方面",
    "周辺",
    "付近",
    "近郊",
    "病院",
    "医院",
    "クリニック",
    "診療所",
    "内科",
    "外科",
    "消化器",
    "センター",
    "居住",
    "転居",
    "施設",
    "入所",
    "当院",
    "勤務",
    "在勤",
    "出生",
];

fn address_char(c: &[char], e: usize, from: usize) -> bool {
    let ch = c[e];
    if is_kanji(ch) || ch.is_ascii_digit() || (is_katakana(ch) && ch != '・') {
        return true;
    }
    let between = e > from && e + 1 < c.len() && is_kanji(c[e + 1]);
    match ch {
        'の' | 'が' | 'ヶ' | 'ケ' => between && is_kanji(c[e - 1]),
        '-' => between || (e > from && e + 1 < c.len() && c[e + 1].is_ascii_digit()),
        _ => false,
    }
}

/// Town, block and building part after the municipality.
fn address_rest(c: &[char], from: usize) -> usize {
    let mut e = from;
    while e < c.len() && address_char(c, e, from) {
        if ADDRESS_END.iter().any(|w| starts_with(c, e, w)) {
            break;
        }
        e += 1;
    }
    while e > from && c[e - 1] == '-' {
        e -= 1;
    }
    building_after(c, e)
}

/// A building name and room after an address's block number and one space
/// (`… 1-2-3 パークサイド青葉 309号室`): taken into the address when a room or floor number
/// (`309号室`, `5F`, `3階`) or a building word (マンション, ハイツ, …) shows it is one, so
/// ordinary text after an address is left alone.
fn building_after(c: &[char], e: usize) -> usize {
    const BUILDING: &[&str] = &[
        "マンション",
        "ハイツ",
        "コーポ",
        "レジデンス",
        "ビル",
        "荘",
        "タワー",
        "ハウス",
        "アパート",
    ];
    const ROOM: &[&str] = &["号室", "号", "階"];
    let space = |k: usize| k < c.len() && (c[k] == ' ' || c[k] == '\u{3000}');
    // The block number ends in a digit (`1-2-3`) or in 番/号/番地 after one (`2丁目15番3号`).
    // `c` is narrowed: full-width digits are ASCII here.
    let digit = |k: usize| c[k].is_ascii_digit();
    let block_end = e > 0
        && (digit(e - 1)
            || (matches!(c[e - 1], '号' | '番') && e >= 2 && digit(e - 2))
            || (e >= 3 && c[e - 2..e] == ['番', '地'] && digit(e - 3)));
    if !block_end || !space(e) {
        return e;
    }
    let mut k = e + 1;
    let name_start = k;
    while k < c.len()
        && k - name_start < 20
        && (is_katakana(c[k]) || is_kanji(c[k]) || c[k].is_ascii_alphabetic())
    {
        k += 1;
    }
    if k == name_start {
        return e;
    }
    let named = BUILDING.iter().any(|w| c[name_start..k].ends_with(&w.chars().collect::<Vec<_>>()));
    // Optional space, then the room: digits (with a dash) and 号室/号/階/F.
    let mut r = if space(k) { k + 1 } else { k };
    let digits = r;
    while r < c.len() && (c[r].is_ascii_digit() || c[r] == '-') {
        r += 1;
    }
    if r > digits {
        if let Some(w) = ROOM.iter().find(|w| starts_with(c, r, w)) {
            return r + w.chars().count();
        }
        if r < c.len() && (c[r] == 'F' || c[r] == 'f') {
            return r + 1;
        }
    }
    if named {
        k
    } else {
        e
    }
}

/// End of a municipality (…市[…区], …郡…町, …区, …町, …村) whose name starts at `from`.
fn municipality_end(c: &[char], from: usize) -> Option<usize> {
    let name = |k: usize| is_kanji(c[k]) || is_hiragana(c[k]) || is_katakana(c[k]);
    let find = |start: usize, set: &str, window: usize| {
        let mut k = start;
        while k < c.len() && k < start + window && name(k) {
            if k > start && set.contains(c[k]) {
                return Some(k);
            }
            k += 1;
        }
        None
    };
    let start = find(from, "郡", 6).map(|k| k + 1).unwrap_or(from);
    let k = find(start, "市区町村", 7)?;
    if c[k] == '市' {
        if let Some(w) = find(k + 1, "区", 5) {
            return Some(w + 1);
        }
    }
    Some(k + 1)
}

fn block_number(c: &[char], s: usize, e: usize) -> bool {
    c[s..e].iter().any(|ch| ch.is_ascii_digit())
        || (s..e).any(|k| ["丁目", "番地", "番", "号"].iter().any(|w| starts_with(c, k, w)))
}

/// Addresses: prefecture + municipality + rest (`京都府京都市上京区…1-2-3`), city + ward or
/// town (`横浜市中区…`), and ward or town + block number (`千代田区丸の内1丁目`).
pub(super) fn find_addresses(c: &[char], out: &mut Vec<Match>) {
    let n = c.len();
    let prefs = &*PREFECTURE_CHARS;
    let mut push = |s: usize, e: usize| {
        out.push(Match { start: s, end: e, hit: Hit::Pattern(Pattern::Address) });
    };
    for i in 0..n {
        // Prefecture first; 府立/県立/都立 starts an institution name, not an address.
        let may_start = PREFECTURE_FIRST_CHARS.binary_search(&c[i]).is_ok();
        if let Some(p) = prefs.iter().find(|p| may_start && c[i..].starts_with(p)) {
            let m = i + p.len();
            if !at(c, m, '立') {
                if let Some(me) = municipality_end(c, m) {
                    push(i, address_rest(c, me));
                    continue;
                }
            }
        }
        let ch = c[i];
        // City first: the city name is the kanji (≤ 3) or hiragana (≤ 4) before 市.
        if ch == '市' && i > 0 && !at(c, i + 1, '立') {
            let mut a = i;
            while a > 0 && i - a < 3 && is_kanji(c[a - 1]) && !breaker(c[a - 1]) {
                a -= 1;
            }
            if a == i {
                while a > 0 && i - a < 4 && is_hiragana(c[a - 1]) {
                    a -= 1;
                }
            }
            let ward = |k: usize| {
                let mut e = k;
                while e < n && e - k < 6 && is_kanji(c[e]) {
                    if e > k && "区町村".contains(c[e]) {
                        return Some(e + 1);
                    }
                    e += 1;
                }
                None
            };
            if a < i {
                if let Some(we) = ward(i + 1) {
                    push(a, address_rest(c, we));
                    continue;
                }
                // City and town without a ward, with a block number (大津市浜大津1-2).
                let e = address_rest(c, i + 1);
                if e > i + 1 && block_number(c, i + 1, e) {
                    push(a, e);
                    continue;
                }
            }
        }
        // Ward or town with a block number after it.
        if (ch == '区' || ch == '町') && i > 0 {
            // Through a county (北佐久郡軽井沢町), else at most 4 kanji of town name.
            let wide = kanji_back(c, i, 8);
            let a = if c[wide..i].contains(&'郡') { wide } else { kanji_back(c, i, 4) };
            let e = address_rest(c, i + 1);
            if i - a >= 2 && e > i + 1 && block_number(c, i + 1, e) {
                push(a, e);
            }
        }
    }
}

/// Keywords that announce a patient, chart, accession or insurance number. Bare 番号/記号/ID
/// need a non-kanji (non-letter) before them, so 検体番号 is not one.
const NUMBER_KEYS: &[&str] = &[
    "被保険者番号",
    "保険者番号",
    "保険証番号",
    "保険番号",
    "患者番号",
    "患者ID",
    "患者No",
    "カルテ番号",
    "カルテNo",
    "カルテ",
    "診察券番号",
    "診察券No",
    "診察券",
    "受付番号",
    "受付No",
    "受診番号",
    "整理番号",
    "オーダー番号",
    "オーダ番号",
    "依頼番号",
    "入院番号",
    "登録番号",
    "会計番号",
    "検査番号",
    "検査ID",
    "MRN",
    "枝番",
    "内線",
    "記号",
    "番号",
    "ID",
];

/// Numbers after an identifying keyword, even short ones: `患者ID 123`, `ID:A12345`,
/// `記号 12 番号 345`.
pub(super) fn find_keyed_numbers(c: &[char], out: &mut Vec<Match>) {
    let n = c.len();
    for p in 0..n {
        if NUMBER_KEY_FIRST_CHARS.binary_search(&c[p]).is_err() {
            continue;
        }
        let Some(w) = NUMBER_KEYS.iter().find(|w| starts_with_ascii_ci(c, p, w)) else {
            continue;
        };
        let prev = if p > 0 { Some(c[p - 1]) } else { None };
        let bare = matches!(*w, "記号" | "番号" | "ID" | "MRN");
        if bare && prev.is_some_and(|ch| is_kanji(ch) && *w != "ID") {
            continue;
        }
        if w.is_ascii() && prev.is_some_and(|ch| ch.is_ascii_alphanumeric()) {
            continue;
        }
        let mut s = p + w.chars().count();
        while s < n && matches!(c[s], ' ' | ':' | '#' | '.' | '=') && s - p < 12 {
            s += 1;
        }
        let mut e = s;
        while e < n && e - s < 3 && c[e].is_ascii_alphabetic() {
            e += 1;
        }
        let digits_from = e;
        while e < n && (c[e].is_ascii_digit() || (c[e] == '-' && e > digits_from)) {
            e += 1;
        }
        while e > digits_from && c[e - 1] == '-' {
            e -= 1;
        }
        let has_digit = c[digits_from..e].iter().any(|ch| ch.is_ascii_digit());
        let letter_joined = e < n && c[e].is_ascii_alphabetic();
        let unit = e < n && "時分秒歳名個回枚本日月年件例:/%".contains(c[e]);
        let decimal = at(c, e, '.') && c.get(e + 1).is_some_and(|ch| ch.is_ascii_digit());
        if has_digit && !letter_joined && !unit && !decimal {
            out.push(Match { start: s, end: e, hit: Hit::Pattern(Pattern::Number) });
        }
    }
}

/// Accession and pathology numbers with a letter part (`S24-01873`, `P24-00931`,
/// `24-G-000512`) and certificate numbers (`第1234-56号`). The last digit group needs 4+
/// digits, so `CA19-9`, `LA-B` and `0-IIc` stay.
pub(super) fn find_accession_numbers(c: &[char], out: &mut Vec<Match>) {
    let n = c.len();
    let run = |k: usize, pred: fn(char) -> bool| {
        let mut e = k;
        while e < n && pred(c[e]) {
            e += 1;
        }
        e
    };
    let digit = |ch: char| ch.is_ascii_digit();
    let upper = |ch: char| ch.is_ascii_uppercase();
    for i in 0..n {
        if i > 0 && c[i - 1].is_ascii_alphanumeric() {
            continue;
        }
        let end_ok = |e: usize| c.get(e).is_none_or(|ch| !ch.is_ascii_alphanumeric());
        // Letters + digits - digits
        let l = run(i, upper);
        if (1..=3).contains(&(l - i)) {
            let d = run(l, digit);
            if (2..=4).contains(&(d - l)) && at(c, d, '-') {
                let d2 = run(d + 1, digit);
                if d2 - (d + 1) >= 4 && end_ok(d2) {
                    out.push(Match { start: i, end: d2, hit: Hit::Pattern(Pattern::Number) });
                    continue;
                }
            }
        }
        // digits - letters - digits
        let d = run(i, digit);
        if (2..=4).contains(&(d - i)) && at(c, d, '-') {
            let l = run(d + 1, upper);
            if (1..=3).contains(&(l - d - 1)) && at(c, l, '-') {
                let d2 = run(l + 1, digit);
                if d2 - (l + 1) >= 4 && end_ok(d2) {
                    out.push(Match { start: i, end: d2, hit: Hit::Pattern(Pattern::Number) });
                    continue;
                }
            }
        }
        // 第…号
        if c[i] == '第' {
            let s = i + 1;
            let mut e = s;
            while e < n && (c[e].is_ascii_digit() || (c[e] == '-' && e > s)) {
                e += 1;
            }
            let digits = c[s..e].iter().filter(|ch| ch.is_ascii_digit()).count();
            if digits >= 3 && c[e - 1] != '-' && at(c, e, '号') {
                out.push(Match { start: s, end: e, hit: Hit::Pattern(Pattern::Number) });
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::identifiers::{fold_mapped, IdentifierSet};
    use super::super::text::scrub;

    fn s(t: &str) -> String {
        scrub(t, &IdentifierSet::default()).text
    }

    #[test]
    fn building_and_room_follow_the_address() {
        let ids = crate::identifiers::IdentifierSet::from_exam(
            &fgw_records::RawExam::with_fields(&[]),
        );
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
        let own = crate::identifiers::IdentifierSet::from_exam(
            &fgw_records::RawExam::with_fields(&[(
                fgw_records::Column::Address,
                "京都府京都市左京区鞍馬本町1-2-3",
            )]),
        );
        let out = crate::text::scrub(
            "京都府京都市左京区鞍馬本町1-2-3 パークサイド青葉 309号室",
            &own,
        )
        .text;
        assert!(!out.contains("パークサイド") && !out.contains("309"), "{out}");
        // Text after an address that is not a building stays.
        let out =
            crate::text::scrub("京都府京都市左京区鞍馬本町1-2-3 胃体下部に潰瘍", &ids).text;
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
        for t in
            ["NRS 2/10", "VAS: 3/10", "1/2陽性", "2/3程度", "2/3の日数", "T1.5", "may 5", "Dec"]
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
        let t =
            "[氏名]様 [医師]先生 Dr.[医師] [日付] [住所] [番号] [患者ID] [生年月日] 担当:[氏名]";
        assert!(super::super::text::find(t, &IdentifierSet::default()).is_empty());
        let c = super::narrow(&fold_mapped(t).original);
        let mut out = Vec::new();
        super::find_person_names(&c, &mut out);
        super::find_dates(&c, &mut out);
        super::find_addresses(&c, &mut out);
        super::find_keyed_numbers(&c, &mut out);
        assert!(out.is_empty());
    }
}
