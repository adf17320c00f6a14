//! The TPM key store against a real software TPM (swtpm, started by each test): keys are
//! created in the TPM, persist across connections and restarts, sign verifiably, are
//! certified through a CSR, and do not follow a copied disk into another TPM.

mod common;

use common::{files_with_private_keys, tpm};
use fgw_identity::swtpm::Swtpm;
use fgw_identity::{
    csr_pem, write_csr, DeviceSerial, FileKey, IdentityKey, PersistentHandle, TpmError, TpmKey,
    TpmKeyStore,
};
use ring::signature::{UnparsedPublicKey, ECDSA_P256_SHA256_ASN1};
use std::sync::Arc;

fn sha256(message: &[u8]) -> [u8; 32] {
    ring::digest::digest(&ring::digest::SHA256, message).as_ref().try_into().unwrap()
}

#[test]
fn key_is_created_once_and_found_again_from_a_new_context_and_after_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let (swtpm, store) = tpm(dir.path(), "tpm-a");
    let handle = PersistentHandle::IDEVID;
    assert!(!store.exists(handle).unwrap(), "a fresh TPM holds no identity");
    assert!(matches!(TpmKey::open(store.clone(), handle), Err(TpmError::NotProvisioned { .. })));

    let created = store.ensure_key(handle).unwrap();
    assert!(store.exists(handle).unwrap());
    assert!(!store.exists(PersistentHandle::OPERATIONAL_TLS).unwrap(), "handles are separate");
    // Ensuring again finds the key rather than making another.
    assert_eq!(store.ensure_key(handle).unwrap(), created);
    let serial = DeviceSerial::of(&created);

    // A new context (the store owns the only connection swtpm serves: drop it first).
    drop(store);
    let store = Arc::new(TpmKeyStore::connect(&swtpm.tcti()).unwrap());
    assert!(store.exists(handle).unwrap());
    assert_eq!(store.public_key(handle).unwrap(), created);

    // swtpm killed (as at a power cut) and started again on the same state.
    drop(store);
    let state = swtpm.state_dir().to_path_buf();
    drop(swtpm);
    let swtpm = Swtpm::start(&state).unwrap();
    let store = Arc::new(TpmKeyStore::connect(&swtpm.tcti()).unwrap());
    let key = TpmKey::open(store, handle).unwrap();
    assert_eq!(key.public_key(), &created);
    assert_eq!(key.serial(), serial, "the serial is stable across restarts");
}

#[test]
fn tpm_signatures_verify_with_ring_against_the_exported_public_key() {
    let dir = tempfile::tempdir().unwrap();
    let (_swtpm, store) = tpm(dir.path(), "tpm");
    let handle = PersistentHandle::OPERATIONAL_TLS;
    let public = store.ensure_key(handle).unwrap();
    let ring_key = UnparsedPublicKey::new(&ECDSA_P256_SHA256_ASN1, public.uncompressed().to_vec());

    // Several signatures, so that r and s of every DER shape (high bit, short) come by.
    for i in 0..16u32 {
        let message = format!("handshake transcript {i}");
        let der = store.sign_sha256_digest(handle, &sha256(message.as_bytes())).unwrap();
        ring_key.verify(message.as_bytes(), &der).unwrap_or_else(|_| panic!("signature {i}"));
        assert!(ring_key.verify(b"another message", &der).is_err());
    }

    // Through the IdentityKey trait, which hashes the message itself.
    let key = TpmKey::open(store.clone(), handle).unwrap();
    let der = key.sign(b"a whole message").unwrap();
    ring_key.verify(b"a whole message", &der).unwrap();

    // The SPKI the store exports is the same key (what a certificate will carry).
    let from_spki = fgw_identity::P256PublicKey::from_spki_der(&public.spki_der()).unwrap();
    assert_eq!(from_spki, public);
}

