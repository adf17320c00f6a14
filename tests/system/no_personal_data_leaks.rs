//! Planted marker identifiers in every column of the export, in image file names, in the
//! batch folder's name, in EXIF, COM and PNG text chunks, in the report file, in an HL7 report
//! sent over MLLP and in a DICOM object (header and burned-in text) sent by `storescu`. None
//! may reach the hub (its database or object store), the gateway's or the hub's logs,
//! `gateway status`, the gateway's state directory (state.sqlite included), the outbox or
//! `report.json` of `gateway deid`. The test first shows that each path carried something to
//! the hub (an exam with its image, a report, a DICOM object), so the scans are not vacuous.

use crate::common;
use common::*;
use fgw_synth::overlay::{draw_text, encode_jpeg, render, system_font, FontChoice, Fov, Rng};
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

const EXAM_ID: &str = "EZQ7730001";
const PATIENT_ID: &str = "00987123";
const NAME: &str = "鏑木 瑠璃子";
const KANA_HALF: &str = "ｶﾌﾞﾗｷﾞ ﾙﾘｺ";
const BIRTH: &str = "S27.03.14";
const REFERRING: &str = "轟 剛三郎";
const OPERATOR: &str = "東雲 葵";
const ADDRESS: &str = "京都府京都市左京区鞍馬本町999";
const PHONE: &str = "０７５‐９９９‐１２３４";
const ROMAJI: &str = "KABURAGI RURIKO";
const CATEGORICAL_MARKER: &str = "QXMARKCAT";
const EXTRA_MARKER: &str = "QXMARKEXTRA雲母";
const BATCH: &str = "20261126T0100_QXMARKBATCH鏑木";
const DICOM_NAME: &str = "KABURAGI^RURIKO";
const ACCESSION: &str = "QXMARKACC4242";

/// Every string that must never appear outside the box's encrypted spool.
fn markers() -> Vec<&'static str> {
    vec![
        EXAM_ID,
        "EZQ7730002",
        "EZQ7730003",
        PATIENT_ID,
        "987123",
        NAME,
        "鏑木瑠璃子",
        "鏑木",
        "瑠璃子",
        KANA_HALF,
        "カブラギ",
        "ルリコ",
        "かぶらぎ",
        "るりこ",
        BIRTH,
        "1952/03/14",
        "1952-03-14",
        "19520314",
        "昭和27年3月14日",
        REFERRING,
        "剛三郎",
        OPERATOR,
        "東雲",
        ADDRESS,
        "鞍馬本町",
        PHONE,
        "075-999-1234",
        "0759991234",
        ROMAJI,
        "KABURAGI",
        CATEGORICAL_MARKER,
        EXTRA_MARKER,
        "QXMARKEXTRA",
        "QXMARKTIME",
        "QXMARKBATCH",
        ACCESSION,
        "RURIKO",
        "QXMARKHL7",
        "QXMARKDCM",
    ]
}

fn csv_line(fields: &[&str]) -> String {
    let mut w = csv::WriterBuilder::new().terminator(csv::Terminator::CRLF).from_writer(vec![]);
    w.write_record(fields).unwrap();
    String::from_utf8(w.into_inner().unwrap()).unwrap()
}

fn jpeg_with_markers() -> Vec<u8> {
    let img =
        image::RgbImage::from_fn(64, 48, |x, y| image::Rgb([(x * 3) as u8, (y * 4) as u8, 90]));
    let mut jpg = vec![];
    image::codecs::jpeg::JpegEncoder::new_with_quality(&mut jpg, 90).encode_image(&img).unwrap();
    // APP1 "Exif" with the romaji name in plain ASCII, and a COM segment with the kanji name
    // (the parser in the gate works on segments, so the payload need not be valid TIFF).
    let mut exif = b"Exif\0\0".to_vec();
    exif.extend_from_slice(format!("Artist={ROMAJI};PatientID={PATIENT_ID}").as_bytes());
    let com = NAME.as_bytes().to_vec();
    let mut out = jpg[..2].to_vec();
    for (marker, payload) in [(0xE1u8, exif), (0xFE, com)] {
        out.extend_from_slice(&[0xFF, marker]);
        out.extend_from_slice(&((payload.len() + 2) as u16).to_be_bytes());
        out.extend_from_slice(&payload);
    }
    out.extend_from_slice(&jpg[2..]);
    out
}

