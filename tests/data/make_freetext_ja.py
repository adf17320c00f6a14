#!/usr/bin/env python3
"""Generate tests/data/freetext_ja.jsonl: synthetic Japanese endoscopy free text with labelled
identifier and clinical spans, for tests/freetext_ja.rs.

Deterministic (fixed seed, Python 3 stdlib only): re-running rewrites the same file.
All people are fictitious: common surnames and given names are combined at random, and
numbers, phones and addresses are random.

Each line: {"id", "text", "patient_name", "patient_kana", "patient_id", "birth_date", "phone",
"address", "spans": [{"start", "end", "label"}]}; offsets are in characters (code points).
Labels: own_name, own_id, own_birth, own_phone, own_address, other_name, doctor_name, phone,
date, address, number, email, and clinical (wording that must survive).

Usage: python3 tests/data/make_freetext_ja.py  (writes next to this script)
"""

import json
import os
import random

SEED = 20261125
ITEMS = 320

SURNAMES = [
    ("佐藤", "サトウ", "Sato"), ("鈴木", "スズキ", "Suzuki"), ("高橋", "タカハシ", "Takahashi"),
    ("田中", "タナカ", "Tanaka"), ("伊藤", "イトウ", "Ito"), ("渡辺", "ワタナベ", "Watanabe"),
    ("山本", "ヤマモト", "Yamamoto"), ("中村", "ナカムラ", "Nakamura"), ("小林", "コバヤシ", "Kobayashi"),
    ("加藤", "カトウ", "Kato"), ("吉田", "ヨシダ", "Yoshida"), ("山田", "ヤマダ", "Yamada"),
    ("佐々木", "ササキ", "Sasaki"), ("山口", "ヤマグチ", "Yamaguchi"), ("松本", "マツモト", "Matsumoto"),
    ("井上", "イノウエ", "Inoue"), ("木村", "キムラ", "Kimura"), ("林", "ハヤシ", "Hayashi"),
    ("斎藤", "サイトウ", "Saito"), ("清水", "シミズ", "Shimizu"), ("山崎", "ヤマザキ", "Yamazaki"),
    ("森", "モリ", "Mori"), ("池田", "イケダ", "Ikeda"), ("橋本", "ハシモト", "Hashimoto"),
    ("阿部", "アベ", "Abe"), ("石川", "イシカワ", "Ishikawa"), ("前田", "マエダ", "Maeda"),
    ("藤田", "フジタ", "Fujita"), ("小川", "オガワ", "Ogawa"), ("岡田", "オカダ", "Okada"),
    ("長谷川", "ハセガワ", "Hasegawa"), ("村上", "ムラカミ", "Murakami"), ("近藤", "コンドウ", "Kondo"),
    ("石井", "イシイ", "Ishii"), ("坂本", "サカモト", "Sakamoto"), ("遠藤", "エンドウ", "Endo"),
    ("青木", "アオキ", "Aoki"), ("藤井", "フジイ", "Fujii"), ("西村", "ニシムラ", "Nishimura"),
    ("福田", "フクダ", "Fukuda"), ("太田", "オオタ", "Ota"), ("三浦", "ミウラ", "Miura"),
    ("藤原", "フジワラ", "Fujiwara"), ("岡本", "オカモト", "Okamoto"), ("松田", "マツダ", "Matsuda"),
    ("中川", "ナカガワ", "Nakagawa"), ("一ノ瀬", "イチノセ", "Ichinose"), ("日下部", "クサカベ", "Kusakabe"),
    ("東雲", "シノノメ", "Shinonome"), ("鏑木", "カブラギ", "Kaburagi"),
]
GIVEN = [
    ("太郎", "タロウ", "Taro"), ("花子", "ハナコ", "Hanako"), ("一郎", "イチロウ", "Ichiro"),
    ("健", "ケン", "Ken"), ("美咲", "ミサキ", "Misaki"), ("翔太", "ショウタ", "Shota"),
    ("陽子", "ヨウコ", "Yoko"), ("誠", "マコト", "Makoto"), ("由美", "ユミ", "Yumi"),
    ("大輔", "ダイスケ", "Daisuke"), ("恵子", "ケイコ", "Keiko"), ("直樹", "ナオキ", "Naoki"),
    ("真由美", "マユミ", "Mayumi"), ("健太", "ケンタ", "Kenta"), ("彩", "アヤ", "Aya"),
    ("隆", "タカシ", "Takashi"), ("裕子", "ユウコ", "Yuko"), ("和夫", "カズオ", "Kazuo"),
    ("節子", "セツコ", "Setsuko"), ("葵", "アオイ", "Aoi"),
]

