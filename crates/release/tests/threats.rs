//! One test per threat TUF defends against (issue 13). Each fixture is a repository folder
//! named after its attack, made from a good repository by the attacker's means: files
//! replayed, mixed, edited, padded or served without end, or signatures dropped. The box's
//! verifier must refuse each with the class of that attack, and accept the good repository.

use bytes::Bytes;
use fgw_release::keys::{self, KeySet};
use fgw_release::transport::{
    async_trait, FilesystemTransport, Transport, TransportError, TransportStream,
};
use fgw_release::{
    Expiry, ReleaseKind, ReleaseVersion, Repository, Thresholds, Trusted, Verifier, VerifyError,
};
use std::path::{Path, PathBuf};
use std::time::Duration;
use url::Url;

/// A society's repository, and a box that trusts its first root.
struct Society {
    _tmp: tempfile::TempDir,
    base: PathBuf,
    keys: KeySet,
    repo: Repository,
    /// The root baked into the box's image.
    image_root: Vec<u8>,
}

fn v(s: &str) -> ReleaseVersion {
    ReleaseVersion::new(s).unwrap()
}

impl Society {
    async fn new(keys_of: impl FnOnce(&Path) -> KeySet, thresholds: Thresholds) -> Society {
        let tmp = tempfile::tempdir().unwrap();
        let base = tmp.path().to_path_buf();
        let keys = keys_of(&base.join("keys"));
        keys.generate_missing().unwrap();
        let repo = Repository::init(&base.join("repo"), &keys, thresholds, Expiry::default())
            .await
            .unwrap();
        let image_root = std::fs::read(repo.root_path()).unwrap();
        Society { _tmp: tmp, base, keys, repo, image_root }
    }

    async fn simple() -> Society {
        Society::new(KeySet::in_dir, Thresholds::default()).await
    }

    /// Publishes policy `version` with `body`.
    async fn publish(&self, version: &str, body: &str) {
        let src = self.base.join(format!("src-{version}"));
        std::fs::write(&src, body).unwrap();
        self.repo
            .publish(&self.keys, ReleaseKind::Policy, &v(version), &src, Expiry::default())
            .await
            .unwrap();
    }

    /// A copy of the repository as it is now, in a folder named after the attack.
    fn snapshot_as(&self, attack: &str) -> PathBuf {
        let dest = self.base.join("attacks").join(attack);
        copy_dir(self.repo.dir(), &dest);
        dest
    }

    /// A box (its own datastore) trusting the image's root.
    fn a_box(&self, name: &str) -> Verifier {
        Verifier::new(self.image_root.clone(), &self.base.join("boxes").join(name))
    }
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for e in std::fs::read_dir(from).unwrap() {
        let e = e.unwrap();
        let dest = to.join(e.file_name());
        if e.file_type().unwrap().is_dir() {
            copy_dir(&e.path(), &dest);
        } else {
            std::fs::copy(e.path(), dest).unwrap();
        }
    }
}

fn urls(repo: &Path) -> (Url, Url) {
    (
        Url::from_directory_path(repo.join("metadata")).unwrap(),
        Url::from_directory_path(repo.join("targets")).unwrap(),
    )
}

async fn load(verifier: &Verifier, repo: &Path) -> Result<Trusted, VerifyError> {
    let (m, t) = urls(repo);
    verifier.load(FilesystemTransport, m, t).await
}

async fn read_policy(trusted: &Trusted, version: &str) -> Result<Vec<u8>, VerifyError> {
    let target = trusted.release(ReleaseKind::Policy, &v(version)).expect("listed");
    trusted.read(&target).await
}

#[tokio::test]
async fn a_good_repository_verifies_and_its_targets_read_back() {
    let society = Society::simple().await;
    society.publish("1", "{\"policy\":1}").await;
    let trusted = load(&society.a_box("good"), society.repo.dir()).await.unwrap();
    let listed: Vec<String> = trusted.releases().into_iter().map(|t| t.name).collect();
    assert_eq!(listed, ["policy-1.json"]);
    assert_eq!(read_policy(&trusted, "1").await.unwrap(), b"{\"policy\":1}");
    // The download path verifies too, and leaves only the verified file.
    let dest = society.base.join("policy-1.json");
    let target = trusted.release(ReleaseKind::Policy, &v("1")).unwrap();
    trusted.fetch_to(&target, &dest).await.unwrap();
    assert_eq!(std::fs::read(&dest).unwrap(), b"{\"policy\":1}");
    assert!(!dest.with_extension("part").exists());
    // The same bytes published again change nothing; other bytes under that version are
    // refused.
    society.publish("1", "{\"policy\":1}").await;
    let src = society.base.join("other");
    std::fs::write(&src, "other").unwrap();
    let again = society
        .repo
        .publish(&society.keys, ReleaseKind::Policy, &v("1"), &src, Expiry::default())
        .await;
    assert!(matches!(again, Err(fgw_release::PublishError::Conflict { .. })), "{again:?}");
}

