//! The DICOM receiver as a peer reaches it: bytes on a TCP connection to the C-STORE SCP
//! (`fgw_ingest::dicom_scp::DicomScp`, the daemon's listener code), through dicom-ul's PDU
//! reader, the association policy, the P-DATA state machine, the command set parser and the
//! data set checks. The SCP runs once, on a loopback port, in its own runtime; each input is
//! one connection. A panic anywhere in the SCP aborts (libFuzzer's panic hook), as does a
//! stack overflow; the connection must end (no hang) whatever the bytes.
//!
//! Input: one mode byte, then
//! - mode 0: the raw byte stream from the first byte (A-ASSOCIATE-RQ included);
//! - mode 1: a canned A-ASSOCIATE-RQ (Secondary Capture, explicit and implicit VR LE), then
//!   the raw bytes (P-DATA, release, abort PDUs ...);
//! - mode 2: the canned association, a canned C-STORE-RQ command, the bytes as the data set
//!   (explicit VR LE, in P-DATA fragments of at most 16 KiB), then A-RELEASE-RQ.
#![no_main]

use fgw_ingest::dicom_scp::{
    DicomScp, DicomScpConfig, DicomSink, ReceivedObject, ScpMode, SinkError,
};
use libfuzzer_sys::fuzz_target;
use std::io::{Read, Write};
use std::net::{Shutdown, TcpStream};
use std::sync::LazyLock;
use std::time::Duration;

struct Discard;

impl DicomSink for Discard {
    fn accept(&self, _object: ReceivedObject) -> Result<(), SinkError> {
        Ok(())
    }
}

/// The SCP's port; the runtime and the shutdown sender live as long as the process.
static SCP: LazyLock<u16> = LazyLock::new(|| {
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .expect("runtime");
        rt.block_on(async move {
            let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
            let cfg = DicomScpConfig {
                mode: ScpMode::Enabled,
                allowed_peers: vec!["127.0.0.1".parse().expect("address")],
                ..DicomScpConfig::default()
            };
            let scp = DicomScp::new(listener, cfg);
            tx.send(scp.local_addr().expect("port").port()).expect("send port");
            let (_stop, shutdown) = tokio::sync::watch::channel(false);
            scp.serve(Discard, shutdown).await;
        });
    });
    rx.recv().expect("scp started")
});

fn item(out: &mut Vec<u8>, ty: u8, body: &[u8]) {
    out.extend_from_slice(&[ty, 0]);
    out.extend_from_slice(&(body.len() as u16).to_be_bytes());
    out.extend_from_slice(body);
}

fn pdu(ty: u8, body: &[u8]) -> Vec<u8> {
    let mut out = vec![ty, 0];
    out.extend_from_slice(&(body.len() as u32).to_be_bytes());
    out.extend_from_slice(body);
    out
}

fn padded_ae(s: &str) -> [u8; 16] {
    let mut a = [b' '; 16];
    a[..s.len()].copy_from_slice(s.as_bytes());
    a
}

/// A-ASSOCIATE-RQ from ENDO1 to FGW: one presentation context (id 1), Secondary Capture,
/// explicit then implicit VR little endian; maximum PDU 64 KiB.
fn associate_rq() -> Vec<u8> {
    let mut b = vec![0, 1, 0, 0];
    b.extend_from_slice(&padded_ae("FGW"));
    b.extend_from_slice(&padded_ae("ENDO1"));
    b.extend_from_slice(&[0; 32]);
    item(&mut b, 0x10, b"1.2.840.10008.3.1.1.1");
    let mut pc = vec![1, 0, 0, 0];
    item(&mut pc, 0x30, b"1.2.840.10008.5.1.4.1.1.7");
    item(&mut pc, 0x40, b"1.2.840.10008.1.2.1");
    item(&mut pc, 0x40, b"1.2.840.10008.1.2");
    item(&mut b, 0x20, &pc);
    let mut user = Vec::new();
    item(&mut user, 0x51, &65_536u32.to_be_bytes());
    item(&mut user, 0x52, b"1.2.3.4");
    item(&mut b, 0x50, &user);
    pdu(0x01, &b)
}

/// One P-DATA-TF with a single PDV on presentation context 1.
fn p_data(command: bool, last: bool, data: &[u8]) -> Vec<u8> {
    let mut pdv = Vec::with_capacity(data.len() + 6);
    pdv.extend_from_slice(&((data.len() + 2) as u32).to_be_bytes());
    pdv.push(1);
    pdv.push(u8::from(command) | (u8::from(last) << 1));
    pdv.extend_from_slice(data);
    pdu(0x04, &pdv)
}

fn element(out: &mut Vec<u8>, e: u16, value: &[u8]) {
    out.extend_from_slice(&0u16.to_le_bytes());
    out.extend_from_slice(&e.to_le_bytes());
    out.extend_from_slice(&(value.len() as u32).to_le_bytes());
    out.extend_from_slice(value);
}

/// C-STORE-RQ command set (Implicit VR LE), a data set following.
fn store_rq() -> Vec<u8> {
    let mut body = Vec::new();
    element(&mut body, 0x0002, b"1.2.840.10008.5.1.4.1.1.7\0");
    element(&mut body, 0x0100, &1u16.to_le_bytes());
    element(&mut body, 0x0110, &1u16.to_le_bytes());
    element(&mut body, 0x0700, &0u16.to_le_bytes());
    element(&mut body, 0x0800, &0u16.to_le_bytes());
    element(&mut body, 0x1000, b"1.2.3.4.5\0");
    let mut out = Vec::new();
    element(&mut out, 0x0000, &(body.len() as u32).to_le_bytes());
    out.extend_from_slice(&body);
    out
}

fuzz_target!(|data: &[u8]| {
    let Some((mode, rest)) = data.split_first() else { return };
    let stream = match mode % 3 {
        0 => rest.to_vec(),
        1 => [associate_rq(), rest.to_vec()].concat(),
        _ => {
            let mut s = associate_rq();
            s.extend(p_data(true, true, &store_rq()));
            let chunks: Vec<&[u8]> = rest.chunks(16 * 1024).collect();
            for (i, c) in chunks.iter().enumerate() {
                s.extend(p_data(false, i + 1 == chunks.len(), c));
            }
            if chunks.is_empty() {
                s.extend(p_data(false, true, &[]));
            }
            s.extend(pdu(0x05, &[0, 0, 0, 0]));
            s
        }
    };
    let mut conn = TcpStream::connect(("127.0.0.1", *SCP)).expect("connect to the scp");
    conn.set_read_timeout(Some(Duration::from_secs(20))).expect("timeout");
    conn.set_write_timeout(Some(Duration::from_secs(20))).expect("timeout");
    // The SCP may close early (a refused association, a malformed PDU): write errors are fine.
    let _ = conn.write_all(&stream);
    let _ = conn.shutdown(Shutdown::Write);
    // Until the SCP closes the connection: it must, whatever it was sent.
    let mut sink = Vec::new();
    match conn.read_to_end(&mut sink) {
        Ok(_) => {}
        Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => {}
        Err(e) => panic!("the scp did not close the connection: {e}"),
    }
});
