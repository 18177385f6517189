//! A `podlab server` of a test's own: its own --root, port and kubeconfig, and kubectl and curl
//! pointed at it (with a fresh HOME, so kubectl's discovery cache starts empty).

use std::io::Write;
use std::path::PathBuf;
use std::process::{Child, Command, Output, Stdio};
use std::time::Duration;

use super::{TestRoot, text, wait_until};

pub struct Server {
    pub root: TestRoot,
    pub child: Option<Child>,
    pub kubeconfig: PathBuf,
    pub url: String,
    pub store: String,
    /// Extra arguments of `podlab server`.
    pub extra: Vec<String>,
}

impl Server {
    pub fn start(name: &str) -> Server {
        Server::start_with(name, "sqlite")
    }

    pub fn start_with(name: &str, store: &str) -> Server {
        let root = TestRoot::new(&format!("api-{name}"));
        let kubeconfig = root.dir.join("admin.kubeconfig");
        let mut s =
            Server { root, child: None, kubeconfig, url: String::new(), store: store.to_string(), extra: Vec::new() };
        s.launch();
        s
    }

    /// Start the server process (again) and wait until it answers.
    pub fn launch(&mut self) {
        let addr = self.root.dir.join("lib/server/server.addr");
        let _ = std::fs::remove_file(&addr);
        let log = std::fs::File::create(self.root.dir.join("server.log")).unwrap();
        // The port of an earlier run, so that kubeconfig and watch URLs stay valid across a restart.
        let listen = match self.url.rsplit(':').next() {
            Some(port) if !self.url.is_empty() => format!("127.0.0.1:{port}"),
            _ => "127.0.0.1:0".to_string(),
        };
        let child = self
            .root
            .cmd(&["server", "--listen", &listen, "--store", &self.store, "--kubeconfig-out"])
            .arg(&self.kubeconfig)
            .args(&self.extra)
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("start podlab server");
        self.child = Some(child);
        assert!(wait_until(30, || addr.exists()), "the server did not start: {}", self.log());
        self.url = std::fs::read_to_string(&addr).unwrap().trim().to_string();
        assert!(wait_until(30, || self.curl(&["/readyz"]).status.success()), "not ready: {}", self.log());
    }

    pub fn stop(&mut self) {
        if let Some(mut c) = self.child.take() {
            unsafe { libc::kill(c.id() as i32, libc::SIGTERM) };
            if !wait_until(5, || c.try_wait().ok().flatten().is_some()) {
                let _ = c.kill();
            }
            let _ = c.wait();
        }
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(self.root.dir.join("server.log")).unwrap_or_default()
    }

    pub fn token(&self) -> String {
        let tokens = std::fs::read_to_string(self.root.dir.join("lib/server/tokens.csv")).unwrap();
        tokens.lines().find(|l| l.contains("system:masters")).unwrap().split(',').next().unwrap().to_string()
    }

    fn kubectl_cmd(&self, args: &[&str]) -> Command {
        let home = self.root.dir.join("home");
        std::fs::create_dir_all(&home).unwrap();
        let mut c = Command::new(kubectl());
        c.arg("--kubeconfig").arg(&self.kubeconfig).args(args).env("HOME", &home).env_remove("KUBECONFIG");
        c
    }

    pub fn kubectl(&self, args: &[&str]) -> Output {
        self.kubectl_cmd(args).output().expect("run kubectl")
    }

    /// kubectl that must succeed; its stdout.
    pub fn kubectl_ok(&self, args: &[&str]) -> String {
        let out = self.kubectl(args);
        assert!(out.status.success(), "kubectl {args:?}: {}\n{}", text(&out.stderr), self.log());
        text(&out.stdout)
    }

    pub fn kubectl_in(&self, args: &[&str], input: &str) -> Output {
        let mut child = self
            .kubectl_cmd(args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("run kubectl");
        child.stdin.take().unwrap().write_all(input.as_bytes()).unwrap();
        child.wait_with_output().unwrap()
    }

    pub fn spawn_kubectl(&self, args: &[&str]) -> Child {
        self.kubectl_cmd(args).stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().expect("run kubectl")
    }

    /// curl with the admin token (or none) against a path; `extra` goes before the URL.
    pub fn curl_as(&self, token: Option<&str>, extra: &[&str], path: &str) -> Output {
        let ca = self.root.dir.join("lib/server/pki/ca.crt");
        let mut c = Command::new("curl");
        c.args(["-sS", "--max-time", "10", "--cacert"]).arg(&ca);
        if let Some(t) = token {
            c.args(["-H", &format!("Authorization: Bearer {t}")]);
        }
        c.args(extra).arg(format!("{}{path}", self.url));
        c.output().expect("run curl")
    }

    pub fn curl(&self, args: &[&str]) -> Output {
        let (path, extra) = args.split_last().unwrap();
        self.curl_as(Some(&self.token()), extra, path)
    }

    /// GET path as JSON with the admin token.
    pub fn get_json(&self, path: &str) -> serde_json::Value {
        let out = self.curl(&[path]);
        serde_json::from_slice(&out.stdout).unwrap_or_else(|e| panic!("GET {path}: {e}: {}", text(&out.stdout)))
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.stop();
    }
}

/// The kubectl the tests drive: $KUBECTL, else v1.32 (what this machine has; `kubectl` on its
/// PATH is Google Cloud SDK's dispatcher, which picks the version matching the server's minor).
pub fn kubectl() -> String {
    if let Ok(k) = std::env::var("KUBECTL") {
        return k;
    }
    let pinned = "/usr/lib/google-cloud-sdk/bin/kubectl.1.32";
    if std::path::Path::new(pinned).exists() { pinned.to_string() } else { "kubectl".to_string() }
}

pub fn sleep_ms(ms: u64) {
    std::thread::sleep(Duration::from_millis(ms));
}