#[tokio::test]
async fn expired_timestamp() {
    let society = Society::simple().await;
    society.publish("1", "p1").await;
    // The online keys re-sign, but with a timestamp that expires at once: what a box
    // sees when the hub (or a mirror) serves a stale copy after its expiry.
    let expiry = Expiry { timestamp: Duration::ZERO, ..Expiry::default() };
    society.repo.refresh(&society.keys, expiry).await.unwrap();
    let attack = society.snapshot_as("expired-timestamp");
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let err = load(&society.a_box("b"), &attack).await.unwrap_err();
    assert!(matches!(&err, VerifyError::Expired { role } if role == "timestamp"), "{err:?}");
    assert_eq!(err.class(), "tuf_expired");
}

#[tokio::test]
async fn replayed_older_metadata() {
    let society = Society::simple().await;
    society.publish("1", "p1").await;
    let old = society.snapshot_as("replayed-older-metadata");
    society.publish("2", "p2").await;
    let the_box = society.a_box("b");
    // The box trusts the newest repository first …
    let trusted = load(&the_box, society.repo.dir()).await.unwrap();
    assert!(trusted.release(ReleaseKind::Policy, &v("2")).is_some());
    // … then an attacker on the path serves the older, validly signed copy, hiding release 2.
    let err = load(&the_box, &old).await.unwrap_err();
    assert!(matches!(err, VerifyError::Rollback { .. }), "{err:?}");
    assert_eq!(err.class(), "tuf_rollback");
    // A box that never saw the newer one cannot know: TUF's promise is "never older than
    // what you have seen", which is what the datastore keeps.
    assert!(load(&society.a_box("fresh"), &old).await.is_ok());
}

#[tokio::test]
async fn targets_from_another_snapshot() {
    let society = Society::simple().await;
    society.publish("1", "p1").await;
    let state1 = society.snapshot_as("state-1");
    society.publish("2", "p2").await;
    // Mix and match: the timestamp and snapshot of state 2 with the targets of state 1,
    // which hide release 2 (each file validly signed on its own).
    let attack = society.snapshot_as("targets-from-another-snapshot");
    std::fs::copy(state1.join("metadata/targets.json"), attack.join("metadata/targets.json"))
        .unwrap();
    let err = load(&society.a_box("b"), &attack).await.unwrap_err();
    assert!(matches!(err, VerifyError::Mismatch { .. }), "{err:?}");
    assert_eq!(err.class(), "tuf_mismatch");
}

#[tokio::test]
async fn tampered_target_file() {
    let society = Society::simple().await;
    society.publish("1", "[deid]\nfree_text = \"drop\"\n").await;
    let attack = society.snapshot_as("tampered-target-file");
    // Same length, one byte changed: only the signed hash tells.
    std::fs::write(attack.join("targets/policy-1.json"), "[deid]\nfree_text = \"keep\"\n").unwrap();
    let trusted = load(&society.a_box("b"), &attack).await.unwrap();
    let err = read_policy(&trusted, "1").await.unwrap_err();
    assert!(matches!(err, VerifyError::Mismatch { .. }), "{err:?}");
    // The download path leaves nothing behind under the target's name.
    let dest = society.base.join("dl.json");
    let target = trusted.release(ReleaseKind::Policy, &v("1")).unwrap();
    assert!(trusted.fetch_to(&target, &dest).await.is_err());
    assert!(!dest.exists() && !dest.with_extension("part").exists());
}

#[tokio::test]
async fn tampered_targets_metadata() {
    let society = Society::simple().await;
    society.publish("1", "p1").await;
    let attack = society.snapshot_as("tampered-targets-metadata");
    // An attacker without the targets key lists a hash of their own file.
    let path = attack.join("metadata/targets.json");
    let text = std::fs::read_to_string(&path).unwrap();
    let sha = hex_of(b"p1");
    assert!(text.contains(&sha));
    std::fs::write(&path, text.replace(&sha, &hex_of(b"evil"))).unwrap();
    let err = load(&society.a_box("b"), &attack).await.unwrap_err();
    // The snapshot's hash of targets.json no longer matches.
    assert!(matches!(err, VerifyError::Mismatch { .. }), "{err:?}");
}

fn hex_of(bytes: &[u8]) -> String {
    hex::encode(ring::digest::digest(&ring::digest::SHA256, bytes))
}

/// Serves the repository's files, except `endless`, which never ends.
#[derive(Debug, Clone)]
struct EndlessFile {
    endless: &'static str,
}

