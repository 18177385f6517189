//! podman drives podlab-runtime: `podman --runtime $(which podlab-runtime) run --rm busybox
//! echo hi` prints `hi`. podman (Debian's 4.x) runs with all of its state in the test's
//! directory, no network (`netns = "none"`: no bridge, no iptables), the cgroupfs manager,
//! and an image podlab builds and saves as an OCI layout (no registry, no internet).

mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use common::{TestRoot, text};

fn runtime_bin() -> String {
    std::env::var("PODLAB_RUNTIME_BIN").unwrap_or_else(|_| env!("CARGO_BIN_EXE_podlab-runtime").to_string())
}

/// podman with every path inside `s` (the files follow the containers.conf(5) and
/// containers-storage.conf(5) formats).
struct Podman {
    s: PathBuf,
}

impl Podman {
    fn new(s: &Path) -> Podman {
        for d in [
            "etc",
            "root",
            "runroot",
            "tmp",
            "home/.config/containers",
            "xdg/run",
            "networks",
            "hooks",
            "cache",
            "vartmp",
        ] {
            std::fs::create_dir_all(s.join(d)).unwrap();
        }
        // Without CAP_SYS_RESOURCE a runtime cannot raise rlimits past the caller's hard limit,
        // and podman asks for 1048576 open files by default: ask for what we have.
        let limits = std::fs::read_to_string("/proc/self/limits").unwrap();
        let hard = |name: &str| -> String {
            let line = limits.lines().find(|l| l.starts_with(name)).unwrap();
            let v = line[name.len()..].split_whitespace().nth(1).unwrap().to_string();
            if v == "unlimited" { "1048576".into() } else { v }
        };
        let nproc = hard("Max processes").parse::<u64>().unwrap_or(32768).min(32768);
        let conf = format!(
            r#"[containers]
netns = "none"
log_driver = "k8s-file"
default_ulimits = ["nofile={nofile}:{nofile}", "nproc={nproc}:{nproc}"]

[network]
network_backend = "cni"
network_config_dir = "{s}/networks"

[engine]
cgroup_manager = "cgroupfs"
events_logger = "file"
events_logfile_path = "{s}/tmp/events.log"
lock_type = "file"
num_locks = 64
tmp_dir = "{s}/tmp"
static_dir = "{s}/root/libpod"
volume_path = "{s}/root/volumes"
hooks_dir = ["{s}/hooks"]
image_copy_tmp_dir = "{s}/vartmp"
runtime_supports_json = ["crun", "runc", "podlab-runtime"]
"#,
            nofile = hard("Max open files"),
            s = s.display()
        );
        std::fs::write(s.join("etc/containers.conf"), conf).unwrap();
        std::fs::write(
            s.join("etc/storage.conf"),
            format!("[storage]\ndriver = \"vfs\"\ngraphroot = \"{0}/root\"\nrunroot = \"{0}/runroot\"\n", s.display()),
        )
        .unwrap();
        std::fs::write(
            s.join("etc/registries.conf"),
            "unqualified-search-registries = []\nshort-name-mode = \"disabled\"\n",
        )
        .unwrap();
        let accept = r#"{"":[{"type":"insecureAcceptAnything"}]}"#;
        std::fs::write(
            s.join("home/.config/containers/policy.json"),
            format!(
                r#"{{"default":[{{"type":"reject"}}],"transports":{{"oci":{accept},"containers-storage":{accept}}}}}"#
            ),
        )
        .unwrap();
        std::fs::write(s.join("etc/auth.json"), r#"{"auths":{}}"#).unwrap();
        Podman { s: s.to_path_buf() }
    }

    fn cmd(&self, args: &[&str]) -> Command {
        let s = &self.s;
        let mut c = Command::new("podman");
        c.env_clear()
            .env("PATH", "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin")
            .env("CONTAINERS_CONF", s.join("etc/containers.conf"))
            .env("CONTAINERS_STORAGE_CONF", s.join("etc/storage.conf"))
            .env("CONTAINERS_REGISTRIES_CONF", s.join("etc/registries.conf"))
            .env("REGISTRY_AUTH_FILE", s.join("etc/auth.json"))
            .env("HOME", s.join("home"))
            .env("XDG_RUNTIME_DIR", s.join("xdg/run"))
            .env("TMPDIR", s.join("tmp"))
            .arg("--root")
            .arg(s.join("root"))
            .arg("--runroot")
            .arg(s.join("runroot"))
            .arg("--tmpdir")
            .arg(s.join("tmp"))
            .args(["--storage-driver", "vfs", "--cgroup-manager", "cgroupfs", "--events-backend", "file"])
            .arg("--runtime")
            .arg(runtime_bin())
            .args(args);
        c
    }

    fn run(&self, args: &[&str]) -> Output {
        self.cmd(args)
            .stdin(std::process::Stdio::null())
            .output()
            .expect("run podman (scripts/install-deps.sh --test installs it)")
    }

    fn ok(&self, args: &[&str]) -> String {
        let out = self.run(args);
        assert!(
            out.status.success(),
            "podman {args:?} failed ({:?}): {}{}",
            out.status,
            text(&out.stdout),
            text(&out.stderr)
        );
        text(&out.stdout)
    }

    /// `podman pull oci:LAYOUT` in a private mount namespace: podman 4 writes a blob cache
    /// under /var/lib/containers and unpacks into /var/tmp whatever --root says, so both
    /// are covered by the test's own directories there.
    fn pull_layout(&self, layout: &Path) -> String {
        let s = &self.s;
        let cache = if Path::new("/var/lib/containers").is_dir() {
            format!("mount --bind {0}/cache /var/lib/containers", s.display())
        } else {
            "mount -t tmpfs tmpfs /var/lib && mkdir -p /var/lib/containers".to_string()
        };
        let podman = self.cmd(&["pull", "-q", &format!("oci:{}:latest", layout.display())]);
        let argv: Vec<String> = std::iter::once(podman.get_program().to_string_lossy().to_string())
            .chain(podman.get_args().map(|a| format!("'{}'", a.to_string_lossy())))
            .collect();
        let script = format!("{cache} && mount --bind {0}/vartmp /var/tmp && exec {1}", s.display(), argv.join(" "));
        let mut c = Command::new("unshare");
        c.args(["--mount", "--propagation", "private", "sh", "-c", &script]);
        for (k, v) in podman.get_envs() {
            match v {
                Some(v) => c.env(k, v),
                None => c.env_remove(k),
            };
        }
        let out = c.output().unwrap();
        assert!(out.status.success(), "podman pull failed: {}", text(&out.stderr));
        text(&out.stdout).trim().to_string()
    }
}

impl Drop for Podman {
    fn drop(&mut self) {
        let _ = self.cmd(&["rm", "-a", "-f", "-t", "0"]).output();
        let _ = self.cmd(&["system", "reset", "--force"]).output();
        // podman keeps its parent cgroups (libpod_parent/conmon) once made; remove them if empty.
        let bases: Vec<PathBuf> = if common::is_cgroup2() {
            vec![PathBuf::from("/sys/fs/cgroup")]
        } else {
            std::fs::read_dir("/sys/fs/cgroup").map(|d| d.flatten().map(|e| e.path()).collect()).unwrap_or_default()
        };
        for base in bases {
            let _ = std::fs::remove_dir(base.join("libpod_parent/conmon"));
            let _ = std::fs::remove_dir(base.join("libpod_parent"));
        }
    }
}

#[test]
fn podman_runs_containers_with_podlab_runtime() {
    let t = TestRoot::new("podman");
    let out = t.run(&["image", "build", "busybox"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let layout = t.dir.join("layout");
    let out = t.run(&["image", "save", "busybox", layout.to_str().unwrap()]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let podman = Podman::new(&t.dir.join("podman"));
    let image = podman.pull_layout(&layout);
    assert!(!image.is_empty(), "podman pull printed no image id");

    // The issue's command.
    assert_eq!(podman.ok(&["run", "--rm", &image, "echo", "hi"]), "hi\n");
    // Exit codes come back through conmon; a missing program is podman's 127.
    assert_eq!(podman.run(&["run", "--rm", &image, "sh", "-c", "exit 3"]).status.code(), Some(3));
    let missing = podman.run(&["run", "--rm", &image, "/no/such/program"]);
    assert_eq!(missing.status.code(), Some(127), "{}", text(&missing.stderr));
    // A detached container: exec (podman passes --process FILE --detach --pid-file), pause,
    // unpause (our resume), stop (kill 15 then 9), rm (delete --force).
    let id = podman.ok(&["run", "-d", &image, "sleep", "1000"]).trim().to_string();
    assert_eq!(podman.ok(&["exec", &id, "sh", "-c", "echo there; cat /proc/1/cmdline"]), "there\nsleep\u{0}1000\u{0}");
    podman.ok(&["pause", &id]);
    assert!(podman.ok(&["inspect", "-f", "{{.State.Status}}", &id]).contains("paused"));
    podman.ok(&["unpause", &id]);
    podman.ok(&["rm", "-f", "-t", "0", &id]);
    assert!(podman.ok(&["ps", "-aq"]).trim().is_empty(), "podman still lists containers");
    // podlab-runtime kept its state under its default root: nothing of these containers is left.
    let left: Vec<_> = std::fs::read_dir(podlab::runtime::cli::default_root())
        .map(|d| d.flatten().map(|e| e.file_name()).filter(|n| n.to_string_lossy().len() == 64).collect())
        .unwrap_or_default();
    assert!(left.is_empty(), "podlab-runtime state left behind: {left:?}");
}
