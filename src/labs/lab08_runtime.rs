//! Lab 8, the runtime: one bundle, two OCI runtimes, the same container.
//!
//! An OCI runtime (runc, crun, podlab's own) turns a *bundle* — a directory holding
//! `config.json` and a root filesystem — into a running process: it creates the cgroup and
//! the namespaces, mounts the root and pivots into it, masks parts of /proc, drops
//! capabilities, sets no_new_privs and execs the program. Kubernetes never talks to it
//! directly (the kubelet asks containerd or CRI-O, which call the runtime), and because the
//! bundle is a standard, any runtime gives the same container. The learner writes the
//! config.json, runs it with `runc` and with `podlab runtime`, has the container write down
//! what it sees (capabilities, no_new_privs, mounts, its memory limit), compares the two,
//! and walks a container through the OCI states created → running → stopped.

use std::collections::BTreeMap;
use std::fs;
use std::io::ErrorKind;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use oci_spec::runtime::{LinuxMemoryBuilder, MountBuilder, Spec};

use super::{Ctx, Point, remove_workspace};
use crate::error::{Error, IoContext, Result};
use crate::explain::say;
use crate::runtime::container::{CreateOptions, Runtime};
use crate::runtime::spec;
use crate::runtime::state as rtstate;

/// The container ids the lab uses, one per runtime.
const RUNC_ID: &str = "lab08-runc";
const PODLAB_ID: &str = "lab08-podlab";

const HOSTNAME: &str = "lab08";

/// 64 MiB, as `resources.limits.memory: 64Mi` becomes `linux.resources.memory.limit`.
const MEMORY_LIMIT: i64 = 64 << 20;

/// The program the container runs (`sh /out/see.sh`); the guide shows the same file.
const SCRIPT: &str = r#"# What a process inside the container sees, written to /out/seen.txt.
{
  echo "hostname: $(hostname)"
  grep -E '^(Cap|NoNewPrivs|Seccomp)' /proc/self/status
  if [ -f /sys/fs/cgroup/memory.max ]; then
    echo "memory.max: $(cat /sys/fs/cgroup/memory.max)"
  else
    echo "memory.limit_in_bytes: $(cat /sys/fs/cgroup/memory/memory.limit_in_bytes)"
  fi
  echo "mounts (mount point, type, options):"
  awk '{print $5, $(NF-2), $6}' /proc/self/mountinfo
} > /out/seen.txt
sleep 1
"#;

/// The status lines both runtimes must agree on.
const CAP_KEYS: [&str; 5] = ["CapInh", "CapPrm", "CapEff", "CapBnd", "CapAmb"];

/// Where everything of the lab lives, below the workspace.
struct Paths {
    bundle: PathBuf,
    rootfs: PathBuf,
    out: PathBuf,
    /// `runc --root`: runc's state of the lab's containers (not /run/runc).
    runc_root: PathBuf,
    /// `podlab runtime --root` (not /run/podlab/runtime).
    podlab_root: PathBuf,
}

impl Paths {
    fn new(ws: &Path) -> Paths {
        Paths {
            bundle: ws.join("bundle"),
            rootfs: ws.join("bundle/rootfs"),
            out: ws.join("out"),
            runc_root: ws.join("state/runc"),
            podlab_root: ws.join("state/podlab"),
        }
    }

    fn runc_txt(&self) -> PathBuf {
        self.out.join("runc.txt")
    }

    fn podlab_txt(&self) -> PathBuf {
        self.out.join("podlab.txt")
    }

    fn runtime(&self) -> Runtime {
        Runtime { root: self.podlab_root.clone(), systemd_cgroup: false, explain: crate::explain::enabled() }
    }
}

/// The memory limit of the spec, if it sets one.
fn memory_limit(spec: &Spec) -> Option<i64> {
    spec.linux().as_ref()?.resources().as_ref()?.memory().as_ref()?.limit()
}

/// The lines of a seen.txt that must match between runtimes: `key -> value` in file order.
fn relevant_lines(text: &str) -> Vec<(String, String)> {
    text.lines()
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_string(), v.trim().to_string()))
        .filter(|(k, _)| k.starts_with("Cap") || k == "NoNewPrivs" || k.starts_with("memory."))
        .collect()
}

