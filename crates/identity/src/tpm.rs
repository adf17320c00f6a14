//! The TPM key store (`key_store = "tpm"`): P-256 signing keys created inside the box's TPM 2.0,
//! persisted at fixed handles, used by asking the TPM to sign a digest. The private keys
//! never exist outside the TPM, so copying the box's disk does not copy its identity.
//!
//! # Why tss-esapi
//! `tss-esapi` (Parsec project) wraps the TCG's own C stack, tpm2-tss (Debian's libtss2),
//! which is what tpm2-tools and the kernel-facing tooling in the field use: the same TCTI
//! strings, the same resource-manager device, the same command marshalling. Its own test
//! suite runs against swtpm, as ours does. A pure-Rust TPM stack would have to re-implement
//! marshalling and sessions that this one has had exercised for years. Bindings are
//! pre-generated for x86_64/aarch64 Linux, so the build needs libtss2-dev but no libclang.
//!
//! # Handles
//! Keys sit at persistent handles in the owner range (TCG "Registry of Reserved TPM 2.0
//! Handles": `0x8100_0000..=0x817F_FFFF` owner, `0x8180_0000..` platform). Within it,
//! `0x8100_xxxx` is where storage keys (SRKs) usually go and `0x8101_xxxx` holds endorsement
//! keys (the RSA and ECC EKs at `0x8101_0001`/`0x8101_0002` on many machines), so ours are in
//! `0x8102_xxxx`, the block the TCG device-identity guidance uses for device keys:
//! - [`PersistentHandle::IDEVID`] `0x8102_0002`: the device identity key (IDevID, IEEE
//!   802.1AR), created once at imaging; its certificate comes from the manufacturing CA.
//! - [`PersistentHandle::OPERATIONAL_TLS`] `0x8102_0003`: the operational TLS key, which the
//!   short-lived operational certificates certify.
//! - [`PersistentHandle::ROOT_SECRET`] `0x8102_0004`: a sealed data object holding the box's
//!   root secret (the facility keys derive from it), readable only through this TPM.
//!
//! The storage primary they are created under is not persisted: a primary is a function of
//! the owner seed and its template, so it is re-created when a key is created, and a
//! persisted key needs no parent to be used.
//!
//! # One context, one thread
//! A tpm2-tss ESYS context holds raw pointers and is not `Send`, and TPM commands must not
//! interleave. So a [`TpmKeyStore`] owns exactly one context on one dedicated thread
//! ("fgw-tpm"), and every operation is a job sent over a channel and answered on another:
//! the queue is the lock. Callers block while the TPM works (milliseconds on swtpm, tens of
//! milliseconds for a P-256 signature on a discrete TPM). Open one store per process and
//! share it: swtpm in socket mode serves one connection at a time, and a device without the
//! kernel's resource manager (`/dev/tpm0`) one client at a time.
//!
//! # Authorization
//! Owner-hierarchy authorization is assumed empty (a TPM as shipped; imaging sets nothing).
//! The keys themselves have empty authorization: the box's processes may sign with them;
//! what cannot happen is the key leaving the TPM.

mod objects;

use crate::key::{IdentityKey, KeyError};
use crate::kind::{KeyStoreKind, Tcti};
use crate::public_key::P256PublicKey;
use std::fmt;
use std::str::FromStr;
use std::sync::{mpsc, Arc};
use std::thread::{self, JoinHandle};
use tss_esapi::constants::tss::{TPM2_RH_NULL, TPM2_ST_HASHCHECK};
use tss_esapi::constants::CapabilityType;
use tss_esapi::handles::{KeyHandle, ObjectHandle, PersistentTpmHandle, TpmHandle};
use tss_esapi::interface_types::algorithm::HashingAlgorithm;
use tss_esapi::interface_types::dynamic_handles::Persistent;
use tss_esapi::interface_types::resource_handles::{Hierarchy, Provision};
use tss_esapi::interface_types::session_handles::AuthSession;
use tss_esapi::structures::{
    CapabilityData, Digest, HashScheme, HashcheckTicket, SensitiveData, SignatureScheme,
};
use tss_esapi::tss2_esys::TPMT_TK_HASHCHECK;
use tss_esapi::{Context, TctiNameConf};

