//! The mount, chroot/pivot_root and namespace primitives on the real kernel. Each case
//! runs in a forked child (single-threaded, so it may unshare a mount or user namespace)
//! that reports through its exit status; the host's namespaces are never changed.

mod common;

use std::fs;
use std::path::{Path, PathBuf};

use common::child::{check, in_child, ok};
use nix::sys::wait::waitpid;
use nix::unistd::ForkResult;
use podlab::primitives::namespace::{self, Namespace};
use podlab::primitives::{chroot, mount};

#[test]
fn mounts_in_a_private_namespace() {
    let t = common::TestRoot::new("prim-mounts");
    let d = t.dir.clone();
    in_child(move || {
        ok(namespace::unshare(&[Namespace::Mount]), "unshare")?;
        ok(mount::make_private(Path::new("/"), true), "make-rprivate")?;
        let root = ok(mount::mountinfo(None), "mountinfo")?;
        check(root.iter().all(|m| !m.propagation.contains("shared:")), "every mount is private now")?;

        for sub in ["tmp", "proc", "src", "ro", "lower", "upper", "work", "merged"] {
            ok(fs::create_dir_all(d.join(sub)), "mkdir")?;
        }
        ok(mount::tmpfs(&d.join("tmp"), Some("size=1m")), "tmpfs")?;
        ok(mount::proc(&d.join("proc")), "proc")?;
        check(d.join("proc/self/status").exists(), "proc shows /proc/self")?;

        ok(fs::write(d.join("src/file"), "data"), "write src")?;
        ok(mount::bind(&d.join("src"), &d.join("ro"), true), "ro bind")?;
        check(fs::read_to_string(d.join("ro/file")).ok().as_deref() == Some("data"), "bind shows the source")?;
        let err = fs::write(d.join("ro/new"), "x").unwrap_err();
        check(err.raw_os_error() == Some(libc::EROFS), &format!("writing a read-only bind gives EROFS, got {err}"))?;

        ok(fs::write(d.join("lower/hello"), "lower"), "write lower")?;
        ok(
            mount::overlay(&[d.join("lower")], Some((&d.join("upper"), &d.join("work"))), &d.join("merged")),
            "overlay",
        )?;
        ok(fs::write(d.join("merged/hello"), "upper"), "write through overlay")?;
        check(fs::read_to_string(d.join("lower/hello")).unwrap() == "lower", "lower unchanged")?;
        check(fs::read_to_string(d.join("upper/hello")).unwrap() == "upper", "copied up")?;

        let table = ok(mount::mountinfo(None), "mountinfo")?;
        let find = |p: &str| table.iter().find(|m| m.mount_point == d.join(p)).cloned();
        check(find("tmp").is_some_and(|m| m.fstype == "tmpfs"), "tmpfs listed")?;
        check(find("ro").is_some_and(|m| m.readonly()), "ro listed read-only")?;
        check(
            find("merged").is_some_and(|m| m.fstype == "overlay" && m.super_options.contains("lowerdir=")),
            "overlay listed",
        )?;

        ok(fs::create_dir_all(d.join("sys")), "mkdir sys")?;
        ok(mount::sysfs(&d.join("sys")), "sysfs")?;
        check(d.join("sys/kernel").is_dir(), "sysfs shows /sys/kernel")?;

        // The explanation is the command a person would type, for the path really used.
        podlab::explain::start_recording();
        ok(mount::tmpfs(&d.join("tmp"), Some("size=2m")), "second tmpfs")?;
        let said = podlab::explain::take_recorded();
        let expected = format!("mount -t tmpfs -o size=2m tmpfs {}", d.join("tmp").display());
        check(said == [expected.clone()], &format!("explained {said:?}, expected {expected:?}"))?;

        ok(mount::unmount_all_under(&d), "unmount all")?;
        check(ok(mount::mounts_under(&d), "mounts_under")?.is_empty(), "nothing left mounted")?;
        Ok(())
    });
    // The child's mounts never reached the host's table.
    let host = fs::read_to_string("/proc/self/mountinfo").unwrap();
    assert!(!host.contains(t.dir.to_str().unwrap()), "a mount leaked to the host namespace");
}

#[test]
fn overlay_refuses_separator_characters() {
    let err = mount::overlay(&[PathBuf::from("/tmp/a:b")], None, Path::new("/tmp/x")).unwrap_err();
    assert!(err.to_string().contains("':' or ','"), "{err}");
}

#[test]
fn pivot_root_unmounts_the_old_root() {
    let t = common::TestRoot::new("pivot-prim");
    let rootfs = t.rootfs();
    in_child(move || {
        ok(namespace::unshare(&[Namespace::Mount]), "unshare")?;
        ok(mount::make_private(Path::new("/"), true), "private")?;
        ok(chroot::pivot_root(&rootfs), "pivot_root")?;
        check(Path::new("/bin/busybox").exists(), "the new root is in place")?;
        // No mount table to read without /proc: mount one and look.
        ok(mount::proc(Path::new("/proc")), "proc")?;
        let table = ok(mount::mountinfo(None), "mountinfo")?;
        let points: Vec<String> = table.iter().map(|m| m.mount_point.display().to_string()).collect();
        check(points == ["/", "/proc"], &format!("only / and /proc are mounted, not the old root: {points:?}"))?;
        Ok(())
    });
}

