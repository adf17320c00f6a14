//! Operator login for the dashboard (`docs/dashboard.md#login`): accounts with an Argon2id
//! password hash, session tokens in an `HttpOnly; Secure; SameSite=Strict` cookie of which
//! the hub stores only the SHA-256, a lock on a username after repeated failures, and the
//! same-origin check of every POST.

use crate::store::SessionRecord;
use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use argon2::Argon2;
use axum::http::{header, HeaderMap};
use fgw_format::ids::Sha256Hex;
use ring::rand::{SecureRandom, SystemRandom};
use std::collections::HashMap;
use std::sync::{Mutex, OnceLock};
use std::time::{Duration, Instant};

/// The session cookie's name.
pub const COOKIE: &str = "fgw_session";
/// Attributes of the session cookie: never readable by scripts, only over TLS, never sent
/// with a request another site starts, only to the dashboard's paths.
const COOKIE_ATTRS: &str = "HttpOnly; Secure; SameSite=Strict; Path=/dashboard";
/// Failed logins in a row after which a username is locked.
pub const MAX_FAILURES: u32 = 5;
/// How long a locked username stays locked.
pub const LOCKOUT: Duration = Duration::from_secs(60);
/// Usernames tracked for failures at most (memory bound against floods of made-up names).
const MAX_TRACKED: usize = 10_000;
/// Passwords accepted: long enough for an operator account, short enough to bound work.
pub const MIN_PASSWORD_CHARS: usize = 12;
/// Longest password accepted (bytes).
pub const MAX_PASSWORD_BYTES: usize = 1024;

/// Why a login or account operation failed. Never carries a password.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AuthError {
    /// An operator name of the wrong shape (only its length is kept).
    #[error("operator name must be 1-64 of [A-Za-z0-9._-], starting with a letter or digit (got {len} characters)")]
    BadName {
        /// Length of the refused name.
        len: usize,
    },
    /// A password too short or too long.
    #[error("password must be {MIN_PASSWORD_CHARS} characters to {MAX_PASSWORD_BYTES} bytes")]
    PasswordLength,
    /// The system's random source failed.
    #[error("system random source failed")]
    Random,
    /// Argon2 refused to hash (parameters), or a stored hash is not a PHC string.
    #[error("password hash of operator {operator}: {reason}")]
    Hash {
        /// The operator.
        operator: String,
        /// What failed.
        reason: &'static str,
    },
}

/// An operator account's name: 1-64 of `[A-Za-z0-9._-]`, starting with a letter or digit,
/// so it can go into logs and pages as it is.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct OperatorName(String);

impl OperatorName {
    /// Checks the shape.
    pub fn new(s: impl Into<String>) -> Result<OperatorName, AuthError> {
        let s = s.into();
        let ok = (1..=64).contains(&s.len())
            && s.bytes().next().is_some_and(|b| b.is_ascii_alphanumeric())
            && s.bytes().all(|b| b.is_ascii_alphanumeric() || b"._-".contains(&b));
        if ok {
            Ok(OperatorName(s))
        } else {
            Err(AuthError::BadName { len: s.chars().count() })
        }
    }

    /// The name as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Display for OperatorName {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::fmt::Debug for OperatorName {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "OperatorName({})", self.0)
    }
}

impl std::str::FromStr for OperatorName {
    type Err = AuthError;
    fn from_str(s: &str) -> Result<OperatorName, AuthError> {
        OperatorName::new(s)
    }
}

/// Checks a new password's length (characters at least, bytes at most).
pub fn check_password(password: &str) -> Result<(), AuthError> {
    if password.chars().count() < MIN_PASSWORD_CHARS || password.len() > MAX_PASSWORD_BYTES {
        return Err(AuthError::PasswordLength);
    }
    Ok(())
}

