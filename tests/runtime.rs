//! The OCI runtime seen from outside: runc's command line, the OCI state machine, exit codes,
//! errors, the container's view of itself, and escape attempts. Runs as root on the real kernel.

mod common;

use std::path::PathBuf;
use std::process::{Command, Output};

use common::{TestRoot, text, wait_until};
use serde_json::{Value, json};

/// The `podlab-runtime` binary (`PODLAB_RUNTIME_BIN` overrides it for the VM lane).
fn runtime_bin() -> String {
    std::env::var("PODLAB_RUNTIME_BIN").unwrap_or_else(|_| env!("CARGO_BIN_EXE_podlab-runtime").to_string())
}

/// A test's runtime: its own state root and bundles.
struct Rt {
    t: TestRoot,
    root: PathBuf,
}

impl Rt {
    fn new(name: &str) -> Rt {
        let t = TestRoot::new(&format!("rt-{name}"));
        let root = t.dir.join("state");
        Rt { t, root }
    }

    fn cmd(&self, args: &[&str]) -> Command {
        let mut c = Command::new(runtime_bin());
        c.arg("--root").arg(&self.root).args(args);
        c
    }

    fn run(&self, args: &[&str]) -> Output {
        self.cmd(args).output().expect("run podlab-runtime")
    }

    fn ok(&self, args: &[&str]) -> String {
        let out = self.run(args);
        assert!(out.status.success(), "podlab-runtime {args:?} failed: {}{}", text(&out.stdout), text(&out.stderr));
        text(&out.stdout)
    }

    /// For `create` and `run --detach`: the container keeps the stdio it is given, so pipes
    /// would stay open until it exits; give it /dev/null and a file for errors.
    fn detached(&self, args: &[&str]) {
        let err_file = self.t.dir.join("detached.err");
        let err = std::fs::File::create(&err_file).unwrap();
        let status = self
            .cmd(args)
            .stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::null())
            .stderr(err)
            .status()
            .unwrap();
        assert!(
            status.success(),
            "podlab-runtime {args:?} failed: {}",
            std::fs::read_to_string(&err_file).unwrap_or_default()
        );
    }

    /// Fails, and the error names `needle`.
    fn fails(&self, args: &[&str], needle: &str) {
        let out = self.run(args);
        assert!(!out.status.success(), "podlab-runtime {args:?} should fail");
        let err = text(&out.stderr);
        assert!(err.contains(needle), "error of {args:?} should mention {needle:?}: {err}");
    }

    /// A bundle named `name` running `args` on the shared BusyBox rootfs (read-only root).
    fn bundle(&self, name: &str, args: &[&str], edit: impl FnOnce(&mut Value)) -> PathBuf {
        let rootfs = self.t.rootfs();
        let dir = self.t.dir.join("bundles").join(name);
        std::fs::create_dir_all(&dir).unwrap();
        let out = Command::new(runtime_bin()).args(["spec", "--bundle", dir.to_str().unwrap()]).output().unwrap();
        assert!(out.status.success(), "spec: {}", text(&out.stderr));
        let file = dir.join("config.json");
        let mut spec: Value = serde_json::from_slice(&std::fs::read(&file).unwrap()).unwrap();
        spec["root"]["path"] = json!(rootfs);
        spec["process"]["terminal"] = json!(false);
        spec["process"]["args"] = json!(args);
        edit(&mut spec);
        std::fs::write(&file, serde_json::to_vec_pretty(&spec).unwrap()).unwrap();
        dir
    }

    fn state(&self, id: &str) -> Value {
        serde_json::from_str(&self.ok(&["state", id])).unwrap()
    }

    fn status(&self, id: &str) -> String {
        self.state(id)["status"].as_str().unwrap().to_string()
    }

    /// Nothing left: no container directories, no cgroups, no mounts.
    fn assert_clean(&self, ids: &[&str]) {
        let left: Vec<_> =
            std::fs::read_dir(&self.root).map(|d| d.flatten().map(|e| e.file_name()).collect()).unwrap_or_default();
        assert!(left.is_empty(), "containers left in {}: {left:?}", self.root.display());
        for id in ids {
            for base in common::cgroup_bases() {
                let d = base.join("podlab/runtime").join(id);
                assert!(!d.exists(), "cgroup left behind: {}", d.display());
            }
        }
        self.t.assert_clean();
    }
}

