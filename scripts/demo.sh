#!/usr/bin/env bash
# End-to-end demo on loopback, on embedded defaults: a hub with a fresh society CA, a gateway
# whose keys are in a software TPM (swtpm) and which enrolls itself (imaging: `gateway
# identity init` and `hub device add`; first start: EST enrollment), and a synthetic
# department system. Prints what
# arrived at the hub and what stayed on the box (quarantine), without personal data.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/ensure-deps.sh

EXAMS=${DEMO_EXAMS:-20}
WORK=${DEMO_DIR:-$PWD/demo-run}
PORT=${DEMO_PORT:-$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')}
rm -rf "$WORK"; mkdir -p "$WORK"/{hub,gateway,export}

echo "== building"
cargo build -q --workspace --bins && cargo build -q -p fgw-synth --example synth_department
BIN=$PWD/target/debug
HUB="$BIN/hub"; GW="$BIN/gateway"

echo "== hub: society CA, manufacturing CA, server certificate, operator certificate"
cat > "$WORK/hub/hub.toml" <<TOML
listen = "127.0.0.1:$PORT"
data_dir = "data"
TOML
"$HUB" init --config "$WORK/hub/hub.toml"
# The release repository's root, as the society bakes it into every box image.
"$HUB" release root --config "$WORK/hub/hub.toml" --out "$WORK/gateway/tuf-root.json" >/dev/null
"$HUB" issue-device --config "$WORK/hub/hub.toml" --device operator --facility F0001 --role operator --out "$WORK/operator"
"$HUB" serve --config "$WORK/hub/hub.toml" 2> "$WORK/hub/hub.log" &
HUB_PID=$!
trap 'kill $HUB_PID 2>/dev/null || true' EXIT
for _ in $(seq 100); do (exec 3<>/dev/tcp/127.0.0.1/$PORT) 2>/dev/null && break; sleep 0.1; done

echo "== synthetic department system: $EXAMS exams (CP932 export, images with EXIF/COM and burned-in ID, name, birth date)"
"$BIN/examples/synth_department" "$WORK/export" --exams "$EXAMS" --overlay

echo "== imaging the box: identity key created in its TPM (swtpm), IDevID signed by the manufacturing CA"
TPM_PORT=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
mkdir -p "$WORK/tpm"
swtpm socket --tpm2 --server "type=tcp,bindaddr=127.0.0.1,port=$TPM_PORT" \
  --ctrl "type=tcp,bindaddr=127.0.0.1,port=$((TPM_PORT + 1))" --tpmstate "dir=$WORK/tpm" \
  --flags not-need-init,startup-clear 2> "$WORK/tpm/swtpm.log" &
TPM_PID=$!
trap 'kill $HUB_PID $TPM_PID 2>/dev/null || true' EXIT
for _ in $(seq 100); do (exec 3<>/dev/tcp/127.0.0.1/$TPM_PORT) 2>/dev/null && break; sleep 0.1; done

HL7_PORT=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
DICOM_PORT=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
cat > "$WORK/gateway/gateway.toml" <<TOML
facility_id = "F0001"
state_dir = "state"

[identity]
key_store = "tpm"
tpm_tcti = "swtpm:host=127.0.0.1,port=$TPM_PORT"
idevid_cert = "factory/idevid.crt"
ca_cert = "factory/ca.crt"

[hl7]
mode = "enabled"
listen = "127.0.0.1:$HL7_PORT"
allowed_peers = ["127.0.0.1/32"]

[dicom_scp]
mode = "enabled"
listen = "127.0.0.1:$DICOM_PORT"
ae_title = "FGW"
allowed_peers = ["127.0.0.1/32"]

[export]
watch_dir = "../export"
poll_interval_secs = 2

[uplink]
hub_url = "https://127.0.0.1:$PORT"

[fleet]
heartbeat_secs = 10

[update]
tuf_root = "tuf-root.json"
check_secs = 10
TOML
"$GW" config check "$WORK/gateway/gateway.toml"
INIT=$("$GW" --config "$WORK/gateway/gateway.toml" identity init --json)
SERIAL=$(printf '%s' "$INIT" | python3 -c 'import json,sys; print(json.load(sys.stdin)["serial"])')
CSR=$(printf '%s' "$INIT" | python3 -c 'import json,sys; print(json.load(sys.stdin)["csr"])')
"$HUB" device add --config "$WORK/hub/hub.toml" --serial "$SERIAL" --facility F0001 --csr "$CSR" --out "$WORK/gateway/factory" >/dev/null
echo "box serial $SERIAL registered to F0001 (no certificate or key copied onto the box)"

echo "== gateway: ingest, de-identify, upload; meanwhile an HL7 ORU^R01 report arrives over MLLP and two DICOM frames over C-STORE"
"$GW" --config "$WORK/gateway/gateway.toml" run 2> "$WORK/gateway/gateway.log" &
GW_PID=$!
trap 'kill $HUB_PID $GW_PID $TPM_PID 2>/dev/null || true' EXIT
for _ in $(seq 100); do (exec 3<>/dev/tcp/127.0.0.1/$HL7_PORT) 2>/dev/null && break; sleep 0.1; done
# A report for the first synthetic exam, written as the department's reporting system would.
python3 - "$WORK/export" "$WORK/oru.hl7" <<'PY'
import csv, io, sys, glob
path = glob.glob(sys.argv[1] + "/*/exams.csv")[0]
row = next(csv.DictReader(io.StringIO(open(path, encoding="cp932").read())))
fam, _, giv = row["患者氏名"].replace("\u3000", " ").partition(" ")
obr = [""] * 26
obr[0], obr[1], obr[3], obr[7], obr[25] = "OBR", "1", row["検査ID"], "20261125120000", "F"
msg = "\n".join([
    "MSH|^~\\&|ENDO|HOSP|FGW|JGES|20261125120000||ORU^R01|DEMO0001|P|2.5||||||UNICODE UTF-8",
    f"PID|1||{row['患者ID']}^^^HOSP^PI||{fam}^{giv}^^^^^L^I||{row['生年月日'].replace('/', '')}|F",
    "|".join(obr),
    f"OBX|1|TX|REPORT||{row['患者氏名']}様の病理結果: 胃体下部小弯 0-Ⅱc、tub1。連絡先 {row['電話番号']}。||||||F",
])
open(sys.argv[2], "w", encoding="utf-8").write(msg + "\n")
PY
mllp_send --loose --port "$HL7_PORT" --file "$WORK/oru.hl7" 127.0.0.1 | tr '\r' '\n' | grep MSA
# The processor sends two frames of the first exam as DICOM (JPEG Baseline, the burned-in
# overlay included; the department's exam id as Accession Number).
python3 - "$WORK/export" "$WORK/dicom-args" <<'PY'
import csv, io, sys, glob
path = glob.glob(sys.argv[1] + "/*/exams.csv")[0]
row = next(csv.DictReader(io.StringIO(open(path, encoding="cp932").read())))
jpgs = sorted(p for p in glob.glob(sys.argv[1] + "/**/*.jpg", recursive=True) if row["検査ID"] in p)[:2]
open(sys.argv[2], "w").write("\n".join([row["患者ID"], row["検査ID"], row["検査日"].replace("/", "")] + jpgs) + "\n")
PY
mapfile -t DARGS < "$WORK/dicom-args"
N_DICOM=0
for jpg in "${DARGS[@]:3}"; do
  N_DICOM=$((N_DICOM + 1))
  same=(); [ "$N_DICOM" -gt 1 ] && same=(--series-from "$WORK/frame1.dcm")  # one study, one series
  img2dcm -q -i JPEG "${same[@]}" -k "PatientID=${DARGS[0]}" -k "AccessionNumber=${DARGS[1]}" -k "StudyDate=${DARGS[2]}" \
    -k Modality=ES "$jpg" "$WORK/frame$N_DICOM.dcm"
done
[ "$N_DICOM" -gt 0 ] && storescu -xy -aet ENDO1 -aec FGW 127.0.0.1 "$DICOM_PORT" "$WORK"/frame*.dcm
# Done when every exam and the report are acknowledged and nothing is left in flight.
for _ in $(seq 900); do
  done_=$("$GW" --config "$WORK/gateway/gateway.toml" status --json | python3 -c '
import json,sys; c=json.load(sys.stdin)["counts"]
print(int(c["acked"] >= int(sys.argv[1]) and c["received"] + c["normalized"] + c["deidentified"] == 0))' $((EXAMS + 1)))
  [ "$done_" = 1 ] && break; sleep 0.2
done
echo "== a policy update from the society: published over TUF, rolled out, applied by the running box"
"$GW" --config "$WORK/gateway/gateway.toml" policy export "$WORK/policy-2" >/dev/null
"$HUB" release publish --config "$WORK/hub/hub.toml" --kind policy --version 2 "$WORK/policy-2" \
  | python3 -c 'import json,sys; r=json.load(sys.stdin); print("published %s sha256 %s… (%d bytes)" % (r["target"], r["sha256"][:16], r["length"]))'
"$HUB" rollout create --config "$WORK/hub/hub.toml" --release 2 --waves 100 \
  | python3 -c 'import json,sys; r=json.load(sys.stdin); print("rollout %s: %s %s to %s%% of the fleet, %s" % (r["id"], r["kind"], r["version"], r["waves"][-1]["percent"], r["state"]))'
for _ in $(seq 120); do
  v=$("$HUB" fleet --config "$WORK/hub/hub.toml" --json | python3 -c 'import json,sys; r=json.load(sys.stdin); print(r[0]["policy_version"] if r else "")')
  [ "$v" = "jed-basic@2" ] && break; sleep 0.5
done
"$HUB" fleet --config "$WORK/hub/hub.toml" --json | python3 -c '
import json,sys
r = json.load(sys.stdin)[0]; u = r["heartbeat"]["updates"].get("policy", {})
print("heartbeat from %s at %s: policy %s (release %s %s)" % (r["device"], r["last_heartbeat"], r["policy_version"], u.get("version"), u.get("outcome")))'
[ "$v" = "jed-basic@2" ] || { echo "demo: the policy update did not reach the box" >&2; exit 1; }
"$GW" --config "$WORK/gateway/gateway.toml" update check
kill -TERM $GW_PID; wait $GW_PID || true
"$GW" --config "$WORK/gateway/gateway.toml" status
echo "== the box's identity (keys in the TPM; the operational certificate it enrolled for)"
"$GW" --config "$WORK/gateway/gateway.toml" identity show

echo "== what arrived at the hub (listing API, operator certificate over mTLS)"
curl -sS --fail --cacert "$WORK/operator/ca.crt" --cert "$WORK/operator/device.crt" --key "$WORK/operator/device.key" \
  "https://127.0.0.1:$PORT/v1/facilities/F0001/exams" > "$WORK/listing.json"
python3 - "$WORK/listing.json" "$WORK/hub/data" <<'PY'
import json, sys, glob, os
rows = json.load(open(sys.argv[1]))
print(f"{len(rows)} exams at the hub for facility F0001")
for r in rows[:5]:
    print(f"  {r['exam_pid']} rev {r['revision']} package {r['package_id'][:16]}… images sent {r['files']} withheld {r['images_withheld']} reports {r['reports']}")
if len(rows) > 5: print("  …")
print(f"{sum(r['reports'] for r in rows)} HL7 report(s) joined to their exam")
print(f"{sum(r.get('dicom_objects', 0) for r in rows)} DICOM object(s) joined to their exam by accession number")
PY
curl -sS --fail --cacert "$WORK/operator/ca.crt" --cert "$WORK/operator/device.crt" --key "$WORK/operator/device.key" \
  "https://127.0.0.1:$PORT/v1/facilities/F0001/dicom" > "$WORK/dicom.json"
python3 - "$WORK/dicom.json" <<'PY'
import json, sys
rows = json.load(open(sys.argv[1]))
print(f"{len(rows)} DICOM object(s) at the hub (remapped UIDs):")
for r in rows:
    print(f"  study {r['study_uid'][:24]}… instance {r['sop_instance_uid'][:24]}… exam {r['exam_pid']}")
PY
echo "== one de-identified manifest as the hub stores it"
"$GW" --config "$WORK/gateway/gateway.toml" deid "$WORK/export" "$WORK/deid-out" >/dev/null
python3 - "$WORK/deid-out" <<'PY'
import json, sys, glob
ms = [json.load(open(p)) for p in sorted(glob.glob(sys.argv[1] + "/packages/*.json"))]
# Prefer one whose free text shows the scrubber at work.
m = next((m for m in ms if "[" in (m["exam"]["findings_text"] or "")), ms[0])
print(json.dumps(m["exam"], ensure_ascii=False, indent=1)[:2500])
PY
echo "== the fleet as the society sees it (the box's last heartbeat: versions, queue, states; no personal data)"
"$HUB" fleet --config "$WORK/hub/hub.toml"
echo "== what stayed on the box (quarantine; reasons only)"
"$GW" --config "$WORK/gateway/gateway.toml" quarantine list | awk '$3 == "daemon" {print $2, $4}' | sort | uniq -c
echo "== done: work folder $WORK"
