#!/usr/bin/env python3
"""Generate tests/data/freetext_ja_nocue.jsonl: Japanese free text where other people's names
appear with no cue at all (no honorific, role, relation word, bracket or signature), beside
clinical words that must survive, for tests/gate/freetext_ja_nocue.rs (issue 17).

Deterministic (fixed seed, Python 3 stdlib only): re-running rewrites the same file.
All people are fictitious: surnames and given names are combined at random.

What it holds:
- 14 sentence patterns with a name slot and no cue (「説明は中村一郎に行った」,
  「次回は小林直樹が予約を取る」, ...), some with two names;
- names written in kanji (joined or spaced), surname alone, katakana (spaced, dotted or
  joined) and romaji (Surname Given, SURNAME Given, Given Surname);
- surnames and given names that are also ordinary words (森, 林, 原, 星, 泉 / 誠, 実, 学, 進,
  光, 望), rare surnames (鏑木, 東雲) and recent given names (陽翔, 結愛, 颯太, 湊);
- clinical sentences with eponyms (木村・竹本分類, 山田Ⅲ型, 工藤分類, 高安動脈炎, 橋本病),
  drug names and anatomy, labelled `clinical`.

Each line has the format of tests/data/freetext_ja.jsonl ({"id", "text", "patient_name",
"patient_kana", "patient_id", "birth_date", "phone", "address", "spans"}); offsets are in
characters. Labels: other_name (a third party's name, surname and given name one span) and
clinical. The patient's own fields are filled but the patient is not named in the text.

Usage: python3 tests/data/make_freetext_ja_nocue.py  (writes next to this script)
"""

import json
import os
import random

SEED = 20261217
ITEMS = 240

# (kanji, katakana, romaji). Common surnames, surnames that are ordinary words, rare ones.
SURNAMES = [
    ("佐藤", "サトウ", "Sato"), ("鈴木", "スズキ", "Suzuki"), ("高橋", "タカハシ", "Takahashi"),
    ("田中", "タナカ", "Tanaka"), ("渡辺", "ワタナベ", "Watanabe"), ("中村", "ナカムラ", "Nakamura"),
    ("小林", "コバヤシ", "Kobayashi"), ("加藤", "カトウ", "Kato"), ("吉田", "ヨシダ", "Yoshida"),
    ("山口", "ヤマグチ", "Yamaguchi"), ("松本", "マツモト", "Matsumoto"), ("井上", "イノウエ", "Inoue"),
    ("斎藤", "サイトウ", "Saito"), ("清水", "シミズ", "Shimizu"), ("山崎", "ヤマザキ", "Yamazaki"),
    ("池田", "イケダ", "Ikeda"), ("橋本", "ハシモト", "Hashimoto"), ("阿部", "アベ", "Abe"),
    ("石川", "イシカワ", "Ishikawa"), ("前田", "マエダ", "Maeda"), ("藤田", "フジタ", "Fujita"),
    ("小川", "オガワ", "Ogawa"), ("岡田", "オカダ", "Okada"), ("長谷川", "ハセガワ", "Hasegawa"),
    ("村上", "ムラカミ", "Murakami"), ("近藤", "コンドウ", "Kondo"), ("坂本", "サカモト", "Sakamoto"),
    ("遠藤", "エンドウ", "Endo"), ("青木", "アオキ", "Aoki"), ("西村", "ニシムラ", "Nishimura"),
    ("福田", "フクダ", "Fukuda"), ("太田", "オオタ", "Ota"), ("三浦", "ミウラ", "Miura"),
    ("藤原", "フジワラ", "Fujiwara"), ("岡本", "オカモト", "Okamoto"), ("中川", "ナカガワ", "Nakagawa"),
    ("谷口", "タニグチ", "Taniguchi"), ("丸山", "マルヤマ", "Maruyama"), ("荒木", "アラキ", "Araki"),
    ("菊地", "キクチ", "Kikuchi"), ("栗山", "クリヤマ", "Kuriyama"), ("大和田", "オオワダ", "Owada"),
    ("金子", "カネコ", "Kaneko"), ("中島", "ナカジマ", "Nakajima"), ("相沢", "アイザワ", "Aizawa"),
    # also ordinary words
    ("森", "モリ", "Mori"), ("林", "ハヤシ", "Hayashi"), ("原", "ハラ", "Hara"),
    ("星", "ホシ", "Hoshi"), ("泉", "イズミ", "Izumi"), ("岡", "オカ", "Oka"),
    ("関", "セキ", "Seki"), ("堀", "ホリ", "Hori"), ("南", "ミナミ", "Minami"),
    ("平", "タイラ", "Taira"), ("今井", "イマイ", "Imai"), ("石原", "イシハラ", "Ishihara"),
    # rare
    ("鏑木", "カブラギ", "Kaburagi"), ("東雲", "シノノメ", "Shinonome"), ("一ノ瀬", "イチノセ", "Ichinose"),
    ("日下部", "クサカベ", "Kusakabe"),
]
GIVEN = [
    ("一郎", "イチロウ", "Ichiro"), ("直樹", "ナオキ", "Naoki"), ("花子", "ハナコ", "Hanako"),
    ("健太", "ケンタ", "Kenta"), ("美咲", "ミサキ", "Misaki"), ("翔太", "ショウタ", "Shota"),
    ("陽子", "ヨウコ", "Yoko"), ("由美", "ユミ", "Yumi"), ("大輔", "ダイスケ", "Daisuke"),
    ("恵子", "ケイコ", "Keiko"), ("真由美", "マユミ", "Mayumi"), ("裕子", "ユウコ", "Yuko"),
    ("和夫", "カズオ", "Kazuo"), ("節子", "セツコ", "Setsuko"), ("健一", "ケンイチ", "Kenichi"),
    ("浩二", "コウジ", "Koji"), ("智子", "トモコ", "Tomoko"), ("拓也", "タクヤ", "Takuya"),
    ("芽依", "メイ", "Mei"), ("美穂", "ミホ", "Miho"),
    # also ordinary words
    ("誠", "マコト", "Makoto"), ("実", "ミノル", "Minoru"), ("学", "マナブ", "Manabu"),
    ("進", "ススム", "Susumu"), ("光", "ヒカル", "Hikaru"), ("望", "ノゾミ", "Nozomi"),
    ("愛", "アイ", "Ai"), ("翼", "ツバサ", "Tsubasa"), ("忍", "シノブ", "Shinobu"),
    ("清", "キヨシ", "Kiyoshi"), ("正", "タダシ", "Tadashi"), ("勇", "イサム", "Isamu"),
    ("茂", "シゲル", "Shigeru"), ("明", "アキラ", "Akira"), ("薫", "カオル", "Kaoru"),
    # recent
    ("陽翔", "ハルト", "Haruto"), ("結愛", "ユア", "Yua"), ("颯太", "ソウタ", "Sota"),
    ("湊", "ミナト", "Minato"), ("蒼", "アオイ", "Aoi"), ("凛", "リン", "Rin"),
    ("悠真", "ユウマ", "Yuma"),
]

