//! Pod IP addresses: one per pod, never two pods on one, kept across restarts.
//!
//! Each node owns a pod CIDR (podlab's default is 10.244.0.0/24). The first host address, .1,
//! belongs to the node's bridge, the pods' gateway; every other host address can go to a pod
//! (the network address .0 and the broadcast address never do).
//!
//! The allocations live in a directory, one file per address in use, named by the address and
//! holding the owner (the pod's uid). A file is claimed by creating it with
//! `O_CREAT|O_EXCL`: the kernel lets exactly one creator win, so two processes can never be
//! handed the same address, whatever they race on. Being files, the allocations outlive the
//! node agent: after a restart it finds every pod's address where it left it. A `last_reserved`
//! file remembers the last address handed out, and the search for a free one starts after it,
//! so an address just freed is not reused at once (a packet for the old pod will not reach a new
//! one). This is how the host-local CNI plugin keeps its state under /var/lib/cni/networks.

use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::net::Ipv4Addr;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use nix::errno::Errno;
use nix::fcntl::{Flock, FlockArg};

use crate::error::{Error, IoContext, Result};

/// The pod CIDR podlab uses unless told otherwise.
pub const DEFAULT_CIDR: &str = "10.244.0.0/24";

/// The file that remembers the last address handed out.
const LAST_RESERVED: &str = "last_reserved";
/// Written first, then renamed over [`LAST_RESERVED`].
const LAST_RESERVED_TMP: &str = "last_reserved.tmp";
/// Held with `flock` while allocating or releasing, so "look up, else claim" is one step.
const LOCK: &str = "lock";
/// Longest owner accepted (a DNS subdomain's length; a pod uid is 36).
const MAX_OWNER_CHARS: usize = 253;

/// The address allocator for one node's pod CIDR, stored in a directory.
#[derive(Debug, Clone)]
pub struct Ipam {
    dir: PathBuf,
    network: u32,
    prefix: u8,
}

impl Ipam {
    /// `dir` holds the allocations (created if missing); `cidr` is the node's pod range such as
    /// "10.244.0.0/24" (IPv4 only, prefix /8 to /30, host bits zero, or [`Error::Invalid`]).
    pub fn open(dir: &Path, cidr: &str) -> Result<Ipam> {
        let (network, prefix) = parse_cidr(cidr)?;
        fs::create_dir_all(dir).ctx("create directory", dir)?;
        Ok(Ipam { dir: dir.to_path_buf(), network, prefix })
    }

    /// The directory that holds the allocations.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The network address (10.244.0.0 for 10.244.0.0/24).
    pub fn network(&self) -> Ipv4Addr {
        Ipv4Addr::from(self.network)
    }

    /// The bridge's address, the pods' default gateway: the first host address.
    pub fn gateway(&self) -> Ipv4Addr {
        Ipv4Addr::from(self.network + 1)
    }

    /// The prefix length (24 for a /24).
    pub fn prefix_len(&self) -> u8 {
        self.prefix
    }

    /// The range as text, "10.244.0.0/24".
    pub fn cidr(&self) -> String {
        format!("{}/{}", self.network(), self.prefix)
    }

    /// How many pods the range can hold (all host addresses but the gateway).
    pub fn capacity(&self) -> u32 {
        self.last() - self.first() + 1
    }