/// The PHC string of `password` under Argon2id with the crate's defaults (19 MiB, 2 passes,
/// 1 lane: OWASP's recommendation) and a 128-bit salt from the system's random source.
pub fn hash_password(operator: &OperatorName, password: &str) -> Result<String, AuthError> {
    let mut salt = [0u8; 16];
    SystemRandom::new().fill(&mut salt).map_err(|_| AuthError::Random)?;
    let hash_err = |reason| AuthError::Hash { operator: operator.to_string(), reason };
    let salt = SaltString::encode_b64(&salt).map_err(|_| hash_err("salt"))?;
    Argon2::default()
        .hash_password(password.as_bytes(), &salt)
        .map(|h| h.to_string())
        .map_err(|_| hash_err("hashing failed"))
}

/// Whether `password` matches the PHC string `phc` (any Argon2 variant it names; the
/// comparison is constant-time). A malformed `phc` matches nothing.
pub fn verify_password(phc: &str, password: &str) -> bool {
    match PasswordHash::new(phc) {
        Ok(hash) => Argon2::default().verify_password(password.as_bytes(), &hash).is_ok(),
        Err(_) => false,
    }
}

/// A hash of a random password, checked against for unknown usernames so that a login
/// takes about as long whether the account exists or not.
pub fn dummy_hash() -> &'static str {
    static DUMMY: OnceLock<String> = OnceLock::new();
    DUMMY.get_or_init(|| {
        let mut pw = [0u8; 32];
        // Without randomness the dummy is still a valid hash of a fixed string; it is never
        // a password any account has, since the verify result for unknown users is ignored.
        let _ = SystemRandom::new().fill(&mut pw);
        let name = OperatorName("dummy".into());
        hash_password(&name, &hex::encode(pw)).unwrap_or_default()
    })
}

/// Failed logins per username, in memory (one hub node; a restart forgets them, which only
/// shortens a lock).
#[derive(Debug, Default)]
pub struct LoginThrottle {
    failures: Mutex<HashMap<String, Failures>>,
}

#[derive(Debug, Clone, Copy)]
struct Failures {
    count: u32,
    last: Instant,
    locked_until: Option<Instant>,
}

impl LoginThrottle {
    /// `Err(wait)` while `username` is locked.
    pub fn check(&self, username: &str, now: Instant) -> Result<(), Duration> {
        let map = self.failures.lock().unwrap_or_else(|p| p.into_inner());
        match map.get(username).and_then(|f| f.locked_until) {
            Some(until) if until > now => Err(until - now),
            _ => Ok(()),
        }
    }

    /// Count a failed login; the [`MAX_FAILURES`]th in a row locks the name for
    /// [`LOCKOUT`] (and so does each further one after the lock ends).
    pub fn failed(&self, username: &str, now: Instant) {
        let mut map = self.failures.lock().unwrap_or_else(|p| p.into_inner());
        if map.len() >= MAX_TRACKED && !map.contains_key(username) {
            map.retain(|_, f| f.locked_until.is_some_and(|u| u > now) || now - f.last < LOCKOUT);
            if map.len() >= MAX_TRACKED {
                // Still full of live entries: make room rather than grow without bound.
                map.clear();
            }
        }
        let f = map.entry(username.to_string()).or_insert(Failures {
            count: 0,
            last: now,
            locked_until: None,
        });
        f.count += 1;
        f.last = now;
        if f.count >= MAX_FAILURES {
            f.locked_until = Some(now + LOCKOUT);
        }
    }

    /// A successful login clears the name's failures.
    pub fn succeeded(&self, username: &str) {
        self.failures.lock().unwrap_or_else(|p| p.into_inner()).remove(username);
    }
}

/// A session token: 256 random bits, hex in the cookie. The store keeps only its SHA-256.
#[derive(Clone, PartialEq, Eq)]
pub struct SessionToken(String);

impl SessionToken {
    /// A fresh token from the system's random source.
    pub fn generate() -> Result<SessionToken, AuthError> {
        let mut b = [0u8; 32];
        SystemRandom::new().fill(&mut b).map_err(|_| AuthError::Random)?;
        Ok(SessionToken(hex::encode(b)))
    }

    /// A token as the cookie carries it; `None` unless 64 lowercase hex digits.
    pub fn parse(s: &str) -> Option<SessionToken> {
        let ok = s.len() == 64 && s.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'));
        ok.then(|| SessionToken(s.to_string()))
    }

    /// What the store keys the session by.
    pub fn sha256(&self) -> Sha256Hex {
        Sha256Hex::of(self.0.as_bytes())
    }