impl Drop for Rt {
    /// A failed test still removes its containers (and their cgroups).
    fn drop(&mut self) {
        for entry in std::fs::read_dir(&self.root).into_iter().flatten().flatten() {
            let _ = self.cmd(&["delete", "--force", &entry.file_name().to_string_lossy()]).output();
        }
    }
}

fn id(name: &str) -> String {
    format!("t{}-{name}", std::process::id())
}

#[test]
fn lifecycle_follows_the_oci_state_machine() {
    let rt = Rt::new("life");
    let b = rt.bundle("life", &["sleep", "1000"], |_| {});
    let c = id("life");
    let pid_file = rt.t.dir.join("pid");
    rt.detached(&["create", "--bundle", b.to_str().unwrap(), "--pid-file", pid_file.to_str().unwrap(), &c]);
    let state = rt.state(&c);
    assert_eq!(state["status"], "created");
    assert_eq!(state["ociVersion"], "1.0.2");
    assert_eq!(state["bundle"], json!(b));
    let pid = state["pid"].as_i64().unwrap();
    assert_eq!(std::fs::read_to_string(&pid_file).unwrap(), pid.to_string(), "pid file = state pid");
    // Created: the init waits, the program has not run.
    assert!(std::fs::read_to_string(format!("/proc/{pid}/cmdline")).unwrap().contains("__rtinit"));
    rt.fails(&["create", "--bundle", b.to_str().unwrap(), &c], "already exists");

    rt.ok(&["start", &c]);
    assert_eq!(rt.status(&c), "running");
    assert_eq!(std::fs::read_to_string(format!("/proc/{pid}/cmdline")).unwrap(), "sleep\u{0}1000\u{0}");
    rt.fails(&["start", &c], "running");
    rt.fails(&["delete", &c], "not stopped");
    let list: Value = serde_json::from_str(&rt.ok(&["list", "--format", "json"])).unwrap();
    assert_eq!(list[0]["id"], json!(c));
    assert!(rt.ok(&["list", "-q"]).contains(&c));
    let pids: Vec<i64> = serde_json::from_str(&rt.ok(&["ps", "--format", "json", &c])).unwrap();
    assert_eq!(pids, vec![pid]);

    rt.ok(&["kill", &c, "KILL"]);
    assert!(wait_until(5, || rt.status(&c) == "stopped"), "kill did not stop it");
    assert_eq!(rt.state(&c)["pid"], 0);
    rt.fails(&["kill", &c], "not running");
    rt.ok(&["delete", &c]);
    rt.fails(&["state", &c], "does not exist");
    rt.assert_clean(&[&c]);
}

#[test]
fn errors_name_the_problem_and_leave_nothing() {
    let rt = Rt::new("err");
    for cmd in ["state", "start", "delete", "pause", "resume"] {
        rt.fails(&[cmd, "nosuch"], "does not exist");
    }
    rt.fails(&["kill", "nosuch", "TERM"], "does not exist");
    rt.fails(&["state", "../etc"], "invalid container id");
    rt.fails(&["kill", "x", "NOPE"], "unknown signal");
    let empty = rt.t.dir.join("empty");
    std::fs::create_dir_all(&empty).unwrap();
    rt.fails(&["create", "--bundle", empty.to_str().unwrap(), &id("err")], "config.json");
    // A program that is not there fails at create, like runc.
    let b = rt.bundle("missing", &["no-such-program"], |_| {});
    let c = id("missing");
    rt.fails(&["create", "--bundle", b.to_str().unwrap(), &c], "executable file not found");
    // A bad spec fails with the field named; --log gets a JSON line.
    let b = rt.bundle("bad", &["true"], |s| s["linux"]["rootfsPropagation"] = json!("sideways"));
    let log = rt.t.dir.join("log.json");
    let out = rt
        .cmd(&["--log", log.to_str().unwrap(), "--log-format", "json", "create", "--bundle", b.to_str().unwrap(), &c])
        .output()
        .unwrap();
    assert!(!out.status.success());
    let line: Value = serde_json::from_str(std::fs::read_to_string(&log).unwrap().lines().next().unwrap()).unwrap();
    assert_eq!(line["level"], "error");
    assert!(line["msg"].as_str().unwrap().contains("rootfsPropagation"), "{line}");
    rt.assert_clean(&[&c, &id("err")]);
}