/// First and last owner-hierarchy persistent handle (TCG handle registry).
const OWNER_PERSISTENT_FIRST: u32 = 0x8100_0000;
const OWNER_PERSISTENT_LAST: u32 = 0x817F_FFFF;

/// A persistent handle in the owner range, where this crate keeps a key.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct PersistentHandle(u32);

impl PersistentHandle {
    /// The device identity key (IDevID), created at imaging time.
    pub const IDEVID: PersistentHandle = PersistentHandle(0x8102_0002);
    /// The operational TLS key, certified by the short-lived operational certificates.
    pub const OPERATIONAL_TLS: PersistentHandle = PersistentHandle(0x8102_0003);
    /// The box's root secret, sealed (see [`TpmKeyStore::seal_secret`]).
    pub const ROOT_SECRET: PersistentHandle = PersistentHandle(0x8102_0004);

    /// A handle in the owner persistent range `0x8100_0000..=0x817F_FFFF`.
    pub fn new(raw: u32) -> Result<PersistentHandle, TpmError> {
        if (OWNER_PERSISTENT_FIRST..=OWNER_PERSISTENT_LAST).contains(&raw) {
            Ok(PersistentHandle(raw))
        } else {
            Err(TpmError::HandleRange { raw })
        }
    }

    /// The handle's number.
    pub fn raw(self) -> u32 {
        self.0
    }

    fn tpm_handle(self) -> Result<TpmHandle, TpmError> {
        PersistentTpmHandle::new(self.0).map(TpmHandle::Persistent).map_err(|source| {
            TpmError::Command { op: "persistent handle", handle: Some(self), source }
        })
    }
}

impl fmt::Display for PersistentHandle {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:#010x}", self.0)
    }
}

impl fmt::Debug for PersistentHandle {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "PersistentHandle({self})")
    }
}

/// What went wrong with the TPM; carries the TCTI or handle and the TSS response, never data.
#[derive(Debug, thiserror::Error)]
pub enum TpmError {
    /// The TCTI could not be loaded or the TPM could not be reached through it.
    #[error("tpm: cannot connect through {tcti}: {source}")]
    Connect {
        /// The TCTI string (configuration, not a secret).
        tcti: String,
        /// tpm2-tss's error.
        source: tss_esapi::Error,
    },
    /// A TPM command failed.
    #[error("tpm: {op}{} failed: {source}", handle.map(|h| format!(" at {h}")).unwrap_or_default())]
    Command {
        /// What was being done.
        op: &'static str,
        /// The persistent handle concerned, if any.
        handle: Option<PersistentHandle>,
        /// tpm2-tss's error (a TPM response code or a wrapper error).
        source: tss_esapi::Error,
    },
    /// No key at the handle: this TPM was never given this identity (a fresh TPM, or a copy
    /// of another box's disk in a box with a different TPM).
    #[error("tpm: no key at {handle}: this TPM holds no such identity")]
    NotProvisioned {
        /// The handle.
        handle: PersistentHandle,
    },
    /// Something other than one of our keys is at the handle.
    #[error("tpm: the object at {handle} is not usable as a box key: {reason}")]
    WrongObject {
        /// The handle.
        handle: PersistentHandle,
        /// What is wrong with it.
        reason: &'static str,
    },
    /// The TPM signed, but not with the key read when the key was opened: the object at the
    /// handle was replaced meanwhile.
    #[error("tpm: the key at {handle} changed since it was opened")]
    KeyChanged {
        /// The handle.
        handle: PersistentHandle,
    },
    /// A secret was to be sealed at a handle that already holds an object.
    #[error("tpm: {handle} already holds an object; it was left as it is")]
    Occupied {
        /// The handle.
        handle: PersistentHandle,
    },
    /// A secret to seal is empty or longer than a sealed object holds (128 bytes).
    #[error("tpm: a sealed secret must have 1 to 128 bytes, not {len}")]
    SecretLength {
        /// The length given.
        len: usize,
    },
    /// A handle outside the owner persistent range.
    #[error("tpm: {raw:#010x} is not an owner persistent handle (0x81000000-0x817fffff)")]
    HandleRange {
        /// The number given.
        raw: u32,
    },
    /// The TPM thread is gone (it panicked, or the store is shutting down).
    #[error("tpm: the TPM thread for {tcti} has stopped")]
    Worker {
        /// The TCTI string.
        tcti: String,
    },
}

