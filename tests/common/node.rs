//! A node for end-to-end tests: a test root, a network namespace made by the test, and a node
//! agent running in it; pods from YAML, looked at from outside.

use std::process::{Command, Output};

use serde_json::Value;

use super::{TestRoot, text, wait_until};

/// A node of its own: a test root, a network namespace and an agent running in it.
pub struct Node {
    pub root: TestRoot,
    pub netns: String,
}

impl Node {
    pub fn start(name: &str) -> Node {
        let root = TestRoot::new(&format!("pods-{name}"));
        let netns = format!("plt-{name}-{}", std::process::id());
        if std::path::Path::new("/run/netns").join(&netns).exists() {
            let _ = Command::new("ip").args(["netns", "del", &netns]).status();
        }
        assert!(Command::new("ip").args(["netns", "add", &netns]).status().unwrap().success());
        let node = Node { root, netns };
        let out = node.podlab(&["image", "build", "busybox"]);
        assert!(out.status.success(), "image build: {}", text(&out.stderr));
        let out = node.podlab(&["node", "--netns", &node.netns, "--detach", "--backoff-initial", "1s"]);
        assert!(out.status.success(), "node start: {}{}", text(&out.stdout), text(&out.stderr));
        node
    }

    pub fn podlab(&self, args: &[&str]) -> Output {
        self.root.run(args)
    }

    /// `run -f` a manifest given as text; returns the output (not asserted).
    pub fn apply(&self, name: &str, yaml: &str, wait: bool) -> Output {
        let file = self.root.dir.join(format!("{name}.yaml"));
        std::fs::write(&file, yaml).unwrap();
        let mut args = vec!["run", "-f", file.to_str().unwrap()];
        if wait {
            // Generous: the cgroup v2 lane runs these in an emulated VM.
            args.extend(["--wait", "--timeout", "180s"]);
        }
        self.podlab(&args)
    }

    pub fn apply_ok(&self, name: &str, yaml: &str) {
        let out = self.apply(name, yaml, true);
        assert!(out.status.success(), "run -f {name}: {}{}\n{}", text(&out.stdout), text(&out.stderr), self.debug());
    }

    /// The pod as JSON (`get pods NAME -o json`), or Null when it is not there.
    pub fn pod(&self, name: &str) -> Value {
        let out = self.podlab(&["get", "pods", name, "-o", "json"]);
        if !out.status.success() {
            return Value::Null;
        }
        serde_json::from_slice(&out.stdout).unwrap_or(Value::Null)
    }

    pub fn wait_pod(&self, name: &str, secs: u64, what: &str, cond: impl Fn(&Value) -> bool) -> Value {
        let mut last = Value::Null;
        let ok = wait_until(secs, || {
            last = self.pod(name);
            cond(&last)
        });
        assert!(ok, "pod {name}: {what} not reached in {secs}s; last: {}\n{}", last, self.debug());
        last
    }

    /// A command in the node's network namespace (where pod IPs are routed).
    pub fn in_node(&self, args: &[&str]) -> Output {
        Command::new("ip").args(["netns", "exec", &self.netns]).args(args).output().unwrap()
    }

    pub fn fetch(&self, url: &str) -> Option<String> {
        // (Debian's busybox wget crashes with -T: `timeout` bounds it instead.)
        let out = self.in_node(&["timeout", "3", "busybox", "wget", "-q", "-O", "-", url]);
        out.status.success().then(|| text(&out.stdout))
    }

    pub fn exec(&self, pod: &str, container: &str, cmd: &str) -> Output {
        self.podlab(&["exec", pod, "-c", container, "--", "sh", "-c", cmd])
    }

    pub fn debug(&self) -> String {
        let agent = std::fs::read_to_string(self.root.dir.join("run/node/agent.log")).unwrap_or_default();
        let mut sup = String::new();
        if let Ok(d) = std::fs::read_dir(self.root.dir.join("lib/pods")) {
            for e in d.flatten() {
                sup.push_str(&std::fs::read_to_string(e.path().join("supervisor.log")).unwrap_or_default());
                sup.push_str(&std::fs::read_to_string(e.path().join("events.jsonl")).unwrap_or_default());
            }
        }
        format!("--- agent log\n{agent}--- supervisors\n{sup}")
    }

    /// Delete every pod, stop the agent, and check that nothing of this node is left.
    pub fn finish(self) {
        let out = self.podlab(&["get", "pods", "-o", "name"]);
        for line in text(&out.stdout).lines() {
            let name = line.trim_start_matches("pod/");
            let out = self.podlab(&["delete", "pod", name]);
            assert!(out.status.success(), "delete {name}: {}", text(&out.stderr));
        }
        let pods = self.root.dir.join("lib/pods");
        let left: Vec<_> =
            std::fs::read_dir(&pods).map(|d| d.flatten().map(|e| e.path()).collect()).unwrap_or_default();
        assert!(left.is_empty(), "pod directories left after deleting every pod: {left:?}");
        assert!(self.podlab(&["node", "stop"]).status.success());
        assert_no_pod_leftovers(&self.root);
        // Reset cleans the node network (bridge, rules) too.
        assert!(self.podlab(&["reset"]).status.success());
        let rules = text(&self.in_node(&["iptables-save"]).stdout);
        assert!(!rules.contains("podlab") && !rules.contains("KUBE-"), "iptables rules left: {rules}");
        self.root.assert_clean();
    }
}

impl Drop for Node {
    fn drop(&mut self) {
        let _ = self.root.run(&["reset"]);
        let _ = Command::new("ip").args(["netns", "del", &self.netns]).status();
    }
}

/// No process, netns or cgroup of this root's pods is left.
pub fn assert_no_pod_leftovers(root: &TestRoot) {
    let rootdir = root.dir.to_str().unwrap().to_string();
    let procs: Vec<String> = std::fs::read_dir("/proc")
        .unwrap()
        .flatten()
        .filter_map(|e| std::fs::read(e.path().join("cmdline")).ok())
        .map(|b| String::from_utf8_lossy(&b).replace('\0', " "))
        .filter(|c| c.contains(&rootdir) && c.contains("__supervise"))
        .collect();
    assert!(procs.is_empty(), "supervisors left: {procs:?}");
    let runtime = root.dir.join("run/runtime");
    let left: Vec<_> =
        std::fs::read_dir(&runtime).map(|d| d.flatten().map(|e| e.file_name()).collect()).unwrap_or_default();
    assert!(left.is_empty(), "runtime containers left: {left:?}");
}

pub fn ready(p: &Value) -> bool {
    p["status"]["phase"] == "Running"
        && p["status"]["containerStatuses"].as_array().is_some_and(|a| a.iter().all(|c| c["ready"] == true))
}

pub fn container<'a>(p: &'a Value, name: &str) -> &'a Value {
    p["status"]["containerStatuses"]
        .as_array()
        .and_then(|a| a.iter().find(|c| c["name"] == name))
        .unwrap_or(&Value::Null)
}
