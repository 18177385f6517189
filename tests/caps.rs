//! Capabilities, no_new_privs, rlimits and uid/gid changes on the real kernel. Each case runs
//! in a forked child (these changes cannot be undone) that reports through its exit status;
//! the test process keeps its own privileges, limits and ids.

mod common;

use std::fs;
use std::path::Path;
use std::process::Command;

use common::child::{check, in_child, ok};
use nix::sys::resource::{Resource, getrlimit};
use podlab::explain;
use podlab::primitives::caps::{self, CapSets, DEFAULT_CAPS};
use podlab::primitives::namespace::{self, Namespace};
use podlab::primitives::{mount, process};

/// Docker's 14 default capabilities as a mask (what `grep CapEff` shows in `docker run alpine`).
const DOCKER_MASK: u64 = 0x0000_0000_a804_25fb;

/// Run `sh -c SCRIPT` (a new program: capabilities are recomputed by execve) and return stdout.
fn sh(script: &str) -> Result<String, String> {
    let out = ok(Command::new("sh").arg("-c").arg(script).current_dir("/").output(), "spawn sh")?;
    check(out.status.success(), &format!("sh -c {script:?}: {}", String::from_utf8_lossy(&out.stderr)))?;
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// One `Name:` field of a status-like text, whitespace-normalised.
fn field(text: &str, name: &str) -> Option<String> {
    text.lines()
        .find_map(|l| l.strip_prefix(name)?.strip_prefix(':'))
        .map(|v| v.split_whitespace().collect::<Vec<_>>().join(" "))
}

/// The Cap* masks of a `grep Cap /proc/self/status` output: (eff, prm, bnd, inh, amb).
fn masks(text: &str) -> Result<(u64, u64, u64, u64, u64), String> {
    let get = |name: &str| -> Result<u64, String> {
        let v = field(text, name).ok_or(format!("no {name} in {text:?}"))?;
        u64::from_str_radix(&v, 16).map_err(|e| format!("{name} {v:?}: {e}"))
    };
    Ok((get("CapEff")?, get("CapPrm")?, get("CapBnd")?, get("CapInh")?, get("CapAmb")?))
}

fn names(list: &[&str]) -> Vec<String> {
    list.iter().map(|s| s.to_string()).collect()
}

#[test]
fn names_parse_and_mask() {
    for name in ["CAP_NET_ADMIN", "net_admin", "cap_net_admin", "NET_ADMIN"] {
        assert_eq!(caps::parse(name).unwrap(), ::caps::Capability::CAP_NET_ADMIN, "{name}");
    }
    let err = caps::parse("CAP_NOPE").unwrap_err().to_string();
    assert!(err.contains("unknown capability \"CAP_NOPE\""), "{err}");
    assert!(err.contains("CAP_NET_ADMIN"), "the error shows what a name looks like: {err}");
    let err = caps::mask(&names(&["CAP_CHOWN", "sys_admn"])).unwrap_err().to_string();
    assert!(err.contains("\"sys_admn\""), "{err}");

    assert_eq!(caps::mask(&names(&DEFAULT_CAPS)).unwrap(), DOCKER_MASK);
    let d = CapSets::default_container();
    for set in [&d.bounding, &d.effective, &d.permitted] {
        assert_eq!(caps::mask(set).unwrap(), DOCKER_MASK);
    }
    assert!(d.inheritable.is_empty() && d.ambient.is_empty(), "as containerd and runc do since 2022");
}

#[test]
fn default_set_is_docker_and_survives_exec_as_root() {
    let t = common::TestRoot::new("caps-default");
    let line_file = t.dir.join("explained");
    let lf = line_file.clone();
    in_child(move || {
        explain::start_recording();
        ok(caps::apply(&CapSets::default_container()), "apply default caps")?;
        let said = explain::take_recorded();
        check(said.len() == 1 && said[0].starts_with("capsh --drop="), &format!("one capsh line: {said:?}"))?;
        let (drop, keep) = said[0].split_once(" --caps=").ok_or(format!("no --caps in {}", said[0]))?;
        check(drop.contains("cap_sys_admin") && drop.contains("cap_net_admin"), &format!("drops: {drop}"))?;
        check(keep.ends_with("=ep --"), &format!("keeps effective+permitted: {keep}"))?;
        for name in DEFAULT_CAPS {
            check(keep.contains(&name.to_lowercase()) && !drop.contains(&name.to_lowercase()), name)?;
        }
        ok(fs::write(&lf, &said[0]), "save the explained line")?;

        let (eff, prm, bnd, inh, amb) = ok(caps::current(None), "read caps")?;
        check(
            (eff, prm, bnd, inh, amb) == (DOCKER_MASK, DOCKER_MASK, DOCKER_MASK, 0, 0),
            &format!("after apply: eff {eff:#x} prm {prm:#x} bnd {bnd:#x} inh {inh:#x} amb {amb:#x}"),
        )?;
        // A new program run by root: the kernel recomputes permitted/effective from the bounding set.
        let after = masks(&sh("grep Cap /proc/self/status")?)?;
        check(after == (DOCKER_MASK, DOCKER_MASK, DOCKER_MASK, 0, 0), &format!("after exec: {after:x?}"))
    });
    // The explanation is true: running it from a full-privileged root shell gives the same sets.
    let line = fs::read_to_string(&line_file).unwrap();
    let out = sh(&format!("{line} -c 'grep Cap /proc/self/status'")).unwrap();
    assert_eq!(masks(&out).unwrap(), (DOCKER_MASK, DOCKER_MASK, DOCKER_MASK, 0, 0), "{line}\n{out}");
}

#[test]
fn without_sys_admin_mount_fails() {
    let t = common::TestRoot::new("caps-mount");
    let d = t.dir.clone();
    in_child(move || {
        ok(namespace::unshare(&[Namespace::Mount]), "unshare")?;
        ok(mount::make_private(Path::new("/"), true), "make-rprivate")?;
        let target = d.join("t");
        ok(fs::create_dir_all(&target), "mkdir")?;
        ok(mount::tmpfs(&target, None), "control: tmpfs mounts while CAP_SYS_ADMIN is held")?;
        ok(nix::mount::umount(&target), "umount")?;

        ok(caps::apply(&CapSets::default_container()), "apply default caps")?;
        let err = match mount::tmpfs(&target, None) {
            Ok(()) => return Err("tmpfs mounted without CAP_SYS_ADMIN".into()),
            Err(e) => e,
        };
        check(err.errno() == Some(libc::EPERM), &format!("mount(2) gives EPERM, got {err}"))?;
        let out = ok(Command::new("mount").args(["-t", "tmpfs", "none"]).arg(&target).output(), "spawn mount")?;
        check(!out.status.success(), "mount(8) run by root in the container fails too")?;
        let stderr = String::from_utf8_lossy(&out.stderr).to_lowercase();
        check(stderr.contains("permission denied"), &format!("mount(8) says permission denied: {stderr}"))
    });
}

#[test]
fn ambient_caps_survive_exec_for_non_root() {
    in_child(|| {
        ok(process::keep_caps(true), "keep caps")?;
        ok(process::set_ids(1000, 1000, &[]), "set ids")?;
        let bind = ::caps::Capability::CAP_NET_BIND_SERVICE.bitmask();
        let mut sets = CapSets::default_container();
        sets.inheritable = names(&["CAP_NET_BIND_SERVICE"]);
        sets.ambient = names(&["net_bind_service"]);
        ok(caps::apply(&sets), "apply with ambient")?;
        let after = masks(&sh("grep Cap /proc/self/status")?)?;
        check(after == (bind, bind, DOCKER_MASK, bind, bind), &format!("uid 1000 after exec: {after:x?}"))?;

        // Control: without ambient, a non-root program starts with no capabilities at all.
        ok(caps::apply(&CapSets::default_container()), "apply without ambient")?;
        let after = masks(&sh("grep Cap /proc/self/status")?)?;
        check(after == (0, 0, DOCKER_MASK, 0, 0), &format!("uid 1000 without ambient after exec: {after:x?}"))
    });
}

#[test]
fn bad_sets_change_nothing() {
    in_child(|| {
        let before = ok(caps::current(None), "read caps")?;
        let mut sets = CapSets::default_container();
        sets.ambient = names(&["CAP_NOT_A_CAP"]);
        let err = caps::apply(&sets).err().ok_or("a bad name was accepted")?.to_string();
        check(err.contains("unknown capability \"CAP_NOT_A_CAP\""), &err)?;

        sets.ambient = names(&["CAP_KILL"]);
        let err = caps::apply(&sets).err().ok_or("ambient outside inheritable was accepted")?.to_string();
        check(err.contains("CAP_KILL is in the ambient set but not in the inheritable set"), &err)?;

        sets = CapSets::default_container();
        sets.effective.push("CAP_SYS_ADMIN".into());
        let err = caps::apply(&sets).err().ok_or("effective outside permitted was accepted")?.to_string();
        check(err.contains("CAP_SYS_ADMIN is in the effective set but not in the permitted set"), &err)?;
        check(ok(caps::current(None), "read caps")? == before, "nothing changed")
    });
}

#[test]
fn no_new_privs_is_set_and_inherited() {
    in_child(|| {
        ok(process::set_no_new_privs(), "set no_new_privs")?;
        check(ok(process::no_new_privs(None), "read")?, "NoNewPrivs reads 1")?;
        check(field(&sh("grep NoNewPrivs /proc/self/status")?, "NoNewPrivs").as_deref() == Some("1"), "inherited")?;
        let mut child = ok(Command::new("sleep").arg("5").spawn(), "spawn sleep")?;
        let seen = process::no_new_privs(Some(child.id() as i32));
        let _ = child.kill();
        let _ = child.wait();
        check(ok(seen, "read the child's")?, "a child's NoNewPrivs reads 1 through its pid")
    });
    // The test process itself was not touched.
    let own = process::no_new_privs(None).unwrap();
    let parent = process::no_new_privs(Some(std::process::id() as i32)).unwrap();
    assert_eq!(own, parent);
}

#[test]
fn rlimit_nofile_lowered_is_seen_by_exec() {
    in_child(|| {
        explain::start_recording();
        ok(process::set_rlimit("RLIMIT_NOFILE", 256, 512), "set NOFILE")?;
        let said = explain::take_recorded();
        check(said == ["prlimit --pid $$ --nofile=256:512"], &format!("explained as {said:?}"))?;
        check(ok(getrlimit(Resource::RLIMIT_NOFILE), "getrlimit")? == (256, 512), "getrlimit reads it back")?;
        let out = sh("ulimit -n; ulimit -Hn")?;
        check(out.split_whitespace().collect::<Vec<_>>() == ["256", "512"], &format!("ulimit shows {out:?}"))
    });
    // The explained command does the same in a shell of its own.
    let out = sh("prlimit --pid $$ --nofile=256:512; ulimit -n; ulimit -Hn").unwrap();
    assert_eq!(out.split_whitespace().collect::<Vec<_>>(), ["256", "512"]);
}

#[test]
fn rlimit_errors_are_clear() {
    in_child(|| {
        // Without CAP_SYS_RESOURCE (root on this machine lacks it anyway; the VMs' root does not).
        ok(::caps::drop(None, ::caps::CapSet::Effective, ::caps::Capability::CAP_SYS_RESOURCE), "drop")?;
        let before = ok(getrlimit(Resource::RLIMIT_NOFILE), "getrlimit")?;
        let hard = before.1;
        let err = process::set_rlimit("RLIMIT_NOFILE", 100, hard + 1).err().ok_or("raised the hard limit")?;
        let want = format!("cannot raise RLIMIT_NOFILE hard limit above {hard} without CAP_SYS_RESOURCE");
        check(err.to_string().contains(&want), &format!("{err}"))?;
        check(ok(getrlimit(Resource::RLIMIT_NOFILE), "getrlimit")? == before, "limits unchanged")?;

        let err = process::set_rlimit("RLIMIT_NOFILES", 1, 1).err().ok_or("bad name accepted")?.to_string();
        check(err.contains("unknown rlimit \"RLIMIT_NOFILES\"") && err.contains("RLIMIT_NOFILE,"), &err)?;
        let err = process::set_rlimit("RLIMIT_CORE", 10, 5).err().ok_or("soft > hard accepted")?.to_string();
        check(err.contains("soft limit 10 is above hard limit 5"), &err)?;
        // Every OCI name maps to a kernel limit: setting each to its current value works.
        let all = [
            ("RLIMIT_AS", Resource::RLIMIT_AS),
            ("RLIMIT_CORE", Resource::RLIMIT_CORE),
            ("RLIMIT_CPU", Resource::RLIMIT_CPU),
            ("RLIMIT_DATA", Resource::RLIMIT_DATA),
            ("RLIMIT_FSIZE", Resource::RLIMIT_FSIZE),
            ("RLIMIT_LOCKS", Resource::RLIMIT_LOCKS),
            ("RLIMIT_MEMLOCK", Resource::RLIMIT_MEMLOCK),
            ("RLIMIT_MSGQUEUE", Resource::RLIMIT_MSGQUEUE),
            ("RLIMIT_NICE", Resource::RLIMIT_NICE),
            ("RLIMIT_NOFILE", Resource::RLIMIT_NOFILE),
            ("RLIMIT_NPROC", Resource::RLIMIT_NPROC),
            ("RLIMIT_RSS", Resource::RLIMIT_RSS),
            ("RLIMIT_RTPRIO", Resource::RLIMIT_RTPRIO),
            ("RLIMIT_RTTIME", Resource::RLIMIT_RTTIME),
            ("RLIMIT_SIGPENDING", Resource::RLIMIT_SIGPENDING),
            ("RLIMIT_STACK", Resource::RLIMIT_STACK),
        ];
        for (name, resource) in all {
            let (soft, hard) = ok(getrlimit(resource), name)?;
            ok(process::set_rlimit(name, soft, hard), name)?;
            check(ok(getrlimit(resource), name)? == (soft, hard), name)?;
        }
        Ok(())
    });
}

#[test]
fn set_ids_changes_uid_gid_and_groups() {
    in_child(|| {
        explain::start_recording();
        ok(process::set_ids(1000, 1000, &[1000, 2000]), "set ids")?;
        let said = explain::take_recorded();
        check(said == ["setpriv --reuid=1000 --regid=1000 --groups=1000,2000 sh"], &format!("{said:?}"))?;
        let status = ok(fs::read_to_string("/proc/self/status"), "read status")?;
        check(
            field(&status, "Uid").as_deref() == Some("1000 1000 1000 1000"),
            &format!("Uid {:?}", field(&status, "Uid")),
        )?;
        check(
            field(&status, "Gid").as_deref() == Some("1000 1000 1000 1000"),
            &format!("Gid {:?}", field(&status, "Gid")),
        )?;
        check(
            field(&status, "Groups").as_deref() == Some("1000 2000"),
            &format!("Groups {:?}", field(&status, "Groups")),
        )?;
        let (eff, prm, ..) = ok(caps::current(None), "read caps")?;
        check(eff == 0 && prm == 0, "without keep-caps the uid change empties the sets")?;
        check(nix::unistd::setuid(nix::unistd::Uid::from_raw(0)).is_err(), "there is no way back to root")
    });
}