ADDRESSES = [
    ("京都府", "京都市", "左京区", "下鴨本町"), ("大阪府", "大阪市", "北区", "梅田"),
    ("東京都", "", "千代田区", "丸の内"), ("神奈川県", "横浜市", "中区", "山下町"),
    ("愛知県", "名古屋市", "中区", "栄"), ("北海道", "札幌市", "中央区", "北一条西"),
    ("福岡県", "福岡市", "博多区", "博多駅前"), ("兵庫県", "神戸市", "中央区", "三宮町"),
    ("宮城県", "仙台市", "青葉区", "一番町"), ("広島県", "広島市", "中区", "紙屋町"),
    ("滋賀県", "大津市", "", "浜大津"), ("奈良県", "奈良市", "", "登大路町"),
    ("長野県", "北佐久郡", "軽井沢町", "長倉"), ("静岡県", "浜松市", "中央区", "鍛冶町"),
    ("千葉県", "千葉市", "中央区", "富士見"), ("埼玉県", "さいたま市", "浦和区", "高砂"),
    ("東京都", "", "世田谷区", "三軒茶屋"), ("京都府", "宇治市", "", "槇島町"),
]

FW = {chr(c): chr(c + 0xFEE0) for c in range(0x21, 0x7F)}
FW["-"] = "‐"
HW_KANA = dict(zip(
    "アイウエオカキクケコサシスセソタチツテトナニヌネノハヒフヘホマミムメモヤユヨラリルレロワヲンァィゥェォャュョッー",
    "ｱｲｳｴｵｶｷｸｹｺｻｼｽｾｿﾀﾁﾂﾃﾄﾅﾆﾇﾈﾉﾊﾋﾌﾍﾎﾏﾐﾑﾒﾓﾔﾕﾖﾗﾘﾙﾚﾛﾜｦﾝｧｨｩｪｫｬｭｮｯｰ"))
VOICED = dict(zip("ガギグゲゴザジズゼゾダヂヅデドバビブベボ", "カキクケコサシスセソタチツテトハヒフヘホ"))
SEMI = dict(zip("パピプペポ", "ハヒフヘホ"))


def fullwidth(s):
    return "".join(FW.get(c, c) for c in s)


def halfwidth_kana(s):
    out = []
    for c in s:
        if c in VOICED:
            out.append(HW_KANA[VOICED[c]] + "ﾞ")
        elif c in SEMI:
            out.append(HW_KANA[SEMI[c]] + "ﾟ")
        elif c == "　":
            out.append(" ")
        else:
            out.append(HW_KANA.get(c, c))
    return "".join(out)


def hiragana(s):
    return "".join(chr(ord(c) - 0x60) if "ァ" <= c <= "ヶ" else c for c in s)


ERAS = [("令和", "R", 2019, (2019, 5, 1)), ("平成", "H", 1989, (1989, 1, 8)),
        ("昭和", "S", 1926, (1926, 12, 25))]


def era_of(y, m, d):
    for kanji, letter, first, start in ERAS:
        if (y, m, d) >= start:
            return kanji, letter, y - first + 1
    return None


class Item:
    def __init__(self):
        self.parts = []  # (text, label or None)

    def add(self, text, label=None):
        self.parts.append((text, label))

    def build(self):
        text, spans, pos = "", [], 0
        for t, label in self.parts:
            if label:
                spans.append({"start": pos, "end": pos + len(t), "label": label})
            text += t
            pos += len(t)
        return text, spans


