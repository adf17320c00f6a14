//! What every [`ObjectStore`] must do, as test bodies that take the store: run for the
//! embedded store (store/fs.rs) and for the S3 store against a Garage cluster (store/s3/tests.rs)
//! by [`object_store_conformance!`]. Each body gets an empty store of its own.

use super::{ObjectStore, Result, StoreError, WholeHash};
use fgw_format::ids::{Sha256Hex, UploadId};
use fgw_format::package::protocol::Stored;
use std::time::{Duration, SystemTime};

/// One `#[test]` per conformance body; `$make` is an expression giving
/// `Option<(guard, store)>` (`None`: skip), the guard living as long as the test.
macro_rules! object_store_conformance {
    ($make:expr) => {
        $crate::store::object_conformance::object_store_conformance!(@tests $make;
            put_verifies_and_is_idempotent,
            streamed_writes_hash_and_leave_nothing_when_dropped,
            listing_and_removal,
            duplicate_makes_the_object_young_again,
            parts_are_hash_checked_and_removed,
            assembly_checks_the_whole_hash,
        );
    };
    (@tests $make:expr; $($name:ident),* $(,)?) => {
        $(
            #[test]
            fn $name() {
                let Some((_guard, store)) = ($make) else { return };
                $crate::store::object_conformance::$name(&store);
            }
        )*
    };
}
pub(crate) use object_store_conformance;

fn objects(store: &dyn ObjectStore) -> Vec<(Sha256Hex, u64)> {
    let mut seen = Vec::new();
    store
        .for_each(&mut |e| {
            seen.push((e.sha256, e.size));
            Ok(())
        })
        .unwrap();
    seen.sort();
    seen
}

pub(crate) fn put_verifies_and_is_idempotent(store: &dyn ObjectStore) {
    let bytes = b"jpeg bytes";
    let sha = Sha256Hex::of(bytes);
    assert!(!store.has(&sha).unwrap());
    assert_eq!(store.size(&sha).unwrap(), None);
    assert_eq!(store.put(&sha, bytes).unwrap(), Stored::New);
    assert_eq!(store.put(&sha, bytes).unwrap(), Stored::Duplicate);
    assert_eq!(store.size(&sha).unwrap(), Some(bytes.len() as u64));
    assert_eq!(store.get(&sha).unwrap().unwrap(), bytes);
    let other = Sha256Hex::of(b"other");
    assert!(matches!(store.put(&other, bytes), Err(StoreError::HashMismatch { .. })));
    assert!(store.get(&other).unwrap().is_none());
    // The empty object is an object too.
    let empty = Sha256Hex::of(b"");
    assert_eq!(store.put(&empty, b"").unwrap(), Stored::New);
    assert_eq!(store.get(&empty).unwrap().unwrap(), b"");
    assert_eq!(objects(store), {
        let mut want = vec![(sha, 10), (empty, 0)];
        want.sort();
        want
    });
}

pub(crate) fn streamed_writes_hash_and_leave_nothing_when_dropped(store: &dyn ObjectStore) {
    let bytes: Vec<u8> = (0..100_000u32).map(|i| (i % 251) as u8).collect();
    let sha = Sha256Hex::of(&bytes);
    let mut w = store.writer(&sha).unwrap();
    for chunk in bytes.chunks(7000) {
        w.write(chunk).unwrap();
    }
    assert_eq!(w.written(), bytes.len() as u64);
    assert_eq!(w.finish().unwrap(), Stored::New);
    assert_eq!(store.get(&sha).unwrap().unwrap(), bytes);

    // An abandoned upload (cut body): no object.
    let other = Sha256Hex::of(b"never finished");
    let mut w = store.writer(&other).unwrap();
    w.write(b"never").unwrap();
    drop(w);
    assert!(!store.has(&other).unwrap());
    // Bytes that do not hash to the name: refused, nothing under the name.
    let mut w = store.writer(&other).unwrap();
    w.write(b"something else").unwrap();
    assert!(matches!(w.finish(), Err(StoreError::HashMismatch { .. })));
    assert!(!store.has(&other).unwrap());
    assert_eq!(objects(store), vec![(sha, bytes.len() as u64)]);
}

