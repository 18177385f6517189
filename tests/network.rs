//! Network namespaces and links on the real kernel, cross-checked with iproute2. Every name
//! carries this test process's pid; traffic stays inside namespaces the test made.

mod common;

use std::net::Ipv4Addr;
use std::process::Command;
use std::time::Duration;

use podlab::primitives::{link, netns};

fn names(tag: &str) -> (String, String, String, String, String) {
    // Interface names are at most 15 bytes: keep the pid short.
    let p = std::process::id() % 100_000;
    (
        format!("podlab-t{p}-{tag}-a"),
        format!("podlab-t{p}-{tag}-b"),
        format!("plbr{p}{tag}"),
        format!("pla{p}{tag}"),
        format!("plb{p}{tag}"),
    )
}

/// Removes the test's namespaces and links even when an assertion fails half-way.
struct Cleanup(Vec<String>, Vec<String>);

impl Drop for Cleanup {
    fn drop(&mut self) {
        for ns in &self.0 {
            let _ = netns::delete(ns);
        }
        for l in &self.1 {
            let _ = link::delete(None, l);
        }
    }
}

fn ip(args: &[&str]) -> String {
    let out = Command::new("ip").args(args).output().expect("ip");
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[test]
fn named_namespaces_are_shared_with_iproute2() {
    let (a, _, _, _, _) = names("n");
    let _cleanup = Cleanup(vec![a.clone()], vec![]);
    netns::create(&a).unwrap();
    assert!(netns::exists(&a));
    assert!(netns::list().unwrap().contains(&a));
    assert!(ip(&["netns", "list"]).contains(&a), "ip netns list does not show {a}");
    // Creating it twice is an error that says so.
    let err = netns::create(&a).unwrap_err().to_string();
    assert!(err.contains("exists already"), "{err}");
    // Inside: only a loopback, down, as in any new network namespace.
    let inside = link::list(Some(&a)).unwrap();
    assert_eq!(inside.iter().map(|l| l.name.as_str()).collect::<Vec<_>>(), ["lo"]);
    assert!(!inside[0].up);
    // The inode matches what a process inside sees.
    let ino = netns::inode_of(&a).unwrap();
    let seen = netns::run_in(Some(&a), || {
        std::fs::metadata("/proc/thread-self/ns/net").map(|m| {
            use std::os::unix::fs::MetadataExt;
            m.ino()
        })
    })
    .unwrap()
    .unwrap();
    assert_eq!(ino, seen);
    netns::delete(&a).unwrap();
    netns::delete(&a).unwrap(); // idempotent
    assert!(!netns::exists(&a));
    assert!(!ip(&["netns", "list"]).contains(&a));
}

#[test]
fn two_namespaces_on_a_bridge_ping_each_other() {
    let (a, b, br, va, vb) = names("p");
    let ends = [(&a, &va, "10.250.77.1/24"), (&b, &vb, "10.250.77.2/24")];
    let _cleanup = Cleanup(vec![a.clone(), b.clone()], vec![va.clone(), vb.clone(), br.clone()]);
    link::create_bridge(None, &br).unwrap();
    link::set_up(None, &br).unwrap();
    for (ns, host_end, addr) in ends {
        netns::create(ns).unwrap();
        link::create_veth(None, host_end, "eth0", Some(ns)).unwrap();
        link::set_master(None, host_end, &br).unwrap();
        link::set_up(None, host_end).unwrap();
        link::add_addr(Some(ns), "eth0", addr).unwrap();
        link::add_addr(Some(ns), "eth0", addr).unwrap(); // already there: fine
        link::set_up(Some(ns), "eth0").unwrap();
        link::set_up(Some(ns), "lo").unwrap();
    }
    // What podlab reads back, and what iproute2 sees.
    let port = link::get(None, &va).unwrap().unwrap();
    assert_eq!(port.master.as_deref(), Some(br.as_str()));
    assert_eq!(port.kind.as_deref(), Some("veth"));
    assert_eq!(link::get(None, &br).unwrap().unwrap().kind.as_deref(), Some("bridge"));
    let eth0 = link::get(Some(&a), "eth0").unwrap().unwrap();
    assert!(eth0.up && eth0.addrs.contains(&"10.250.77.1/24".to_string()), "{eth0:?}");
    assert!(ip(&["-n", &a, "addr", "show", "eth0"]).contains("10.250.77.1/24"));
    assert!(ip(&["link", "show", &va]).contains(&format!("master {br}")));

    let rtt = netns::ping(Some(&a), Ipv4Addr::new(10, 250, 77, 2), Duration::from_secs(2)).unwrap();
    assert!(rtt < Duration::from_secs(2));
    // Nobody has .9: no reply, and the error says so.
    let err = netns::ping(Some(&a), Ipv4Addr::new(10, 250, 77, 9), Duration::from_millis(300)).unwrap_err().to_string();
    assert!(err.contains("no reply from 10.250.77.9"), "{err}");

    // A default route via b, as a pod's route via the bridge.
    link::add_route(Some(&a), None, Some("10.250.77.2".parse().unwrap()), None).unwrap();
    let routes = link::routes(Some(&a)).unwrap();
    assert!(routes.iter().any(|r| r.starts_with("default via 10.250.77.2")), "{routes:?}");
    assert!(ip(&["-n", &a, "route"]).contains("default via 10.250.77.2"));

    // Clean-up: the veth ends vanish with their namespaces.
    for (ns, host_end, _) in ends {
        netns::delete(ns).unwrap();
        assert!(common::wait_until(5, || !link::exists(None, host_end)), "{host_end} outlived its peer's namespace");
        link::delete(None, host_end).unwrap(); // idempotent
    }
    link::delete(None, &br).unwrap();
    assert!(!link::exists(None, &br));
}

#[test]
fn explanations_name_the_objects() {
    let (a, _, _, va, _) = names("e");
    let _cleanup = Cleanup(vec![a.clone()], vec![va.clone()]);
    podlab::explain::start_recording();
    netns::create(&a).unwrap();
    link::create_veth(None, &va, "eth0", Some(&a)).unwrap();
    link::add_addr(Some(&a), "eth0", "10.250.78.1/24").unwrap();
    let said = podlab::explain::take_recorded();
    netns::delete(&a).unwrap();
    assert!(common::wait_until(5, || !link::exists(None, &va)));
    let ours: Vec<&String> = said.iter().filter(|l| l.contains(&a) || l.contains(&va)).collect();
    assert!(ours.contains(&&format!("ip netns add {a}")), "{ours:?}");
    assert!(ours.contains(&&format!("ip link add {va} type veth peer name eth0 netns {a}")), "{ours:?}");
    assert!(ours.contains(&&format!("ip -n {a} addr add 10.250.78.1/24 dev eth0")), "{ours:?}");
}

#[test]
fn bad_names_and_missing_namespaces_are_clear_errors() {
    let err = netns::create("a/b").unwrap_err().to_string();
    assert!(err.contains("invalid network namespace name"), "{err}");
    let err = link::create_bridge(None, "this-name-is-too-long").unwrap_err().to_string();
    assert!(err.contains("invalid interface name"), "{err}");
    let err = link::list(Some("podlab-does-not-exist")).unwrap_err().to_string();
    assert!(err.contains("no network namespace podlab-does-not-exist"), "{err}");
    let err = link::add_addr(None, "plnothere0", "10.250.79.1/24").unwrap_err().to_string();
    assert!(err.contains("plnothere0"), "{err}");
    let err = link::add_addr(None, "lo", "10.250.79.1").unwrap_err().to_string();
    assert!(err.contains("ADDRESS/PREFIX"), "{err}");
}
