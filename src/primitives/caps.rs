//! Capabilities: root's power, cut into ~40 pieces.
//!
//! Each process holds five sets of capabilities (CAP_NET_ADMIN, CAP_SYS_ADMIN...): *bounding*
//! (the most it can ever get), *permitted* (what it may use), *effective* (what the kernel checks
//! now), *inheritable* and *ambient* (what survives `execve`). A container runtime drops the
//! bounding set to a short list, so even root inside the container cannot mount or load modules.
//! `grep Cap /proc/self/status` shows the five sets as hex masks; `capsh --decode=MASK` names them.

use std::collections::BTreeSet;
use std::str::FromStr;

use caps::{CapSet, Capability, CapsHashSet};

use crate::error::{Error, IoContext, Result};
use crate::explain;

/// The capabilities Docker and containerd give a container by default (moby's
/// `caps.DefaultCapabilities()`, containerd's `defaultUnixCaps()`).
pub const DEFAULT_CAPS: [&str; 14] = [
    "CAP_CHOWN",
    "CAP_DAC_OVERRIDE",
    "CAP_FSETID",
    "CAP_FOWNER",
    "CAP_MKNOD",
    "CAP_NET_RAW",
    "CAP_SETGID",
    "CAP_SETUID",
    "CAP_SETFCAP",
    "CAP_SETPCAP",
    "CAP_NET_BIND_SERVICE",
    "CAP_SYS_CHROOT",
    "CAP_KILL",
    "CAP_AUDIT_WRITE",
];

/// The five capability sets of a process, named as in the OCI runtime spec
/// (`process.capabilities`): lists of "CAP_X".
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CapSets {
    pub bounding: Vec<String>,
    pub effective: Vec<String>,
    pub permitted: Vec<String>,
    pub inheritable: Vec<String>,
    pub ambient: Vec<String>,
}

impl CapSets {
    /// What Docker and containerd put in a container's config.json: [`DEFAULT_CAPS`] in the
    /// bounding, permitted and effective sets; inheritable and ambient empty. (Inheritable was
    /// filled too until CVE-2022-24769 / CVE-2022-29162: a non-empty inheritable set let
    /// programs with file capabilities gain them inside the container. `runc spec` left it out
    /// from then on, and containerd, moby and runc's own example config all do.)
    pub fn default_container() -> CapSets {
        let list: Vec<String> = DEFAULT_CAPS.iter().map(|c| c.to_string()).collect();
        CapSets {
            bounding: list.clone(),
            effective: list.clone(),
            permitted: list,
            inheritable: Vec::new(),
            ambient: Vec::new(),
        }
    }
}

/// Parse a capability name: "CAP_NET_ADMIN", "cap_net_admin", "NET_ADMIN" or "net_admin".
pub fn parse(name: &str) -> Result<Capability> {
    let canonical = caps::to_canonical(name.trim());
    Capability::from_str(&canonical).map_err(|_| {
        Error::invalid(format!(
            "unknown capability {name:?}: names look like CAP_NET_ADMIN or net_admin (list: `man 7 capabilities`)"
        ))
    })
}

/// The kernel bit mask of a list of names (as in /proc/PID/status: CAP_CHOWN is bit 0).
pub fn mask(names: &[String]) -> Result<u64> {
    names.iter().try_fold(0u64, |acc, n| Ok(acc | parse(n)?.bitmask()))
}

/// The capability sets of a process (`grep Cap /proc/PID/status`), `None` for the caller:
/// (effective, permitted, bounding, inheritable, ambient) as bit masks.
pub fn current(pid: Option<i32>) -> Result<(u64, u64, u64, u64, u64)> {
    let path = match pid {
        Some(pid) => format!("/proc/{pid}/status"),
        None => "/proc/self/status".to_string(),
    };
    let text = std::fs::read_to_string(&path).ctx("read", &path)?;
    let field = |name: &str| -> Result<u64> {
        let value = text
            .lines()
            .find_map(|l| l.strip_prefix(name)?.strip_prefix(':'))
            .ok_or_else(|| Error::invalid(format!("{path} has no {name} line")))?;
        u64::from_str_radix(value.trim(), 16)
            .map_err(|_| Error::invalid(format!("{path}: {name} is not a hex mask: {value:?}")))
    };
    Ok((field("CapEff")?, field("CapPrm")?, field("CapBnd")?, field("CapInh")?, field("CapAmb")?))
}