/// A job for the TPM thread.
type Job = Box<dyn FnOnce(&mut Context) + Send>;

/// The box's TPM: one ESYS context on one thread (see the module documentation).
pub struct TpmKeyStore {
    tcti: Tcti,
    jobs: Option<mpsc::Sender<Job>>,
    worker: Option<JoinHandle<()>>,
}

impl fmt::Debug for TpmKeyStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TpmKeyStore").field("tcti", &self.tcti).finish_non_exhaustive()
    }
}

impl TpmKeyStore {
    /// Connect to the TPM behind `tcti` and start its thread. Fails if the TCTI library
    /// cannot be loaded or the TPM does not answer.
    pub fn connect(tcti: &Tcti) -> Result<TpmKeyStore, TpmError> {
        let connect_err = |source| TpmError::Connect { tcti: tcti.to_string(), source };
        let conf = TctiNameConf::from_str(tcti.as_str()).map_err(connect_err)?;
        let (jobs_tx, jobs_rx) = mpsc::channel::<Job>();
        let (ready_tx, ready_rx) = mpsc::sync_channel::<Result<(), tss_esapi::Error>>(1);
        let worker = thread::Builder::new()
            .name("fgw-tpm".into())
            .spawn(move || {
                let mut context = match Context::new(conf) {
                    Ok(c) => c,
                    Err(e) => {
                        let _ = ready_tx.send(Err(e));
                        return;
                    }
                };
                let _ = ready_tx.send(Ok(()));
                for job in jobs_rx {
                    job(&mut context);
                }
                // The context drops here, on its own thread: the connection closes.
            })
            .map_err(|_| TpmError::Worker { tcti: tcti.to_string() })?;
        match ready_rx.recv() {
            Ok(Ok(())) => {}
            Ok(Err(source)) => {
                let _ = worker.join();
                return Err(connect_err(source));
            }
            Err(_) => return Err(TpmError::Worker { tcti: tcti.to_string() }),
        }
        let store = TpmKeyStore { tcti: tcti.clone(), jobs: Some(jobs_tx), worker: Some(worker) };
        // One command now, so that "connected" means the TPM answers (a TCTI may connect
        // lazily).
        store.run(|ctx| {
            ctx.get_capability(CapabilityType::Handles, OWNER_PERSISTENT_FIRST, 1)
                .map(drop)
                .map_err(|source| TpmError::Command { op: "first command", handle: None, source })
        })?;
        Ok(store)
    }

    /// The TCTI this store talks through.
    pub fn tcti(&self) -> &Tcti {
        &self.tcti
    }

    /// Whether an object is persisted at `handle`.
    pub fn exists(&self, handle: PersistentHandle) -> Result<bool, TpmError> {
        self.run(move |ctx| persisted(ctx, handle))
    }

    /// The public key of the key at `handle`, creating and persisting the key first if the
    /// handle is empty. An object at the handle that is not one of our keys is an error, not
    /// replaced.
    pub fn ensure_key(&self, handle: PersistentHandle) -> Result<P256PublicKey, TpmError> {
        self.run(move |ctx| {
            if !persisted(ctx, handle)? {
                create_persistent_key(ctx, handle)?;
            }
            read_key(ctx, handle)
        })
    }