def person(rng, exclude):
    while True:
        s = rng.choice(SURNAMES)
        if s[0] not in exclude:
            return s, rng.choice(GIVEN)


def name_form(rng, s, g, allow_hira=True):
    """A way of writing someone's name; returns the string."""
    forms = ["kanji_s", "kanji_sg", "kanji_s_g", "kata_s", "kata_s_g", "hw_s", "romaji_s",
             "romaji_SG", "romaji_sg"]
    if allow_hira:
        forms.append("hira_g")
    f = rng.choice(forms)
    return {
        "kanji_s": s[0],
        "kanji_sg": s[0] + g[0],
        "kanji_s_g": s[0] + rng.choice([" ", "　"]) + g[0],
        "kata_s": s[1],
        "kata_s_g": s[1] + rng.choice([" ", "　"]) + g[1],
        "hw_s": halfwidth_kana(s[1]),
        "romaji_s": s[2],
        "romaji_SG": s[2].upper() + " " + g[2],
        "romaji_sg": s[2] + " " + g[2],
        "hira_g": hiragana(g[1]),
    }[f], f


def rand_date(rng):
    y = rng.choice([2019, 2020, 2023, 2024, 2025, 2026])
    m = rng.randint(1, 12)
    d = rng.randint(1, 28)
    if rng.random() < 0.1:
        y, m, d = rng.choice([(2019, 5, 1), (2019, 4, 30), (2026, 11, 25)])
    return y, m, d


def date_form(rng, y, m, d):
    era = era_of(y, m, d)
    forms = [
        f"{y}/{m:02d}/{d:02d}", f"{y}/{m}/{d}", f"{y}-{m:02d}-{d:02d}", f"{y}.{m}.{d}",
        f"{y}年{m}月{d}日", f"{m}/{d}", f"{m}月{d}日", f"{y}年{m}月", f"{y}/{m:02d}",
        fullwidth(f"{y}年{m}月{d}日"),
    ]
    if era:
        kanji, letter, ey = era
        eys = "元" if ey == 1 else str(ey)
        forms += [f"{letter}{ey}.{m}.{d}", f"{kanji}{eys}年{m}月{d}日", f"{letter}{ey}/{m}/{d}"]
    return rng.choice(forms)


def phone_number(rng):
    r = rng.random()
    if r < 0.3:
        return f"0{rng.choice([75, 52, 92])}-{rng.randint(100, 999)}-{rng.randint(1000, 9999)}"
    if r < 0.5:
        return f"0{rng.choice([3, 6])}-{rng.randint(1000, 9999)}-{rng.randint(1000, 9999)}"
    return f"0{rng.choice([70, 80, 90])}-{rng.randint(1000, 9999)}-{rng.randint(1000, 9999)}"


def block(rng):
    a, b, c = rng.randint(1, 9), rng.randint(1, 30), rng.randint(1, 20)
    return rng.choice([f"{a}-{b}-{c}", f"{a}丁目{b}番{c}号", f"{b}番地", f"{a}-{b}"])


def address(rng, a=None):
    pref, city, ward, town = a or rng.choice(ADDRESSES)
    return pref + city + ward + town + block(rng), (pref, city, ward, town)


SITES = ["胃体下部", "胃体中部", "胃角部", "前庭部", "噴門部", "胃体上部", "食道", "十二指腸球部",
         "横行結腸", "S状結腸", "直腸", "上行結腸"]
WALLS = ["小弯", "大弯", "前壁", "後壁"]
SIZES = ["10mm", "5mm", "2cm", "15mm", "12-15mm", "3mm"]
MORPH = ["0-Ⅱc", "0-Ⅱa", "0-Is", "0-Ⅱa+Ⅱc", "0-IIc"]
DIAG = ["早期胃癌", "逆流性食道炎 LA-A", "萎縮性胃炎 C-2", "大腸腺腫", "胃潰瘍瘢痕", "バレット食道",
        "慢性胃炎", "食道裂孔ヘルニア", "H.pylori既感染"]