    /// The address of `owner` (a pod uid): the one it already has, or the next free one after the
    /// last handed out, wrapping around (round-robin, like host-local). [`Error::Invalid`] when the
    /// range is full or the owner is not valid.
    pub fn allocate(&self, owner: &str) -> Result<Ipv4Addr> {
        check_owner(owner)?;
        let _lock = self.lock(FlockArg::LockExclusive)?;
        if let Some(addr) = self.find(owner)? {
            return Ok(addr);
        }
        let (first, size) = (self.first(), self.capacity());
        let start = match self.last_reserved() {
            Some(last) if self.holds(last) => (last - first + 1) % size,
            _ => 0,
        };
        for i in 0..size {
            let addr = Ipv4Addr::from(first + (start + i) % size);
            let path = self.dir.join(addr.to_string());
            // The claim: O_CREAT|O_EXCL fails with EEXIST if anyone, any process, has the address.
            let mut file = match OpenOptions::new().write(true).create_new(true).mode(0o644).open(&path) {
                Ok(file) => file,
                Err(e) if e.kind() == io::ErrorKind::AlreadyExists => continue,
                Err(e) => return Err(Error::io("create", &path, e)),
            };
            let written =
                file.write_all(owner.as_bytes()).ctx("write", &path).and_then(|()| self.set_last_reserved(addr));
            if let Err(e) = written {
                // Give the address back rather than leave a claim without a usable record.
                let _ = fs::remove_file(&path);
                return Err(e);
            }
            return Ok(addr);
        }
        // Counted without `list`, which would wait for the lock this call holds.
        let held = self.entries()?.into_iter().filter(|(a, _)| self.holds(u32::from(*a))).count();
        Err(Error::invalid(format!(
            "no free address in {} ({held} pods hold all of them): delete pods that are gone, \
             or give the node a larger pod CIDR",
            self.cidr()
        )))
    }

    /// The address of `owner`, if it has one.
    pub fn lookup(&self, owner: &str) -> Option<Ipv4Addr> {
        check_owner(owner).ok()?;
        // Readers take the shared lock when they can, so they never see a claim half written.
        let _lock = self.lock(FlockArg::LockShared).ok();
        self.find(owner).ok().flatten()
    }

    /// Free the address of `owner`; freeing an owner with no address is fine.
    pub fn release(&self, owner: &str) -> Result<()> {
        check_owner(owner)?;
        let _lock = self.lock(FlockArg::LockExclusive)?;
        for (addr, holder) in self.entries()? {
            if holder == owner {
                let path = self.dir.join(addr.to_string());
                match fs::remove_file(&path) {
                    Err(e) if e.kind() != io::ErrorKind::NotFound => return Err(Error::io("remove", &path, e)),
                    _ => {}
                }
            }
        }
        Ok(())
    }

    /// Every (address, owner), in address order.
    pub fn list(&self) -> Vec<(Ipv4Addr, String)> {
        let _lock = self.lock(FlockArg::LockShared).ok();
        let mut all = self.entries().unwrap_or_default();
        all.sort();
        all
    }

    /// The first address a pod can get (the one after the gateway).
    fn first(&self) -> u32 {
        self.network + 2
    }

    /// The last address a pod can get (the one before the broadcast address).
    fn last(&self) -> u32 {
        (self.network | (u32::MAX >> self.prefix)) - 1
    }

    /// Whether `addr` is one a pod can get.
    fn holds(&self, addr: u32) -> bool {
        (self.first()..=self.last()).contains(&addr)
    }

    /// The address files in the directory with their owners (other files are ignored).
    fn entries(&self) -> Result<Vec<(Ipv4Addr, String)>> {
        let mut out = Vec::new();
        for entry in fs::read_dir(&self.dir).ctx("read directory", &self.dir)? {
            let entry = entry.ctx("read directory", &self.dir)?;
            let Some(addr) = entry.file_name().to_str().and_then(|n| n.parse::<Ipv4Addr>().ok()) else {
                continue;
            };
            if !entry.file_type().is_ok_and(|t| t.is_file()) {
                continue;
            }
            match fs::read(entry.path()) {
                Ok(owner) => out.push((addr, String::from_utf8_lossy(&owner).into_owned())),
                // Released between the listing and the read.
                Err(e) if e.kind() == io::ErrorKind::NotFound => {}
                Err(e) => return Err(Error::io("read", entry.path(), e)),
            }
        }
        Ok(out)
    }

    /// The address held by `owner` within the range.
    fn find(&self, owner: &str) -> Result<Option<Ipv4Addr>> {
        Ok(self.entries()?.into_iter().find(|(a, o)| o == owner && self.holds(u32::from(*a))).map(|(a, _)| a))
    }