    /// The public key of the key at `handle`; [`TpmError::NotProvisioned`] if there is none.
    pub fn public_key(&self, handle: PersistentHandle) -> Result<P256PublicKey, TpmError> {
        self.run(move |ctx| {
            if !persisted(ctx, handle)? {
                return Err(TpmError::NotProvisioned { handle });
            }
            read_key(ctx, handle)
        })
    }

    /// ECDSA-sign a SHA-256 digest with the key at `handle`; the signature in ASN.1 DER.
    pub fn sign_sha256_digest(
        &self,
        handle: PersistentHandle,
        digest: &[u8; 32],
    ) -> Result<Vec<u8>, TpmError> {
        let digest = *digest;
        self.run(move |ctx| {
            if !persisted(ctx, handle)? {
                return Err(TpmError::NotProvisioned { handle });
            }
            with_persistent(ctx, handle, |ctx, key| {
                let cmd = |op| move |source| TpmError::Command { op, handle: Some(handle), source };
                let digest = Digest::try_from(digest.to_vec()).map_err(cmd("digest"))?;
                // A null ticket: the digest was not made by the TPM, which an unrestricted
                // key allows.
                let ticket = HashcheckTicket::try_from(TPMT_TK_HASHCHECK {
                    tag: TPM2_ST_HASHCHECK,
                    hierarchy: TPM2_RH_NULL,
                    digest: Default::default(),
                })
                .map_err(cmd("hashcheck ticket"))?;
                let scheme = SignatureScheme::EcDsa {
                    hash_scheme: HashScheme::new(HashingAlgorithm::Sha256),
                };
                let signature = ctx
                    .execute_with_session(Some(AuthSession::Password), |ctx| {
                        ctx.sign(KeyHandle::from(key), digest, scheme, ticket)
                    })
                    .map_err(cmd("sign"))?;
                objects::der_signature(handle, &signature)
            })
        })
    }

    /// Seal `secret` into a new sealed data object persisted at `handle`: from then on it is
    /// readable only through this TPM ([`TpmKeyStore::unseal_secret`]); copying the box's disk
    /// does not copy it. An occupied handle is [`TpmError::Occupied`] and left as it is.
    ///
    /// Sealed to the TPM, not to PCR values: a policy on the measured boot state would have to
    /// follow every signed A/B update (PolicyAuthorize with the update key), which belongs to
    /// the image work; docs/security.md says what this leaves open.
    pub fn seal_secret(&self, handle: PersistentHandle, secret: &[u8]) -> Result<(), TpmError> {
        if secret.is_empty() || secret.len() > 128 {
            return Err(TpmError::SecretLength { len: secret.len() });
        }
        let secret = secret.to_vec();
        self.run(move |ctx| {
            if persisted(ctx, handle)? {
                return Err(TpmError::Occupied { handle });
            }
            let sensitive = SensitiveData::try_from(secret).map_err(|source| {
                TpmError::Command { op: "sealed data", handle: Some(handle), source }
            })?;
            create_persistent(ctx, handle, objects::sealed_secret_template()?, Some(sensitive))
        })
    }

    /// The secret sealed at `handle`, or `None` if the handle is empty. An object there that
    /// is not a sealed data object is [`TpmError::WrongObject`].
    pub fn unseal_secret(&self, handle: PersistentHandle) -> Result<Option<Vec<u8>>, TpmError> {
        self.run(move |ctx| {
            if !persisted(ctx, handle)? {
                return Ok(None);
            }
            with_persistent(ctx, handle, |ctx, object| {
                let cmd = |op| move |source| TpmError::Command { op, handle: Some(handle), source };
                let (public, _, _) = ctx
                    .execute_without_session(|ctx| ctx.read_public(KeyHandle::from(object)))
                    .map_err(cmd("read sealed object"))?;
                objects::check_sealed_public(handle, &public)?;
                let data = ctx
                    .execute_with_session(Some(AuthSession::Password), |ctx| ctx.unseal(object))
                    .map_err(cmd("unseal"))?;
                Ok(Some(data.value().to_vec()))
            })
        })
    }

