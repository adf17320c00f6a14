//! A network namespace for peers that listen on all interfaces (Orthanc): held by
//! `unshare -rn` (user + network namespace, loopback up; works as root and, where user
//! namespaces are allowed, unprivileged); every other process enters it with `nsenter`.
//! Inside it the ports are private, so fixed ports are used.

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};

/// A network namespace and the processes started in it; all killed on drop.
pub(crate) struct Netns {
    holder: Child,
    procs: Vec<Child>,
}

impl Netns {
    pub(crate) fn new() -> Netns {
        let mut holder = Command::new("unshare")
            .args(["-rn", "sh", "-c", "ip link set lo up && echo ready && exec sleep 3600"])
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("unshare (util-linux) must be installed");
        let mut line = String::new();
        BufReader::new(holder.stdout.take().unwrap()).read_line(&mut line).unwrap();
        assert_eq!(
            line.trim(),
            "ready",
            "could not create a network namespace with `unshare -rn` and bring loopback up \
             with `ip` (iproute2); run as root or allow unprivileged user namespaces"
        );
        Netns { holder, procs: Vec::new() }
    }

    /// `program` inside the namespace.
    pub(crate) fn cmd(&self, program: &str) -> Command {
        let mut c = Command::new("nsenter");
        c.args(["-t", &self.holder.id().to_string(), "-U", "-n", "--preserve-credentials"])
            .arg(program);
        c
    }

    pub(crate) fn spawn(&mut self, mut cmd: Command, log: &Path) -> u32 {
        let child =
            cmd.stdout(Stdio::null()).stderr(std::fs::File::create(log).unwrap()).spawn().unwrap();
        let pid = child.id();
        self.procs.push(child);
        pid
    }

    /// SIGKILL, like a power cut.
    pub(crate) fn kill(&mut self, pid: u32) {
        if let Some(i) = self.procs.iter().position(|c| c.id() == pid) {
            let mut c = self.procs.remove(i);
            c.kill().unwrap();
            c.wait().unwrap();
        }
    }

    pub(crate) fn alive(&mut self, pid: u32) -> bool {
        let c = self.procs.iter_mut().find(|c| c.id() == pid).unwrap();
        c.try_wait().unwrap().is_none()
    }

    pub(crate) fn run_ok(&self, program: &str, args: &[&str]) {
        let out = self.cmd(program).args(args).output().unwrap();
        assert!(
            out.status.success(),
            "{program} {args:?} in the namespace failed:\n{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }
}

impl Drop for Netns {
    fn drop(&mut self) {
        for c in &mut self.procs {
            let _ = c.kill();
            let _ = c.wait();
        }
        let _ = self.holder.kill();
        let _ = self.holder.wait();
    }
}

pub(crate) fn require(program: &str, package: &str) {
    match Command::new(program).arg("--version").output() {
        Ok(_) => {}
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => panic!(
            "`{program}` is not on PATH: apt-get install -y {package} (scripts/ensure-deps.sh \
             installs it). This test does not skip."
        ),
        Err(e) => panic!("{program}: {e}"),
    }
}