    fn last_reserved(&self) -> Option<u32> {
        let text = fs::read_to_string(self.dir.join(LAST_RESERVED)).ok()?;
        text.trim().parse::<Ipv4Addr>().ok().map(u32::from)
    }

    /// Record `addr` as the last one handed out: write a new file, then rename it over the old one
    /// (a reader sees the old or the new content, never a partial one).
    fn set_last_reserved(&self, addr: Ipv4Addr) -> Result<()> {
        let tmp = self.dir.join(LAST_RESERVED_TMP);
        match fs::remove_file(&tmp) {
            Err(e) if e.kind() != io::ErrorKind::NotFound => return Err(Error::io("remove", &tmp, e)),
            _ => {}
        }
        let mut file = OpenOptions::new().write(true).create_new(true).mode(0o644).open(&tmp).ctx("create", &tmp)?;
        file.write_all(addr.to_string().as_bytes()).ctx("write", &tmp)?;
        let target = self.dir.join(LAST_RESERVED);
        fs::rename(&tmp, &target).ctx(&format!("rename {} to", tmp.display()), &target)
    }

    /// Take the directory's lock (shared or exclusive), waiting for it; released on drop.
    fn lock(&self, kind: FlockArg) -> Result<Flock<File>> {
        lock_file(&self.dir.join(LOCK), kind)
    }
}

/// `flock` a lock file (made if missing, never through a symlink), waiting for it; the lock is
/// released when the returned value is dropped. The pod network's lock uses it too.
pub(crate) fn lock_file(path: &Path, kind: FlockArg) -> Result<Flock<File>> {
    let mut file = OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .mode(0o600)
        .custom_flags(libc::O_NOFOLLOW)
        .open(path)
        .ctx("open lock file", path)?;
    loop {
        match Flock::lock(file, kind) {
            Ok(lock) => return Ok(lock),
            Err((f, Errno::EINTR)) => file = f,
            Err((_, e)) => return Err(Error::sys(format!("flock {}", path.display()), e)),
        }
    }
}

/// Parse "A.B.C.D/N" into the network as a number and the prefix length.
fn parse_cidr(text: &str) -> Result<(u32, u8)> {
    let bad = |why: String| Error::invalid(format!("invalid pod CIDR {text:?}: {why}"));
    if text.contains(':') {
        return Err(bad("IPv6 is not supported: use an IPv4 range such as 10.244.0.0/24".into()));
    }
    let Some((addr, prefix)) = text.trim().split_once('/') else {
        return Err(bad("write it as ADDRESS/PREFIX, such as 10.244.0.0/24".into()));
    };
    let addr: Ipv4Addr =
        addr.parse().map_err(|_| bad(format!("{addr:?} is not an IPv4 address: use a range such as 10.244.0.0/24")))?;
    let prefix: u8 = match prefix.parse() {
        Ok(p) if (8..=30).contains(&p) => p,
        _ => {
            return Err(bad(format!(
                "the prefix must be a number from 8 to 30, not {prefix:?} (a /24 gives 253 pod addresses)"
            )));
        }
    };
    let mask = u32::MAX << (32 - prefix);
    let network = u32::from(addr) & mask;
    if network != u32::from(addr) {
        return Err(bad(format!("host bits are set: use the network address, {}/{prefix}", Ipv4Addr::from(network))));
    }
    Ok((network, prefix))
}