    /// Run `f` on the TPM thread and wait for its answer.
    fn run<T, F>(&self, f: F) -> Result<T, TpmError>
    where
        T: Send + 'static,
        F: FnOnce(&mut Context) -> Result<T, TpmError> + Send + 'static,
    {
        let gone = || TpmError::Worker { tcti: self.tcti.to_string() };
        let (reply_tx, reply_rx) = mpsc::sync_channel(1);
        let job: Job = Box::new(move |ctx| {
            let _ = reply_tx.send(f(ctx));
        });
        self.jobs.as_ref().ok_or_else(gone)?.send(job).map_err(|_| gone())?;
        reply_rx.recv().map_err(|_| gone())?
    }
}

impl Drop for TpmKeyStore {
    fn drop(&mut self) {
        // Closing the queue ends the thread's loop; joining means the TPM connection is
        // closed when drop returns (swtpm then accepts the next client).
        self.jobs.take();
        if let Some(worker) = self.worker.take() {
            let _ = worker.join();
        }
    }
}

/// Whether the TPM lists `handle` among its persistent objects.
fn persisted(ctx: &mut Context, handle: PersistentHandle) -> Result<bool, TpmError> {
    let wanted = handle.tpm_handle()?;
    let (data, _) = ctx
        .execute_without_session(|ctx| ctx.get_capability(CapabilityType::Handles, handle.raw(), 1))
        .map_err(|source| TpmError::Command {
            op: "list persistent handles",
            handle: Some(handle),
            source,
        })?;
    match data {
        // The TPM lists handles from `handle` upward: ours is there if it comes first.
        CapabilityData::Handles(list) => Ok(list.into_inner().first() == Some(&wanted)),
        _ => Err(TpmError::WrongObject {
            handle,
            reason: "TPM answered a handle query with other data",
        }),
    }
}

/// Run `f` with an ESYS object for the persistent `handle`, closed afterwards (the object
/// stays in the TPM; only the library's record of it is released).
fn with_persistent<T>(
    ctx: &mut Context,
    handle: PersistentHandle,
    f: impl FnOnce(&mut Context, ObjectHandle) -> Result<T, TpmError>,
) -> Result<T, TpmError> {
    let tpm_handle = handle.tpm_handle()?;
    let mut object =
        ctx.execute_without_session(|ctx| ctx.tr_from_tpm_public(tpm_handle)).map_err(
            |source| TpmError::Command { op: "open persistent key", handle: Some(handle), source },
        )?;
    let result = f(ctx, object);
    let closed = ctx.tr_close(&mut object).map_err(|source| TpmError::Command {
        op: "close persistent key",
        handle: Some(handle),
        source,
    });
    let value = result?;
    closed?;
    Ok(value)
}

/// The checked public key of the persistent object at `handle`.
fn read_key(ctx: &mut Context, handle: PersistentHandle) -> Result<P256PublicKey, TpmError> {
    with_persistent(ctx, handle, |ctx, object| {
        let (public, _, _) =
            ctx.execute_without_session(|ctx| ctx.read_public(KeyHandle::from(object))).map_err(
                |source| TpmError::Command { op: "read public key", handle: Some(handle), source },
            )?;
        objects::checked_signing_public(handle, &public)
    })
}

/// Create a signing key under the owner storage primary and persist it at `handle`.
fn create_persistent_key(ctx: &mut Context, handle: PersistentHandle) -> Result<(), TpmError> {
    create_persistent(ctx, handle, objects::signing_key_template()?, None)
}