#[test]
fn run_returns_exit_codes_and_reports_oom() {
    let rt = Rt::new("run");
    let b = rt.bundle("exit3", &["sh", "-c", "exit 3"], |_| {});
    let out = rt.run(&["run", "--bundle", b.to_str().unwrap(), &id("exit3")]);
    assert_eq!(out.status.code(), Some(3), "{}", text(&out.stderr));
    // Killed from outside while `run` waits: 128 + SIGKILL.
    let b = rt.bundle("sig", &["sleep", "1000"], |_| {});
    let mut running = rt
        .cmd(&["run", "--bundle", b.to_str().unwrap(), &id("sig")])
        .stdout(std::process::Stdio::null())
        .spawn()
        .unwrap();
    assert!(wait_until(10, || rt.run(&["state", &id("sig")]).status.success() && rt.status(&id("sig")) == "running"));
    rt.ok(&["kill", &id("sig"), "9"]);
    assert_eq!(running.wait().unwrap().code(), Some(137));
    let b = rt.bundle("oom", &["sh", "-c", "x=$(head -c 200000000 /dev/zero | tr '\\0' a); echo survived"], |s| {
        s["linux"]["resources"]["memory"] = json!({"limit": 32 * 1024 * 1024, "swap": 32 * 1024 * 1024});
    });
    let out = rt.run(&["run", "--bundle", b.to_str().unwrap(), &id("oom")]);
    assert_eq!(out.status.code(), Some(137), "{}{}", text(&out.stdout), text(&out.stderr));
    assert!(text(&out.stderr).contains("OOM"), "{}", text(&out.stderr));
    // An image's user *name* is looked up in the container's /etc/passwd, and HOME with it.
    let b = rt.bundle("user", &["sh", "-c", "id -u; id -g; echo $HOME"], |s| {
        s["annotations"] = json!({"org.podlab.image.user": "nobody"});
        s["process"]["env"] = json!(["PATH=/bin"]);
    });
    let out = rt.run(&["run", "--bundle", b.to_str().unwrap(), &id("user")]);
    assert_eq!(text(&out.stdout), "65534\n65534\n/nonexistent\n", "{}", text(&out.stderr));
    let b = rt.bundle("nouser", &["true"], |s| s["annotations"] = json!({"org.podlab.image.user": "nginx"}));
    let out = rt.run(&["run", "--bundle", b.to_str().unwrap(), &id("nouser")]);
    assert!(text(&out.stderr).contains("\"nginx\" is not in the container's /etc/passwd"), "{}", text(&out.stderr));
    // stdout and stderr are the caller's.
    let b = rt.bundle("io", &["sh", "-c", "echo out; echo err >&2"], |_| {});
    let out = rt.run(&["run", "--bundle", b.to_str().unwrap(), &id("io")]);
    assert_eq!((text(&out.stdout).as_str(), text(&out.stderr).as_str()), ("out\n", "err\n"));
    rt.assert_clean(&[&id("exit3"), &id("sig"), &id("oom"), &id("io"), &id("user"), &id("nouser")]);
}