fn png_with_marker() -> Vec<u8> {
    let img = image::RgbImage::from_fn(32, 32, |x, y| image::Rgb([x as u8 * 8, y as u8 * 8, 40]));
    let mut png = vec![];
    image::codecs::png::PngEncoder::new(&mut png)
        .write_image(&img, 32, 32, image::ExtendedColorType::Rgb8)
        .unwrap();
    use image::ImageEncoder;
    // tEXt chunk right after IHDR (8-byte signature + 25-byte IHDR chunk).
    let data = format!("Comment\0{NAME} {PATIENT_ID}").into_bytes();
    let mut chunk = (data.len() as u32).to_be_bytes().to_vec();
    let mut body = b"tEXt".to_vec();
    body.extend_from_slice(&data);
    chunk.extend_from_slice(&body);
    chunk.extend_from_slice(&crc32(&body).to_be_bytes());
    let mut out = png[..33].to_vec();
    out.extend_from_slice(&chunk);
    out.extend_from_slice(&png[33..]);
    out
}

fn crc32(b: &[u8]) -> u32 {
    let mut c = 0xFFFF_FFFFu32;
    for &x in b {
        c ^= x as u32;
        for _ in 0..8 {
            c = if c & 1 != 0 { 0xEDB8_8320 ^ (c >> 1) } else { c >> 1 };
        }
    }
    !c
}

/// Writes one batch in CP932 with three rows: markers in every identifier and free-text
/// column (row 1), markers in every categorical column (row 2), a marker in 検査日 (row 3).
fn write_export(root: &Path) {
    // The department system names its batch folders; nothing stops it putting a name in one.
    let batch = root.join(BATCH);
    std::fs::create_dir_all(&batch).unwrap();
    let header = [
        "検査ID",
        "患者ID",
        "患者氏名",
        "患者カナ",
        "生年月日",
        "性別",
        "検査日",
        "検査開始時刻",
        "検査種別",
        "依頼医",
        "施行医",
        "入外区分",
        "抗血栓薬",
        "HP感染",
        "鎮静",
        "ASA",
        "所見",
        "診断",
        "処置",
        "偶発症",
        "住所",
        "電話番号",
        "コメント",
        "担当看護師",
    ];
    let findings = "鏑木瑠璃子様（ID:987123）。かぶらぎ るりこ。\r\n連絡先075-999-1234、昭和27年3月14日生。\r\n胃体下部小弯に0-Ⅱc病変。轟先生より紹介、東雲 葵医師施行。";
    let row1 = [
        EXAM_ID,
        PATIENT_ID,
        NAME,
        KANA_HALF,
        BIRTH,
        "女",
        "2026/11/25",
        "09:15",
        "上部消化管",
        REFERRING,
        OPERATOR,
        "外来",
        "なし",
        "既感染",
        "ミダゾラム",
        "2",
        findings,
        "早期胃癌 0-Ⅱc; 鏑木瑠璃子",
        "ESD; 00987123",
        "なし",
        ADDRESS,
        PHONE,
        "住所: 京都府京都市左京区鞍馬本町999 カブラギ ルリコ",
        EXTRA_MARKER,
    ];
    let row2 = [
        "EZQ7730002",
        PATIENT_ID,
        NAME,
        KANA_HALF,
        "1952/03/14",
        CATEGORICAL_MARKER,
        "2026/11/25",
        "QXMARKTIME",
        CATEGORICAL_MARKER,
        REFERRING,
        OPERATOR,
        CATEGORICAL_MARKER,
        CATEGORICAL_MARKER,
        CATEGORICAL_MARKER,
        CATEGORICAL_MARKER,
        CATEGORICAL_MARKER,
        "観察のみ。",
        "",
        "",
        "",
        ADDRESS,
        PHONE,
        "",
        EXTRA_MARKER,
    ];
    let row3 = [
        "EZQ7730003",
        PATIENT_ID,
        NAME,
        KANA_HALF,
        BIRTH,
        "女",
        "QXMARKDATE",
        "10:00",
        "下部消化管",
        REFERRING,
        OPERATOR,
        "入院",
        "あり",
        "不明",
        "なし",
        "1",
        "鏑木瑠璃子",
        "",
        "",
        "",
        ADDRESS,
        PHONE,
        "",
        EXTRA_MARKER,
    ];
    let mut text = csv_line(&header);
    for r in [&row1[..], &row2[..], &row3[..]] {
        text.push_str(&csv_line(r));
    }
    let (cp932, _, bad) = encoding_rs::SHIFT_JIS.encode(&text);
    assert!(!bad, "test export must be CP932-encodable");
    std::fs::write(batch.join("exams.csv"), cp932).unwrap();
    // Images: folder = 検査ID, file names carry the patient's name.
    let img_dir = batch.join("images").join(EXAM_ID);
    std::fs::create_dir_all(&img_dir).unwrap();
    std::fs::write(img_dir.join("鏑木瑠璃子_1.jpg"), jpeg_with_markers()).unwrap();
    std::fs::write(img_dir.join("KABURAGI_2.png"), png_with_marker()).unwrap();
    let reports = batch.join("reports");
    std::fs::create_dir_all(&reports).unwrap();
    let report = format!("{NAME}様 {PATIENT_ID}\r\n電話 {PHONE}\r\n所見: 萎縮性胃炎 C-2。");
    std::fs::write(
        reports.join(format!("{EXAM_ID}.txt")),
        encoding_rs::SHIFT_JIS.encode(&report).0,
    )
    .unwrap();
    std::fs::write(batch.join("DONE"), b"").unwrap();
}