#[async_trait]
impl Transport for EndlessFile {
    async fn fetch(&self, url: Url) -> Result<TransportStream, TransportError> {
        if url.path().ends_with(self.endless) {
            let chunk = Bytes::from(vec![b' '; 64 * 1024]);
            let endless = futures::stream::repeat_with(move || Ok(chunk.clone()));
            return Ok(Box::pin(endless));
        }
        FilesystemTransport.fetch(url).await
    }
}

#[tokio::test]
async fn endless_timestamp() {
    let society = Society::simple().await;
    society.publish("1", "p1").await;
    let attack = society.snapshot_as("endless-timestamp");
    let (m, t) = urls(&attack);
    let err =
        society.a_box("b").load(EndlessFile { endless: "timestamp.json" }, m, t).await.unwrap_err();
    assert!(matches!(err, VerifyError::TooLarge { limit, .. } if limit == 64 << 10), "{err:?}");
    assert_eq!(err.class(), "tuf_too_large");
}

#[tokio::test]
async fn endless_target() {
    let society = Society::simple().await;
    society.publish("1", "p1").await;
    let attack = society.snapshot_as("endless-target");
    let (m, t) = urls(&attack);
    let trusted =
        society.a_box("b").load(EndlessFile { endless: "policy-1.json" }, m, t).await.unwrap();
    // Read no further than the signed length (2 bytes), then refuse.
    let err = read_policy(&trusted, "1").await.unwrap_err();
    assert!(matches!(err, VerifyError::TooLarge { limit: 2, .. }), "{err:?}");
}

#[tokio::test]
async fn target_longer_than_its_signed_length() {
    let society = Society::simple().await;
    society.publish("1", "p1").await;
    let attack = society.snapshot_as("target-longer-than-signed-length");
    std::fs::write(attack.join("targets/policy-1.json"), "p1 and then some more").unwrap();
    let trusted = load(&society.a_box("b"), &attack).await.unwrap();
    let err = read_policy(&trusted, "1").await.unwrap_err();
    assert!(matches!(err, VerifyError::TooLarge { .. }), "{err:?}");
}

#[tokio::test]
async fn targets_signed_below_threshold() {
    // The society's targets role needs 2 of its 2 keys.
    let society = Society::new(
        |dir| KeySet {
            targets: vec![dir.join("targets-a.pk8"), dir.join("targets-b.pk8")],
            ..KeySet::in_dir(dir)
        },
        Thresholds { targets: 2, ..Thresholds::default() },
    )
    .await;
    society.publish("1", "p1").await;
    assert!(load(&society.a_box("good"), society.repo.dir()).await.is_ok());
    // An attacker holding the online keys and one targets key: drop the other key's
    // signature from targets.json (as if it had never been given), then re-sign snapshot
    // and timestamp so that every hash matches.
    let attack = society.snapshot_as("targets-signed-below-threshold");
    let path = attack.join("metadata/targets.json");
    let mut doc: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&path).unwrap()).unwrap();
    let sigs = doc["signatures"].as_array_mut().unwrap();
    assert_eq!(sigs.len(), 2);
    sigs.pop();
    std::fs::write(&path, serde_json::to_vec_pretty(&doc).unwrap()).unwrap();
    Repository::open(&attack).refresh(&society.keys, Expiry::default()).await.unwrap();
    let err = load(&society.a_box("b"), &attack).await.unwrap_err();
    assert!(matches!(&err, VerifyError::Signature { role } if role == "targets"), "{err:?}");
    assert_eq!(err.class(), "tuf_signature");
}

#[tokio::test]
async fn metadata_signed_by_a_key_the_root_does_not_name() {
    let society = Society::simple().await;
    society.publish("1", "p1").await;
    // An attacker's own snapshot and timestamp keys.
    let attack = society.snapshot_as("signed-by-unknown-keys");
    let rogue = society.base.join("rogue");
    let keys = KeySet {
        snapshot: rogue.join("snapshot.pk8"),
        timestamp: rogue.join("timestamp.pk8"),
        ..society.keys.clone()
    };
    keys::generate(&keys.snapshot).unwrap();
    keys::generate(&keys.timestamp).unwrap();
    // tough refuses to sign a role with keys the root does not list: write the attack by
    // signing with the real online keys, then swapping in a signature of a rogue key id.
    Repository::open(&attack).refresh(&society.keys, Expiry::default()).await.unwrap();
    let path = attack.join("metadata/timestamp.json");
    let mut doc: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&path).unwrap()).unwrap();
    let rogue_id = keys::public_key(&keys.timestamp).unwrap().key_id().unwrap();
    doc["signatures"][0]["keyid"] = serde_json::Value::String(hex::encode(&*rogue_id));
    std::fs::write(&path, serde_json::to_vec_pretty(&doc).unwrap()).unwrap();
    let err = load(&society.a_box("b"), &attack).await.unwrap_err();
    assert!(matches!(&err, VerifyError::Signature { role } if role == "timestamp"), "{err:?}");
}