PROC = ["ESD", "EMR", "生検", "CSP", "ポリペクトミー", "クリップ止血"]
LIKE = ["SMT様隆起", "ポリープ様病変", "たこいぼ様びらん", "隆起様の変化", "顆粒様", "結節様"]
ROLE_WORDS = ["内視鏡医師", "担当医師", "看護師", "患者様", "家族様", "皆様", "先生方", "主治医",
              "研修医", "専門医", "検査技師", "病棟看護師", "ご本人様", "奥様"]
TIMES = ["3日後", "1年後", "2週間後", "6か月後", "2/3周性", "1/2周性", "Hb 12.3", "生検3個", "T1a",
         "検体番号 1234-567", "2026年", "11月"]


def clinical_sentence(it, rng):
    k = rng.randrange(8)
    if k == 0:
        it.add(rng.choice(SITES), "clinical")
        it.add(rng.choice(WALLS), "clinical")
        it.add("に")
        it.add(rng.choice(SIZES), "clinical")
        it.add("大の")
        it.add(rng.choice(MORPH), "clinical")
        it.add("病変を認める。")
    elif k == 1:
        it.add("診断: ")
        it.add(rng.choice(DIAG), "clinical")
        it.add("。")
    elif k == 2:
        it.add(rng.choice(PROC), "clinical")
        it.add("施行、")
        it.add(rng.choice(TIMES), "clinical")
        it.add("に再検予定。")
    elif k == 3:
        it.add(rng.choice(SITES), "clinical")
        it.add("に")
        it.add(rng.choice(LIKE), "clinical")
        it.add("を認める。")
    elif k == 4:
        it.add(rng.choice(ROLE_WORDS), "clinical")
        it.add("より説明済み。")
    elif k == 5:
        it.add("家族歴: ")
        it.add(rng.choice(["父 胃癌", "母 大腸癌", "兄 食道癌", "妻 同伴", "長男 健在"]), "clinical")
        it.add("。")
    elif k == 6:
        it.add(rng.choice(TIMES), "clinical")
        it.add("、")
        it.add(rng.choice(SIZES), "clinical")
        it.add("の")
        it.add(rng.choice(MORPH), "clinical")
        it.add("。")
    else:
        it.add(rng.choice(["こちらの先生にご紹介いただいた。", "たくさんの白苔あり。", "前処置良好。",
                           "鎮静はミダゾラム。", "ピロリ除菌後。"]))


HON_OTHER = ["様", "さん", "氏", "君", "ちゃん", "看護師", "Ns", "技師", "くん"]
HON_DOC = ["先生", "医師", "Dr", " Dr", "先生"]
ROLE_OTHER = ["担当:", "担当 ", "担当看護師 ", "介助 ", "記載者: ", "キーパーソン: "]
ROLE_DOC = ["主治医 ", "担当医:", "紹介医 ", "術者 ", "施行医 ", "Dr.", "Dr ", "依頼医："]
FAMILY = ["長男 ", "長女 ", "次男 ", "妻 ", "夫 ", "娘 ", "息子 ", "母 ", "父 "]