#[test]
fn exec_joins_the_running_container() {
    let rt = Rt::new("exec");
    let b = rt.bundle("exec", &["sleep", "1000"], |s| {
        s["process"]["env"] = json!(["PATH=/bin", "FROM=spec"]);
    });
    let c = id("exec");
    rt.detached(&["run", "--detach", "--bundle", b.to_str().unwrap(), &c]);
    let out = rt.ok(&[
        "exec",
        "--env",
        "EXTRA=1",
        "--cwd",
        "/dev",
        &c,
        "sh",
        "-c",
        "cat /proc/1/cmdline; echo; hostname; echo $FROM$EXTRA; pwd; echo $$",
    ]);
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines[0], "sleep\u{0}1000\u{0}", "pid 1 is the container's program");
    assert_eq!(lines[1], "podlab");
    assert_eq!(lines[2], "spec1");
    assert_eq!(lines[3], "/dev");
    assert_ne!(lines[4], "1");
    assert_eq!(rt.run(&["exec", &c, "sh", "-c", "exit 7"]).status.code(), Some(7));
    assert_eq!(rt.ok(&["exec", "--user", "65534:65534", &c, "id", "-u"]).trim(), "65534");
    // --process process.json (what podman and containerd use).
    let proc_file = rt.t.dir.join("process.json");
    let process = json!({"terminal": false, "user": {"uid": 0, "gid": 0}, "args": ["sh", "-c", "echo from-json"], "env": ["PATH=/bin"], "cwd": "/"});
    std::fs::write(&proc_file, process.to_string()).unwrap();
    assert_eq!(rt.ok(&["exec", "--process", proc_file.to_str().unwrap(), &c]), "from-json\n");
    rt.fails(&["exec", &c, "no-such-program"], "not found");
    // Pause freezes every process; exec'd processes are in the cgroup too.
    rt.ok(&["pause", &c]);
    assert_eq!(rt.status(&c), "paused");
    rt.fails(&["pause", &c], "paused");
    rt.ok(&["resume", &c]);
    assert_eq!(rt.status(&c), "running");
    rt.ok(&["delete", "--force", &c]);
    rt.assert_clean(&[&c]);
}

/// The same bundle under runc and podlab: hostname, mounts, capabilities, no_new_privs,
/// seccomp mode, cgroup limits, ids and environment match.
#[test]
fn matches_runc_on_the_same_bundle() {
    let rt = Rt::new("runc");
    let script = "hostname; id; env | sort; grep -E '^(CapInh|CapPrm|CapEff|CapBnd|CapAmb|NoNewPrivs|Seccomp):' /proc/self/status; \
        awk '{print $5, $9}' /proc/self/mountinfo | sort; \
        for f in memory/memory.limit_in_bytes pids/pids.max cpu/cpu.cfs_quota_us cpu/cpu.shares memory.max pids.max cpu.max; do \
        [ -f /sys/fs/cgroup/$f ] && echo $f $(cat /sys/fs/cgroup/$f); done; ls -ln /dev | awk '{print $1, $5, $6, $NF}'";
    let profile = serde_json::to_value(podlab::primitives::seccomp::default_profile()).unwrap();
    let b = rt.bundle("cmp", &["sh", "-c", script], |s| {
        s["process"]["env"] = json!(["PATH=/bin", "A=1"]);
        s["process"]["user"] = json!({"uid": 1000, "gid": 1000, "additionalGids": [10, 20]});
        s["linux"]["seccomp"] = profile;
        s["linux"]["resources"]["memory"] = json!({"limit": 64 * 1024 * 1024});
        s["linux"]["resources"]["pids"] = json!({"limit": 50});
        s["linux"]["resources"]["cpu"] = json!({"quota": 50000, "period": 100000, "shares": 512});
    });
    let ours = rt.run(&["run", "--bundle", b.to_str().unwrap(), &id("cmp")]);
    assert!(ours.status.success(), "podlab: {}", text(&ours.stderr));
    let runc_root = rt.t.dir.join("runc-state");
    let theirs = Command::new("runc")
        .arg("--root")
        .arg(&runc_root)
        .args(["run", "--bundle", b.to_str().unwrap(), &id("cmpr")])
        .output()
        .expect("run runc (scripts/install-deps.sh --test installs it)");
    assert!(theirs.status.success(), "runc: {}", text(&theirs.stderr));
    let normalise = |s: &str| -> Vec<String> { s.lines().map(|l| l.to_string()).collect() };
    let (o, t) = (normalise(&text(&ours.stdout)), normalise(&text(&theirs.stdout)));
    for needle in ["Seccomp:\t2", "NoNewPrivs:\t1", "podlab", "uid=1000 gid=1000 groups=10,20"] {
        assert!(o.iter().any(|l| l.contains(needle)), "{needle} missing from podlab's view: {o:#?}");
    }
    assert_eq!(o, t, "podlab and runc differ:\npodlab: {o:#?}\nrunc: {t:#?}");
    rt.assert_clean(&[&id("cmp")]);
}