#[test]
fn chroot_changes_what_slash_means() {
    let t = common::TestRoot::new("chroot-prim");
    let rootfs = t.rootfs();
    in_child(move || {
        ok(chroot::chroot(&rootfs), "chroot")?;
        check(Path::new("/bin/busybox").exists(), "busybox at /bin")?;
        check(!rootfs.join("bin").exists(), "the host path of the root filesystem is out of sight")?;
        check(std::env::current_dir().ok() == Some(PathBuf::from("/")), "cwd is /")?;
        Ok(())
    });
}

#[test]
fn uts_namespace_and_setns() {
    let host = nix::unistd::gethostname().unwrap();
    in_child(|| {
        ok(namespace::unshare(&[Namespace::Uts]), "unshare uts")?;
        ok(namespace::set_hostname("prim-uts"), "sethostname")?;
        check(nix::unistd::gethostname().unwrap() == "prim-uts", "hostname inside")?;
        // A grandchild sleeps in this namespace; a second child joins it with setns.
        let sleeper = std::process::Command::new("sleep").arg("30").spawn().map_err(|e| e.to_string())?;
        let pid = sleeper.id() as i32;
        check(ok(namespace::hostname_of(pid), "hostname_of")? == "prim-uts", "read through setns on a thread")?;
        check(
            ok(namespace::same(pid, std::process::id() as i32, Namespace::Uts), "same")?,
            "the grandchild shares it",
        )?;
        let _ = nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid), nix::sys::signal::SIGKILL);
        Ok(())
    });
    assert_eq!(nix::unistd::gethostname().unwrap(), host, "the host's hostname never changed");
    assert!(namespace::validate_hostname("bad_name!").is_err());
    assert!(namespace::set_hostname("").is_err());
}

#[test]
fn enter_joins_another_process_namespace() {
    // Child A makes a UTS namespace and waits; child B joins it with setns by pid.
    let (r, w) = nix::unistd::pipe().unwrap();
    let a = match unsafe { nix::unistd::fork() }.unwrap() {
        ForkResult::Child => {
            let _ = nix::sched::unshare(nix::sched::CloneFlags::CLONE_NEWUTS);
            let _ = nix::unistd::sethostname("prim-enter");
            let _ = nix::unistd::write(&w, b"x");
            std::thread::sleep(std::time::Duration::from_secs(30));
            unsafe { libc::_exit(0) };
        }
        ForkResult::Parent { child } => child,
    };
    drop(w);
    let mut b = [0u8; 1];
    nix::unistd::read(&r, &mut b).unwrap();
    let pid = a.as_raw();
    in_child(move || {
        ok(namespace::enter(pid, Namespace::Uts), "setns")?;
        let name = nix::unistd::gethostname().unwrap();
        check(name == "prim-enter", &format!("joined namespace has hostname {name:?}"))
    });
    nix::sys::signal::kill(a, nix::sys::signal::SIGKILL).unwrap();
    waitpid(a, None).unwrap();
}

#[test]
fn user_namespace_maps_root() {
    in_child(|| {
        ok(namespace::unshare(&[Namespace::User]), "unshare user")?;
        ok(namespace::write_id_maps(std::process::id() as i32, "0 0 1", "0 0 1"), "id maps")?;
        let map = fs::read_to_string("/proc/self/uid_map").map_err(|e| e.to_string())?;
        check(map.split_whitespace().collect::<Vec<_>>() == ["0", "0", "1"], &format!("uid_map {map:?}"))?;
        check(nix::unistd::getuid().is_root(), "uid 0 inside")?;
        // In a new user namespace we hold every capability over namespaces it owns.
        ok(namespace::unshare(&[Namespace::Uts]), "unshare uts as namespaced root")?;
        Ok(())
    });
}

#[test]
fn pid_namespace_makes_the_next_child_pid_1() {
    in_child(|| {
        ok(namespace::unshare(&[Namespace::Pid]), "unshare pid")?;
        let out = std::process::Command::new("sh").args(["-c", "echo $$"]).output().map_err(|e| e.to_string())?;
        let pid = String::from_utf8_lossy(&out.stdout).trim().to_string();
        check(pid == "1", &format!("first child is pid {pid}"))
    });
}

#[test]
fn namespace_names_parse() {
    assert_eq!(Namespace::parse_list("pid,mnt,uts,ipc,net,cgroup,user").unwrap().len(), 7);
    assert_eq!(Namespace::parse_list("pid,pid").unwrap(), vec![Namespace::Pid]);
    let err = Namespace::parse_list("pid,bogus").unwrap_err().to_string();
    assert!(err.contains("bogus") && err.contains("valid"), "{err}");
}