def other_person(it, rng, exclude):
    s, g = person(rng, exclude)
    k = rng.randrange(6)
    if k <= 1:  # name + honorific
        hon = rng.choice(HON_OTHER)
        familiar = hon in ("ちゃん", "さん", "くん")
        nm, f = name_form(rng, s, g, allow_hira=familiar)
        if f.startswith("hira"):
            it.add(rng.choice(["、", "。", " "]))
        if f.startswith("romaji") and hon in ("君", "ちゃん", "くん"):
            hon = "さん"
        if f.startswith("romaji") and hon == "Ns":
            hon = " Ns"
        it.add(nm, "other_name")
        it.add(hon)
        it.add(rng.choice(["に説明した。", "より連絡あり。", "が同席。", "、", "へ報告。"]))
    elif k == 2:  # name + doctor honorific
        nm, f = name_form(rng, s, g, allow_hira=False)
        it.add(rng.choice(["紹介元 ", "", "前医 ", "、"]))
        hon = rng.choice(HON_DOC)
        if f.startswith("romaji") and hon == "Dr":
            hon = " Dr"
        it.add(nm, "doctor_name")
        it.add(hon)
        it.add(rng.choice(["より紹介。", "に報告。", "の指示で", "、"]))
    elif k == 3:  # doctor role prefix
        role = rng.choice(ROLE_DOC)
        nm, f = name_form(rng, s, g, allow_hira=False)
        if role.startswith("Dr") and not f.startswith(("romaji", "kanji")):
            nm = s[0]
        it.add(role)
        it.add(nm, "doctor_name")
        it.add(rng.choice(["。", "、", "\n"]))
    elif k == 4:  # other role prefix
        it.add(rng.choice(ROLE_OTHER))
        nm, _ = name_form(rng, s, g, allow_hira=False)
        it.add(nm, "other_name")
        it.add(rng.choice(["。", "、", "\n"]))
    else:  # family
        it.add(rng.choice(["キーパーソン: ", "連絡先家族: ", ""]))
        it.add(rng.choice(FAMILY))
        nm = rng.choice([s[0] + " " + g[0], g[0], s[1] + " " + g[1], s[0] + g[0]])
        it.add(nm, "other_name")
        it.add(rng.choice(["。", "(同居)。", "、"]))


def own_identifier(it, rng, own):
    s, g, pid, birth, phone, addr, addr_parts = own
    k = rng.randrange(6)
    if k == 0:
        nm = rng.choice([s[0] + g[0], s[0] + "　" + g[0], s[0], s[1] + " " + g[1],
                         halfwidth_kana(s[1] + " " + g[1]), hiragana(s[1] + g[1]), g[0]])
        pre = rng.choice(["患者 ", "本人(", "", "氏名: "])
        hon = rng.choice(["様", "さん", "", "氏"])
        if len(nm) == 1 and not pre and not hon:
            # A one-kanji name part is not searched on its own (identifiers.rs): it is only
            # found next to a cue, so the set does not plant it bare.
            hon = "様"
        it.add(pre)
        it.add(nm, "own_name")
        it.add(hon)
        it.add(rng.choice(["。", "、", " "]))
    elif k == 1:
        it.add(rng.choice(["ID ", "患者ID:", "ID", "カルテ "]))
        it.add(rng.choice([pid, pid.lstrip("0"), fullwidth(pid)]), "own_id")
        it.add("。")
    elif k == 2:
        y, m, d = birth
        era = era_of(y, m, d)
        forms = [f"{y}/{m}/{d}", f"{y}-{m:02d}-{d:02d}", f"{y}年{m}月{d}日", f"{y}{m:02d}{d:02d}"]
        if era:
            forms += [f"{era[0]}{era[2]}年{m}月{d}日", f"{era[1]}{era[2]}.{m}.{d}"]
        it.add(rng.choice(["生年月日 ", "(", "", "生年月日:"]))
        it.add(rng.choice(forms), "own_birth")
        it.add(rng.choice(["生。", ")", "。"]))
    elif k == 3:
        digits = phone.replace("-", "")
        it.add(rng.choice(["TEL ", "連絡先 ", "自宅 ", "携帯"]))
        area, local, line = phone.split("-")
        it.add(rng.choice([phone, digits, fullwidth(phone), f"({area}){local}-{line}"]), "own_phone")
        it.add("。")
    elif k == 4:
        pref, city, ward, town = addr_parts
        form = rng.choice([addr, city + ward, pref + city + ward])
        if not (city + ward):
            form = addr
        it.add(rng.choice(["住所: ", "自宅 ", "現住所 "]))
        it.add(form, "own_address")
        it.add(rng.choice(["。", " 在住。", "\n"]))
    else:
        it.add(rng.choice(["", "患者 "]))
        it.add(s[0] + g[0], "own_name")
        it.add("様(")
        it.add(pid, "own_id")
        it.add(")。")