/// Create an object from `template` (with `sensitive` data for a sealed object) under the
/// owner storage primary and persist it at `handle`. The transient primary and object are
/// flushed whatever happens: a TPM has only a few object slots.
fn create_persistent(
    ctx: &mut Context,
    handle: PersistentHandle,
    template: tss_esapi::structures::Public,
    sensitive: Option<SensitiveData>,
) -> Result<(), TpmError> {
    let cmd = |op| move |source| TpmError::Command { op, handle: Some(handle), source };
    let primary_template = objects::storage_primary_template()?;
    let primary = ctx
        .execute_with_session(Some(AuthSession::Password), |ctx| {
            ctx.create_primary(Hierarchy::Owner, primary_template, None, None, None, None)
        })
        .map_err(cmd("create storage primary"))?
        .key_handle;
    let created = ctx
        .execute_with_session(Some(AuthSession::Password), |ctx| {
            let object = ctx.create(primary, template, None, sensitive, None, None)?;
            ctx.load(primary, object.out_private, object.out_public)
        })
        .map_err(cmd("create object"));
    let flushed =
        ctx.flush_context(ObjectHandle::from(primary)).map_err(cmd("flush storage primary"));
    let object = created?;
    flushed?;
    let persisted = ctx
        .execute_with_session(Some(AuthSession::Password), |ctx| {
            ctx.evict_control(
                Provision::Owner,
                ObjectHandle::from(object),
                Persistent::Persistent(PersistentTpmHandle::new(handle.raw())?),
            )
        })
        .map_err(cmd("persist object"));
    let flushed = ctx.flush_context(ObjectHandle::from(object)).map_err(cmd("flush object"));
    let mut persistent_object = persisted?;
    flushed?;
    ctx.tr_close(&mut persistent_object).map_err(cmd("close persistent object"))
}

/// A key in the TPM, used through the store's thread. Cheap to clone.
#[derive(Clone, Debug)]
pub struct TpmKey {
    store: Arc<TpmKeyStore>,
    handle: PersistentHandle,
    public: P256PublicKey,
}

impl TpmKey {
    /// The key at `handle`, created first if the handle is empty (imaging, enrollment).
    pub fn ensure(store: Arc<TpmKeyStore>, handle: PersistentHandle) -> Result<TpmKey, TpmError> {
        let public = store.ensure_key(handle)?;
        Ok(TpmKey { store, handle, public })
    }

    /// The key at `handle`; [`TpmError::NotProvisioned`] if this TPM has none (the box was
    /// never imaged, or its disk was copied into another box).
    pub fn open(store: Arc<TpmKeyStore>, handle: PersistentHandle) -> Result<TpmKey, TpmError> {
        let public = store.public_key(handle)?;
        Ok(TpmKey { store, handle, public })
    }

    /// Where the key is persisted.
    pub fn handle(&self) -> PersistentHandle {
        self.handle
    }

    /// The store it lives in.
    pub fn store_handle(&self) -> &Arc<TpmKeyStore> {
        &self.store
    }
}

impl IdentityKey for TpmKey {
    fn store(&self) -> KeyStoreKind {
        KeyStoreKind::Tpm
    }

    fn public_key(&self) -> &P256PublicKey {
        &self.public
    }

    fn sign(&self, message: &[u8]) -> Result<Vec<u8>, KeyError> {
        let digest: [u8; 32] = ring::digest::digest(&ring::digest::SHA256, message)
            .as_ref()
            .try_into()
            .expect("SHA-256 is 32 bytes");
        let signature = self.store.sign_sha256_digest(self.handle, &digest)?;
        // Checked against the key this value was opened with: a key swapped at the handle
        // since must not sign as this identity.
        if !self.public.verify(message, &signature) {
            return Err(TpmError::KeyChanged { handle: self.handle }.into());
        }
        Ok(signature)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn handles_are_in_the_owner_range_and_print_as_hex() {
        assert_eq!(PersistentHandle::IDEVID.to_string(), "0x81020002");
        assert_eq!(PersistentHandle::OPERATIONAL_TLS.raw(), 0x8102_0003);
        assert!(PersistentHandle::new(0x8100_0000).is_ok());
        assert!(PersistentHandle::new(0x817F_FFFF).is_ok());
        // Platform range and non-persistent handles are refused.
        for raw in [0x8180_0000, 0x80FF_FFFF, 0x4000_0001, 0x0100_0000] {
            assert!(
                matches!(PersistentHandle::new(raw), Err(TpmError::HandleRange { .. })),
                "{raw:#x}"
            );
        }
    }
}
