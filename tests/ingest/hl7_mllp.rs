//! HL7 v2 ORU^R01 over MLLP, sent by a real client: `mllp_send` of the Python `hl7` package
//! (installed by scripts/ensure-deps.sh). The sample messages in tests/data/hl7 are about
//! fictitious people.

use encoding_rs::{ISO_2022_JP, SHIFT_JIS};
use fgw_ingest::hl7::{serve, PeerPolicy, ReportSink, SinkError};
use fgw_records::{Column, RawReport};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::task::JoinHandle;

#[derive(Clone, Default)]
struct Collect(Arc<Mutex<Vec<RawReport>>>);

impl ReportSink for Collect {
    fn accept(&self, report: RawReport) -> Result<(), SinkError> {
        self.0.lock().unwrap().push(report);
        Ok(())
    }
}

impl Collect {
    fn take(&self) -> Vec<RawReport> {
        std::mem::take(&mut *self.0.lock().unwrap())
    }
}

struct Failing;

impl ReportSink for Failing {
    fn accept(&self, _report: RawReport) -> Result<(), SinkError> {
        Err(SinkError::Unavailable("test sink is down"))
    }
}

struct Server {
    port: u16,
    stop: watch::Sender<bool>,
    task: JoinHandle<()>,
}

async fn start(policy: PeerPolicy, sink: impl ReportSink) -> Server {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let (stop, rx) = watch::channel(false);
    let task = tokio::spawn(serve(listener, policy, sink, rx));
    Server { port, stop, task }
}

impl Server {
    async fn shutdown(self) {
        self.stop.send(true).unwrap();
        tokio::time::timeout(Duration::from_secs(10), self.task)
            .await
            .expect("listener stops on shutdown")
            .unwrap();
    }
}

fn data(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/hl7").join(name)
}

/// Runs `mllp_send --loose` (the sample files use newlines between segments); returns its
/// stdout: each reply frame as received, then a newline.
async fn mllp_send(port: u16, file: &Path) -> (bool, Vec<u8>) {
    let run = tokio::process::Command::new("mllp_send")
        .args(["--loose", "--port", &port.to_string(), "--file"])
        .arg(file)
        .arg("127.0.0.1")
        .kill_on_drop(true)
        .output();
    let out = match tokio::time::timeout(Duration::from_secs(60), run).await {
        Err(_) => panic!("mllp_send did not finish within 60 s"),
        Ok(Err(e)) if e.kind() == std::io::ErrorKind::NotFound => panic!(
            "`mllp_send` is not on PATH. It comes with the Python hl7 package: \
             python3 -m pip install 'hl7==0.4.5' (scripts/ensure-deps.sh installs it)"
        ),
        Ok(Err(e)) => panic!("cannot run mllp_send: {e}"),
        Ok(Ok(out)) => out,
    };
    (out.status.success(), out.stdout)
}

/// Reply frames in `stdout` (bytes between start and end block).
fn replies(stdout: &[u8]) -> Vec<Vec<u8>> {
    stdout
        .split(|&b| b == 0x0b)
        .skip(1)
        .map(|f| f.split(|&b| b == 0x1c).next().unwrap().to_vec())
        .collect()
}

fn utf8(reply: &[u8]) -> String {
    String::from_utf8(reply.to_vec()).expect("reply is UTF-8")
}

/// The segment with this id, split into fields (field 0 = id).
fn segment(ack: &str, id: &str) -> Vec<String> {
    ack.split('\r')
        .find(|s| s.starts_with(&format!("{id}|")))
        .unwrap_or_else(|| panic!("no {id} segment in {ack:?}"))
        .split('|')
        .map(str::to_string)
        .collect()
}

fn one_reply(stdout: &[u8]) -> Vec<u8> {
    let r = replies(stdout);
    assert_eq!(r.len(), 1, "{}", String::from_utf8_lossy(stdout));
    r.into_iter().next().unwrap()
}

fn fields(r: &RawReport) -> Vec<(Column, &str)> {
    r.fields.iter().map(|(c, v)| (*c, v.as_str())).collect()
}