/// Compare what the two containers saw; Ok(summary) or Err(the first difference).
fn compare(runc: &str, podlab: &str) -> std::result::Result<String, String> {
    let (a, b) = (relevant_lines(runc), relevant_lines(podlab));
    let required = CAP_KEYS.iter().copied().chain(["NoNewPrivs"]);
    for (name, lines) in [("runc.txt", &a), ("podlab.txt", &b)] {
        for key in required.clone() {
            if !lines.iter().any(|(k, _)| k == key) {
                return Err(format!("{name} has no {key} line (grep it from /proc/self/status, see see.sh)"));
            }
        }
        if !lines.iter().any(|(k, _)| k.starts_with("memory.")) {
            return Err(format!(
                "{name} has no memory.limit_in_bytes: (v1) or memory.max: (v2) line with the cgroup's limit"
            ));
        }
    }
    let map_b: BTreeMap<&str, &str> = b.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    for (k, v) in &a {
        match map_b.get(k.as_str()) {
            Some(w) if w == v => {}
            Some(w) => return Err(format!("first difference: runc.txt has \"{k}: {v}\", podlab.txt \"{k}: {w}\"")),
            None => return Err(format!("first difference: runc.txt has \"{k}: {v}\", podlab.txt has no {k} line")),
        }
    }
    if let Some((k, _)) = b.iter().find(|(k, _)| !a.iter().any(|(ka, _)| ka == k)) {
        return Err(format!("first difference: podlab.txt has a {k} line, runc.txt has none"));
    }
    let (key, limit) = a.iter().find(|(k, _)| k.starts_with("memory.")).map(|(k, v)| (k.as_str(), v.as_str())).unzip();
    if limit != Some(&MEMORY_LIMIT.to_string()) {
        return Err(format!(
            "both saw {}: {}, not {MEMORY_LIMIT}: set the limit in config.json, then run both containers again",
            key.unwrap_or("memory"),
            limit.unwrap_or("?")
        ));
    }
    let eff = a.iter().find(|(k, _)| k == "CapEff").map(|(_, v)| v.as_str()).unwrap_or("?");
    Ok(format!("same capabilities (CapEff {eff}), NoNewPrivs and {} = {MEMORY_LIMIT}", key.unwrap_or("memory")))
}

/// Container ids in a runtime's state directory (each container is a directory there).
fn ids_in(root: &Path) -> Vec<String> {
    let mut ids: Vec<String> = fs::read_dir(root)
        .into_iter()
        .flatten()
        .flatten()
        .filter(|e| e.file_type().is_ok_and(|t| t.is_dir()))
        .filter_map(|e| e.file_name().to_str().map(str::to_string))
        .collect();
    ids.sort();
    ids
}

/// `runc --root ROOT ARGS...`, quietly, as an Output.
fn runc(root: &Path, args: &[&str]) -> std::io::Result<std::process::Output> {
    Command::new("runc").arg("--root").arg(root).args(args).stdin(Stdio::null()).output()
}

/// runc's status of a container ("created", "running", "stopped"), when runc can tell.
fn runc_status(root: &Path, id: &str) -> Option<String> {
    let out = runc(root, &["state", id]).ok().filter(|o| o.status.success())?;
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).ok()?;
    v["status"].as_str().map(str::to_string)
}

/// Every container left in the lab's runtime roots, as `id (runtime, status)`.
fn leftovers(p: &Paths) -> Vec<String> {
    let mut left = Vec::new();
    for id in ids_in(&p.runc_root) {
        let status = runc_status(&p.runc_root, &id).unwrap_or_else(|| "unknown".into());
        left.push(format!("{id} (runc, {status})"));
    }
    for id in ids_in(&p.podlab_root) {
        let status = rtstate::Container::load(&p.podlab_root, &id)
            .map(|c| c.status(&p.podlab_root).to_string())
            .unwrap_or_else(|_| "unknown".into());
        left.push(format!("{id} (podlab, {status})"));
    }
    left
}

fn non_empty(path: &Path) -> bool {
    fs::metadata(path).is_ok_and(|m| m.is_file() && m.len() > 0)
}

