//! Hub storage (issue 10, finding 12), against a real `hub serve` over mutual TLS with devices
//! of two facilities: the exact manifest bytes are stored, objects are namespaced per
//! facility, and a client-chosen revision cannot pin an exam.

use super::hub_support::{manifest, noise, Fx, F1, F2};
use fgw_format::ids::{FacilityId, Sha256Hex};
use fgw_format::package::protocol::{Ack, ExamListing, MissingObjects, ObjectAck, Stored};
use fgw_format::package::Manifest;
use fgw_outbound::uplink::{Uplink, UplinkConfig};
use reqwest::StatusCode;
use std::path::Path;

/// The manifest as stored by the hub, read through its metadata store (SQLite, or PostgreSQL
/// under `FGW_TEST_STORES`).
fn stored_manifest(fx: &Fx, facility: &str, id: &Sha256Hex) -> Vec<u8> {
    let facility = FacilityId::new(facility).unwrap();
    let meta = fx.meta();
    super::hub_support::off_runtime(|| meta.package_manifest(&facility, id).unwrap())
        .expect("the package is stored")
        .into_bytes()
}

/// A manifest whose bytes are not the canonical serialization (pretty-printed): the package id
/// is the hash of what was sent, so what is stored must be exactly that.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_hub_stores_the_exact_manifest_bytes_it_hashed() {
    let fx = Fx::start("");
    let c = fx.client("gw-1");
    let img = noise(3000, 1);
    assert_eq!(fx.put_object(&c, &img).await.status(), StatusCode::OK);
    let m = manifest(F1, "e-000000000000000000000001", 1, &[("images/001.jpg", &img)]);
    let sent = serde_json::to_vec_pretty(&m).unwrap();
    assert_ne!(sent, m.to_bytes(), "the test needs non-canonical bytes");
    let id = Manifest::id_of(&sent);
    let r = fx.put_manifest(&c, &sent).await;
    assert_eq!(r.status(), StatusCode::OK);
    assert_eq!(r.json::<Ack>().await.unwrap().package_id, id);

    let stored = stored_manifest(&fx, F1, &id);
    assert_eq!(Sha256Hex::of(&stored), id, "stored manifest does not hash to its package id");
    assert_eq!(stored, sent);
}

/// gw-1 (F0001) holds an object; gw-2 (F0002) cannot see it, cannot reference it in a manifest
/// without uploading it itself, and its own upload is new in its namespace.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn objects_are_namespaced_per_facility() {
    let fx = Fx::start("");
    let (c1, c2) = (fx.client("gw-1"), fx.client("gw-2"));
    let img = noise(3000, 2);
    let sha = Sha256Hex::of(&img);
    let url = fx.url(&format!("/v1/objects/{sha}"));
    let r = fx.put_object(&c1, &img).await;
    assert_eq!(r.json::<ObjectAck>().await.unwrap().stored, Stored::New);
    assert_eq!(fx.head_object(&c1, &sha).await, StatusCode::OK);

    // Another facility's device learns nothing from HEAD or GET.
    assert_eq!(fx.head_object(&c2, &sha).await, StatusCode::NOT_FOUND);
    assert_eq!(c2.get(&url).send().await.unwrap().status(), StatusCode::NOT_FOUND);
    // Nor does an operator (its certificate's facility holds no objects).
    assert_eq!(fx.head_object(&fx.client("ops-1"), &sha).await, StatusCode::NOT_FOUND);

    // A manifest of F0002 naming F0001's object is refused: the object is missing for F0002.
    let m2 = manifest(F2, "e-000000000000000000000002", 1, &[("images/001.jpg", &img)]);
    let r = fx.put_manifest(&c2, &m2.to_bytes()).await;
    assert_eq!(r.status(), StatusCode::CONFLICT);
    assert_eq!(r.json::<MissingObjects>().await.unwrap().missing, vec![sha.clone()]);
    assert!(listing(&fx, F2).await.is_empty());

    // Once F0002 uploads the bytes itself (proving it has them), the manifest is accepted.
    let r = fx.put_object(&c2, &img).await;
    assert_eq!(r.status(), StatusCode::OK);
    assert_eq!(r.json::<ObjectAck>().await.unwrap().stored, Stored::New);
    assert_eq!(fx.head_object(&c2, &sha).await, StatusCode::OK);
    assert_eq!(fx.put_manifest(&c2, &m2.to_bytes()).await.status(), StatusCode::OK);
    assert_eq!(listing(&fx, F2).await.len(), 1);

    // An object one facility never uploaded is missing for it even when a manifest of the
    // other facility references it.
    let other = noise(3000, 3);
    assert_eq!(fx.put_object(&c2, &other).await.status(), StatusCode::OK);
    let m1 = manifest(F1, "e-000000000000000000000001", 1, &[("images/001.jpg", &other)]);
    let r = fx.put_manifest(&c1, &m1.to_bytes()).await;
    assert_eq!(r.status(), StatusCode::CONFLICT);
    assert_eq!(fx.head_object(&c1, &Sha256Hex::of(&other)).await, StatusCode::NOT_FOUND);
}

/// A facility's exam listing, read with the operator's certificate.
async fn listing(fx: &Fx, facility: &str) -> Vec<ExamListing> {
    let url = fx.url(&format!("/v1/facilities/{facility}/exams"));
    let r = fx.client("ops-1").get(url).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    r.json().await.unwrap()
}