#[tokio::test(flavor = "multi_thread")]
async fn utf8_report_with_names_escapes_and_several_obx_is_stored_then_acked() {
    let sink = Collect::default();
    let server = start(PeerPolicy::AnyPeer, sink.clone()).await;
    let (ok, out) = mllp_send(server.port, &data("oru_utf8.hl7")).await;
    assert!(ok);
    let ack = utf8(&one_reply(&out));
    let msh = segment(&ack, "MSH");
    assert_eq!(&msh[1..6], ["^~\\&", "FGW", "HOSP01", "ENDO-RPT", "内視鏡センター"]);
    assert_eq!(msh[8], "ACK^R01^ACK");
    assert_eq!(msh[10], "P");
    assert_eq!(msh[11], "2.5");
    assert_eq!(msh[17], "UNICODE UTF-8");
    assert_eq!(segment(&ack, "MSA"), ["MSA", "AA", "MSG-U-0001"]);
    assert!(!ack.contains("ERR|"));

    let reports = sink.take();
    assert_eq!(reports.len(), 1);
    let r = &reports[0];
    assert_eq!(
        fields(r),
        [
            (Column::ExamId, "EX-2026-000123"),
            (Column::PatientId, "PT-000777"),
            (Column::PatientName, "検証 花子"),
            (Column::PatientKana, "ケンショウ ハナコ"),
            (Column::BirthDate, "1958/07/04"),
            (Column::Address, "東京都港区港南1-2-3ハイツ検証201"),
            (Column::Phone, "03-0000-0001"),
        ]
    );
    assert_eq!(r.observed.as_deref(), Some("20261125091500"));
    assert_eq!(r.status.as_deref(), Some("F"));
    assert_eq!(
        r.text,
        "食道：異常なし。\n胃体下部小弯に 5mm の発赤^びらん。\n生検 2 個|Group 1 疑い\n経過観察\n慢性胃炎"
    );
    assert!(r.source.starts_with("hl7 127.0.0.1 msg "), "{}", r.source);
    assert!(!r.source.contains("MSG-U-0001"));
    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn two_messages_on_one_connection_get_two_acks_in_order() {
    let sink = Collect::default();
    let server = start(PeerPolicy::AnyPeer, sink.clone()).await;
    let (ok, out) = mllp_send(server.port, &data("oru_utf8_two_messages.hl7")).await;
    assert!(ok);
    let acks: Vec<String> = replies(&out).iter().map(|r| utf8(r)).collect();
    assert_eq!(acks.len(), 2);
    assert_eq!(segment(&acks[0], "MSA"), ["MSA", "AA", "MSG-U-0002"]);
    assert_eq!(segment(&acks[1], "MSA"), ["MSA", "AA", "MSG-U-0003"]);
    let reports = sink.take();
    let ids: Vec<_> = reports.iter().map(|r| r.get(Column::ExamId).unwrap()).collect();
    assert_eq!(ids, ["EX-2026-000124", "EX-2026-000125"]);
    assert_ne!(reports[0].source, reports[1].source);
    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn iso_ir87_jis_message_is_decoded_and_answered_in_jis() {
    let sink = Collect::default();
    let server = start(PeerPolicy::AnyPeer, sink.clone()).await;
    let (ok, out) = mllp_send(server.port, &data("oru_iso_ir87.hl7")).await;
    assert!(ok);
    let reply = one_reply(&out);
    assert!(reply.contains(&0x1b), "the echoed facility name is JIS-encoded");
    let ack = ISO_2022_JP.decode_without_bom_handling_and_without_replacement(&reply).unwrap();
    let msh = segment(&ack, "MSH");
    assert_eq!(msh[5], "横浜内視鏡センター");
    assert_eq!((msh[17].as_str(), msh[19].as_str()), ("~ISO IR87", "ISO 2022-1994"));
    assert_eq!(segment(&ack, "MSA"), ["MSA", "AA", "MSG-J-0001"]);
    let r = &sink.take()[0];
    assert_eq!(
        fields(r),
        [
            (Column::ExamId, "EX-2026-000200"),
            (Column::PatientId, "PT-000888"),
            (Column::PatientName, "架空 一郎"),
            (Column::PatientKana, "カクウ イチロウ"),
            (Column::BirthDate, "1945/08/15"),
            (Column::Address, "神奈川県横浜市中区本町9-99"),
            (Column::Phone, "045-000-0000"),
        ]
    );
    assert_eq!(r.text, "前庭部に多発する隆起。");
    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn shift_jis_message_with_delimiter_trail_bytes_is_decoded_first() {
    let sink = Collect::default();
    let server = start(PeerPolicy::AnyPeer, sink.clone()).await;
    let (ok, out) = mllp_send(server.port, &data("oru_shift_jis.hl7")).await;
    assert!(ok);
    let reply = one_reply(&out);
    let ack = SHIFT_JIS.decode_without_bom_handling_and_without_replacement(&reply).unwrap();
    assert_eq!(segment(&ack, "MSH")[5], "表町内視鏡センター");
    assert_eq!(segment(&ack, "MSA"), ["MSA", "AA", "MSG-S-0001"]);
    let r = &sink.take()[0];
    assert_eq!(r.get(Column::PatientName), Some("表 宗介"));
    assert_eq!(r.get(Column::PatientKana), Some("オモテ ソウスケ"));
    assert_eq!(r.get(Column::ExamId), Some("EX-2026-000300"));
    assert_eq!(r.text, "胃体部にポリープ、表面平滑。");
    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn adt_a01_is_rejected_with_ar() {
    let sink = Collect::default();
    let server = start(PeerPolicy::AnyPeer, sink.clone()).await;
    let (_, out) = mllp_send(server.port, &data("adt_a01.hl7")).await;
    let ack = utf8(&one_reply(&out));
    assert_eq!(segment(&ack, "MSH")[8], "ACK^A01^ACK");
    let msa = segment(&ack, "MSA");
    assert_eq!(&msa[..3], ["MSA", "AR", "MSG-A-0001"]);
    assert_eq!(msa[3], "MSH-9: unsupported message type ADT\\S\\A01");
    assert_eq!(
        segment(&ack, "ERR")[2..5],
        ["MSH^1^9", "200^Unsupported message type^HL70357", "E"]
    );
    assert!(sink.take().is_empty());
    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn oru_without_exam_id_gets_ae_naming_the_field_only() {
    let sink = Collect::default();
    let server = start(PeerPolicy::AnyPeer, sink.clone()).await;
    let (_, out) = mllp_send(server.port, &data("oru_no_exam_id.hl7")).await;
    let ack = utf8(&one_reply(&out));
    let msa = segment(&ack, "MSA");
    assert_eq!(msa, ["MSA", "AE", "MSG-N-0001", "OBR-3: required field missing"]);
    assert_eq!(segment(&ack, "ERR")[2..4], ["OBR^1^3", "101^Required field missing^HL70357"]);
    for value in ["PT-000777", "検証", "花子", "異常なし"] {
        assert!(!ack.contains(value), "reply carries a value: {ack:?}");
    }
    assert!(sink.take().is_empty());
    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn unknown_charset_gets_ar() {
    let sink = Collect::default();
    let server = start(PeerPolicy::AnyPeer, sink.clone()).await;
    let (_, out) = mllp_send(server.port, &data("oru_unknown_charset.hl7")).await;
    let ack = utf8(&one_reply(&out));
    let msa = segment(&ack, "MSA");
    assert_eq!(msa, ["MSA", "AR", "MSG-X-0001", "MSH-18: unsupported character set"]);
    assert_eq!(segment(&ack, "ERR")[2], "MSH^1^18");
    assert!(sink.take().is_empty());
    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn failing_sink_gets_ae_so_the_sender_retries() {
    let server = start(PeerPolicy::AnyPeer, Failing).await;
    let (_, out) = mllp_send(server.port, &data("oru_utf8.hl7")).await;
    let ack = utf8(&one_reply(&out));
    let msa = segment(&ack, "MSA");
    assert_eq!(&msa[..3], ["MSA", "AE", "MSG-U-0001"]);
    assert_eq!(segment(&ack, "ERR")[3], "207^Application internal error^HL70357");
    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn peer_not_in_the_allowlist_is_refused() {
    let sink = Collect::default();
    let policy = PeerPolicy::Allowlist(vec!["192.0.2.10".parse().unwrap()]);
    let server = start(policy, sink.clone()).await;
    let (_, out) = mllp_send(server.port, &data("oru_utf8.hl7")).await;
    assert!(replies(&out).is_empty(), "{}", String::from_utf8_lossy(&out));
    assert!(sink.take().is_empty());
    server.shutdown().await;

    let sink = Collect::default();
    let policy = PeerPolicy::Allowlist(vec!["127.0.0.1".parse().unwrap()]);
    let server = start(policy, sink.clone()).await;
    let (ok, out) = mllp_send(server.port, &data("oru_utf8.hl7")).await;
    assert!(ok);
    assert_eq!(segment(&utf8(&one_reply(&out)), "MSA")[1], "AA");
    assert_eq!(sink.take().len(), 1);
    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn oversize_message_gets_ar_and_the_connection_goes_on() {
    let sink = Collect::default();
    let server = start(PeerPolicy::AnyPeer, sink.clone()).await;
    let small = std::fs::read_to_string(data("oru_utf8.hl7")).unwrap();
    let big_text = "あ".repeat(fgw_ingest::hl7::MAX_MESSAGE_BYTES / 3 + 10);
    let big = small
        .replace("MSG-U-0001", "MSG-BIG-1")
        .replace("||5|mm|", &format!("||{big_text}|mm|"))
        .replace("|NM|", "|TX|");
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("big_then_small.hl7");
    std::fs::write(&file, format!("{big}{small}")).unwrap();
    let (ok, out) = mllp_send(server.port, &file).await;
    assert!(ok);
    let acks: Vec<String> = replies(&out).iter().map(|r| utf8(r)).collect();
    assert_eq!(acks.len(), 2);
    let msa = segment(&acks[0], "MSA");
    assert_eq!(&msa[..3], ["MSA", "AR", "MSG-BIG-1"]);
    assert!(msa[3].starts_with("message too large"), "{}", msa[3]);
    assert_eq!(segment(&acks[1], "MSA"), ["MSA", "AA", "MSG-U-0001"]);
    assert_eq!(sink.take().len(), 1);
    server.shutdown().await;
}