pub fn check(ctx: &Ctx) -> Result<Vec<Point>> {
    let p = Paths::new(&ctx.ws);
    let lab = ctx.ws.display();
    let bundle = p.bundle.display();
    let loaded = spec::load(&p.bundle);
    let valid = loaded.as_ref().map_err(|e| e.to_string()).and_then(|s| {
        spec::validate(s, &p.bundle).map_err(|e| e.to_string())?;
        Ok(())
    });
    let spec = loaded.as_ref().ok();

    let process = spec.and_then(|s| s.process().as_ref());
    let terminal = process.map(|pr| pr.terminal().unwrap_or(false));
    let nnp = process.and_then(|pr| pr.no_new_privileges()).unwrap_or(false);
    let hostname = spec.and_then(|s| s.hostname().clone());
    let process_ok = terminal == Some(false) && nnp && hostname.as_deref() == Some(HOSTNAME);
    let limit = spec.and_then(memory_limit);

    let (runc_txt, podlab_txt) = (p.runc_txt(), p.podlab_txt());
    let outputs = non_empty(&runc_txt) && non_empty(&podlab_txt);
    let same = if outputs {
        let read = |f: &Path| fs::read_to_string(f).map_err(|e| format!("{}: {e}", f.display()));
        read(&runc_txt).and_then(|a| compare(&a, &read(&podlab_txt)?))
    } else {
        Err("run both containers first".to_string())
    };
    let left = leftovers(&p);

    Ok(vec![
        Point::new(
            format!("{bundle}/config.json parses and validates (a root filesystem, args, namespaces)"),
            valid.is_ok(),
            match &valid {
                Ok(()) => String::new(),
                Err(why) => format!(
                    "{why} — mkdir -p {bundle} && podlab rootfs busybox {bundle}/rootfs && \
                     cd {bundle} && podlab runtime spec"
                ),
            },
        ),
        Point::new(
            format!("its process is not a terminal, sets noNewPrivileges, and the hostname is {HOSTNAME}"),
            process_ok,
            format!(
                "seen terminal {terminal:?}, noNewPrivileges {nnp}, hostname {hostname:?}; \
                 jq '.process.terminal = false | .process.noNewPrivileges = true | .hostname = \"{HOSTNAME}\"'"
            ),
        ),
        Point::new(
            format!("it limits memory to 64 MiB (linux.resources.memory.limit = {MEMORY_LIMIT})"),
            limit == Some(MEMORY_LIMIT),
            format!("seen {limit:?}; jq '.linux.resources.memory = {{\"limit\": {MEMORY_LIMIT}}}'"),
        ),
        Point::new(
            format!("{} and {} exist and are not empty", runc_txt.display(), podlab_txt.display()),
            outputs,
            format!(
                "runc --root {lab}/state/runc run --bundle {bundle} {RUNC_ID} && mv {lab}/out/seen.txt {0}; \
                 podlab runtime --root {lab}/state/podlab run --bundle {bundle} {PODLAB_ID} && \
                 mv {lab}/out/seen.txt {1}",
                runc_txt.display(),
                podlab_txt.display()
            ),
        ),
        Point::new(
            "both containers saw the same capability sets, NoNewPrivs and a 64 MiB memory limit",
            same.is_ok(),
            match &same {
                Ok(seen) => seen.clone(),
                Err(why) => format!("{why} (diff {0} {1})", runc_txt.display(), podlab_txt.display()),
            },
        ),
        Point::new(
            "no container of the lab is left (runc list and podlab runtime list are empty)",
            left.is_empty(),
            format!(
                "left: {}; runc --root {lab}/state/runc delete --force ID, \
                 podlab runtime --root {lab}/state/podlab delete --force ID",
                left.join(", ")
            ),
        ),
    ])
}