# Sentence patterns: {0} (and {1}) are name slots. None has an honorific, a role or relation
# word, brackets or a signature position.
PATTERNS = [
    "説明は{0}に行った。",
    "次回は{0}が予約を取る。",
    "{0}より電話連絡あり。",
    "同意書は{0}が署名した。",
    "検査結果を{0}に伝えた。",
    "{0}が同席し、説明を聞いた。",
    "本日、{0}と面談。",
    "内服薬の管理は{0}が行っている。",
    "帰宅時は{0}が迎えに来る予定。",
    "問診票は{0}の記載による。",
    "{0}から既往歴を聴取した。",
    "検査の説明を{0}にも行った。",
    "{0}と{1}が来院し、説明を受けた。",
    "連絡先は{0}、不在時は{1}へ。",
]

# Clinical wording that must survive: eponyms, drugs, anatomy (each one labelled span).
CLASSIFICATIONS = ["木村・竹本分類", "木村･竹本分類"]
POLYP_TYPES = ["山田Ⅰ型", "山田Ⅱ型", "山田Ⅲ型", "山田Ⅳ型"]
PIT_PATTERNS = ["工藤分類", "佐野分類", "有馬分類", "井上分類", "八尾分類"]
DISEASES = ["高安動脈炎", "橋本病", "川崎病", "菊池病", "クローン病", "マロリー・ワイス症候群",
            "バレット食道", "ヘリコバクター・ピロリ感染"]
DRUGS = ["ロキソニン", "ワーファリン", "バイアスピリン", "タケキャブ", "ネキシウム", "プラビックス",
         "エリキュース", "ガスモチン", "ブスコパン", "グルカゴン", "ミダゾラム", "ペチジン", "キシロカイン",
         "プロポフォール", "ボノプラザン", "ランソプラゾール", "ファモチジン", "リクシアナ", "イグザレルト",
         "大建中湯", "六君子湯", "芍薬甘草湯", "マグミット", "モビプレップ", "ガスコン", "プロナーゼ",
         "インジゴカルミン", "ピコスルファート"]