fn assert_clean(what: &str, path: &Path, bytes: &[u8]) {
    for m in markers() {
        for form in byte_forms(m) {
            assert!(
                !contains(bytes, &form),
                "{what} {} contains a planted identifier ({:?})",
                path.display(),
                m
            );
        }
        assert!(
            !path.to_string_lossy().contains(m),
            "{what} file name {} carries a planted identifier",
            path.display()
        );
    }
}

/// An ORU^R01 for the first exam, with the patient's identifiers in PID and in the text.
fn oru_with_markers() -> String {
    let mut obr = vec![""; 26];
    obr[0] = "OBR";
    obr[1] = "1";
    obr[3] = EXAM_ID;
    obr[4] = "EGD^上部消化管内視鏡";
    obr[7] = "20261125091500";
    obr[25] = "F";
    [
        "MSH|^~\\&|ENDO|HOSP|FGW|JGES|20261125120000||ORU^R01|QXMARKHL7MSG|P|2.5||||||UNICODE UTF-8"
            .to_string(),
        format!(
            "PID|1||{PATIENT_ID}^^^HOSP^PI||鏑木^瑠璃子^^^^^L^I||19520314|F|||{ADDRESS}||075-999-1234"
        ),
        obr.join("|"),
        format!(
            "OBX|1|TX|REPORT^所見||{NAME}様 ID {PATIENT_ID}。十二指腸球部に潰瘍瘢痕。連絡先 075-999-1234。||||||F"
        ),
    ]
    .join("\n")
        + "\n"
}

/// A frame with a field of view and the patient's name and id burned into the border, as a
/// DICOM object whose header carries the identifiers too.
fn dicom_with_markers(dir: &Path) -> std::path::PathBuf {
    let mut img = render(&mut Rng::new(11), 640, 480, Fov::Circle);
    let font = system_font(FontChoice::NotoSansCjkJp).unwrap();
    for (i, line) in [&format!("ID:{PATIENT_ID}"), "KABURAGI RURIKO"].iter().enumerate() {
        draw_text(&mut img, &font, 20.0, 8, 20 + 28 * i as i32, line, [235, 235, 235]);
    }
    let jpg = dir.join("frame.jpg");
    std::fs::write(&jpg, encode_jpeg(&img, 90).unwrap()).unwrap();
    let dcm = dir.join("frame.dcm");
    let made = Command::new("img2dcm")
        .args(["-i", "JPEG"])
        .args([
            "-k",
            &format!("PatientName={DICOM_NAME}"),
            "-k",
            &format!("PatientID={PATIENT_ID}"),
        ])
        .args(["-k", &format!("AccessionNumber={ACCESSION}"), "-k", "Modality=ES"])
        .args(["-k", "StudyDescription=EGD KABURAGI RURIKO", "-k", "PatientBirthDate=19520314"])
        // Patient Comments is cleaned (Clean Descriptors Option), Other Patient IDs removed.
        .args(["-k", "(0010,4000)=KABURAGI RURIKO TEL 075-999-1234"])
        .args(["-k", "(0010,1000)=QXMARKDCM", "-k", "(0010,1040)=QXMARKDCM KYOTO"])
        .arg(&jpg)
        .arg(&dcm)
        .output()
        .expect("img2dcm (apt package dcmtk) must be installed: scripts/ensure-deps.sh");
    assert!(made.status.success(), "{}", String::from_utf8_lossy(&made.stderr));
    dcm
}