#[test]
fn escape_attempts_fail() {
    let rt = Rt::new("escape");
    let profile = serde_json::to_value(podlab::primitives::seccomp::default_profile()).unwrap();
    let docker_caps: Vec<String> = podlab::primitives::caps::DEFAULT_CAPS.iter().map(|c| c.to_string()).collect();
    let b = rt.bundle("esc", &["sleep", "1000"], |s| {
        s["linux"]["seccomp"] = profile;
        s["process"]["noNewPrivileges"] = json!(false);
        for set in ["bounding", "effective", "permitted"] {
            s["process"]["capabilities"][set] = json!(docker_caps);
        }
        s["process"]["capabilities"]["ambient"] = json!([]);
    });
    let c = id("esc");
    rt.detached(&["create", "--bundle", b.to_str().unwrap(), &c]);
    let pid = rt.state(&c)["pid"].as_i64().unwrap();
    // CVE-2019-5736: the waiting init is podlab itself; from inside, /proc/1/exe cannot be
    // opened for writing, and from the host a handle kept on it cannot be reopened for writing
    // either (it is a read-only copy), even after the process is gone.
    let attempt = rt.run(&["exec", &c, "sh", "-c", "echo x >> /proc/1/exe"]);
    assert!(!attempt.status.success(), "writing the init's binary from inside worked");
    let handle =
        nix::fcntl::open(format!("/proc/{pid}/exe").as_str(), nix::fcntl::OFlag::O_PATH, nix::sys::stat::Mode::empty())
            .unwrap();
    rt.ok(&["start", &c]);
    let reopen = format!("/proc/self/fd/{}", std::os::fd::AsRawFd::as_raw_fd(&handle));
    let w = std::fs::OpenOptions::new().append(true).open(&reopen);
    // EROFS; or ETXTBSY while another test runs the same binary (checked before EROFS).
    let errno = w.map(|_| ()).map_err(|e| e.raw_os_error());
    assert!(matches!(errno, Err(Some(libc::EROFS | libc::ETXTBSY))), "the re-exec'd binary was writable: {errno:?}");
    let st = nix::sys::statvfs::fstatvfs(&handle).unwrap();
    assert!(
        st.flags().contains(nix::sys::statvfs::FsFlags::ST_RDONLY),
        "the init's binary is not on a read-only mount"
    );
    // Each attempt must fail for a security reason (EPERM, EACCES or EROFS), not by accident.
    let mut tries = vec![
        "mount -t tmpfs none /mnt",
        "unshare -U -r true",
        "unshare -m true",
        "insmod /bin/busybox",
        "echo x > /proc/sys/kernel/domainname",
        "echo never > /sys/kernel/mm/transparent_hugepage/enabled",
        "echo 0 > /sys/fs/cgroup/pids/pids.max; echo max > /sys/fs/cgroup/pids.max",
    ];
    if !common::is_cgroup2() {
        // Device rules need an eBPF program on cgroup v2, which podlab does not load yet.
        tries.push("mknod /tmp/sda b 8 0 && head -c 1 /tmp/sda");
    }
    for attempt in tries {
        let script = format!(
            "out=$( ({attempt}) 2>&1 ); echo \"$out\" | grep -qiE 'not permitted|denied|read-only' && echo blocked || echo \"escaped: $out\""
        );
        let out = rt.run(&["exec", &c, "sh", "-c", &script]);
        assert_eq!(text(&out.stdout).trim(), "blocked", "{attempt:?} was not blocked: {}", text(&out.stderr));
    }
    // Masked paths read as empty (the host's are not): /proc/timer_list; and /proc/kcore
    // (when this kernel has one) gives nothing either.
    assert!(!std::fs::read_to_string("/proc/timer_list").unwrap().is_empty());
    assert_eq!(rt.ok(&["exec", &c, "sh", "-c", "wc -c < /proc/timer_list"]).trim(), "0");
    assert_eq!(rt.ok(&["exec", &c, "sh", "-c", "cat /proc/kcore 2>/dev/null | wc -c"]).trim(), "0");
    // The container's /sys/fs/cgroup shows its own cgroup in every hierarchy: no other
    // cgroup of the host (a child directory) is visible.
    let others = rt.ok(&["exec", &c, "sh", "-c", "find /sys/fs/cgroup/ -mindepth 2 -type d | head -3"]);
    assert_eq!(others.trim(), "", "host cgroups visible inside the container");
    // Capabilities cannot be raised beyond the bounding set.
    let bnd = rt.ok(&["exec", &c, "grep", "CapBnd", "/proc/self/status"]);
    assert!(bnd.contains("00000000a80425fb"), "{bnd}");
    // No host fd leaks into the container (CVE-2024-21626): only 0-2 (+ the one ls opens).
    let fds = rt.ok(&["exec", &c, "ls", "/proc/1/fd"]);
    assert_eq!(fds.split_whitespace().collect::<Vec<_>>(), vec!["0", "1", "2"], "fds of pid 1: {fds}");
    rt.ok(&["delete", "--force", &c]);
    rt.assert_clean(&[&c]);
}