/// Give the calling thread exactly these capability sets, the way runc's container init does.
///
/// Order matters, because each step needs a capability a later step may remove:
/// 1. raise effective to the whole permitted set (after a `setuid` with keep-caps the
///    effective set is empty, and dropping from the bounding set needs CAP_SETPCAP);
/// 2. drop everything else from the bounding set (`PR_CAPBSET_DROP`, needs CAP_SETPCAP);
/// 3. set inheritable (may only grow within the bounding set), then effective, then permitted
///    (each may only shrink, and effective must stay inside permitted);
/// 4. raise ambient: the kernel only takes caps that are both permitted and inheritable.
///
/// What runc relies on: after `execve`, a process with uid 0 gets its permitted and effective
/// sets recomputed as if the program had every file capability, so it ends up with
/// permitted = effective = bounding (| inheritable), whatever they were before exec (unless
/// SECBIT_NOROOT is set, which runc does not do). The bounding set is what confines a root
/// container. A non-root process keeps nothing across exec except its ambient set.
///
/// Every name and the rules above are checked before anything changes. The bounding set can only
/// shrink: a name in `bounding` that this process has already lost stays absent (runc does the same).
pub fn apply(sets: &CapSets) -> Result<()> {
    let bounding = parse_set(&sets.bounding)?;
    let effective = parse_set(&sets.effective)?;
    let permitted = parse_set(&sets.permitted)?;
    let inheritable = parse_set(&sets.inheritable)?;
    let ambient = parse_set(&sets.ambient)?;
    need_subset(&effective, &permitted, "effective", "permitted")?;
    need_subset(&inheritable, &bounding, "inheritable", "bounding")?;
    need_subset(&ambient, &permitted, "ambient", "permitted")?;
    need_subset(&ambient, &inheritable, "ambient", "inheritable")?;

    let supported = caps::runtime::thread_all_supported();
    let mut drop: Vec<Capability> = supported
        .iter()
        .copied()
        .filter(|c| !bounding.contains(&c.index()) && caps::has_cap(None, CapSet::Bounding, *c).unwrap_or(false))
        .collect();
    drop.sort_by_key(|c| c.index());

    let held = caps::read(None, CapSet::Permitted).map_err(|e| caps_err("read the permitted set".into(), e))?;
    if let Some(index) = permitted.iter().find(|i| !held.iter().any(|c| c.index() == **i)) {
        return Err(Error::invalid(format!(
            "cannot put {} in the permitted set: this process does not hold it (see CapPrm in /proc/self/status)",
            name_of(*index)
        )));
    }
    explain::say(capsh_line(&drop, &effective, &permitted, &inheritable, &ambient));
    caps::set(None, CapSet::Effective, &held)
        .map_err(|e| caps_err("raise the effective set to the permitted set".into(), e))?;
    for cap in &drop {
        caps::drop(None, CapSet::Bounding, *cap)
            .map_err(|e| caps_err(format!("drop {cap} from the bounding set (needs CAP_SETPCAP)"), e))?;
    }
    let set = |cset: CapSet, name: &str, value: &BTreeSet<u8>| -> Result<()> {
        let value: CapsHashSet = supported.iter().copied().filter(|c| value.contains(&c.index())).collect();
        caps::set(None, cset, &value).map_err(|e| caps_err(format!("set the {name} capability set"), e))
    };
    set(CapSet::Inheritable, "inheritable", &inheritable)?;
    set(CapSet::Effective, "effective", &effective)?;
    set(CapSet::Permitted, "permitted", &permitted)?;
    caps::clear(None, CapSet::Ambient).map_err(|e| caps_err("clear the ambient set".into(), e))?;
    for cap in supported.iter().filter(|c| ambient.contains(&c.index())) {
        caps::raise(None, CapSet::Ambient, *cap).map_err(|e| {
            caps_err(format!("raise {cap} in the ambient set (it must be permitted and inheritable)"), e)
        })?;
    }
    Ok(())
}

