//! The runtime spec (config.json): our default against `runc spec`, a round trip through
//! save/load, a real `runc run` of our default spec, and validate()'s field-path errors.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;

use common::{TestRoot, text};
use oci_spec::runtime::{LinuxNamespaceBuilder, LinuxNamespaceType, MountBuilder, Spec};
use podlab::runtime::spec::{self, default_spec};

/// A bundle with an empty `rootfs/` directory: enough for validate().
fn bundle(root: &TestRoot) -> PathBuf {
    let b = root.dir.join("bundle");
    std::fs::create_dir_all(b.join("rootfs")).unwrap();
    b
}

fn validate_err(spec: &Spec, bundle: &Path) -> String {
    match spec::validate(spec, bundle) {
        Ok(()) => panic!("validate accepted a bad spec: {}", serde_json::to_string_pretty(spec).unwrap()),
        Err(e) => e.to_string(),
    }
}

fn assert_has(msg: &str, parts: &[&str]) {
    for p in parts {
        assert!(msg.contains(p), "expected {p:?} in the error:\n{msg}");
    }
}

#[test]
fn default_spec_round_trips_through_a_bundle() {
    let root = TestRoot::new("spec-roundtrip");
    let b = root.dir.join("bundle");
    spec::save(&default_spec(), &b).unwrap();
    let loaded = spec::load(&b).unwrap();
    assert_eq!(loaded, default_spec());
    let files: Vec<_> = std::fs::read_dir(&b).unwrap().flatten().map(|e| e.file_name()).collect();
    assert_eq!(files, ["config.json"], "no temporary file is left beside config.json");
    let raw = std::fs::read_to_string(b.join("config.json")).unwrap();
    assert!(raw.starts_with("{\n  \"ociVersion\": \"1.0.2-dev\""), "pretty JSON, ociVersion first:\n{raw}");
    // Saving again replaces the file.
    let mut changed = default_spec();
    changed.set_hostname(Some("other".into()));
    spec::save(&changed, &b).unwrap();
    assert_eq!(spec::load(&b).unwrap().hostname().as_deref(), Some("other"));
}

#[test]
fn runc_spec_output_loads_and_matches_our_default() {
    let root = TestRoot::new("spec-runc-spec");
    let b = root.dir.join("bundle");
    std::fs::create_dir_all(&b).unwrap();
    let out = Command::new("runc").args(["spec", "--bundle"]).arg(&b).output().expect("run runc spec");
    assert!(out.status.success(), "runc spec: {}", text(&out.stderr));
    let theirs = spec::load(&b).unwrap();
    assert_eq!(theirs.hostname().as_deref(), Some("runc"));

    // Our default is runc's, but for the documented differences: hostname, and the cgroup
    // namespace (accepted either way, should a runc version write it too).
    let mut ours = default_spec();
    ours.set_hostname(theirs.hostname().clone());
    let runc_has_cgroupns = theirs
        .linux()
        .as_ref()
        .and_then(|l| l.namespaces().as_ref())
        .is_some_and(|n| n.iter().any(|ns| ns.typ() == LinuxNamespaceType::Cgroup));
    if !runc_has_cgroupns {
        let linux = ours.linux_mut().as_mut().unwrap();
        let ns: Vec<_> =
            linux.namespaces().clone().unwrap().into_iter().filter(|n| n.typ() != LinuxNamespaceType::Cgroup).collect();
        linux.set_namespaces(Some(ns));
    }
    assert_eq!(ours, theirs, "default_spec() drifted from `runc spec`");
}

#[test]
fn runc_runs_our_default_spec() {
    let root = TestRoot::new("spec-runc-run");
    let b = root.dir.join("bundle");
    let rootfs = b.join("rootfs");
    let out = root.run(&["rootfs", "busybox", rootfs.to_str().unwrap()]);
    assert!(out.status.success(), "rootfs build failed: {}", text(&out.stderr));

    let mut s = default_spec();
    let process = s.process_mut().as_mut().unwrap();
    process.set_terminal(Some(false));
    process.set_args(Some(vec!["sh".into(), "-c".into(), "echo ok; hostname".into()]));
    spec::save(&s, &b).unwrap();
    spec::validate(&spec::load(&b).unwrap(), &b).unwrap();

    let state = root.dir.join("runc-state");
    let id = format!("test-{}", std::process::id());
    let runc = |args: &[&str]| Command::new("runc").arg("--root").arg(&state).args(args).output().expect("run runc");
    let out = Command::new("runc").arg("--root").arg(&state).args(["run", "-b"]).arg(&b).arg(&id).output().unwrap();
    if !out.status.success() {
        let _ = runc(&["delete", "--force", &id]);
    }
    assert!(out.status.success(), "runc run failed: {}{}", text(&out.stdout), text(&out.stderr));
    assert_eq!(text(&out.stdout), "ok\npodlab\n");

    // runc deletes the container when `run` returns: no state, no cgroup, no mounts.
    let left: Vec<_> =
        std::fs::read_dir(&state).map(|d| d.flatten().map(|e| e.file_name()).collect()).unwrap_or_default();
    assert!(left.is_empty(), "runc state left in {}: {left:?}", state.display());
    let cgroups: Vec<_> =
        common::cgroup_bases().into_iter().map(|base| base.join(&id)).filter(|d| d.exists()).collect();
    assert!(cgroups.is_empty(), "cgroups left behind: {cgroups:?}");
    root.assert_clean();
}