fn wait_for_port(child: &mut std::process::Child, log: &Path, port: u16) {
    let deadline = Instant::now() + Duration::from_secs(60);
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(child.try_wait().unwrap().is_none(), "{}", std::fs::read_to_string(log).unwrap());
        assert!(Instant::now() < deadline, "listener on {port} never came up");
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn planted_identifiers_never_leave_the_box() {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path();
    let export = root.join("export");
    write_export(&export);

    let mut hub = Hub::init(&root.join("hub"));
    hub.issue("gw-test", FACILITY, "device", &root.join("gw-pki"));
    hub.issue("operator", FACILITY, "operator", &root.join("op-pki"));
    hub.start();
    let gw = Gateway::new(&root.join("gw"), &hub.url(), &root.join("gw-pki"), &export, "");
    let out = gw.run_until_idle(Duration::from_secs(120));
    assert!(out.status.success(), "gateway run failed: {}", String::from_utf8_lossy(&out.stderr));

    // The exam with markers in its identifier columns arrived (de-identified), the one with
    // markers in categorical columns too (values dropped and flagged), the one without a
    // usable exam date did not.
    let listing = hub.list(&root.join("op-pki"), FACILITY);
    assert_eq!(listing.len(), 2, "{listing:#?}");

    // Second run: the daemon with its HL7 and DICOM listeners.
    let acked_before = gw.status_json()["counts"]["acked"].as_u64().unwrap();
    let (hl7_port, dicom_port) = (free_port(), free_port());
    let mut cfg = std::fs::read_to_string(&gw.config).unwrap();
    cfg.push_str(&format!(
        "\n[hl7]\nmode = \"enabled\"\nlisten = \"127.0.0.1:{hl7_port}\"\nallowed_peers = [\"127.0.0.1\"]\n\n\
         [dicom_scp]\nmode = \"enabled\"\nlisten = \"127.0.0.1:{dicom_port}\"\nae_title = \"FGW\"\n\
         allowed_peers = [\"127.0.0.1\"]\n"
    ));
    std::fs::write(&gw.config, cfg).unwrap();
    let daemon_log = root.join("gw-daemon.log");
    let mut child = gw.spawn_run(&daemon_log);
    wait_for_port(&mut child, &daemon_log, hl7_port);
    wait_for_port(&mut child, &daemon_log, dicom_port);
    let oru = root.join("oru.hl7");
    std::fs::write(&oru, oru_with_markers()).unwrap();
    let sent = Command::new("mllp_send")
        .args(["--loose", "--port", &hl7_port.to_string(), "--file"])
        .arg(&oru)
        .arg("127.0.0.1")
        .output()
        .expect("mllp_send (pip install hl7) must be installed: scripts/ensure-deps.sh");
    let ack = String::from_utf8_lossy(&sent.stdout).into_owned();
    assert!(ack.contains("MSA|AA|"), "no AA: {ack} {}", String::from_utf8_lossy(&sent.stderr));
    let dcm = dicom_with_markers(root);
    let sent = Command::new("storescu")
        .args(["-xy", "-aet", "ENDO1", "-aec", "FGW", "127.0.0.1", &dicom_port.to_string()])
        .arg(&dcm)
        .output()
        .unwrap();
    assert!(sent.status.success(), "{}", String::from_utf8_lossy(&sent.stderr));
    // Both new items (the report and the object) are acknowledged by the hub.
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        let st = gw.status_json();
        if st["counts"]["acked"].as_u64() == Some(acked_before + 2) {
            break;
        }
        assert!(
            Instant::now() < deadline && child.try_wait().unwrap().is_none(),
            "the HL7 report or the DICOM object never reached the hub: {st} {}",
            std::fs::read_to_string(&daemon_log).unwrap()
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    let exams = hub.list(&root.join("op-pki"), FACILITY);
    assert_eq!(exams.len(), 2, "the report joins its exam: {exams:#?}");
    let dicom = hub.list_of(&root.join("op-pki"), FACILITY, "dicom");
    assert_eq!(dicom.len(), 1, "{dicom:#?}");
    child.kill().unwrap();
    child.wait().unwrap();
    let status = gw.cmd().args(["status"]).output().unwrap();
    let qlist = gw.cmd().args(["quarantine", "list"]).output().unwrap();
    hub.stop();

    // Offline mode over the same export.
    let deid_out = root.join("deid-out");
    let off = gw.cmd().arg("deid").arg(&export).arg(&deid_out).output().unwrap();
    assert!(off.status.success(), "{}", String::from_utf8_lossy(&off.stderr));
    let report: serde_json::Value =
        serde_json::from_slice(&std::fs::read(deid_out.join("report.json")).unwrap()).unwrap();
    assert_eq!(report["counts"]["exams_in"], 3);
    assert_eq!(report["counts"]["exams_out"], 2);
    assert_eq!(report["counts"]["images_in"], 2);

    // Something was actually stored and logged, so the checks below are not vacuous: the
    // hub's database, the export's image (JPEG) and the DICOM object (Part 10) in its store,
    // and a state database on the box.
    let hub_files = hub.stored();
    assert!(hub_files
        .iter()
        .any(|(p, _)| p.ends_with("hub.sqlite") || p.as_os_str() == "postgres:dump"));
    assert!(
        hub_files.iter().any(|(_, b)| b.starts_with(&[0xFF, 0xD8, 0xFF])),
        "no image of the export reached the hub"
    );
    assert!(
        hub_files.iter().any(|(_, b)| b.len() > 132 && &b[128..132] == b"DICM"),
        "no DICOM object reached the hub"
    );
    let state_files = all_files(&gw.state_dir());
    assert!(state_files.iter().any(|(p, _)| p.ends_with("state.sqlite")), "no state database");
    assert!(out.stderr.len() > 200, "gateway logged almost nothing");
    let manifests: Vec<_> = all_files(&deid_out.join("packages"));
    assert_eq!(manifests.len(), 2);
    let m: serde_json::Value = serde_json::from_slice(&manifests[0].1).unwrap();
    assert!(m["exam"]["exam_pid"].as_str().unwrap().starts_with("e-"));

    for (p, b) in &hub_files {
        assert_clean("hub store", p, b);
    }
    for (p, b) in all_files(&deid_out) {
        assert_clean("gateway deid output", &p, &b);
    }
    // The whole state directory: state.sqlite (and its WAL), the outbox, the encrypted spool
    // and quarantine, the keys.
    for (p, b) in &state_files {
        assert_clean("gateway state", p, b);
    }
    assert_clean("gateway log", Path::new("stderr"), &out.stderr);
    assert_clean("gateway daemon log", &daemon_log, &std::fs::read(&daemon_log).unwrap());
    assert_clean("gateway deid log", Path::new("stderr"), &[off.stdout, off.stderr].concat());
    assert_clean("gateway status", Path::new("stdout"), &[status.stdout, status.stderr].concat());
    assert_clean("quarantine list", Path::new("stdout"), &[qlist.stdout, qlist.stderr].concat());
    assert_clean("hub log", &hub.log, &std::fs::read(&hub.log).unwrap());

    // Clinical content survived the scrub.
    let all: String =
        manifests.iter().map(|(_, b)| String::from_utf8_lossy(b).to_string()).collect();
    assert!(all.contains("胃体下部小弯"), "clinical text lost");
    assert!(all.contains("早期胃癌"), "diagnosis lost");
    let hub_text: String =
        hub_files.iter().map(|(_, b)| String::from_utf8_lossy(b).to_string()).collect();
    assert!(hub_text.contains("十二指腸球部に潰瘍瘢痕"), "the HL7 report's clinical text lost");
}