/// The lab's config.json: `podlab runtime spec` with the guide's edits.
fn lab_spec(out: &Path) -> Result<Spec> {
    let mut s = spec::default_spec();
    let process = s.process_mut().as_mut().ok_or_else(|| Error::invalid("the default spec has no process"))?;
    process.set_terminal(Some(false));
    process.set_args(Some(vec!["sh".to_string(), "/out/see.sh".to_string()]));
    process.set_no_new_privileges(Some(true));
    s.set_hostname(Some(HOSTNAME.to_string()));
    let memory = LinuxMemoryBuilder::default()
        .limit(MEMORY_LIMIT)
        .build()
        .map_err(|e| Error::invalid(format!("memory limit: {e}")))?;
    let resources = s
        .linux_mut()
        .as_mut()
        .and_then(|l| l.resources_mut().as_mut())
        .ok_or_else(|| Error::invalid("the default spec has no linux.resources"))?;
    resources.set_memory(Some(memory));
    let bind = MountBuilder::default()
        .destination("/out")
        .typ("bind")
        .source(out)
        .options(vec!["rbind".to_string(), "rw".to_string()])
        .build()
        .map_err(|e| Error::invalid(format!("the /out mount: {e}")))?;
    s.mounts_mut().get_or_insert_with(Vec::new).push(bind);
    Ok(s)
}

fn mkdir(path: &Path) -> Result<()> {
    say(format!("mkdir -p {}", path.display()));
    fs::create_dir_all(path).ctx("create directory", path)
}

/// What the container wrote, renamed after the runtime that ran it.
fn keep_seen(p: &Paths, dest: &Path) -> Result<()> {
    let seen = p.out.join("seen.txt");
    say(format!("mv {} {}", seen.display(), dest.display()));
    fs::rename(&seen, dest).ctx("rename the container's output", &seen)
}

pub fn solve(ctx: &Ctx) -> Result<()> {
    // Start over: containers or files of an earlier attempt would get in the way.
    reset(ctx)?;
    let p = Paths::new(&ctx.ws);
    let lab = ctx.ws.display();

    // 1. The bundle: a root filesystem and a config.json.
    mkdir(&p.bundle)?;
    say(format!("podlab rootfs busybox {}", p.rootfs.display()));
    super::ensure_rootfs(&p.rootfs)?;
    mkdir(&p.out)?;
    let script = p.out.join("see.sh");
    say(format!("cat > {} <<'EOF'\n{SCRIPT}EOF", script.display()));
    fs::write(&script, SCRIPT).ctx("write", &script)?;
    say(format!("cd {} && podlab runtime spec", p.bundle.display()));
    say(format!(
        "jq --arg out {lab}/out '.process.terminal = false | .process.args = [\"sh\", \"/out/see.sh\"] \
         | .process.noNewPrivileges = true | .hostname = \"{HOSTNAME}\" \
         | .linux.resources.memory = {{\"limit\": {MEMORY_LIMIT}}} \
         | .mounts += [{{\"destination\": \"/out\", \"type\": \"bind\", \"source\": $out, \"options\": [\"rbind\", \"rw\"]}}]' \
         config.json > config.new && mv config.new config.json"
    ));
    let config = lab_spec(&p.out)?;
    spec::save(&config, &p.bundle)?;
    spec::validate(&config, &p.bundle)?;

    // 2. runc runs the bundle.
    let bundle = p.bundle.display();
    say(format!("runc --root {lab}/state/runc run --bundle {bundle} {RUNC_ID}"));
    let out = Command::new("runc")
        .arg("--root")
        .arg(&p.runc_root)
        .args(["run", "--bundle"])
        .arg(&p.bundle)
        .arg(RUNC_ID)
        .stdin(Stdio::null())
        .status();
    match out {
        Ok(s) if s.success() => {}
        Ok(s) => return Err(Error::invalid(format!("runc run {RUNC_ID} failed ({s}); see runc's message above"))),
        Err(e) if e.kind() == ErrorKind::NotFound => {
            return Err(Error::Missing(
                "runc is not installed: apt-get install runc (or scripts/install-deps.sh --test)".into(),
            ));
        }
        Err(e) => return Err(Error::io("run", "runc", e)),
    }
    keep_seen(&p, &p.runc_txt())?;

    // 3. podlab runs the same bundle (the library call behind `podlab runtime run`).
    say(format!("podlab runtime --root {lab}/state/podlab run --bundle {bundle} {PODLAB_ID}"));
    let opts = CreateOptions { bundle: p.bundle.clone(), ..CreateOptions::default() };
    let code = p.runtime().run(PODLAB_ID, &opts, false)?;
    if code != 0 {
        return Err(Error::invalid(format!("container {PODLAB_ID} exited with {code}")));
    }
    keep_seen(&p, &p.podlab_txt())?;

    // 4. Compare.
    say(format!("diff {} {}", p.runc_txt().display(), p.podlab_txt().display()));
    let read = |f: &Path| fs::read_to_string(f).ctx("read", f);
    compare(&read(&p.runc_txt())?, &read(&p.podlab_txt())?).map_err(Error::invalid)?;
    Ok(())
}