/// Names to kernel indexes, failing on the first unknown name.
fn parse_set(names: &[String]) -> Result<BTreeSet<u8>> {
    names.iter().map(|n| Ok(parse(n)?.index())).collect()
}

fn need_subset(part: &BTreeSet<u8>, whole: &BTreeSet<u8>, part_name: &str, whole_name: &str) -> Result<()> {
    match part.iter().find(|c| !whole.contains(c)) {
        None => Ok(()),
        Some(index) => Err(Error::invalid(format!(
            "capability {} is in the {part_name} set but not in the {whole_name} set; the kernel refuses that \
             (add it to {whole_name} or remove it from {part_name})",
            name_of(*index)
        ))),
    }
}

fn name_of(index: u8) -> String {
    caps::all().into_iter().find(|c| c.index() == index).map(|c| c.to_string()).unwrap_or(format!("cap {index}"))
}

/// The `capsh` command with the same effect: drop from the bounding set, set e/p/i with a
/// cap_from_text string such as `cap_chown,cap_kill=ep`, raise ambient caps, run a shell.
fn capsh_line(
    drop: &[Capability],
    effective: &BTreeSet<u8>,
    permitted: &BTreeSet<u8>,
    inheritable: &BTreeSet<u8>,
    ambient: &BTreeSet<u8>,
) -> String {
    let lower = |index: &u8| name_of(*index).to_lowercase();
    let mut words = vec!["capsh".to_string()];
    if !drop.is_empty() {
        let names: Vec<String> = drop.iter().map(|c| c.to_string().to_lowercase()).collect();
        words.push(format!("--drop={}", names.join(",")));
    }
    // Group the capabilities by their flags: "cap_chown,cap_kill=ep cap_net_bind_service=eip".
    let all: BTreeSet<u8> = effective.iter().chain(permitted).chain(inheritable).copied().collect();
    let mut groups: Vec<(String, Vec<String>)> = Vec::new();
    for index in &all {
        let flags: String = [(effective, 'e'), (inheritable, 'i'), (permitted, 'p')]
            .iter()
            .filter(|(set, _)| set.contains(index))
            .map(|(_, f)| *f)
            .collect();
        match groups.iter_mut().find(|(f, _)| *f == flags) {
            Some((_, names)) => names.push(lower(index)),
            None => groups.push((flags, vec![lower(index)])),
        }
    }
    let text: Vec<String> = groups.iter().map(|(flags, names)| format!("{}={flags}", names.join(","))).collect();
    let text = if text.is_empty() { "=".to_string() } else { text.join(" ") };
    words.push(format!("--caps={text}"));
    if !ambient.is_empty() {
        let names: Vec<String> = ambient.iter().map(lower).collect();
        words.push(format!("--addamb={}", names.join(",")));
    }
    words.push("--".to_string());
    explain::join(&words)
}

/// The caps crate reports errors as text ("capset failure: Operation not permitted (os error 1)");
/// keep the errno when there is one so callers can match on it.
fn caps_err(action: String, e: caps::errors::CapsError) -> Error {
    let text = e.to_string();
    let errno = text
        .rsplit_once("(os error ")
        .and_then(|(_, rest)| rest.trim_end_matches(')').parse::<i32>().ok())
        .filter(|n| *n != 0);
    match errno {
        Some(n) => Error::sys(action, nix::errno::Errno::from_raw(n)),
        None => Error::invalid(format!("{action}: {text}")),
    }
}