#[test]
fn console_socket_receives_the_terminal() {
    use std::os::unix::net::UnixListener;
    let rt = Rt::new("tty");
    let b = rt.bundle("tty", &["sh", "-c", "tty; echo hello-from-tty; sleep 1000"], |s| {
        s["process"]["terminal"] = json!(true)
    });
    let sock = rt.t.dir.join("console.sock");
    let listener = UnixListener::bind(&sock).unwrap();
    let c = id("tty");
    rt.ok(&["create", "--bundle", b.to_str().unwrap(), "--console-socket", sock.to_str().unwrap(), &c]);
    let (conn, _) = listener.accept().unwrap();
    let mut buf = [0u8; 64];
    let mut space = nix::cmsg_space!([std::os::fd::RawFd; 1]);
    let mut iov = [std::io::IoSliceMut::new(&mut buf)];
    let msg = nix::sys::socket::recvmsg::<()>(
        std::os::fd::AsRawFd::as_raw_fd(&conn),
        &mut iov,
        Some(&mut space),
        nix::sys::socket::MsgFlags::empty(),
    )
    .unwrap();
    let fd = msg
        .cmsgs()
        .unwrap()
        .find_map(|c| match c {
            nix::sys::socket::ControlMessageOwned::ScmRights(fds) => fds.first().copied(),
            _ => None,
        })
        .expect("a terminal fd");
    rt.ok(&["start", &c]);
    // SAFETY: the fd came to us over SCM_RIGHTS and nothing else owns it.
    let mut master = unsafe { <std::fs::File as std::os::fd::FromRawFd>::from_raw_fd(fd) };
    let mut seen = String::new();
    let ok = wait_until(10, || {
        let mut chunk = [0u8; 256];
        if let Ok(n) = std::io::Read::read(&mut master, &mut chunk) {
            seen.push_str(&String::from_utf8_lossy(&chunk[..n]));
        }
        seen.contains("hello-from-tty")
    });
    assert!(ok, "no output on the terminal: {seen:?}");
    assert!(seen.contains("/dev/pts/0"), "tty: {seen:?}");
    rt.ok(&["delete", "--force", &c]);
    rt.assert_clean(&[&c]);
}