pub(crate) fn listing_and_removal(store: &dyn ObjectStore) {
    let (a, b) = (Sha256Hex::of(b"a"), Sha256Hex::of(b"bb"));
    let before = SystemTime::now() - Duration::from_secs(5);
    store.put(&a, b"a").unwrap();
    store.put(&b, b"bb").unwrap();
    let mut seen = vec![];
    store
        .for_each(&mut |e| {
            assert!(e.modified > before, "modified is when it was written");
            seen.push((e.sha256.clone(), e.size));
            // `f` may remove what it is given.
            store.remove(&e.sha256).map(|_| ())
        })
        .unwrap();
    seen.sort();
    let mut want = vec![(a.clone(), 1), (b.clone(), 2)];
    want.sort();
    assert_eq!(seen, want);
    assert!(!store.has(&a).unwrap() && !store.has(&b).unwrap());
    assert!(!store.remove(&a).unwrap());
    assert!(objects(store).is_empty());
    // Nothing was left behind by finished uploads.
    let later = SystemTime::now() + Duration::from_secs(5);
    assert_eq!(store.remove_stale_temp(later).unwrap(), 0);
}

pub(crate) fn duplicate_makes_the_object_young_again(store: &dyn ObjectStore) {
    let bytes = b"uploaded twice";
    let sha = Sha256Hex::of(bytes);
    store.put(&sha, bytes).unwrap();
    let modified = |store: &dyn ObjectStore| {
        let mut t = None;
        store
            .for_each(&mut |e| {
                t = Some(e.modified);
                Ok(())
            })
            .unwrap();
        t.unwrap()
    };
    let first = modified(store);
    // S3 keeps modification times to the second.
    std::thread::sleep(Duration::from_millis(1100));
    assert_eq!(store.put(&sha, bytes).unwrap(), Stored::Duplicate);
    assert!(modified(store) > first, "a re-upload resets the object's age");
}

/// Write chunk `index` of `upload` at `offset`, in small pieces.
pub(crate) fn write_part(
    store: &dyn ObjectStore,
    upload: &UploadId,
    index: u32,
    offset: u64,
    bytes: &[u8],
) -> Result<()> {
    let mut w = store.part_writer(upload, index, offset, &Sha256Hex::of(bytes))?;
    for piece in bytes.chunks(bytes.len().div_ceil(5).max(1)) {
        w.write(piece)?;
    }
    assert_eq!(w.written(), bytes.len() as u64);
    w.finish()
}

pub(crate) fn parts_are_hash_checked_and_removed(store: &dyn ObjectStore) {
    let up = UploadId::new("0123456789abcdef0123456789abcdef").unwrap();
    assert_eq!(store.part_size(&up, 0).unwrap(), None);
    write_part(store, &up, 1, 11, b"second part").unwrap();
    assert_eq!(store.part_size(&up, 1).unwrap(), Some(11));
    assert_eq!(store.part_size(&up, 0).unwrap(), None);
    write_part(store, &up, 0, 0, b"first chunk").unwrap();
    assert_eq!(store.part_size(&up, 0).unwrap(), Some(11));

    // Bytes that do not hash to the header: refused, and the chunk is not there.
    let mut w = store.part_writer(&up, 0, 0, &Sha256Hex::of(b"something else")).unwrap();
    w.write(b"tampered").unwrap();
    assert!(matches!(w.finish(), Err(StoreError::ChunkHashMismatch { index: 0, .. })));
    assert_eq!(store.part_size(&up, 0).unwrap(), None);
    // A chunk abandoned half-way (cut body) is not there either.
    let mut w = store.part_writer(&up, 2, 22, &Sha256Hex::of(b"x")).unwrap();
    w.write(b"hal").unwrap();
    drop(w);
    assert_eq!(store.part_size(&up, 2).unwrap(), None);

    let other = UploadId::new("ffeeddccbbaa99887766554433221100").unwrap();
    write_part(store, &other, 0, 0, b"another session").unwrap();
    let mut seen = Vec::new();
    store
        .for_each_parts(&mut |e| {
            assert!(e.modified > SystemTime::now() - Duration::from_secs(60));
            seen.push(e.upload.clone());
            store.remove_parts(&e.upload).map(|_| ())
        })
        .unwrap();
    seen.sort_by(|a, b| a.as_str().cmp(b.as_str()));
    assert_eq!(seen, vec![up.clone(), other.clone()]);
    assert_eq!(store.part_size(&up, 1).unwrap(), None);
    assert!(!store.remove_parts(&up).unwrap());
    store.for_each_parts(&mut |_| panic!("no parts left")).unwrap();
    // Objects are listed apart from parts.
    store.for_each(&mut |_| panic!("no objects")).unwrap();
}

