//! Word lists of the synthetic department system. All people, numbers and addresses built from
//! them are fictitious combinations of common names and place names.

/// (kanji, katakana, romaji)
pub(crate) type Name3 = (&'static str, &'static str, &'static str);

pub(crate) const SURNAMES: &[Name3] = &[
    ("佐藤", "サトウ", "SATO"),
    ("鈴木", "スズキ", "SUZUKI"),
    ("高橋", "タカハシ", "TAKAHASHI"),
    ("田中", "タナカ", "TANAKA"),
    ("伊藤", "イトウ", "ITO"),
    ("渡辺", "ワタナベ", "WATANABE"),
    ("山本", "ヤマモト", "YAMAMOTO"),
    ("中村", "ナカムラ", "NAKAMURA"),
    ("小林", "コバヤシ", "KOBAYASHI"),
    ("加藤", "カトウ", "KATO"),
    ("吉田", "ヨシダ", "YOSHIDA"),
    ("山田", "ヤマダ", "YAMADA"),
    ("佐々木", "ササキ", "SASAKI"),
    ("山口", "ヤマグチ", "YAMAGUCHI"),
    ("松本", "マツモト", "MATSUMOTO"),
    ("井上", "イノウエ", "INOUE"),
    ("木村", "キムラ", "KIMURA"),
    ("林", "ハヤシ", "HAYASHI"),
    ("斎藤", "サイトウ", "SAITO"),
    ("清水", "シミズ", "SHIMIZU"),
    ("山崎", "ヤマザキ", "YAMAZAKI"),
    ("森", "モリ", "MORI"),
    ("池田", "イケダ", "IKEDA"),
    ("橋本", "ハシモト", "HASHIMOTO"),
    ("阿部", "アベ", "ABE"),
    ("石川", "イシカワ", "ISHIKAWA"),
    ("前田", "マエダ", "MAEDA"),
    ("藤田", "フジタ", "FUJITA"),
    ("岡田", "オカダ", "OKADA"),
    ("後藤", "ゴトウ", "GOTO"),
    ("長谷川", "ハセガワ", "HASEGAWA"),
    ("村上", "ムラカミ", "MURAKAMI"),
    ("近藤", "コンドウ", "KONDO"),
    ("石井", "イシイ", "ISHII"),
    ("坂本", "サカモト", "SAKAMOTO"),
    ("遠藤", "エンドウ", "ENDO"),
    ("青木", "アオキ", "AOKI"),
    ("藤井", "フジイ", "FUJII"),
    ("西村", "ニシムラ", "NISHIMURA"),
    ("福田", "フクダ", "FUKUDA"),
    ("太田", "オオタ", "OTA"),
    ("三浦", "ミウラ", "MIURA"),
    ("岡本", "オカモト", "OKAMOTO"),
    ("松田", "マツダ", "MATSUDA"),
    ("中川", "ナカガワ", "NAKAGAWA"),
    ("原田", "ハラダ", "HARADA"),
    ("小野", "オノ", "ONO"),
    ("宮崎", "ミヤザキ", "MIYAZAKI"),
    ("和田", "ワダ", "WADA"),
    ("竹内", "タケウチ", "TAKEUCHI"),
    ("金子", "カネコ", "KANEKO"),
];

/// Variant-kanji spellings (異体字) that careless normalization or CP932 handling breaks.
pub(crate) const VARIANT_SURNAMES: &[Name3] = &[
    ("髙橋", "タカハシ", "TAKAHASHI"),
    ("山﨑", "ヤマザキ", "YAMAZAKI"),
    ("齋藤", "サイトウ", "SAITO"),
    ("渡邊", "ワタナベ", "WATANABE"),
    ("渡邉", "ワタナベ", "WATANABE"),
    ("宮﨑", "ミヤザキ", "MIYAZAKI"),
    ("濱田", "ハマダ", "HAMADA"),
];

pub(crate) const GIVEN_M: &[Name3] = &[
    ("太郎", "タロウ", "TARO"),
    ("一郎", "イチロウ", "ICHIRO"),
    ("健一", "ケンイチ", "KENICHI"),
    ("誠", "マコト", "MAKOTO"),
    ("浩", "ヒロシ", "HIROSHI"),
    ("茂", "シゲル", "SHIGERU"),
    ("清", "キヨシ", "KIYOSHI"),
    ("勇", "イサム", "ISAMU"),
    ("正夫", "マサオ", "MASAO"),
    ("和夫", "カズオ", "KAZUO"),
    ("隆", "タカシ", "TAKASHI"),
    ("修", "オサム", "OSAMU"),
    ("明", "アキラ", "AKIRA"),
    ("大輔", "ダイスケ", "DAISUKE"),
    ("翔太", "ショウタ", "SHOTA"),
    ("拓也", "タクヤ", "TAKUYA"),
    ("健太", "ケンタ", "KENTA"),
    ("進", "ススム", "SUSUMU"),
    ("義雄", "ヨシオ", "YOSHIO"),
    ("秀樹", "ヒデキ", "HIDEKI"),
    ("直樹", "ナオキ", "NAOKI"),
    ("剛", "ツヨシ", "TSUYOSHI"),
];

pub(crate) const GIVEN_F: &[Name3] = &[
    ("花子", "ハナコ", "HANAKO"),
    ("幸子", "サチコ", "SACHIKO"),
    ("節子", "セツコ", "SETSUKO"),
    ("和子", "カズコ", "KAZUKO"),
    ("洋子", "ヨウコ", "YOKO"),
    ("恵子", "ケイコ", "KEIKO"),
    ("京子", "キョウコ", "KYOKO"),
    ("久美子", "クミコ", "KUMIKO"),
    ("美智子", "ミチコ", "MICHIKO"),
    ("裕子", "ユウコ", "YUKO"),
    ("由美子", "ユミコ", "YUMIKO"),
    ("悦子", "エツコ", "ETSUKO"),
    ("明美", "アケミ", "AKEMI"),
    ("直美", "ナオミ", "NAOMI"),
    ("真由美", "マユミ", "MAYUMI"),
    ("美咲", "ミサキ", "MISAKI"),
    ("千代", "チヨ", "CHIYO"),
    ("静江", "シズエ", "SHIZUE"),
    ("文子", "フミコ", "FUMIKO"),
    ("順子", "ジュンコ", "JUNKO"),
    ("智子", "トモコ", "TOMOKO"),
];

/// (prefecture, city, wards, area code)
pub(crate) const CITIES: &[(&str, &str, &[&str], &str)] = &[
    ("京都府", "京都市", &["上京区", "中京区", "左京区", "右京区", "伏見区"], "075"),
    ("東京都", "", &["世田谷区", "練馬区", "杉並区", "板橋区", "大田区"], "03"),
    ("大阪府", "大阪市", &["北区", "中央区", "天王寺区", "住吉区"], "06"),
    ("愛知県", "名古屋市", &["千種区", "昭和区", "瑞穂区", "緑区"], "052"),
    ("北海道", "札幌市", &["中央区", "北区", "豊平区"], "011"),
    ("福岡県", "福岡市", &["博多区", "早良区", "南区"], "092"),
    ("神奈川県", "横浜市", &["港北区", "青葉区", "戸塚区"], "045"),
    ("兵庫県", "神戸市", &["灘区", "須磨区", "垂水区"], "078"),
];

pub(crate) const TOWNS: &[&str] = &[
    "本町",
    "栄町",
    "緑町",
    "旭町",
    "幸町",
    "桜町",
    "若葉町",
    "東町",
    "西町",
    "中町",
    "柳町",
    "松原町",
    "新町",
    "春日町",
    "宮前町",
    "梅ケ丘",
    "ひばりが丘",
];
pub(crate) const BUILDINGS: &[&str] = &["メゾン", "コーポ", "ハイツ", "グランドール", "サンライズ"];
pub(crate) const BUILDING_NAMES: &[&str] = &["青葉", "若草", "城南", "北山"];

/// (exam type, weight in percent); the spec's vocabulary.
pub(crate) const EXAM_TYPES: &[(&str, u32)] =
    &[("上部消化管", 55), ("下部消化管", 30), ("小腸", 3), ("ERCP", 6), ("EUS", 6)];

pub(crate) const FINDINGS_UP: &[&str] = &[
    "胃体下部小弯に0-Ⅱc病変。",
    "食道裂孔ヘルニアあり。",
    "萎縮性胃炎 C-2。",
    "十二指腸球部に潰瘍瘢痕。",
    "胃角部にびらん散在。",
    "逆流性食道炎 LA分類 Grade A。",
    "前庭部に発赤あり、生検2個。",
    "胃底腺ポリープ多発。",
    "異常所見なし。",
];
pub(crate) const FINDINGS_LOW: &[&str] = &[
    "S状結腸に10mm大のIsp型ポリープ、EMR施行。",
    "上行結腸に憩室多発。",
    "直腸にLST-G 25mm。",
    "横行結腸に腺腫 5mm、CSP施行。",
    "内痔核あり。",
    "盲腸まで挿入、異常なし。",
];
pub(crate) const DIAG_UP: &[&str] = &[
    "早期胃癌 0-Ⅱc",
    "早期胃がん",
    "逆流性食道炎",
    "萎縮性胃炎",
    "胃潰瘍瘢痕",
    "胃ポリープ",
    "慢性胃炎",
    "食道裂孔ヘルニア",
    "異常なし",
];
pub(crate) const DIAG_LOW: &[&str] =
    &["大腸ポリープ", "大腸腺腫", "大腸憩室症", "内痔核", "大腸癌", "異常なし"];
pub(crate) const TREAT: &[&str] =
    &["生検", "ESD", "EMR", "CSP", "ポリペクトミー", "クリップ止血", "なし"];
pub(crate) const ADVERSE: &[&str] = &[
    "なし",
    "なし",
    "なし",
    "なし",
    "なし",
    "なし",
    "なし",
    "なし",
    "なし",
    "後出血",
    "穿孔",
    "偶発症なし",
];
pub(crate) const SEDATION: &[&str] = &["なし", "なし", "ミダゾラム", "プロポフォール", "ペチジン"];
pub(crate) const IN_OUT: &[&str] = &["入院", "外来", "外来", "外来"];
pub(crate) const ANTITHROMBOTIC: &[&str] = &["あり", "なし", "なし", "不明"];
pub(crate) const HP: &[&str] = &["未感染", "現感染", "既感染", "不明"];
pub(crate) const ASA: &[&str] = &["1", "1", "2", "2", "2", "3", "3", "4", "5"];
/// Comments without identifiers; one contains RFC 4180 `""` escapes on purpose.
pub(crate) const BENIGN_COMMENTS: &[&str] = &[
    "",
    "抗凝固薬休薬なし",
    "前処置不良",
    "次回ESD予定",
    "鎮静後ふらつきなし",
    "前回 \"鎮静不十分\" のため増量",
];

/// Full-width katakana → half-width (dakuten/handakuten split), for ﾔﾏﾀﾞ-style kana.
pub(crate) fn to_halfwidth_kana(s: &str) -> String {
    const FW: &str = "アイウエオカキクケコサシスセソタチツテトナニヌネノハヒフヘホマミムメモヤユヨラリルレロワヲンァィゥェォャュョッー";
    const HW: &str = "ｱｲｳｴｵｶｷｸｹｺｻｼｽｾｿﾀﾁﾂﾃﾄﾅﾆﾇﾈﾉﾊﾋﾌﾍﾎﾏﾐﾑﾒﾓﾔﾕﾖﾗﾘﾙﾚﾛﾜｦﾝｧｨｩｪｫｬｭｮｯｰ";
    const VOICED: &str = "ガギグゲゴザジズゼゾダヂヅデドバビブベボ";
    const VOICED_BASE: &str = "カキクケコサシスセソタチツテトハヒフヘホ";
    const SEMI: &str = "パピプペポ";
    const SEMI_BASE: &str = "ハヒフヘホ";
    let hw_of = |c: char| FW.chars().position(|f| f == c).and_then(|i| HW.chars().nth(i));
    let mut out = String::new();
    for c in s.chars() {
        if let Some(i) = VOICED.chars().position(|v| v == c) {
            let base = VOICED_BASE.chars().nth(i).and_then(hw_of).unwrap_or(c);
            out.push(base);
            out.push('ﾞ');
        } else if let Some(i) = SEMI.chars().position(|v| v == c) {
            let base = SEMI_BASE.chars().nth(i).and_then(hw_of).unwrap_or(c);
            out.push(base);
            out.push('ﾟ');
        } else if c == 'ヴ' {
            out.push_str("ｳﾞ");
        } else if c == '\u{3000}' {
            out.push(' ');
        } else {
            out.push(hw_of(c).unwrap_or(c));
        }
    }
    out
}

/// ASCII → full-width forms (０１２３, ＡＢＣ); the hyphen becomes U+2010 as Japanese IMEs
/// and CP932 exports commonly show it.
pub(crate) fn to_fullwidth(s: &str) -> String {
    s.chars()
        .map(|c| match c {
            '-' => '‐',
            '!'..='~' => char::from_u32(c as u32 + 0xFEE0).unwrap_or(c),
            _ => c,
        })
        .collect()
}