pub fn reset(ctx: &Ctx) -> Result<bool> {
    let p = Paths::new(&ctx.ws);
    let mut removed = false;
    for id in ids_in(&p.runc_root) {
        say(format!("runc --root {} delete --force {id}", p.runc_root.display()));
        match runc(&p.runc_root, &["delete", "--force", &id]) {
            Ok(out) if !out.status.success() && runc_status(&p.runc_root, &id).is_some() => {
                return Err(Error::invalid(format!(
                    "runc delete --force {id} failed: {}",
                    String::from_utf8_lossy(&out.stderr).trim()
                )));
            }
            // Without runc there can be no runc container: the directory goes with the workspace.
            Ok(_) | Err(_) => {}
        }
        removed = true;
    }
    let rt = p.runtime();
    for id in ids_in(&p.podlab_root) {
        say(format!("podlab runtime --root {} delete --force {id}", p.podlab_root.display()));
        match rt.delete(&id, true) {
            Ok(()) | Err(Error::Missing(_)) => {}
            Err(e) => return Err(e),
        }
        removed = true;
    }
    Ok(remove_workspace(&ctx.ws)? || removed)
}

#[cfg(test)]
mod tests {
    use super::*;

    const SEEN: &str = "hostname: lab08\nCapInh:\t0000000000000000\nCapPrm:\t0000000020000420\n\
        CapEff:\t0000000020000420\nCapBnd:\t0000000020000420\nCapAmb:\t0000000000000000\nNoNewPrivs:\t1\n\
        Seccomp:\t0\nmemory.limit_in_bytes: 67108864\nmounts (mount point, type, options):\n/ ext4 ro,relatime\n";

    #[test]
    fn same_lines_pass_and_mounts_may_differ() {
        let other = SEEN.replace("/ ext4 ro,relatime", "/ overlay ro");
        assert!(compare(SEEN, &other).is_ok(), "{:?}", compare(SEEN, &other));
    }

    #[test]
    fn first_difference_is_named() {
        let other = SEEN.replace("CapAmb:\t0000000000000000", "CapAmb:\t0000000020000420");
        let why = compare(SEEN, &other).unwrap_err();
        assert!(why.contains("CapAmb: 0000000000000000") && why.contains("CapAmb: 0000000020000420"), "{why}");
    }

    #[test]
    fn missing_lines_and_wrong_limit_fail() {
        let no_nnp = SEEN.replace("NoNewPrivs:\t1\n", "");
        assert!(compare(SEEN, &no_nnp).unwrap_err().contains("no NoNewPrivs"));
        let unlimited = SEEN.replace("67108864", "9223372036854771712");
        assert!(compare(&unlimited, &unlimited).unwrap_err().contains("not 67108864"));
        assert!(compare("", "").is_err());
    }

    #[test]
    fn the_lab_spec_has_the_edits() {
        let s = lab_spec(Path::new("/x/out")).unwrap();
        assert_eq!(memory_limit(&s), Some(MEMORY_LIMIT));
        assert_eq!(s.hostname().as_deref(), Some(HOSTNAME));
        let pr = s.process().as_ref().unwrap();
        assert_eq!(pr.terminal(), Some(false));
        assert_eq!(pr.args().as_ref().unwrap()[1], "/out/see.sh");
        let m = s.mounts().as_ref().unwrap().last().unwrap();
        assert_eq!(m.destination(), Path::new("/out"));
        assert_eq!(m.source().as_deref(), Some(Path::new("/x/out")));
    }
}