def generic(it, rng):
    k = rng.randrange(5)
    if k == 0:
        it.add(rng.choice(["前回 ", "検査日 ", "次回", "紹介日: ", "("]))
        it.add(date_form(rng, *rand_date(rng)), "date")
        it.add(rng.choice(["に施行。", "。", "予定。", ")"]))
    elif k == 1:
        it.add(rng.choice(["紹介元TEL ", "家族連絡先 ", "FAX "]))
        p = phone_number(rng)
        it.add(rng.choice([p, fullwidth(p)]), "phone")
        it.add("。")
    elif k == 2:
        it.add(rng.choice(["家族住所 ", "紹介元: ", "送付先 "]))
        a, parts = address(rng)
        pref, city, ward, town = parts
        forms = [a]
        if city and ward:
            forms.append(city + ward + town + block(rng))
        if not city:
            forms.append(ward + town + block(rng))
        if city and not ward and "郡" not in city:
            forms.append(city + town + block(rng))
        it.add(rng.choice(forms), "address")
        it.add(rng.choice(["。", "\n", " 宛。"]))
    elif k == 3:
        kw = rng.choice(["カルテ番号 ", "受付番号 ", "保険者番号 ", "診察券番号:", "ID:", "患者ID ",
                         "被保険者番号 ", "整理番号"])
        val = rng.choice([str(rng.randint(10, 99999)), f"A{rng.randint(1000, 99999)}",
                          f"{rng.randint(1000000, 99999999):08d}"])
        it.add(kw)
        it.add(val, "number")
        it.add(rng.choice(["。", "、", "\n"]))
        if rng.random() < 0.3:
            it.add("記号 ")
            it.add(str(rng.randint(1, 99)), "number")
            it.add(" 番号 ")
            it.add(str(rng.randint(1, 999)), "number")
            it.add("。")
    else:
        local = rng.choice(["t.yamada", "clinic", "info", "k-sato"])
        it.add("連絡 ")
        it.add(f"{local}@example-hp.jp", "email")
        it.add("。")


def main():
    rng = random.Random(SEED)
    here = os.path.dirname(os.path.abspath(__file__))
    out = []
    for n in range(ITEMS):
        s, g = person(rng, set())
        pid = f"{rng.randint(1, 99999999):08d}"
        by = rng.randint(1935, 1995)
        birth = (by, rng.randint(1, 12), rng.randint(1, 28))
        phone = phone_number(rng)
        addr, parts = address(rng)
        own = (s, g, pid, birth, phone, addr, parts)
        it = Item()
        exclude = {s[0]}
        for _ in range(rng.randint(4, 8)):
            r = rng.random()
            if r < 0.35:
                clinical_sentence(it, rng)
            elif r < 0.6:
                other_person(it, rng, exclude)
            elif r < 0.8:
                own_identifier(it, rng, own)
            else:
                generic(it, rng)
            if rng.random() < 0.2:
                it.add("\n")
        text, spans = it.build()
        y, m, d = birth
        birth_s = rng.choice([f"{y}/{m:02d}/{d:02d}", f"{y}-{m}-{d}"])
        out.append({
            "id": n,
            "text": text,
            "patient_name": s[0] + rng.choice(["　", " ", ""]) + g[0],
            "patient_kana": rng.choice([s[1] + " " + g[1], halfwidth_kana(s[1] + " " + g[1])]),
            "patient_id": pid,
            "birth_date": birth_s,
            "phone": phone,
            "address": addr,
            "spans": spans,
        })
    with open(os.path.join(here, "freetext_ja.jsonl"), "w", encoding="utf-8") as f:
        for o in out:
            f.write(json.dumps(o, ensure_ascii=False) + "\n")


if __name__ == "__main__":
    main()
