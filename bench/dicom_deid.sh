#!/usr/bin/env bash
# DICOM header de-identification throughput and peak memory: fgw (crates/gateway/examples/dicom_deid_bench.rs)
# against dicognito and pydicom's deid (default recipe), in the same run on the same files
# (issue 3; results pasted into docs/benchmarks.md).
#
# usage: bench/dicom_deid.sh CORPUS_DIR [RESULTS_DIR=CORPUS_DIR/results]
#
# CORPUS_DIR/dicom/*.dcm and CORPUS_DIR/truth.json come from ../shared/bench/make_corpus.py;
# when CORPUS_DIR has no dicom/ folder it is generated (--dicom $NDICOM --exams 20
# --images-per-exam 1). Each tool runs $RUNS times under /usr/bin/time -v, the tools
# interleaved, every run reading CORPUS_DIR/dicom and writing a fresh output folder; the
# table has the median wall time and the largest max RSS. Afterwards each tool's output is
# checked for leftover planted PII (truth.json search strings, plus the building-name and room
# parts of the address on their own, in every header value that is not a UID or binary;
# private group 0009 included).
#
# Setup, done here when missing (one venv per tool, as ../shared/bench/measure_anchors.sh):
#   $VENVS/venv            pydicom pillow numpy   (corpus generation, the leftover check)
#   $VENVS/venv-dicognito  dicognito==$DICOGNITO_VERSION
#   $VENVS/venv-deid       deid==$DEID_VERSION
#   apt: time, fonts-noto-cjk (only to generate the corpus)
# Env: RUNS (3), NDICOM (200), VENVS (/tmp/fgw-bench-venvs), THREADS2 (1: also time fgw with
# --threads 2; 0 to skip), MAKE_CORPUS (../shared/bench/make_corpus.py next to the repo).
set -euo pipefail
[ $# -ge 1 ] || { echo "usage: $0 CORPUS_DIR [RESULTS_DIR]" >&2; exit 2; }
ROOT=$(cd "$(dirname "$0")/.." && pwd)
mkdir -p "$1"
CORPUS=$(realpath "$1")
RESULTS=${2:-$CORPUS/results}
mkdir -p "$RESULTS"
RESULTS=$(realpath "$RESULTS")
RUNS=${RUNS:-3}
NDICOM=${NDICOM:-200}
VENVS=${VENVS:-/tmp/fgw-bench-venvs}
THREADS2=${THREADS2:-1}
DICOGNITO_VERSION=${DICOGNITO_VERSION:-0.19.0}
DEID_VERSION=${DEID_VERSION:-0.4.13}
MAKE_CORPUS=${MAKE_CORPUS:-$ROOT/../shared/bench/make_corpus.py}
FONT=/usr/share/fonts/opentype/noto/NotoSansCJK-Regular.ttc
W=$RESULTS/work

apt_install() {
  if [ "$(id -u)" = 0 ]; then
    (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$@") >/dev/null
  else
    echo "missing Debian packages: $*; install them (apt-get install $*)" >&2
    exit 1
  fi
}
venv() {  # dir import-check pip-args...
  local dir=$1 check=$2; shift 2
  if ! "$dir/bin/python" -c "$check" 2>/dev/null; then
    echo "-- setting up $dir ($*)"
    python3 -m venv "$dir"
    "$dir/bin/pip" install -q "$@"
  fi
}

echo "== setup"
[ -x /usr/bin/time ] || apt_install time
venv "$VENVS/venv" "import pydicom, PIL, numpy" pydicom pillow numpy
venv "$VENVS/venv-dicognito" "import dicognito" "dicognito==$DICOGNITO_VERSION"
venv "$VENVS/venv-deid" "import deid" "deid==$DEID_VERSION"
PY=$VENVS/venv/bin/python

if [ ! -d "$CORPUS/dicom" ]; then
  echo "== generating the corpus in $CORPUS ($NDICOM DICOM files)"
  [ -f "$FONT" ] || apt_install fonts-noto-cjk
  "$PY" "$MAKE_CORPUS" "$CORPUS" --dicom "$NDICOM" --exams 20 --images-per-exam 1
fi
[ -f "$CORPUS/truth.json" ] || { echo "$CORPUS/truth.json missing" >&2; exit 1; }
NDCM=$(find "$CORPUS/dicom" -name '*.dcm' | wc -l)

echo "== building the example (release)"
(cd "$ROOT" && cargo build --release --quiet -p fgw-gateway --example dicom_deid_bench)
BIN=${CARGO_TARGET_DIR:-$ROOT/target}/release/examples/dicom_deid_bench

rm -rf "$W"; mkdir -p "$W/times" "$W/out"
cat > "$W/deid_run.py" <<'EOF'
import sys, glob, os
from deid.config import DeidRecipe
from deid.dicom import get_identifiers, replace_identifiers
files = sorted(glob.glob(os.path.join(sys.argv[1], "*.dcm")))
recipe = DeidRecipe()                     # deid's default "dicom" recipe
ids = get_identifiers(files)
replace_identifiers(files, deid=recipe, ids=ids, save=True, output_folder=sys.argv[2], overwrite=True)
EOF

timed() {  # name run cmd...
  local name=$1 run=$2; shift 2
  rm -rf "$W/out/$name"; mkdir -p "$W/out/$name"
  /usr/bin/time -v -o "$W/times/$name.$run.time" "$@" > "$W/times/$name.$run.log" 2>&1 ||
    echo "  $name run $run: exit $? (see $W/times/$name.$run.log)"
}

TOOLS="fgw dicognito deid"
[ "$THREADS2" = 1 ] && TOOLS="fgw fgw-2threads dicognito deid"
cat "$CORPUS"/dicom/*.dcm > /dev/null  # same page-cache state for every tool
echo "== DICOM header de-identification: $NDCM files, $RUNS runs of: $TOOLS"
for r in $(seq 1 "$RUNS"); do
  echo "-- run $r"
  timed fgw "$r" "$BIN" "$CORPUS/dicom" "$W/out/fgw"
  [ "$THREADS2" = 1 ] && timed fgw-2threads "$r" "$BIN" "$CORPUS/dicom" "$W/out/fgw-2threads" --threads 2
  timed dicognito "$r" "$VENVS/venv-dicognito/bin/python" -m dicognito -q -o "$W/out/dicognito" "$CORPUS/dicom"
  timed deid "$r" "$VENVS/venv-deid/bin/python" "$W/deid_run.py" "$CORPUS/dicom" "$W/out/deid"
done

echo "== summary"
cat > "$W/summary.py" <<'EOF'
"""Table of timings + leftover-PII check of each tool's last output. Deps: pydicom."""
import json, re, statistics, sys, unicodedata
from pathlib import Path
import pydicom

corpus, W, runs, out_md = Path(sys.argv[1]), Path(sys.argv[2]), int(sys.argv[3]), Path(sys.argv[4])
tools, versions = sys.argv[5].split(), json.loads(sys.argv[6])
truth = json.load(open(corpus / "truth.json", encoding="utf-8"))
ndcm = len(list((corpus / "dicom").glob("*.dcm")))


def parse_time(p: Path):
    s = p.read_text()
    m = re.search(r"Elapsed \(wall clock\) time \(h:mm:ss or m:ss\): (\S+)", s)
    wall = sum(float(x) * 60 ** i for i, x in enumerate(reversed(m.group(1).split(":"))))
    rss = int(re.search(r"Maximum resident set size \(kbytes\): (\d+)", s).group(1))
    rc = int(re.search(r"Exit status: (\d+)", s).group(1))
    return wall, rss, rc


def norm(s: str) -> str:
    return re.sub(r"[\s^=\u3000]", "", unicodedata.normalize("NFKC", s))


# every planted string of every file, with its kind (a file is checked against all of them:
# dicognito names its outputs by the new SOP Instance UID, so outputs cannot be matched back)
kind_of = {}
for d in truth["dicom"]:
    for k, v in d["pii"].items():
        if k in ("surname_kanji", "given_kanji"):
            continue  # too short to search blindly, as make_corpus.flat_search_strings
        for x in (v.values() if isinstance(v, dict) else [v]):
            kind_of.setdefault(norm(x), "birth_date" if isinstance(v, dict) else k)
    for s in d["search_strings"]:
        kind_of.setdefault(norm(s), "other")
    for part in d["pii"]["address"].split()[1:]:  # building name, room: partial-address residue
        if len(norm(part)) >= 4:
            kind_of.setdefault(norm(part), "address_part")
    kind_of[norm(d["phi_attributes"]["AccessionNumber"])] = "accession_number"
    kind_of[norm(d["phi_attributes"]["PatientName"])] = "name_dicom_pn"
kind_of.pop("", None)


def leftovers(path: Path):
    try:
        ds = pydicom.dcmread(path, stop_before_pixels=True)
    except Exception:  # noqa: BLE001
        return None
    hits = set()

    def cb(_ds, el):
        if el.VR in ("UI", "SQ", "OB", "OW", "UN") and el.tag.group != 0x0009:
            return
        try:
            v = el.value
            t = norm(v.decode("utf-8", "replace") if isinstance(v, bytes) else str(v))
        except Exception:  # noqa: BLE001
            return
        for s, kind in kind_of.items():
            if s in t:
                hits.add((el.keyword or str(el.tag), kind))

    ds.walk(cb)
    return hits


rows, detail = [], {}
for tool in tools:
    rs = [parse_time(W / "times" / f"{tool}.{r}.time") for r in range(1, runs + 1)]
    walls = [r[0] for r in rs]
    med = statistics.median(walls)
    files = sorted(f for f in (W / "out" / tool).rglob("*") if f.is_file())
    bad_files, unreadable, where = 0, 0, {}
    for f in files:
        h = leftovers(f)
        if h is None:
            unreadable += 1
            continue
        bad_files += bool(h)
        for el, kind in h:
            where[f"{el}: {kind}"] = where.get(f"{el}: {kind}", 0) + 1
    rows.append({"tool": tool, "version": versions.get(tool, ""), "walls": walls, "median": med,
                 "fps": ndcm / med, "rss_mb": max(r[1] for r in rs) / 1024,
                 "rcs": [r[2] for r in rs], "out": len(files), "unreadable": unreadable,
                 "leftover_files": bad_files})
    detail[tool] = dict(sorted(where.items()))

base = next((r["fps"] for r in rows if r["tool"] == "dicognito"), None)
md = [f"{ndcm} files, {runs} runs each; median wall time; peak RSS = largest max RSS of the runs.",
      "",
      "| tool | files | median s | files/s | peak RSS MB | vs dicognito | output files | files with leftover PII | exit codes |",
      "|---|---:|---:|---:|---:|---:|---:|---:|---|"]
for r in rows:
    ratio = f"{r['fps'] / base:.1f}×" if base else "-"
    name = r["tool"] + (f" {r['version']}" if r["version"] else "")
    unread = f" ({r['unreadable']} unreadable)" if r["unreadable"] else ""
    rcs = " ".join(map(str, r["rcs"]))
    md.append(f"| {name} | {ndcm} | {r['median']:.2f} | {r['fps']:.1f} | {r['rss_mb']:.1f} | {ratio} "
              f"| {r['out']} | {r['leftover_files']}{unread} | {rcs} |")
md += ["", "Wall seconds per run: " + "; ".join(
    f"{r['tool']} {', '.join(f'{w:.2f}' for w in r['walls'])}" for r in rows), ""]
md.append("Leftover planted PII (element: kind → files):")
for tool, where in detail.items():
    md.append(f"- {tool}: " + (", ".join(f"{k} → {v}" for k, v in where.items()) or "none"))
text = "\n".join(md) + "\n"
out_md.write_text(text, encoding="utf-8")
(W / "results.json").write_text(json.dumps({"rows": rows, "leftovers": detail}, ensure_ascii=False, indent=1))
print(text)
EOF
VERSIONS=$(printf '{"dicognito": "%s", "deid": "%s"}' \
  "$("$VENVS/venv-dicognito/bin/python" -c 'import importlib.metadata as m; print(m.version("dicognito"))')" \
  "$("$VENVS/venv-deid/bin/python" -c 'import importlib.metadata as m; print(m.version("deid"))')")
"$PY" "$W/summary.py" "$CORPUS" "$W" "$RUNS" "$RESULTS/dicom_deid.md" "$TOOLS" "$VERSIONS"
echo "fgw's own timing (excludes process start-up), last run:"
grep -h '^files ' "$W/times/fgw.$RUNS.log" "$W/times/fgw-2threads.$RUNS.log" 2>/dev/null || true
echo "written: $RESULTS/dicom_deid.md"
