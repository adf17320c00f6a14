//! A throwaway PostgreSQL server for the tests: Debian's binaries (`postgresql` package),
//! one server per test process, one fresh database per test.
//!
//! PostgreSQL refuses to run as root, and CI runs as root: the server then runs as the
//! `postgres` system user (`runuser`), in a temporary directory that user owns. It listens
//! on 127.0.0.1 on a free port and on a socket in that directory, with trust authentication
//! (nothing else can reach it). A watcher shell stops it and removes the directory when the
//! test process exits, since the shared server lives in a static that is never dropped.
//!
//! Without the binaries the tests fail, saying so, unless `FGW_SKIP_POSTGRES=1`.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

/// Where Debian puts the server binaries.
const BIN_DIRS: &[&str] = &["/usr/lib/postgresql/15/bin", "/usr/lib/postgresql/16/bin"];

/// A running test server.
pub(crate) struct PgServer {
    dir: PathBuf,
    port: u16,
    bin: PathBuf,
    as_postgres: bool,
}

fn bin_dir() -> Option<PathBuf> {
    BIN_DIRS.iter().map(PathBuf::from).find(|d| d.join("initdb").is_file())
}

fn is_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim() == "0")
        .unwrap_or(false)
}

/// A random 64-bit number (names of databases, passwords of test roles).
pub(crate) fn random_u64() -> u64 {
    use std::hash::{BuildHasher, Hasher};
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u128(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or(0),
    );
    h.finish()
}

fn free_port() -> u16 {
    let l = std::net::TcpListener::bind("127.0.0.1:0").expect("bind a free port");
    l.local_addr().expect("local address").port()
}

impl PgServer {
    /// `None` when the binaries are missing and `FGW_SKIP_POSTGRES=1`; panics when they are
    /// missing otherwise.
    pub(crate) fn start() -> Option<PgServer> {
        let Some(bin) = bin_dir() else {
            if std::env::var("FGW_SKIP_POSTGRES").as_deref() == Ok("1") {
                eprintln!("PostgreSQL tests SKIPPED (FGW_SKIP_POSTGRES=1, no server binaries)");
                return None;
            }
            panic!(
                "PostgreSQL server binaries not found in {BIN_DIRS:?}: install Debian's \
                 `postgresql` package (scripts/ensure-deps.sh does), or set FGW_SKIP_POSTGRES=1 \
                 to skip the PostgreSQL store's tests"
            );
        };
        let as_postgres = is_root();
        let dir = std::env::temp_dir().join(format!("fgw-pg-test-{:016x}", random_u64()));
        std::fs::create_dir(&dir).expect("create the server directory");
        let server = PgServer { dir, port: free_port(), bin, as_postgres };
        if as_postgres {
            let st = Command::new("chown").arg("postgres:postgres").arg(&server.dir).status();
            assert!(st.is_ok_and(|s| s.success()), "chown the server directory to postgres");
        }
        let data = server.dir.join("data");
        let out = server
            .command("initdb")
            .args(["-A", "trust", "-U", "postgres", "-E", "UTF8", "--no-sync", "-D"])
            .arg(&data)
            .output()
            .expect("run initdb");
        assert!(out.status.success(), "initdb failed: {}", String::from_utf8_lossy(&out.stderr));
        server.spawn_with_watcher(&data);
        server.wait_ready();
        Some(server)
    }

    /// The server, started once for this test process.
    pub(crate) fn shared() -> Option<&'static PgServer> {
        static SERVER: OnceLock<Option<PgServer>> = OnceLock::new();
        SERVER.get_or_init(PgServer::start).as_ref()
    }

    fn command(&self, program: &str) -> Command {
        let path = self.bin.join(program);
        if self.as_postgres {
            let mut c = Command::new("runuser");
            c.args(["-u", "postgres", "--"]).arg(path);
            c
        } else {
            Command::new(path)
        }
    }

    /// `postgres` in the foreground of a shell that stops it (fast shutdown) and removes
    /// the directory once this process is gone.
    fn spawn_with_watcher(&self, data: &Path) {
        let script = "\"$1\" -D \"$2\" -p \"$3\" -h 127.0.0.1 -k \"$4\" -c fsync=off \
               -c synchronous_commit=off -c full_page_writes=off -c max_connections=300 \
               >\"$4/server.log\" 2>&1 &
             pg=$!
             while [ -d /proc/$5 ] && kill -0 $pg 2>/dev/null; do sleep 0.5; done
             kill -INT $pg 2>/dev/null; wait $pg
             rm -rf \"$4\"";
        let mut c = if self.as_postgres {
            let mut c = Command::new("runuser");
            c.args(["-u", "postgres", "--", "sh", "-c"]);
            c
        } else {
            let mut c = Command::new("sh");
            c.arg("-c");
            c
        };
        let mut child = c
            .arg(script)
            .arg("sh")
            .arg(self.bin.join("postgres"))
            .arg(data)
            .arg(self.port.to_string())
            .arg(&self.dir)
            .arg(std::process::id().to_string())
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start postgres");
        // The watcher outlives every test; a thread reaps it should it end first.
        std::thread::spawn(move || child.wait());
    }

    fn wait_ready(&self) {
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            match postgres::Client::connect(&self.admin_url("postgres"), postgres::NoTls) {
                Ok(_) => return,
                Err(e) if Instant::now() > deadline => {
                    let log =
                        std::fs::read_to_string(self.dir.join("server.log")).unwrap_or_default();
                    panic!("PostgreSQL did not start: {e}\n{log}");
                }
                Err(_) => std::thread::sleep(Duration::from_millis(100)),
            }
        }
    }

    fn admin_url(&self, db: &str) -> String {
        format!("postgres://postgres@127.0.0.1:{}/{db}", self.port)
    }

    /// A new, empty database; its connection URL.
    pub(crate) fn database(&self) -> String {
        let name = format!("fgw_test_{:016x}", random_u64());
        let mut admin = postgres::Client::connect(&self.admin_url("postgres"), postgres::NoTls)
            .expect("connect to the test server");
        admin.batch_execute(&format!("CREATE DATABASE {name}")).expect("create a test database");
        self.admin_url(&name)
    }
}

impl Drop for PgServer {
    fn drop(&mut self) {
        // A server that is dropped (not the shared one) stops now rather than at exit.
        let _ = self
            .command("pg_ctl")
            .args(["stop", "-m", "fast", "-s", "-D"])
            .arg(self.dir.join("data"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status();
    }
}