    /// The `Set-Cookie` value that hands the token to the browser.
    pub fn set_cookie(&self) -> String {
        format!("{COOKIE}={}; {COOKIE_ATTRS}", self.0)
    }
}

impl std::fmt::Debug for SessionToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SessionToken(..)")
    }
}

/// The `Set-Cookie` value that removes the session cookie.
pub fn clear_cookie() -> String {
    format!("{COOKIE}=; Max-Age=0; {COOKIE_ATTRS}")
}

/// The session token of the request's `Cookie` headers, if any well-formed one.
pub fn cookie_token(headers: &HeaderMap) -> Option<SessionToken> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(name, _)| *name == COOKIE)
        .and_then(|(_, value)| SessionToken::parse(value.trim()))
}

/// How long sessions live.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SessionPolicy {
    /// Unused this long, a session ends.
    pub idle: Duration,
    /// This long after login, a session ends whatever its use.
    pub absolute: Duration,
}

impl SessionPolicy {
    /// Whether `session` is still valid at `now_ms` (ms since the Unix epoch).
    pub fn valid(&self, session: &SessionRecord, now_ms: i64) -> bool {
        let idle = self.idle.as_millis() as i64;
        let absolute = self.absolute.as_millis() as i64;
        now_ms - session.last_seen_ms < idle && now_ms - session.created_ms < absolute
    }

    /// The cutoffs of [`crate::store::MetaStore::expire_sessions`] at `now_ms`.
    pub fn cutoffs(&self, now_ms: i64) -> (i64, i64) {
        (now_ms - self.idle.as_millis() as i64, now_ms - self.absolute.as_millis() as i64)
    }
}

