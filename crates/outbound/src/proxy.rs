//! How the box reaches the hub: directly, or through the HTTP proxy the hospital requires
//! (`[uplink] proxy_url`, set at imaging time). Enrollment and uploads both go the same way.
//!
//! Through a proxy the box asks for a tunnel with `CONNECT host:port` (RFC 9110 §9.3.6) and
//! runs its own TLS inside it: the proxy sees the hub's name and port and the amount of
//! traffic, never the content, and cannot stand in for the hub (the box trusts only the
//! society CA, and the hub only the box's certificate). Basic authentication to the proxy is
//! optional; its password is read from a 0600 file, never from the configuration itself, so
//! the configuration can be shown and logged.
//!
//! The route is what the configuration says and nothing else: the process environment's
//! `HTTPS_PROXY` and friends are ignored ([`HubRoute::Direct`] sets reqwest's `no_proxy`), so
//! whoever can set a variable of the daemon's service cannot divert its traffic.

use std::fmt;
use std::path::{Path, PathBuf};

/// Why the proxy settings cannot be used. Names keys and paths, never the password.
#[derive(Debug, thiserror::Error)]
pub enum ProxyError {
    /// A setting has the wrong shape.
    #[error("{key}: expected {expected}")]
    Config {
        /// The setting.
        key: &'static str,
        /// What it must be.
        expected: &'static str,
    },
    /// The password file cannot be read.
    #[error("uplink.proxy_password_file {path}: {source}")]
    PasswordFile {
        /// The file.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
    /// The password file is readable by others.
    #[error(
        "uplink.proxy_password_file {path}: permissions {mode:o} are too open (expected 0600)"
    )]
    Permissions {
        /// The file.
        path: PathBuf,
        /// Its permission bits.
        mode: u32,
    },
    /// reqwest refused the proxy.
    #[error("uplink.proxy_url: {0}")]
    Client(String),
}

/// Basic credentials for the proxy. The password never prints.
#[derive(Clone, PartialEq, Eq)]
pub struct ProxyCredentials {
    username: String,
    password: String,
}

impl fmt::Debug for ProxyCredentials {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ProxyCredentials").field("username", &self.username).finish_non_exhaustive()
    }
}

/// A proxy URL as the box accepts it: `http://host:port`, nothing more.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProxyUrl(reqwest::Url);

impl ProxyUrl {
    /// `http://host:port` with an explicit port and no user, path, query or fragment. Plain
    /// `http`: the proxy only relays the CONNECT tunnel, inside which TLS runs end to end.
    /// Credentials go in their own settings, never in the URL (which is logged).
    pub fn parse(s: &str) -> Result<ProxyUrl, ProxyError> {
        let bad = || ProxyError::Config {
            key: "uplink.proxy_url",
            expected: "http://host:port (no user, path, query or fragment), e.g. \
                       http://proxy.hospital.example:3128",
        };
        let url = reqwest::Url::parse(s).map_err(|_| bad())?;
        let plain_path = url.path().is_empty() || url.path() == "/";
        if url.scheme() != "http"
            || url.host_str().is_none()
            || url.port().is_none()
            || !url.username().is_empty()
            || url.password().is_some()
            || !plain_path
            || url.query().is_some()
            || url.fragment().is_some()
        {
            return Err(bad());
        }
        Ok(ProxyUrl(url))
    }

    /// `host:port`, for logs and status.
    pub fn authority(&self) -> String {
        format!("{}:{}", self.0.host_str().unwrap_or(""), self.0.port().unwrap_or(0))
    }
}

/// The way to the hub.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HubRoute {
    /// Straight to the hub's address (the default); the environment's proxy variables are
    /// ignored.
    Direct,
    /// Through the hospital's HTTP proxy with CONNECT, with basic authentication if set.
    HttpConnect {
        /// The proxy.
        url: ProxyUrl,
        /// Basic credentials, if the proxy asks for them.
        credentials: Option<ProxyCredentials>,
    },
}

/// The proxy settings of `[uplink]`, as written.
#[derive(Debug, Clone, Copy)]
pub struct ProxySettings<'a> {
    /// `uplink.proxy_url`.
    pub url: Option<&'a str>,
    /// `uplink.proxy_username`.
    pub username: Option<&'a str>,
    /// `uplink.proxy_password_file`.
    pub password_file: Option<&'a Path>,
}

impl HubRoute {
    /// Checks the settings' shapes without reading the password file.
    pub fn check(s: ProxySettings<'_>) -> Result<(), ProxyError> {
        match s.url {
            None => {
                if s.username.is_some() || s.password_file.is_some() {
                    return Err(ProxyError::Config {
                        key: "uplink.proxy_username",
                        expected: "no proxy credentials without uplink.proxy_url",
                    });
                }
            }
            Some(url) => {
                ProxyUrl::parse(url)?;
                match (s.username, s.password_file) {
                    (None, None) => {}
                    (Some(user), Some(_)) if valid_username(user) => {}
                    (Some(_), Some(_)) => {
                        return Err(ProxyError::Config {
                            key: "uplink.proxy_username",
                            expected: "1 to 128 printable ASCII characters without ':'",
                        })
                    }
                    _ => {
                        return Err(ProxyError::Config {
                            key: "uplink.proxy_password_file",
                            expected: "proxy_username and proxy_password_file set together",
                        })
                    }
                }
            }
        }
        Ok(())
    }