/// An owner is written into a file, never used as a path; still, keep it to plain names.
fn check_owner(owner: &str) -> Result<()> {
    let chars = owner.chars().count();
    if chars == 0 || chars > MAX_OWNER_CHARS || owner.contains(['/', '\0']) {
        let shown: String = owner.chars().take(64).collect();
        return Err(Error::invalid(format!(
            "invalid address owner {shown:?}{}: use the pod's uid (1 to {MAX_OWNER_CHARS} characters, no '/' or NUL)",
            if chars > 64 { "..." } else { "" }
        )));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testutil::TempDir;
    use std::collections::{BTreeMap, BTreeSet};

    /// Environment variable that turns [`ipam_child`] into an allocator for the test below.
    const CHILD_ENV: &str = "PODLAB_IPAM_TEST_CHILD";

    /// A fresh, empty directory under the system's temp dir, removed on drop.
    /// A fresh directory under the system's temp dir, removed on drop.
    fn temp_dir(name: &str) -> TempDir {
        TempDir::new("ipam", name)
    }

    fn addr(text: &str) -> Ipv4Addr {
        text.parse().unwrap()
    }

    #[test]
    fn allocate_lookup_release() {
        let tmp = temp_dir("basic");
        let ipam = Ipam::open(&tmp.0, DEFAULT_CIDR).unwrap();
        assert!(tmp.0.is_dir());
        assert_eq!(ipam.gateway(), addr("10.244.0.1"));
        assert_eq!(ipam.prefix_len(), 24);
        assert_eq!(ipam.cidr(), "10.244.0.0/24");
        assert_eq!(ipam.capacity(), 253);

        let a = ipam.allocate("pod-a").unwrap();
        assert_eq!(a, addr("10.244.0.2"));
        assert_eq!(ipam.allocate("pod-a").unwrap(), a, "the same owner keeps its address");
        let b = ipam.allocate("pod-b").unwrap();
        assert_eq!(b, addr("10.244.0.3"));
        assert_eq!(ipam.lookup("pod-a"), Some(a));
        assert_eq!(ipam.lookup("nobody"), None);
        assert_eq!(ipam.list(), vec![(a, "pod-a".to_string()), (b, "pod-b".to_string())]);
        assert_eq!(fs::read_to_string(tmp.0.join("10.244.0.2")).unwrap(), "pod-a");

        ipam.release("pod-a").unwrap();
        ipam.release("pod-a").unwrap();
        ipam.release("never-allocated").unwrap();
        assert_eq!(ipam.lookup("pod-a"), None);
        assert_eq!(ipam.list(), vec![(b, "pod-b".to_string())]);
    }

    #[test]
    fn never_network_gateway_or_broadcast() {
        let tmp = temp_dir("edges");
        let ipam = Ipam::open(&tmp.0, "192.168.7.0/29").unwrap();
        let got: Vec<Ipv4Addr> = (0..5).map(|i| ipam.allocate(&format!("p{i}")).unwrap()).collect();
        let want: Vec<Ipv4Addr> = (2..=6).map(|h| Ipv4Addr::new(192, 168, 7, h)).collect();
        assert_eq!(got, want, ".0, .1 (gateway) and .7 (broadcast) are never handed out");

        let tiny = temp_dir("slash30");
        let ipam = Ipam::open(&tiny.0, "10.0.0.4/30").unwrap();
        assert_eq!(ipam.gateway(), addr("10.0.0.5"));
        assert_eq!(ipam.allocate("only").unwrap(), addr("10.0.0.6"));
        assert!(ipam.allocate("second").is_err());
    }

    #[test]
    fn exhaustion_says_so() {
        let tmp = temp_dir("full");
        let ipam = Ipam::open(&tmp.0, "10.244.0.0/29").unwrap();
        for i in 0..5 {
            ipam.allocate(&format!("pod-{i}")).unwrap();
        }
        let err = ipam.allocate("pod-5").unwrap_err();
        assert!(matches!(err, Error::Invalid(_)), "{err:?}");
        let msg = err.to_string();
        assert!(msg.starts_with("no free address in 10.244.0.0/29 (5 pods hold all of them)"), "{msg}");
        // Existing owners still get their address when the range is full.
        assert_eq!(ipam.allocate("pod-0").unwrap(), addr("10.244.0.2"));
        ipam.release("pod-3").unwrap();
        assert_eq!(ipam.allocate("pod-5").unwrap(), addr("10.244.0.5"));
    }

    #[test]
    fn survives_reopen() {
        let tmp = temp_dir("reopen");
        let first = Ipam::open(&tmp.0, DEFAULT_CIDR).unwrap();
        let a = first.allocate("pod-a").unwrap();
        let b = first.allocate("pod-b").unwrap();
        drop(first);
        let again = Ipam::open(&tmp.0, DEFAULT_CIDR).unwrap();
        assert_eq!(again.lookup("pod-a"), Some(a));
        assert_eq!(again.allocate("pod-b").unwrap(), b);
        assert_eq!(again.allocate("pod-c").unwrap(), addr("10.244.0.4"), "continues after the last one");
    }

    #[test]
    fn round_robin_after_release() {
        let tmp = temp_dir("rr");
        let ipam = Ipam::open(&tmp.0, "10.244.0.0/29").unwrap();
        let a = ipam.allocate("a").unwrap();
        ipam.allocate("b").unwrap();
        ipam.release("a").unwrap();
        let c = ipam.allocate("c").unwrap();
        assert_ne!(c, a, "a just-freed address is not reused at once");
        assert_eq!(c, addr("10.244.0.4"));
        // .5 and .6 are next, then the search wraps around to the freed .2.
        assert_eq!(ipam.allocate("d").unwrap(), addr("10.244.0.5"));
        assert_eq!(ipam.allocate("e").unwrap(), addr("10.244.0.6"));
        assert_eq!(ipam.allocate("f").unwrap(), a);
        // A broken last_reserved file only resets the starting point.
        fs::write(tmp.0.join(LAST_RESERVED), "garbage").unwrap();
        ipam.release("d").unwrap();
        assert_eq!(ipam.allocate("g").unwrap(), addr("10.244.0.5"));
    }

    #[test]
    fn foreign_files_are_ignored() {
        let tmp = temp_dir("foreign");
        let ipam = Ipam::open(&tmp.0, "10.244.0.0/29").unwrap();
        fs::write(tmp.0.join("README"), "not an address").unwrap();
        fs::write(tmp.0.join("10.9.9.9"), "from another range").unwrap();
        assert_eq!(ipam.allocate("a").unwrap(), addr("10.244.0.2"));
        assert_eq!(ipam.lookup("from another range"), None);
        assert_eq!(ipam.list().len(), 2, "list shows every address file");
    }

    #[test]
    fn bad_owners() {
        let tmp = temp_dir("owners");
        let ipam = Ipam::open(&tmp.0, DEFAULT_CIDR).unwrap();
        for owner in ["", "../../etc/passwd", "a/b", "nul\0byte", &"x".repeat(254)] {
            let err = ipam.allocate(owner).unwrap_err();
            assert!(matches!(err, Error::Invalid(_)), "{owner:?}: {err:?}");
            assert!(ipam.release(owner).is_err());
            assert_eq!(ipam.lookup(owner), None);
        }
        let long = "y".repeat(253);
        assert!(ipam.allocate(&long).is_ok());
        let names: BTreeSet<String> =
            fs::read_dir(&tmp.0).unwrap().map(|e| e.unwrap().file_name().to_string_lossy().into_owned()).collect();
        assert_eq!(names, BTreeSet::from(["10.244.0.2".into(), LAST_RESERVED.into(), LOCK.into()]));
    }

    #[test]
    fn bad_cidrs() {
        let tmp = temp_dir("cidrs");
        let cases = [
            ("10.244.0.1/24", "use the network address, 10.244.0.0/24"),
            ("10.244.0.0/33", "from 8 to 30"),
            ("10.0.0.0/7", "from 8 to 30"),
            ("10.244.0.0/31", "from 8 to 30"),
            ("10.244.0.0/x", "from 8 to 30"),
            ("::1/64", "IPv6 is not supported"),
            ("nonsense", "ADDRESS/PREFIX"),
            ("10.244.0/24", "not an IPv4 address"),
        ];
        for (cidr, want) in cases {
            let err = Ipam::open(&tmp.0, cidr).unwrap_err();
            let msg = err.to_string();
            assert!(matches!(err, Error::Invalid(_)), "{cidr}: {err:?}");
            assert!(msg.contains(cidr) && msg.contains(want), "{cidr}: {msg}");
        }
        assert!(!tmp.0.exists(), "nothing is created for a bad CIDR");
        assert!(Ipam::open(&tmp.0, "10.0.0.0/8").is_ok());
    }

    fn assert_unique(ipam: &Ipam, owners: usize) {
        let all = ipam.list();
        assert_eq!(all.len(), owners, "one file per owner");
        let mut by_owner = BTreeMap::new();
        for (a, owner) in &all {
            assert!(ipam.holds(u32::from(*a)), "{a} is outside the pod range");
            assert!(by_owner.insert(owner.clone(), *a).is_none(), "{owner} holds two addresses");
        }
        let addrs: BTreeSet<Ipv4Addr> = all.iter().map(|(a, _)| *a).collect();
        assert_eq!(addrs.len(), owners);
    }

    #[test]
    fn threads_never_share_an_address() {
        let tmp = temp_dir("threads");
        Ipam::open(&tmp.0, DEFAULT_CIDR).unwrap();
        let handles: Vec<_> = (0..8)
            .map(|t| {
                let dir = tmp.0.clone();
                std::thread::spawn(move || {
                    // Each thread opens its own allocator, as separate agents would.
                    let ipam = Ipam::open(&dir, DEFAULT_CIDR).unwrap();
                    (0..20)
                        .map(|i| (format!("t{t}-{i}"), ipam.allocate(&format!("t{t}-{i}")).unwrap()))
                        .collect::<Vec<_>>()
                })
            })
            .collect();
        let mut seen = BTreeMap::new();
        for h in handles {
            for (owner, a) in h.join().unwrap() {
                assert!(seen.insert(a, owner.clone()).is_none(), "{a} handed out twice (second time to {owner})");
            }
        }
        assert_eq!(seen.len(), 160);
        assert_unique(&Ipam::open(&tmp.0, DEFAULT_CIDR).unwrap(), 160);
    }

    #[test]
    fn processes_never_share_an_address() {
        let tmp = temp_dir("procs");
        let ipam = Ipam::open(&tmp.0, DEFAULT_CIDR).unwrap();
        let exe = std::env::current_exe().unwrap();
        let children: Vec<_> = (0..4)
            .map(|p| {
                std::process::Command::new(&exe)
                    .args(["--exact", "pod::ipam::tests::ipam_child", "--ignored", "--test-threads=1", "--quiet"])
                    .env(CHILD_ENV, format!("{}\n{p}", tmp.0.display()))
                    .stdout(std::process::Stdio::piped())
                    .stderr(std::process::Stdio::piped())
                    .spawn()
                    .unwrap()
            })
            .collect();
        // The parent allocates at the same time, and also owners the children ask for again.
        for i in 0..20 {
            ipam.allocate(&format!("parent-{i}")).unwrap();
        }
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(120);
        for mut child in children {
            while child.try_wait().unwrap().is_none() {
                if std::time::Instant::now() > deadline {
                    let _ = child.kill();
                    panic!("a child allocator hung");
                }
                std::thread::sleep(std::time::Duration::from_millis(20));
            }
            let out = child.wait_with_output().unwrap();
            let text = String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr);
            assert!(out.status.success(), "child failed: {text}");
            assert!(text.contains("1 passed"), "the child ran no allocation: {text}");
        }
        assert_unique(&ipam, 100);
    }

    /// Run as a child process by `processes_never_share_an_address`: allocates 20 owners, then
    /// checks each again, in the directory named by the environment.
    #[test]
    #[ignore = "run as a child process by processes_never_share_an_address"]
    fn ipam_child() {
        let Ok(spec) = std::env::var(CHILD_ENV) else { return };
        let (dir, id) = spec.split_once('\n').unwrap();
        let ipam = Ipam::open(Path::new(dir), DEFAULT_CIDR).unwrap();
        let got: Vec<Ipv4Addr> = (0..20).map(|i| ipam.allocate(&format!("proc{id}-{i}")).unwrap()).collect();
        for (i, a) in got.iter().enumerate() {
            assert_eq!(ipam.lookup(&format!("proc{id}-{i}")), Some(*a));
        }
    }
}