/// OCI hooks run at their points with the state on stdin; a failing createRuntime hook fails
/// `create` and leaves nothing.
#[test]
fn hooks_run_at_their_points() {
    let rt = Rt::new("hooks");
    let out = rt.t.dir.join("hooks");
    std::fs::create_dir_all(&out).unwrap();
    let o = out.to_str().unwrap().to_string();
    let host_hook = |name: &str| json!({"path": "/bin/sh", "args": ["sh", "-c", format!("{{ cat; echo; echo $HOOK_ENV; }} > {o}/{name}.json")], "env": ["HOOK_ENV=yes"]});
    let b = rt.bundle("hooks", &["sh", "-c", "cat /out/start.txt"], |s| {
        s["mounts"]
            .as_array_mut()
            .unwrap()
            .push(json!({"destination": "/out", "type": "bind", "source": o, "options": ["rbind", "rw"]}));
        s["hooks"] = json!({
            "createRuntime": [host_hook("createRuntime")],
            "createContainer": [host_hook("createContainer")],
            // Inside the container: its own /bin/sh, after pivot_root.
            "startContainer": [{"path": "/bin/sh", "args": ["sh", "-c", "hostname > /out/start.txt"]}],
            "poststart": [host_hook("poststart")],
            "poststop": [host_hook("poststop")],
        });
    });
    let c = id("hooks");
    let run = rt.run(&["run", "--bundle", b.to_str().unwrap(), &c]);
    assert!(run.status.success(), "{}", text(&run.stderr));
    assert_eq!(text(&run.stdout), "podlab\n", "startContainer ran inside the container, before the program");
    for (name, status) in [
        ("createRuntime", "creating"),
        ("createContainer", "creating"),
        ("poststart", "running"),
        ("poststop", "stopped"),
    ] {
        let got = std::fs::read_to_string(out.join(format!("{name}.json")))
            .unwrap_or_else(|_| panic!("{name} hook did not run"));
        let (state, env) = got.split_once('\n').unwrap();
        let state: Value = serde_json::from_str(state).unwrap();
        assert_eq!(state["id"], json!(c), "{name}: {state}");
        assert_eq!(state["status"], status, "{name}: {state}");
        assert_eq!(env.trim(), "yes", "{name}: the hook's env");
    }
    // A startContainer hook alone still gets the state (status "created") on stdin.
    let b = rt.bundle("startonly", &["true"], |s| {
        s["mounts"]
            .as_array_mut()
            .unwrap()
            .push(json!({"destination": "/out", "type": "bind", "source": o, "options": ["rbind", "rw"]}));
        s["hooks"] =
            json!({"startContainer": [{"path": "/bin/sh", "args": ["sh", "-c", "cat > /out/startonly.json"]}]});
    });
    let run = rt.run(&["run", "--bundle", b.to_str().unwrap(), &id("startonly")]);
    assert!(run.status.success(), "{}", text(&run.stderr));
    let state: Value = serde_json::from_str(&std::fs::read_to_string(out.join("startonly.json")).unwrap()).unwrap();
    assert_eq!((state["id"].clone(), state["status"].clone()), (json!(id("startonly")), json!("created")));
    // A failing createRuntime hook: create fails naming it, and nothing is left.
    let b = rt.bundle("badhook", &["true"], |s| {
        s["hooks"] = json!({"createRuntime": [{"path": "/bin/false"}]});
    });
    rt.fails(&["create", "--bundle", b.to_str().unwrap(), &id("badhook")], "CreateRuntime hook 0 (/bin/false)");
    rt.assert_clean(&[&c, &id("badhook"), &id("startonly")]);
}

