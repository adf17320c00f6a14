//! A report sent over HL7 (real `mllp_send`) to a running gateway reaches the hub as its own
//! de-identified package, joined to its exam by the exam pseudonym; none of the identifiers in
//! the message's PID segment or text reaches the hub or the logs.

use crate::common;
use common::*;
use fgw_synth::{self as synth, SynthOptions};
use std::process::Command;
use std::time::{Duration, Instant};

#[test]
fn hl7_report_joins_its_exam_at_the_hub_without_identifiers() {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path();
    let export = root.join("export");
    let opts =
        SynthOptions { exams: 3, images_per_exam: 1, width: 64, height: 64, ..Default::default() };
    let truth = synth::generate(&export, &opts).unwrap();
    let exam = &truth.exams[0];

    let mut hub = Hub::init(&root.join("hub"));
    hub.issue("gw-test", FACILITY, "device", &root.join("gw-pki"));
    hub.issue("operator", FACILITY, "operator", &root.join("op-pki"));
    hub.start();
    let port = free_port();
    let hl7 = format!(
        "[hl7]\nmode = \"enabled\"\nlisten = \"127.0.0.1:{port}\"\nallowed_peers = [\"127.0.0.1/32\"]\n"
    );
    let gw = Gateway::new(&root.join("gw"), &hub.url(), &root.join("gw-pki"), &export, "");
    // The [hl7] table goes after the generated sections.
    let mut cfg = std::fs::read_to_string(&gw.config).unwrap();
    cfg.push_str(&hl7);
    std::fs::write(&gw.config, cfg).unwrap();

    let log = root.join("gw.log");
    let mut child = gw.spawn_run(&log);
    let deadline = Instant::now() + Duration::from_secs(60);
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(
            child.try_wait().unwrap().is_none(),
            "gateway exited: {}",
            std::fs::read_to_string(&log).unwrap()
        );
        assert!(Instant::now() < deadline, "hl7 listener never came up");
        std::thread::sleep(Duration::from_millis(50));
    }

    // ORU^R01 for the first synthetic exam, carrying its patient's identifiers.
    let (family, given) = exam.name_kanji.split_once(' ').unwrap_or((&exam.name_kanji, ""));
    let birth = exam.birth_date.replace('-', "");
    let mut obr = vec![""; 26];
    obr[0] = "OBR";
    obr[1] = "1";
    obr[3] = &exam.exam_id;
    obr[4] = "EGD^上部消化管内視鏡";
    obr[7] = "20261125091500";
    obr[25] = "F";
    let text = format!(
        "{}様 ID {}。胃体下部小弯に0-Ⅱc病変。\\.br\\連絡先 {}。",
        exam.name_kanji, exam.patient_id, exam.phone
    );
    let msg = [
        "MSH|^~\\&|ENDO|HOSP|FGW|JGES|20261125120000||ORU^R01|MSG0001|P|2.5||||||UNICODE UTF-8"
            .to_string(),
        format!(
            "PID|1||{}^^^HOSP^PI||{family}^{given}^^^^^L^I||{birth}|F|||{}||{}",
            exam.patient_id, exam.address, exam.phone
        ),
        obr.join("|"),
        format!("OBX|1|TX|REPORT^所見||{text}||||||F"),
    ]
    .join("\n");
    let file = root.join("oru.hl7");
    std::fs::write(&file, msg + "\n").unwrap();
    // --loose: segments separated by newlines in the file, as hand-written samples are.
    let out = Command::new("mllp_send")
        .args(["--loose", "--port", &port.to_string(), "--file"])
        .arg(&file)
        .arg("127.0.0.1")
        .output()
        .expect("mllp_send (pip install hl7) must be installed: scripts/ensure-deps.sh");
    let ack = String::from_utf8_lossy(&out.stdout).to_string();
    assert!(
        ack.contains("MSA|AA|MSG0001"),
        "no AA: {ack} {}",
        String::from_utf8_lossy(&out.stderr)
    );

    // Wait until the exams and the report are acknowledged by the hub.
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let st = gw.status_json();
        if st["counts"]["acked"] == 4 {
            break;
        }
        assert!(Instant::now() < deadline, "not all uploaded: {st}");
        std::thread::sleep(Duration::from_millis(100));
    }
    child.kill().unwrap();
    child.wait().unwrap();

    let listing = hub.list(&root.join("op-pki"), FACILITY);
    assert_eq!(listing.len(), 3, "the report is not an exam of its own");
    assert_eq!(listing.iter().filter(|r| r["reports"] == 1).count(), 1, "{listing:#?}");
    hub.stop();

    let mut planted: Vec<String> = vec![
        exam.name_kanji.clone(),
        exam.name_kanji.replace(' ', ""),
        exam.patient_id.clone(),
        exam.phone.clone(),
        exam.address.clone(),
        exam.exam_id.clone(),
        birth.clone(),
    ];
    planted.retain(|p| p.chars().count() >= 3);
    for (p, bytes) in hub.stored().into_iter().chain([(log.clone(), std::fs::read(&log).unwrap())])
    {
        for m in &planted {
            for form in byte_forms(m) {
                assert!(!contains(&bytes, &form), "{} carries a planted identifier", p.display());
            }
        }
    }
    // The clinical content arrived.
    let all: String =
        hub.stored().iter().map(|(_, b)| String::from_utf8_lossy(b).to_string()).collect();
    assert!(all.contains("0-Ⅱc") && all.contains("\"kind\":\"report\""));
}