    /// The route the settings describe, reading the password file (0600, one line; a final
    /// newline is not part of the password).
    pub fn from_settings(s: ProxySettings<'_>) -> Result<HubRoute, ProxyError> {
        HubRoute::check(s)?;
        let Some(url) = s.url else { return Ok(HubRoute::Direct) };
        let url = ProxyUrl::parse(url)?;
        let credentials = match (s.username, s.password_file) {
            (Some(username), Some(path)) => {
                Some(ProxyCredentials { username: username.into(), password: read_password(path)? })
            }
            _ => None,
        };
        Ok(HubRoute::HttpConnect { url, credentials })
    }

    /// `builder` set to take this route.
    pub fn apply(
        &self,
        builder: reqwest::ClientBuilder,
    ) -> Result<reqwest::ClientBuilder, ProxyError> {
        match self {
            HubRoute::Direct => Ok(builder.no_proxy()),
            HubRoute::HttpConnect { url, credentials } => {
                let mut proxy = reqwest::Proxy::all(url.0.clone())
                    .map_err(|e| ProxyError::Client(e.to_string()))?;
                if let Some(c) = credentials {
                    // Sent as Proxy-Authorization on the CONNECT request only: it never
                    // enters the TLS session with the hub.
                    proxy = proxy.basic_auth(&c.username, &c.password);
                }
                Ok(builder.proxy(proxy))
            }
        }
    }

    /// How the route reads in logs and status: `direct` or `proxy host:port`.
    pub fn describe(&self) -> String {
        match self {
            HubRoute::Direct => "direct".into(),
            HubRoute::HttpConnect { url, credentials } => format!(
                "proxy {}{}",
                url.authority(),
                if credentials.is_some() { " (basic auth)" } else { "" }
            ),
        }
    }
}

fn valid_username(user: &str) -> bool {
    (1..=128).contains(&user.len()) && user.bytes().all(|b| (0x21..=0x7e).contains(&b) && b != b':')
}

fn read_password(path: &Path) -> Result<String, ProxyError> {
    use std::os::unix::fs::PermissionsExt;
    let io = |source| ProxyError::PasswordFile { path: path.to_path_buf(), source };
    let mode = std::fs::metadata(path).map_err(io)?.permissions().mode() & 0o777;
    if mode & 0o077 != 0 {
        return Err(ProxyError::Permissions { path: path.to_path_buf(), mode });
    }
    let bytes = std::fs::read(path).map_err(io)?;
    let text = std::str::from_utf8(&bytes).map_err(|_| ProxyError::Config {
        key: "uplink.proxy_password_file",
        expected: "a file holding the password as one line of UTF-8",
    })?;
    let password = text.strip_suffix('\n').unwrap_or(text);
    let password = password.strip_suffix('\r').unwrap_or(password);
    if password.is_empty() || password.len() > 1024 || password.contains(['\n', '\r']) {
        return Err(ProxyError::Config {
            key: "uplink.proxy_password_file",
            expected: "a file holding the password as one line of 1 to 1024 bytes",
        });
    }
    Ok(password.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    fn settings<'a>(
        url: Option<&'a str>,
        user: Option<&'a str>,
        file: Option<&'a Path>,
    ) -> ProxySettings<'a> {
        ProxySettings { url, username: user, password_file: file }
    }

    #[test]
    fn proxy_urls_are_plain_http_with_a_port_and_nothing_else() {
        assert!(ProxyUrl::parse("http://proxy.example:3128").is_ok());
        assert!(ProxyUrl::parse("http://10.0.0.1:8080/").is_ok());
        for bad in [
            "https://proxy:3128",
            "http://proxy",
            "http://user:pw@proxy:3128",
            "http://proxy:3128/path",
            "http://proxy:3128?x=1",
            "socks5://proxy:1080",
            "proxy:3128",
        ] {
            assert!(ProxyUrl::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn no_url_is_direct_and_credentials_need_a_url_and_each_other() {
        assert_eq!(HubRoute::from_settings(settings(None, None, None)).unwrap(), HubRoute::Direct);
        let p = Path::new("/nonexistent");
        assert!(HubRoute::check(settings(None, Some("u"), None)).is_err());
        assert!(HubRoute::check(settings(Some("http://p:1"), Some("u"), None)).is_err());
        assert!(HubRoute::check(settings(Some("http://p:1"), None, Some(p))).is_err());
        assert!(HubRoute::check(settings(Some("http://p:1"), Some("a:b"), Some(p))).is_err());
        assert!(HubRoute::check(settings(Some("http://p:1"), Some("u"), Some(p))).is_ok());
    }

    #[test]
    fn the_password_comes_from_a_private_file_and_never_prints() {
        let d = tempfile::tempdir().unwrap();
        let file = d.path().join("proxy.pass");
        std::fs::write(&file, "s3cret-pw\n").unwrap();
        std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o644)).unwrap();
        let s = settings(Some("http://proxy:3128"), Some("fgw"), Some(&file));
        let e = HubRoute::from_settings(s).unwrap_err();
        assert!(matches!(e, ProxyError::Permissions { mode: 0o644, .. }), "{e}");
        std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o600)).unwrap();
        let route = HubRoute::from_settings(s).unwrap();
        let HubRoute::HttpConnect { credentials: Some(c), .. } = &route else { panic!() };
        assert_eq!((c.username.as_str(), c.password.as_str()), ("fgw", "s3cret-pw"));
        for shown in [format!("{route:?}"), route.describe()] {
            assert!(!shown.contains("s3cret"), "{shown}");
        }
        assert_eq!(route.describe(), "proxy proxy:3128 (basic auth)");
        std::fs::write(&file, "two\nlines\n").unwrap();
        assert!(HubRoute::from_settings(s).is_err());
    }
}