/// CSRF defence besides `SameSite=Strict`: a POST must say it comes from a page of this
/// origin, by `Origin` (every current browser sends it on POST) or else `Referer`, whose
/// host must be the `Host` the request was sent to. A request with neither is refused.
pub fn same_origin(headers: &HeaderMap) -> bool {
    let Some(host) = headers.get(header::HOST).and_then(|h| h.to_str().ok()) else {
        return false;
    };
    fn origin_host(url: &str) -> Option<&str> {
        url.strip_prefix("https://").map(|rest| rest.split('/').next().unwrap_or_default())
    }
    if let Some(origin) = headers.get(header::ORIGIN) {
        return origin.to_str().ok().and_then(origin_host) == Some(host);
    }
    match headers.get(header::REFERER).and_then(|r| r.to_str().ok()) {
        Some(referer) => origin_host(referer) == Some(host),
        None => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderValue;

    #[test]
    fn passwords_hash_with_argon2id_and_verify() {
        let name = OperatorName::new("alice").unwrap();
        let phc = hash_password(&name, "correct horse battery").unwrap();
        assert!(phc.starts_with("$argon2id$v=19$"), "{phc}");
        assert!(!phc.contains("correct"));
        assert!(verify_password(&phc, "correct horse battery"));
        assert!(!verify_password(&phc, "correct horse battery "));
        assert!(!verify_password("not a phc string", "correct horse battery"));
        // Salted: the same password hashes differently each time.
        assert_ne!(phc, hash_password(&name, "correct horse battery").unwrap());
        assert!(!verify_password(dummy_hash(), ""));
        assert!(dummy_hash().starts_with("$argon2id$"));
    }

    #[test]
    fn names_and_passwords_are_checked() {
        assert!(OperatorName::new("ops.team-1_a").is_ok());
        for bad in ["", "-x", ".x", "a b", "a/b", "é", &"a".repeat(65)] {
            assert!(OperatorName::new(bad).is_err(), "{bad:?}");
        }
        let e = OperatorName::new("<script>").unwrap_err();
        assert!(!e.to_string().contains("script"));
        assert_eq!(check_password("short"), Err(AuthError::PasswordLength));
        assert!(check_password("twelve chars").is_ok());
        assert!(check_password(&"x".repeat(1025)).is_err());
    }

    #[test]
    fn five_failures_lock_a_name_for_a_minute() {
        let t = LoginThrottle::default();
        let start = Instant::now();
        for i in 0..MAX_FAILURES - 1 {
            t.failed("alice", start + Duration::from_secs(i.into()));
            assert!(t.check("alice", start + Duration::from_secs(i.into())).is_ok());
        }
        t.failed("alice", start + Duration::from_secs(5));
        let wait = t.check("alice", start + Duration::from_secs(6)).unwrap_err();
        assert_eq!(wait, Duration::from_secs(59));
        assert!(t.check("bob", start + Duration::from_secs(6)).is_ok(), "per name");
        assert!(t.check("alice", start + Duration::from_secs(65)).is_ok(), "lock ends");
        // One more failure after the lock locks again at once.
        t.failed("alice", start + Duration::from_secs(66));
        assert!(t.check("alice", start + Duration::from_secs(67)).is_err());
        t.succeeded("alice");
        assert!(t.check("alice", start + Duration::from_secs(67)).is_ok());
    }

    #[test]
    fn sessions_end_when_idle_or_old() {
        let p = SessionPolicy {
            idle: Duration::from_secs(30 * 60),
            absolute: Duration::from_secs(12 * 3600),
        };
        let min = 60_000;
        let s = |created, last| SessionRecord {
            operator: OperatorName::new("alice").unwrap(),
            created_ms: created,
            last_seen_ms: last,
        };
        assert!(p.valid(&s(0, 0), 29 * min));
        assert!(!p.valid(&s(0, 0), 30 * min), "idle");
        assert!(p.valid(&s(0, 11 * 60 * min), 11 * 60 * min + 29 * min));
        assert!(!p.valid(&s(0, 12 * 60 * min - 1), 12 * 60 * min), "absolute");
        assert_eq!(p.cutoffs(100 * min), (70 * min, 100 * min - 12 * 60 * min));
    }

    #[test]
    fn tokens_are_random_hex_and_only_their_hash_is_a_key() {
        let a = SessionToken::generate().unwrap();
        let b = SessionToken::generate().unwrap();
        assert_ne!(a, b);
        assert_eq!(SessionToken::parse(&a.0), Some(a.clone()));
        assert!(SessionToken::parse("../x").is_none());
        assert_ne!(a.sha256().as_str(), a.0);
        let cookie = a.set_cookie();
        for attr in ["HttpOnly", "Secure", "SameSite=Strict", "Path=/dashboard"] {
            assert!(cookie.contains(attr), "{cookie}");
        }
        let mut h = HeaderMap::new();
        h.insert(header::COOKIE, HeaderValue::from_str(&format!("x=1; {COOKIE}={}", a.0)).unwrap());
        assert_eq!(cookie_token(&h), Some(a));
        h.insert(header::COOKIE, HeaderValue::from_static("fgw_session=zz"));
        assert_eq!(cookie_token(&h), None);
        assert!(format!("{b:?}").ends_with("(..)"));
    }

    #[test]
    fn posts_must_come_from_the_same_origin() {
        let h = |pairs: &[(header::HeaderName, &'static str)]| {
            let mut m = HeaderMap::new();
            for (k, v) in pairs {
                m.insert(k.clone(), HeaderValue::from_static(v));
            }
            m
        };
        let host = (header::HOST, "127.0.0.1:8443");
        assert!(same_origin(&h(&[host.clone(), (header::ORIGIN, "https://127.0.0.1:8443")])));
        assert!(!same_origin(&h(&[host.clone(), (header::ORIGIN, "https://evil.example")])));
        assert!(!same_origin(&h(&[host.clone(), (header::ORIGIN, "null")])));
        assert!(!same_origin(&h(&[host.clone(), (header::ORIGIN, "http://127.0.0.1:8443")])));
        assert!(same_origin(&h(&[
            host.clone(),
            (header::REFERER, "https://127.0.0.1:8443/dashboard/login")
        ])));
        assert!(!same_origin(&h(&[host.clone(), (header::REFERER, "https://127.0.0.1:84430/")])));
        assert!(!same_origin(&h(&[host])), "neither header");
        assert!(!same_origin(&h(&[(header::ORIGIN, "https://127.0.0.1:8443")])), "no host");
    }
}