pub(crate) fn assembly_checks_the_whole_hash(store: &dyn ObjectStore) {
    let up = UploadId::new("0123456789abcdef0123456789abcdef").unwrap();
    let object: Vec<u8> = (0..700_000u32).map(|i| (i % 253) as u8).collect();
    let sha = Sha256Hex::of(&object);
    let chunk = 300_000;
    let lengths: Vec<u64> = object.chunks(chunk).map(|c| c.len() as u64).collect();
    let write = |i: usize| {
        let bytes = object.chunks(chunk).nth(i).unwrap();
        write_part(store, &up, i as u32, (i * chunk) as u64, bytes).unwrap();
    };
    // Written out of order; one missing, then all.
    for i in [2, 0] {
        write(i);
    }
    assert!(matches!(
        store.assemble(&up, &sha, &lengths, WholeHash::Check),
        Err(StoreError::PartMissing { index: 1, .. })
    ));
    write(1);
    let other = Sha256Hex::of(b"other");
    assert!(matches!(
        store.assemble(&up, &other, &[300_000, 300_001, 100_000], WholeHash::Check),
        Err(StoreError::PartMissing { index: 1, .. })
    ));
    assert!(matches!(
        store.assemble(&up, &other, &[300_000, 300_000, 100_000, 1], WholeHash::Check),
        Err(StoreError::PartMissing { index: 3, .. })
    ));
    // Another object's name: the whole hash fails, nothing is stored under it.
    assert!(matches!(
        store.assemble(&up, &other, &lengths, WholeHash::Check),
        Err(StoreError::HashMismatch { .. })
    ));
    assert!(!store.has(&other).unwrap());

    assert_eq!(store.assemble(&up, &sha, &lengths, WholeHash::Check).unwrap(), Stored::New);
    assert_eq!(store.get(&sha).unwrap().unwrap(), object);
    // The commit again (its answer was lost before the session was closed): stored.
    assert_eq!(store.assemble(&up, &sha, &lengths, WholeHash::Check).unwrap(), Stored::Duplicate);

    // The caller's own check: `Checked` stores, `Mismatch` stores nothing.
    let up3 = UploadId::new("00112233445566778899aabbccddeeff").unwrap();
    let third = b"third object";
    write_part(store, &up3, 0, 0, third).unwrap();
    let sha3 = Sha256Hex::of(third);
    let one = [third.len() as u64];
    assert!(matches!(
        store.assemble(&up3, &sha3, &one, WholeHash::Mismatch),
        Err(StoreError::HashMismatch { .. })
    ));
    assert!(!store.has(&sha3).unwrap());
    assert_eq!(store.assemble(&up3, &sha3, &one, WholeHash::Checked).unwrap(), Stored::New);
    assert_eq!(store.get(&sha3).unwrap().unwrap(), third);
    // The parts stay until the caller removes them.
    assert_eq!(store.part_size(&up3, 0).unwrap(), Some(one[0]));
}