#[test]
fn validate_accepts_the_default_and_an_absolute_root() {
    let root = TestRoot::new("spec-valid");
    let b = bundle(&root);
    spec::validate(&default_spec(), &b).unwrap();
    let mut s = default_spec();
    s.root_mut().as_mut().unwrap().set_path(b.join("rootfs"));
    spec::validate(&s, Path::new("/nonexistent")).unwrap();
    // `..` that stays inside the root is fine.
    s.mounts_mut().as_mut().unwrap()[0].set_destination("/tmp/../proc".into());
    spec::validate(&s, &b).unwrap();
}

#[test]
fn validate_names_the_field_of_each_problem() {
    let root = TestRoot::new("spec-invalid");
    let b = bundle(&root);
    std::fs::write(b.join("afile"), "").unwrap();
    let file = b.join("config.json").display().to_string();
    let bad = |f: &dyn Fn(&mut Spec)| {
        let mut s = default_spec();
        f(&mut s);
        validate_err(&s, &b)
    };

    let m = bad(&|s| {
        s.set_version("2.0.0".into());
    });
    assert_has(&m, &[&file, "ociVersion: \"2.0.0\" is not supported"]);

    assert_has(
        &bad(&|s| {
            s.set_root(None);
        }),
        &["root: required"],
    );
    assert_has(
        &bad(&|s| {
            s.root_mut().as_mut().unwrap().set_path("nothere".into());
        }),
        &["root.path: ", "does not exist"],
    );
    assert_has(
        &bad(&|s| {
            s.root_mut().as_mut().unwrap().set_path("afile".into());
        }),
        &["root.path: ", "not a directory"],
    );

    assert_has(
        &bad(&|s| {
            s.set_process(None);
        }),
        &["process: required"],
    );
    let m = bad(&|s| {
        s.process_mut().as_mut().unwrap().set_args(Some(vec![]));
    });
    assert_has(&m, &["process.args: must not be empty"]);
    assert_has(
        &bad(&|s| {
            s.process_mut().as_mut().unwrap().set_args(None);
        }),
        &["process.args: must not be empty"],
    );
    let m = bad(&|s| {
        s.process_mut().as_mut().unwrap().set_cwd("work".into());
    });
    assert_has(&m, &["process.cwd: must be an absolute path"]);

    let m = bad(&|s| {
        let linux = s.linux_mut().as_mut().unwrap();
        let mut ns = linux.namespaces().clone().unwrap();
        ns.push(LinuxNamespaceBuilder::default().typ(LinuxNamespaceType::Network).build().unwrap());
        linux.set_namespaces(Some(ns));
    });
    assert_has(&m, &["linux.namespaces[6].type: duplicate namespace \"network\" (already at linux.namespaces[1])"]);

    let m = bad(&|s| {
        s.mounts_mut().as_mut().unwrap()[1].set_destination("dev".into());
    });
    assert_has(&m, &["mounts[1].destination: must be an absolute path"]);
    let m = bad(&|s| {
        let mount = MountBuilder::default().destination("/../x").typ("tmpfs").source("tmpfs").build().unwrap();
        s.mounts_mut().as_mut().unwrap().push(mount);
    });
    assert_has(&m, &["mounts[7].destination: \"/../x\" climbs out of the container's root"]);
    let m = bad(&|s| {
        let linux = s.linux_mut().as_mut().unwrap();
        linux.masked_paths_mut().as_mut().unwrap().push("/proc/../../etc/shadow".into());
    });
    assert_has(&m, &["linux.maskedPaths[10]: ", "climbs out"]);

    let m = bad(&|s| {
        let linux = s.linux_mut().as_mut().unwrap();
        let ns = linux.namespaces().clone().unwrap().into_iter().filter(|n| n.typ() != LinuxNamespaceType::Uts);
        linux.set_namespaces(Some(ns.collect()));
    });
    assert_has(&m, &["hostname: \"podlab\" needs a uts namespace"]);

    // Every problem is reported, one per line.
    let m = bad(&|s| {
        s.set_root(None);
        s.process_mut().as_mut().unwrap().set_args(None);
    });
    assert_eq!(m.lines().count(), 2, "{m}");
    assert_has(&m, &["root: required", "process.args: must not be empty"]);
}

#[test]
fn load_errors_name_the_file_line_and_json_path() {
    let root = TestRoot::new("spec-load");
    let b = bundle(&root);
    let file = b.join("config.json").display().to_string();

    let e = spec::load(&b).unwrap_err().to_string();
    assert_has(&e, &[&file, "no such file", "runc spec"]);

    let mut json = serde_json::to_value(default_spec()).unwrap();
    json["process"]["args"] = serde_json::json!(["sh", 1]);
    std::fs::write(b.join("config.json"), serde_json::to_string_pretty(&json).unwrap()).unwrap();
    let e = spec::load(&b).unwrap_err().to_string();
    assert_has(&e, &[&file, "(at process.args[1])", "invalid type: integer `1`, expected a string"]);

    json["process"]["args"] = serde_json::json!(["sh"]);
    json["linux"]["namespaces"] = serde_json::json!([{"type": "pid"}, {"type": "bogus"}]);
    std::fs::write(b.join("config.json"), serde_json::to_string_pretty(&json).unwrap()).unwrap();
    let e = spec::load(&b).unwrap_err().to_string();
    assert_has(&e, &["(at linux.namespaces[1].type)", "unknown variant `bogus`"]);

    std::fs::write(b.join("config.json"), "{\n  \"ociVersion\": \"1.0.2\",\n  \"process\": {\"args\": [\"sh\"]\n")
        .unwrap();
    let e = spec::load(&b).unwrap_err().to_string();
    assert_has(&e, &[&format!("{file}:")]);
}
