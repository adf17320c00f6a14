#!/usr/bin/env bash
# Burned-in text stage benchmark (issue 4; results pasted into docs/benchmarks.md): on the
# corpus of ../shared/bench/make_corpus.py, in the same run and on the same images:
#   - fgw field-of-view masking alone (DCT domain, no OCR), 2 threads;
#   - fgw full stage (field OCR + mask + OCR verification), 2 threads;
#   - the tesseract CLI alone (jpn+eng --psm 11), one process per image as a user would run it;
#   - presidio-image-redactor, when it installs (it needs a spaCy model from github.com, which
#     this machine cannot reach; the script says so and goes on).
# Then an independent check: the tesseract CLI reads every fgw output (and every input, to
# show the identifiers were readable in the first place), and the planted identifiers of each
# image (truth.json overlay lines: name, patient id, birth date) are searched in its text
# (NFKC, spaces removed). Peak RSS from /usr/bin/time -v.
#
# Then (issue 16) the dark-text corpus that pixel_bench generates itself (`--styled`: 5 exams,
# 50 frames, 20 with name and id typed inside the field in near-black, dark blue, dark red or
# black on a white label): the full stage's images/s, frames released, masked share of the
# field, frames where the tesseract CLI (--psm 11 and 6) reads an identifier in the output,
# and the tesseract CLI alone on the same 50 inputs, timed in the same run.
#
# usage: bench/pixels.sh CORPUS_DIR [RESULTS_DIR=CORPUS_DIR/results-pixels]
# Env: NIMG (200), VENVS (/tmp/fgw-bench-venvs), MAKE_CORPUS, STYLED_ONLY=1 (only the
# dark-text corpus: no Python corpus, no presidio).
set -euo pipefail
[ $# -ge 1 ] || { echo "usage: $0 CORPUS_DIR [RESULTS_DIR]" >&2; exit 2; }
ROOT=$(cd "$(dirname "$0")/.." && pwd)
mkdir -p "$1"
CORPUS=$(realpath "$1")
RESULTS=${2:-$CORPUS/results-pixels}
mkdir -p "$RESULTS"; RESULTS=$(realpath "$RESULTS")
NIMG=${NIMG:-200}
VENVS=${VENVS:-/tmp/fgw-bench-venvs}
MAKE_CORPUS=${MAKE_CORPUS:-$ROOT/../shared/bench/make_corpus.py}
PY=$VENVS/venv/bin/python

(cd "$ROOT" && cargo build --release --locked -p fgw-synth --example pixel_bench >/dev/null)
BIN=$ROOT/target/release/examples/pixel_bench

echo "== fgw full stage on the dark-text corpus (--styled), 50 images, 2 threads"
rm -rf "$RESULTS/styled"
"$BIN" --styled "$RESULTS/styled" --threads 2 > "$RESULTS/styled.json"
cat "$RESULTS/styled.json"; echo
echo "== tesseract CLI alone (jpn+eng --psm 11) on the same 50 inputs, one process each"
t0=$(date +%s.%N)
for f in "$RESULTS"/styled/*-in.jpg; do tesseract "$f" - -l jpn+eng --psm 11 >/dev/null 2>&1; done
t1=$(date +%s.%N)
python3 -c "import sys; a, b = map(float, sys.argv[1:]); print(f'tesseract CLI: {(b - a) / 50:.3f} s/image, {50 / (b - a):.2f} images/s')" "$t0" "$t1"
[ "${STYLED_ONLY:-0}" = 1 ] && exit 0

if [ ! -x "$PY" ]; then
  python3 -m venv "$VENVS/venv" && "$PY" -m pip install -q pydicom pillow numpy
fi
if [ ! -f "$CORPUS/truth.json" ]; then
  "$PY" "$MAKE_CORPUS" "$CORPUS" --exams "$NIMG" --images-per-exam 1 --dicom 0 --workers 2
fi

"$PY" - "$CORPUS" "$NIMG" > "$RESULTS/images.txt" <<'PYEOF'
import json, sys
t = json.load(open(sys.argv[1] + "/truth.json", encoding="utf-8"))
paths = [i["path"] for e in t["exams"] for i in e["images"]][: int(sys.argv[2])]
print("\n".join(sys.argv[1] + "/" + p for p in paths))
PYEOF
N=$(wc -l < "$RESULTS/images.txt")

echo "== fgw field of view only, $N images, 2 threads"
rm -rf "$RESULTS/fov"
/usr/bin/time -v -o "$RESULTS/fov.time" "$BIN" "$CORPUS" "$RESULTS/fov" --images "$N" --threads 2 --fov-only > "$RESULTS/fov.json"
cat "$RESULTS/fov.json"; echo
echo "== fgw full stage, $N images, 2 threads"
rm -rf "$RESULTS/full"
/usr/bin/time -v -o "$RESULTS/full.time" "$BIN" "$CORPUS" "$RESULTS/full" --images "$N" --threads 2 > "$RESULTS/full.json" 2>/dev/null
cat "$RESULTS/full.json"; echo

echo "== tesseract CLI alone (jpn+eng --psm 11) on the inputs"
mkdir -p "$RESULTS/ocr-in" "$RESULTS/ocr-out"
t0=$(date +%s.%N); i=0
while read -r f; do
  tesseract "$f" "$RESULTS/ocr-in/$i" -l jpn+eng --psm 11 >/dev/null 2>&1; i=$((i+1))
done < "$RESULTS/images.txt"
t1=$(date +%s.%N); echo "$t0 $t1" > "$RESULTS/tesseract.wall"

echo "== independent check: tesseract CLI on every fgw output"
for f in "$RESULTS"/full/*; do
  b=$(basename "$f"); tesseract "$f" "$RESULTS/ocr-out/${b%.*}" -l jpn+eng --psm 11 >/dev/null 2>&1
done

PRESIDIO=$VENVS/venv-presidio/bin/python
if [ ! -x "$PRESIDIO" ]; then
  (python3 -m venv "$VENVS/venv-presidio" && "$VENVS/venv-presidio/bin/pip" install -q presidio-image-redactor \
    && "$VENVS/venv-presidio/bin/python" -m spacy download en_core_web_lg) > "$RESULTS/presidio-install.log" 2>&1 \
    || { echo "presidio-image-redactor did not install (see presidio-install.log)"; rm -rf "$VENVS/venv-presidio"; }
fi
if [ -x "$PRESIDIO" ]; then
  echo "== presidio image redactor"
  t0=$(date +%s.%N)
  "$PRESIDIO" "$ROOT/../shared/bench/presidio_run.py" "$RESULTS/images.txt" "$RESULTS/presidio" "$VENVS" > "$RESULTS/presidio.log" 2>&1 || echo "presidio failed"
  t1=$(date +%s.%N); echo "$t0 $t1" > "$RESULTS/presidio.wall"
  mkdir -p "$RESULTS/ocr-presidio"
  i=0; while read -r f; do
    [ -f "$RESULTS/presidio/$i.png" ] && tesseract "$RESULTS/presidio/$i.png" "$RESULTS/ocr-presidio/$i" -l jpn+eng --psm 11 >/dev/null 2>&1
    i=$((i+1)); done < "$RESULTS/images.txt"
fi

echo "== summary"
"$PY" - "$CORPUS" "$RESULTS" "$N" <<'PYEOF'
import json, sys, unicodedata, os, re
corpus, res, n = sys.argv[1], sys.argv[2], int(sys.argv[3])
t = json.load(open(corpus + "/truth.json", encoding="utf-8"))
imgs = [i for e in t["exams"] for i in e["images"]][:n]
norm = lambda s: re.sub(r"\s+", "", unicodedata.normalize("NFKC", s)).upper()
def planted(img):
    out = []
    for k in ("overlay_name", "overlay_patient_id", "overlay_birth"):
        if img.get(k):
            out.append(norm(img[k]))
    return out
def count(folder, name_of):
    left = readable = 0
    for i, img in enumerate(imgs):
        p = os.path.join(folder, name_of(i) + ".txt")
        if not os.path.exists(p):
            continue
        text = norm(open(p, encoding="utf-8", errors="replace").read())
        for s in planted(img):
            if s in text:
                left += 1
    return left
total = sum(len(planted(i)) for i in imgs)
wall = lambda f: (lambda a, b: b - a)(*map(float, open(f).read().split()))
rss = lambda f: int(re.search(r"Maximum resident set size \(kbytes\): (\d+)", open(f).read()).group(1)) // 1024
fov, full = json.load(open(res + "/fov.json")), json.load(open(res + "/full.json"))
out_names = {os.path.splitext(f)[0] for f in os.listdir(res + "/full")}
print(f"images: {n}, planted identifiers in overlays: {total}")
print(f"tesseract CLI reads in the INPUTS: {count(res + '/ocr-in', str)} of {total} planted identifiers (exact match after NFKC)")
print(f"fgw fov-only: {fov['images_per_s']:.1f} images/s (2 threads), peak RSS {rss(res + '/fov.time')} MB")
print(f"fgw full stage: {full['images_per_s']:.2f} images/s (2 threads), {1/full['images_per_s']:.3f} s/image, peak RSS {rss(res + '/full.time')} MB, outcomes {full['outcomes']}")
print(f"fgw identifiers left (tesseract CLI on fgw outputs): {count(res + '/ocr-out', lambda i: str(i) if str(i) in out_names else '-')} of {total}")
print(f"tesseract CLI alone: {wall(res + '/tesseract.wall') / n:.3f} s/image (no redaction: every readable identifier stays)")
if os.path.exists(res + "/presidio.wall"):
    print(f"presidio: {wall(res + '/presidio.wall') / n:.3f} s/image, identifiers left {count(res + '/ocr-presidio', str)} of {total}")
else:
    print("presidio: not installed (see presidio-install.log)")
PYEOF