ANATOMY = ["胃角", "穹窿部", "噴門", "幽門輪", "十二指腸球部", "下行脚", "横行結腸", "脾弯曲", "肝弯曲",
           "S状結腸", "直腸", "回盲弁", "虫垂開口部", "食道胃接合部", "前庭部", "歯状線", "上十二指腸角",
           "盲腸", "上行結腸", "下行結腸", "ファーター乳頭", "バウヒン弁", "ブルンネル腺"]

# {k} classification, {y} polyp type, {p} pit/vessel classification, {e} disease, {d} drug,
# {a} anatomy: each one labelled clinical span.
CLINICAL = [
    "萎縮は{k}でC-2。",
    "{a}に{y}のポリープを認める。",
    "{a}の病変は{p}でⅢ型相当。",
    "{d}内服中。",
    "{d}は検査前に休薬。",
    "{a}に発赤あり。",
    "前処置に{d}を使用。",
    "{a}まで観察した。",
    "既往に{e}。",
]
FILL = {"k": CLASSIFICATIONS, "y": POLYP_TYPES, "p": PIT_PATTERNS, "e": DISEASES, "d": DRUGS,
        "a": ANATOMY}


def katakana_form(rng, s, g):
    sep = rng.choice([" ", "　", "・", ""])
    return s[1] + sep + g[1]


def romaji_form(rng, s, g):
    return rng.choice([
        s[2] + " " + g[2],
        s[2].upper() + " " + g[2],
        g[2] + " " + s[2],
    ])


def name(rng):
    s, g = rng.choice(SURNAMES), rng.choice(GIVEN)
    r = rng.random()
    if r < 0.45:
        return s[0] + g[0]
    if r < 0.6:
        return s[0] + rng.choice([" ", "　"]) + g[0]
    if r < 0.7:
        return s[0]
    if r < 0.85:
        return katakana_form(rng, s, g)
    return romaji_form(rng, s, g)


class Item:
    def __init__(self):
        self.parts = []

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


def add_pattern(it, pattern, names):
    """Add `pattern` with its {0}/{1} slots filled by `names`, each labelled other_name."""
    rest = pattern
    while rest:
        k = min((rest.find("{%d}" % i) for i in range(2) if "{%d}" % i in rest), default=-1)
        if k < 0:
            it.add(rest)
            break
        it.add(rest[:k])
        slot = int(rest[k + 1])
        it.add(names[slot], "other_name")
        rest = rest[k + 3:]


def add_clinical(it, rng):
    tpl = rng.choice(CLINICAL)
    fill = {k: rng.choice(v) for k, v in FILL.items()}
    rest = tpl
    while rest:
        k = rest.find("{")
        if k < 0:
            it.add(rest)
            break
        it.add(rest[:k])
        it.add(fill[rest[k + 1]], "clinical")
        rest = rest[k + 3:]


def main():
    rng = random.Random(SEED)
    here = os.path.dirname(os.path.abspath(__file__))
    out = []
    for n in range(ITEMS):
        it = Item()
        for _ in range(rng.randint(2, 4)):
            if rng.random() < 0.55:
                pattern = PATTERNS[n % len(PATTERNS)] if rng.random() < 0.5 else rng.choice(PATTERNS)
                add_pattern(it, pattern, [name(rng), name(rng)])
            else:
                add_clinical(it, rng)
            if rng.random() < 0.25:
                it.add("\n")
        text, spans = it.build()
        if not any(s["label"] == "other_name" for s in spans):
            add_pattern(it, PATTERNS[n % len(PATTERNS)], [name(rng), name(rng)])
            text, spans = it.build()
        out.append({
            "id": n,
            "text": text,
            # The patient, named nowhere in the text (no own_* spans) and sharing no name part
            # with the pools, so own-identifier matching cannot catch a third party.
            "patient_name": "宇佐美 琴音",
            "patient_kana": "ウサミ コトネ",
            "patient_id": f"{rng.randint(1, 99999999):08d}",
            "birth_date": f"{rng.randint(1935, 1995)}-{rng.randint(1, 12)}-{rng.randint(1, 28)}",
            "phone": f"0{rng.randint(3, 9)}-{rng.randint(1000, 9999)}-{rng.randint(1000, 9999)}",
            "address": "京都府京都市左京区下鴨本町1-2-3",
            "spans": spans,
        })
    with open(os.path.join(here, "freetext_ja_nocue.jsonl"), "w", encoding="utf-8") as f:
        for o in out:
            f.write(json.dumps(o, ensure_ascii=False) + "\n")


if __name__ == "__main__":
    main()