async fn current(fx: &Fx, exam: &str) -> ExamListing {
    let rows = listing(fx, F1).await;
    rows.into_iter().find(|r| r.exam_pid == exam).expect("exam listed")
}

/// A manifest with revision u32::MAX used to stay current for good (nothing can be higher).
/// The hub now ranks by a revision it derives, min(sent, highest so far + 1), so later exports
/// replace it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_huge_revision_cannot_pin_an_exam() {
    let fx = Fx::start("");
    let c = fx.client("gw-1");
    let put = |exam: &'static str, revision: u32| {
        let m = manifest(F1, exam, revision, &[]);
        let (fx, c) = (&fx, &c);
        async move {
            let r = fx.put_manifest(c, &m.to_bytes()).await;
            assert_eq!(r.status(), StatusCode::OK, "revision {revision}");
            Manifest::id_of(&m.to_bytes())
        }
    };
    // The huge revision arrives first.
    let a = "e-00000000000000000000000a";
    put(a, u32::MAX).await;
    let two = put(a, 2).await;
    let now = current(&fx, a).await;
    assert_eq!((now.revision, now.package_id), (2, two));

    // The huge revision arrives between honest ones: at most one honest revision ties with it.
    let b = "e-00000000000000000000000b";
    put(b, 1).await;
    put(b, u32::MAX).await;
    put(b, 2).await;
    let three = put(b, 3).await;
    let now = current(&fx, b).await;
    assert_eq!((now.revision, now.package_id), (3, three));

    // A gap (revision 3 superseded on the box, never sent) is accepted, and a late older
    // revision still does not replace a newer one.
    let c_exam = "e-00000000000000000000000c";
    put(c_exam, 1).await;
    put(c_exam, 2).await;
    let four = put(c_exam, 4).await;
    assert_eq!(current(&fx, c_exam).await.package_id, four);
    put(c_exam, 3).await;
    let now = current(&fx, c_exam).await;
    assert_eq!((now.revision, now.package_id), (4, four));
}

/// A real package through the gate (`deidentify_exam` → outbox → `Outbox::load`), the only
/// input the uplink takes, as the `revision`th export of its exam.
fn staged_export(outbox: &Path, revision: u32) -> fgw_outbound::outbox::StagedPackage {
    use fgw_deid::{deidentify_exam, DeidContext, DeidOutcome, Policy, Pseudonymizer};
    use fgw_records::{Column, RawExam, SourceRef};
    let mut fields = std::collections::BTreeMap::new();
    for (c, v) in [
        (Column::ExamId, "E2024-0077"),
        (Column::PatientId, "00123456"),
        (Column::Sex, "F"),
        (Column::ExamDate, "2024-05-10"),
        (Column::ExamType, "上部消化管内視鏡"),
    ] {
        fields.insert(c, v.to_string());
    }
    let raw = RawExam {
        source: SourceRef { batch: "b1".into(), file: "export.csv".into(), row: 1, line: 2 },
        fields,
        extra: Default::default(),
        images: vec![],
        missing_images: vec![],
        report: None,
    };
    let facility = FacilityId::new(F1).unwrap();
    let pseudonymizer =
        Pseudonymizer::new(ring::hmac::Key::new(ring::hmac::HMAC_SHA256, &[7u8; 32]));
    let policy = Policy::default();
    let ctx = DeidContext {
        facility: &facility,
        pseudonymizer: &pseudonymizer,
        policy: &policy,
        profile: "reference",
        revision,
        pixels: &fgw_deid::pixels::PixelStage::new(Default::default()),
    };
    let package = match deidentify_exam(&raw, &ctx) {
        DeidOutcome::Package { package, .. } => package,
        DeidOutcome::Quarantined { reason } => panic!("quarantined: {reason}"),
    };
    let key = ring::hmac::Key::new(ring::hmac::HMAC_SHA256, &[9u8; 32]);
    let ob = fgw_outbound::outbox::Outbox::open(outbox, key).unwrap();
    let id = ob.put(&package).unwrap();
    ob.load(&id).unwrap()
}

/// The gateway's uplink against the derived revision: exports whose revisions have gaps (3,
/// then 7: the ones between were superseded on the box and never sent) are accepted and each
/// becomes current.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_gateway_uplink_works_with_revision_gaps() {
    let fx = Fx::start("");
    let d = fx.pki("gw-1");
    let up = Uplink::new(&UplinkConfig {
        hub_url: fx.hub.url(),
        ca_cert: d.join("ca.crt"),
        client_cert: d.join("device.crt"),
        client_key: d.join("device.key"),
        ..UplinkConfig::default()
    })
    .unwrap();
    let outbox = fx.root.join("outbox");
    for revision in [3, 7] {
        let staged = staged_export(&outbox, revision);
        let exam = staged.manifest().exam_pid().to_string();
        let ack = up.upload(&staged).await.unwrap();
        assert_eq!(ack.stored, Stored::New);
        assert_eq!(ack.facility_id, FacilityId::new(F1).unwrap());
        let now = current(&fx, &exam).await;
        assert_eq!((now.revision, now.package_id), (revision, ack.package_id));
        // Sent again (a retry after a lost Ack): a duplicate, nothing changes.
        assert_eq!(up.upload(&staged).await.unwrap().stored, Stored::Duplicate);
    }
}