/// `--preserve-fds N` passes fds 3..3+N on; every other fd of the caller stays outside.
#[test]
fn preserve_fds_passes_exactly_those() {
    use std::os::fd::AsRawFd;
    use std::os::unix::process::CommandExt;
    let rt = Rt::new("fds");
    let b = rt.bundle("fds", &["sh", "-c", "cat <&3; ls /proc/self/fd | tr '\\n' ' '"], |_| {});
    let passed = rt.t.dir.join("passed.txt");
    std::fs::write(&passed, "through fd 3\n").unwrap();
    let (a, b2) = (std::fs::File::open(&passed).unwrap(), std::fs::File::open(&passed).unwrap());
    let (fa, fb) = (a.as_raw_fd(), b2.as_raw_fd());
    let mut cmd = rt.cmd(&["run", "--preserve-fds", "1", "--bundle", b.to_str().unwrap(), &id("fds")]);
    // SAFETY: only dup2 between fork and exec.
    unsafe {
        cmd.pre_exec(move || {
            // fd 3: preserved; fd 4: open in the caller but not preserved.
            if libc::dup2(fa, 3) < 0 || libc::dup2(fb, 4) < 0 {
                return Err(std::io::Error::last_os_error());
            }
            // dup2 onto the same number keeps close-on-exec: clear it either way.
            for fd in [3, 4] {
                libc::fcntl(fd, libc::F_SETFD, 0);
            }
            Ok(())
        });
    }
    let out = cmd.output().unwrap();
    assert!(out.status.success(), "{}", text(&out.stderr));
    let said = text(&out.stdout);
    assert!(said.starts_with("through fd 3\n"), "{said}");
    // ls itself opens one more fd (the lowest free: 4 unless the caller's fd 4 leaked in).
    let fds: Vec<&str> = said.lines().nth(1).unwrap_or("").split_whitespace().collect();
    assert_eq!(fds, vec!["0", "1", "2", "3", "4"], "fds seen inside: {fds:?}");
    rt.assert_clean(&[&id("fds")]);
}

/// `podlab reset` force-deletes what `podlab runtime` left in its default root.
#[test]
fn reset_removes_runtime_containers() {
    let rt = Rt::new("reset");
    let b = rt.bundle("reset", &["sleep", "1000"], |_| {});
    let c = id("reset");
    let status = Command::new(common::podlab())
        .arg("--root")
        .arg(&rt.t.dir)
        .args(["runtime", "run", "--detach", "--bundle", b.to_str().unwrap(), &c])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .status()
        .unwrap();
    assert!(status.success());
    let default_root = rt.t.dir.join("run/runtime");
    assert!(default_root.join(&c).is_dir(), "podlab --root T runtime keeps state in T/run/runtime");
    let out = rt.t.run(&["reset"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(text(&out.stdout).contains(&c), "reset names the container: {}", text(&out.stdout));
    assert!(!default_root.join(&c).exists());
    rt.assert_clean(&[&c]);
}

#[test]
fn podlab_runtime_subcommand_and_features() {
    let rt = Rt::new("sub");
    let out = Command::new(common::podlab()).args(["runtime", "features"]).output().unwrap();
    assert!(out.status.success(), "{}", text(&out.stderr));
    let f: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert!(f["linux"]["namespaces"].as_array().unwrap().contains(&json!("pid")));
    assert_eq!(f["linux"]["seccomp"]["enabled"], true);
    // `podlab runtime --root DIR` is runc's --root (the state directory itself).
    let b = rt.bundle("sub", &["true"], |_| {});
    let out = Command::new(common::podlab())
        .args(["runtime", "--root", rt.root.to_str().unwrap(), "run", "--bundle", b.to_str().unwrap(), &id("sub")])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", text(&out.stderr));
    // `spec` refuses to overwrite.
    let out = Command::new(runtime_bin()).args(["spec", "--bundle", b.to_str().unwrap()]).output().unwrap();
    assert!(!out.status.success() && text(&out.stderr).contains("exists"));
    rt.assert_clean(&[&id("sub")]);
}
