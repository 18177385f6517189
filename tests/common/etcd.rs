//! A real etcd for tests: its own data directory and loopback ports, killed with the test.

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// A real etcd of this test's own: a private data directory, loopback ports nobody else uses.
/// Dropping it kills etcd and removes its directory (also on panic).
pub struct Etcd {
    pub name: String,
    pub dir: PathBuf,
    pub client_port: u16,
    pub peer_port: u16,
    pub child: Option<Child>,
}

pub const ETCD: &str = "/usr/bin/etcd";

pub fn free_ports() -> (u16, u16) {
    let a = TcpListener::bind("127.0.0.1:0").unwrap();
    let b = TcpListener::bind("127.0.0.1:0").unwrap();
    (a.local_addr().unwrap().port(), b.local_addr().unwrap().port())
}

impl Etcd {
    pub fn start(test: &str) -> Etcd {
        assert!(
            Path::new(ETCD).exists(),
            "{ETCD} not found: run scripts/install-deps.sh --test (it installs etcd-server)"
        );
        let name = format!("podlab-{test}-{}", std::process::id());
        let dir = PathBuf::from(format!("/tmp/podlab-test-etcd-{test}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let (client_port, peer_port) = free_ports();
        let mut etcd = Etcd { name, dir, client_port, peer_port, child: None };
        etcd.run();
        etcd
    }

    pub fn endpoint(&self) -> String {
        format!("http://127.0.0.1:{}", self.client_port)
    }

    /// Start etcd on the data directory and wait until it says it is healthy.
    pub fn run(&mut self) {
        let client = self.endpoint();
        let peer = format!("http://127.0.0.1:{}", self.peer_port);
        let log = std::fs::OpenOptions::new().create(true).append(true).open(self.dir.join("etcd.log")).unwrap();
        let mut command = Command::new(ETCD);
        // If this test process dies without running Drop (killed), etcd dies with it.
        // SAFETY: prctl is async-signal-safe; nothing else runs between fork and exec.
        unsafe {
            command.pre_exec(|| {
                if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL) != 0 {
                    return Err(std::io::Error::last_os_error());
                }
                Ok(())
            });
        }
        let child = command
            .args(["--name", &self.name, "--data-dir"])
            .arg(self.dir.join("data"))
            .args(["--listen-client-urls", &client, "--advertise-client-urls", &client])
            .args(["--listen-peer-urls", &peer, "--initial-advertise-peer-urls", &peer])
            .args(["--initial-cluster", &format!("{}={peer}", self.name)])
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .expect("start etcd");
        self.child = Some(child);
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if let Some(status) = self.child.as_mut().and_then(|c| c.try_wait().ok().flatten()) {
                panic!("etcd exited ({status}) at start:\n{}", self.log_tail());
            }
            if self.healthy() {
                return;
            }
            assert!(Instant::now() < deadline, "etcd was not healthy within 30 s:\n{}", self.log_tail());
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// GET /health says {"health":"true"}.
    pub fn healthy(&self) -> bool {
        let Ok(mut conn) = TcpStream::connect(("127.0.0.1", self.client_port)) else { return false };
        let _ = conn.set_read_timeout(Some(Duration::from_secs(2)));
        if conn.write_all(b"GET /health HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n").is_err() {
            return false;
        }
        let mut answer = String::new();
        let _ = conn.read_to_string(&mut answer);
        answer.contains("\"health\":\"true\"")
    }

    pub fn log_tail(&self) -> String {
        let log = std::fs::read_to_string(self.dir.join("etcd.log")).unwrap_or_default();
        let lines: Vec<&str> = log.lines().collect();
        lines[lines.len().saturating_sub(20)..].join("\n")
    }

    /// Kill etcd and reap it; its data stays.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Stop etcd, remove its directory, and check that neither is left.
    pub fn remove(mut self) {
        let pid = self.child.as_ref().map(|c| c.id());
        self.kill();
        let _ = std::fs::remove_dir_all(&self.dir);
        if let Some(pid) = pid {
            assert!(!Path::new(&format!("/proc/{pid}")).exists(), "etcd (pid {pid}) is still running");
        }
        assert!(!self.dir.exists(), "{} was left behind", self.dir.display());
        assert!(TcpStream::connect(("127.0.0.1", self.client_port)).is_err(), "something still listens on etcd's port");
    }
}

impl Drop for Etcd {
    fn drop(&mut self) {
        self.kill();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}