#[test]
fn csr_for_the_tpm_key_names_the_serial_and_its_signature_verifies() {
    let dir = tempfile::tempdir().unwrap();
    let (_swtpm, store) = tpm(dir.path(), "tpm");
    let key: Arc<dyn IdentityKey> =
        Arc::new(TpmKey::ensure(store, PersistentHandle::IDEVID).unwrap());
    let serial = key.serial();
    assert!(serial.as_str().starts_with("fgw-"), "{serial}");
    let pem = csr_pem(key.clone(), &serial).unwrap();

    // from_pem parses the request and verifies its signature with the key inside it.
    let parsed = rcgen::CertificateSigningRequestParams::from_pem(&pem).unwrap();
    use rcgen::PublicKeyData;
    assert_eq!(parsed.public_key.der_bytes(), key.public_key().uncompressed());
    let cn = parsed.params.distinguished_name.get(&rcgen::DnType::CommonName).unwrap();
    assert_eq!(cn, &rcgen::DnValue::Utf8String(serial.to_string()));

    // A request with one byte of its signature changed is refused: the check above is real.
    let der = rustls_pki_types::pem::PemObject::from_pem_slice(pem.as_bytes())
        .map(|d: rustls_pki_types::CertificateSigningRequestDer<'static>| d.as_ref().to_vec())
        .unwrap();
    let mut tampered = der.clone();
    let last = tampered.len() - 5;
    tampered[last] ^= 0x01;
    assert!(rcgen::CertificateSigningRequestParams::from_der(&tampered.into()).is_err());
}

/// The copied-disk scenario: box B gets box A's files but has its own TPM. A's identity is
/// in A's TPM only, so B finds nothing at the handle and cannot sign as A.
#[test]
fn another_tpm_does_not_have_the_key() {
    let dir = tempfile::tempdir().unwrap();
    let (_swtpm_a, store_a) = tpm(dir.path(), "box-a-tpm");
    let key_a = TpmKey::ensure(store_a, PersistentHandle::IDEVID).unwrap();

    let (_swtpm_b, store_b) = tpm(dir.path(), "box-b-tpm");
    assert!(!store_b.exists(PersistentHandle::IDEVID).unwrap());
    let open = TpmKey::open(store_b.clone(), PersistentHandle::IDEVID);
    assert!(matches!(open, Err(TpmError::NotProvisioned { .. })), "{open:?}");
    let sign = store_b.sign_sha256_digest(PersistentHandle::IDEVID, &sha256(b"x"));
    assert!(matches!(sign, Err(TpmError::NotProvisioned { .. })), "{sign:?}");

    // Imaging box B makes B's own identity, not A's.
    let key_b = TpmKey::ensure(store_b, PersistentHandle::IDEVID).unwrap();
    assert_ne!(key_b.public_key(), key_a.public_key());
    assert_ne!(key_b.serial(), key_a.serial());
}

/// What this crate writes for a TPM identity (the CSR) and the TPM's own state hold no PEM
/// private key; the same scan finds the development file key, so it can fail.
#[test]
fn no_private_key_material_is_written_for_the_tpm_store() {
    let dir = tempfile::tempdir().unwrap();
    let box_files = dir.path().join("box");
    std::fs::create_dir(&box_files).unwrap();
    let (swtpm, store) = tpm(dir.path(), "tpm-state");
    for handle in [PersistentHandle::IDEVID, PersistentHandle::OPERATIONAL_TLS] {
        let key: Arc<dyn IdentityKey> = Arc::new(TpmKey::ensure(store.clone(), handle).unwrap());
        let pem = csr_pem(key.clone(), &key.serial()).unwrap();
        write_csr(&box_files.join(format!("{:x}.csr", handle.raw())), &pem).unwrap();
    }
    drop(store);
    drop(swtpm);
    let files = common::files_under(dir.path());
    assert!(files.iter().any(|p| p.extension().is_some_and(|e| e == "csr")), "{files:?}");
    assert!(files.iter().any(|p| p.starts_with(dir.path().join("tpm-state"))), "{files:?}");
    assert_eq!(files_with_private_keys(dir.path()), Vec::<std::path::PathBuf>::new());

    // Control: the insecure file store does write one, and the scan sees it.
    let dev = dir.path().join("dev");
    std::fs::create_dir(&dev).unwrap();
    FileKey::load_or_create(&dev.join("identity.key")).unwrap();
    assert_eq!(files_with_private_keys(dir.path()), vec![dev.join("identity.key")]);
}

#[test]
fn a_missing_tpm_is_a_connection_error_naming_the_tcti() {
    // A port nothing listens on: bind, note, release.
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let tcti = fgw_identity::Tcti::swtpm("127.0.0.1".parse().unwrap(), port);
    let e = TpmKeyStore::connect(&tcti).unwrap_err();
    assert!(matches!(e, TpmError::Connect { .. }), "{e:?}");
    assert!(e.to_string().contains(tcti.as_str()), "{e}");
}

/// The TCG's own tools (tpm2-tools) see what the store made: a persistent object at the
/// documented handle, generated in the TPM and bound to it, with the public key we export.
#[test]
fn tpm2_tools_find_the_key_at_the_documented_handle() {
    let dir = tempfile::tempdir().unwrap();
    let (swtpm, store) = tpm(dir.path(), "tpm");
    let public = store.ensure_key(PersistentHandle::IDEVID).unwrap();
    drop(store); // swtpm serves one client at a time

    let tool = |args: &[&str]| {
        let out = std::process::Command::new(args[0])
            .args(&args[1..])
            .env("TPM2TOOLS_TCTI", swtpm.tcti().as_str())
            .output()
            .unwrap_or_else(|e| panic!("{}: {e} (install the Debian package tpm2-tools)", args[0]));
        assert!(out.status.success(), "{args:?}: {}", String::from_utf8_lossy(&out.stderr));
        String::from_utf8(out.stdout).unwrap()
    };
    let handles = tool(&["tpm2_getcap", "handles-persistent"]);
    assert!(handles.contains("0x81020002"), "{handles}");
    assert!(!handles.contains("0x81020003"), "{handles}");

    let spki = dir.path().join("idevid.der");
    let described =
        tool(&["tpm2_readpublic", "-c", "0x81020002", "-f", "der", "-o", spki.to_str().unwrap()]);
    for flag in ["fixedtpm", "fixedparent", "sensitivedataorigin", "sign"] {
        assert!(described.contains(flag), "{flag} missing: {described}");
    }
    assert!(!described.contains("decrypt"), "{described}");
    assert_eq!(std::fs::read(&spki).unwrap(), public.spki_der());
}

/// An object at our handle that is not a key generated in this TPM and bound to it is refused,
/// never adopted as the box identity: here a storage key, and a duplicable signing key (one
/// that could have been exported), both put there with tpm2-tools.
#[test]
fn a_foreign_object_at_the_handle_is_refused_not_adopted() {
    let dir = tempfile::tempdir().unwrap();
    let swtpm = Swtpm::start(&dir.path().join("tpm")).unwrap();
    let d = dir.path();
    let ctx = |name: &str| d.join(name).to_str().unwrap().to_string();
    let tool = |args: &[&str]| {
        let out = std::process::Command::new(args[0])
            .args(&args[1..])
            .env("TPM2TOOLS_TCTI", swtpm.tcti().as_str())
            .output()
            .unwrap_or_else(|e| panic!("{}: {e} (install the Debian package tpm2-tools)", args[0]));
        assert!(out.status.success(), "{args:?}: {}", String::from_utf8_lossy(&out.stderr));
    };
    // swtpm has no resource manager: the tools leave transient objects; flush between steps.
    let flush = || tool(&["tpm2_flushcontext", "-t"]);
    tool(&["tpm2_createprimary", "-C", "o", "-G", "ecc", "-c", &ctx("srk.ctx")]);
    tool(&["tpm2_evictcontrol", "-C", "o", "-c", &ctx("srk.ctx"), "0x81020002"]);
    flush();
    tool(&["tpm2_createprimary", "-C", "o", "-G", "ecc", "-c", &ctx("parent.ctx")]);
    tool(&[
        "tpm2_create",
        "-C",
        &ctx("parent.ctx"),
        "-G",
        "ecc256:ecdsa-sha256",
        "-a",
        "sign|userwithauth|sensitivedataorigin",
        "-u",
        &ctx("dup.pub"),
        "-r",
        &ctx("dup.priv"),
    ]);
    flush();
    tool(&[
        "tpm2_load",
        "-C",
        &ctx("parent.ctx"),
        "-u",
        &ctx("dup.pub"),
        "-r",
        &ctx("dup.priv"),
        "-c",
        &ctx("dup.ctx"),
    ]);
    tool(&["tpm2_evictcontrol", "-C", "o", "-c", &ctx("dup.ctx"), "0x81020003"]);
    flush();

    let store = Arc::new(TpmKeyStore::connect(&swtpm.tcti()).unwrap());
    for (handle, why) in [
        (PersistentHandle::IDEVID, "not an unrestricted signing-only key"),
        (PersistentHandle::OPERATIONAL_TLS, "not generated in this TPM and bound to it"),
    ] {
        assert!(store.exists(handle).unwrap());
        for e in [
            store.ensure_key(handle).unwrap_err(),
            TpmKey::open(store.clone(), handle).unwrap_err(),
        ] {
            assert!(
                matches!(e, TpmError::WrongObject { handle: h, reason } if h == handle && reason == why),
                "{handle}: {e}"
            );
        }
    }
}

/// The store-agnostic view: roles map to the documented handles, and the kind is reported.
#[test]
fn key_store_by_role_uses_the_documented_handles() {
    let dir = tempfile::tempdir().unwrap();
    let (_swtpm, store) = tpm(dir.path(), "tpm");
    let keys = fgw_identity::KeyStore::Tpm(store.clone());
    assert_eq!(keys.kind(), fgw_identity::KeyStoreKind::Tpm);
    assert!(keys.open(fgw_identity::KeyRole::DeviceIdentity).is_err());
    let idevid = keys.ensure(fgw_identity::KeyRole::DeviceIdentity).unwrap();
    assert_eq!(idevid.store(), fgw_identity::KeyStoreKind::Tpm);
    assert_eq!(&store.public_key(PersistentHandle::IDEVID).unwrap(), idevid.public_key());
    assert!(!store.exists(PersistentHandle::OPERATIONAL_TLS).unwrap());
    let tls = keys.ensure(fgw_identity::KeyRole::OperationalTls).unwrap();
    assert_eq!(&store.public_key(PersistentHandle::OPERATIONAL_TLS).unwrap(), tls.public_key());
}

/// Many threads signing through one store at once: every request is answered, each with a
/// valid signature (the one TPM context serializes them).
#[test]
fn concurrent_signers_share_one_tpm_context() {
    let dir = tempfile::tempdir().unwrap();
    let (_swtpm, store) = tpm(dir.path(), "tpm");
    let key = TpmKey::ensure(store, PersistentHandle::OPERATIONAL_TLS).unwrap();
    let threads: Vec<_> = (0..4)
        .map(|t| {
            let key = key.clone();
            std::thread::spawn(move || {
                for i in 0..10 {
                    let message = format!("thread {t} message {i}");
                    let sig = key.sign(message.as_bytes()).unwrap();
                    assert!(key.public_key().verify(message.as_bytes(), &sig), "{message}");
                }
            })
        })
        .collect();
    for t in threads {
        t.join().unwrap();
    }
}

#[test]
fn a_sealed_secret_unseals_after_a_restart_and_not_in_another_tpm() {
    let dir = tempfile::tempdir().unwrap();
    let (swtpm, store) = tpm(dir.path(), "tpm-a");
    let handle = PersistentHandle::ROOT_SECRET;
    assert_eq!(store.unseal_secret(handle).unwrap(), None, "a fresh TPM holds no secret");
    let secret = [0x5au8; 32];
    store.seal_secret(handle, &secret).unwrap();
    assert_eq!(store.unseal_secret(handle).unwrap().as_deref(), Some(&secret[..]));
    // Sealing again never replaces what is there.
    assert!(matches!(store.seal_secret(handle, &[1u8; 32]), Err(TpmError::Occupied { .. })));
    assert!(matches!(store.seal_secret(handle, &[]), Err(TpmError::SecretLength { len: 0 })));

    // Across a kill and restart of the TPM, from a new connection.
    drop(store);
    let state = swtpm.state_dir().to_path_buf();
    drop(swtpm);
    let swtpm = Swtpm::start(&state).unwrap();
    let store = Arc::new(TpmKeyStore::connect(&swtpm.tcti()).unwrap());
    assert_eq!(store.unseal_secret(handle).unwrap().as_deref(), Some(&secret[..]));
    // Another TPM (another box) has nothing at the handle.
    let (_other, other_store) = tpm(dir.path(), "tpm-b");
    assert_eq!(other_store.unseal_secret(handle).unwrap(), None);
    // A signing key at the handle is not unsealed as a secret.
    other_store.ensure_key(handle).unwrap();
    assert!(matches!(other_store.unseal_secret(handle), Err(TpmError::WrongObject { .. })));
}
