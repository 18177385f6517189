//! From the rules that are there to the rules that should be: the fewest iptables-restore lines.
//!
//! `iptables-restore --noflush` changes only what its input names: a chain line (`:CHAIN`)
//! empties that chain, `-A` fills it, `-I`/`-D` add or remove single rules, `-X` deletes a chain.
//! So a sync sends only the chains that changed. The shared chains that hold one rule per
//! service (KUBE-SERVICES...) are edited rule by rule (`-I CHAIN 1`, `-D`) instead of rewritten:
//! with 10,000 services a rewrite is 10,000 rules, each jumping to a different chain, which
//! iptables-nft takes seconds to load. Large plans are cut into several restores, each applied
//! atomically, in an order where every intermediate state is consistent (chains exist before
//! rules jump to them; rules go before the chains they jump to).

use std::borrow::Cow;
use std::collections::{HashMap, HashSet};

use super::rules::{BaseChain, Chain, Jump, ServiceRules, Table};

/// One change, in iptables-restore's words (borrowing the rules it writes).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Op<'a> {
    /// `:CHAIN - [0:0]` (create, or empty it) and `-A CHAIN RULE` for each rule.
    Write(Cow<'a, Chain>),
    /// `-I CHAIN 1 RULE`: first in the chain (the order of service rules does not matter).
    Insert { table: Table, chain: &'a str, rule: &'a str },
    /// `-D CHAIN RULE`.
    Remove { table: Table, chain: &'a str, rule: &'a str },
    /// `:CHAIN - [0:0]` alone: empty a chain that is about to go.
    Flush { table: Table, chain: &'a str },
    /// `-X CHAIN` (it must be empty and unreferenced by then).
    Delete { table: Table, chain: &'a str },
}

impl Op<'_> {
    fn table(&self) -> Table {
        match self {
            Op::Write(c) => c.table,
            Op::Insert { table, .. }
            | Op::Remove { table, .. }
            | Op::Flush { table, .. }
            | Op::Delete { table, .. } => *table,
        }
    }

    fn write_lines(&self, out: &mut String) {
        let mut line = |parts: &[&str]| {
            for part in parts {
                out.push_str(part);
            }
            out.push('\n');
        };
        match self {
            Op::Write(c) => {
                line(&[":", &c.name, " - [0:0]"]);
                for rule in &c.rules {
                    line(&["-A ", &c.name, " ", rule]);
                }
            }
            Op::Insert { chain, rule, .. } => line(&["-I ", chain, " 1 ", rule]),
            Op::Remove { chain, rule, .. } => line(&["-D ", chain, " ", rule]),
            Op::Flush { chain, .. } => line(&[":", chain, " - [0:0]"]),
            Op::Delete { chain, .. } => line(&["-X ", chain]),
        }
    }

    /// The chains this op names (its own, and the one its rules jump to). iptables-nft 1.8's
    /// restore keeps every chain named by a command in a sorted list that each command walks:
    /// an input of m lines naming n chains costs about m x n (10,000 services in one input take
    /// many minutes; deleting 60,000 chains in one, half a minute).
    fn chains_named(&self) -> Vec<&str> {
        fn ours(rule: &str) -> Option<&str> {
            jump_target(rule).filter(|t| t.starts_with("KUBE-"))
        }
        match self {
            Op::Write(c) => std::iter::once(c.name.as_str()).chain(c.rules.iter().filter_map(|r| ours(r))).collect(),
            Op::Insert { chain, rule, .. } | Op::Remove { chain, rule, .. } => {
                std::iter::once(*chain).chain(ours(rule)).collect()
            }
            Op::Flush { chain, .. } | Op::Delete { chain, .. } => vec![*chain],
        }
    }
}

/// The target of a rule's `-j`.
pub fn jump_target(rule: &str) -> Option<&str> {
    let after = match rule.rsplit_once(" -j ") {
        Some((_, after)) => after,
        None => rule.strip_prefix("-j ")?,
    };
    after.split(' ').next()
}

/// Ops that go into the same restore, so that they take effect together.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Unit<'a> {
    pub ops: Vec<Op<'a>>,
}

/// The ops of a sync, in the order they must be applied.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Plan<'a> {
    pub units: Vec<Unit<'a>>,
}

/// What a plan writes, for [`SyncStats`](super::sync::SyncStats).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Counts {
    /// Chains written whole (`:CHAIN` then its rules).
    pub chains_written: usize,
    /// Rule lines: `-A` of written chains, `-I` and `-D`.
    pub rules_written: usize,
    /// Chains deleted (`-X`).
    pub chains_deleted: usize,
}

impl Plan<'_> {
    pub fn is_empty(&self) -> bool {
        self.units.iter().all(|u| u.ops.is_empty())
    }

    pub fn counts(&self) -> Counts {
        let mut counts = Counts::default();
        for op in self.units.iter().flat_map(|u| &u.ops) {
            match op {
                Op::Write(c) => {
                    counts.chains_written += 1;
                    counts.rules_written += c.rules.len();
                }
                Op::Insert { .. } | Op::Remove { .. } => counts.rules_written += 1,
                Op::Delete { .. } => counts.chains_deleted += 1,
                Op::Flush { .. } => {}
            }
        }
        counts
    }

    /// The iptables-restore inputs, in order. With a budget, consecutive units are packed into
    /// one input until it names about `budget` distinct chains (a unit is never split); without
    /// one, everything goes into a single input (one atomic transaction per table).
    pub fn batches(&self, budget: Option<usize>) -> Vec<String> {
        let mut batches: Vec<Vec<&Op>> = Vec::new();
        let mut current: Vec<&Op> = Vec::new();
        let mut named: HashSet<&str> = HashSet::new();
        for unit in self.units.iter().filter(|u| !u.ops.is_empty()) {
            if let Some(budget) = budget {
                let fresh: HashSet<&str> =
                    unit.ops.iter().flat_map(|op| op.chains_named()).filter(|n| !named.contains(n)).collect();
                if !current.is_empty() && named.len() + fresh.len() > budget {
                    batches.push(std::mem::take(&mut current));
                    named.clear();
                }
                named.extend(unit.ops.iter().flat_map(|op| op.chains_named()));
            }
            current.extend(&unit.ops);
        }
        if !current.is_empty() {
            batches.push(current);
        }
        batches.iter().map(|ops| render(ops)).collect()
    }
}

/// One iptables-restore input: each table's ops in order, between `*table` and `COMMIT`.
fn render(ops: &[&Op]) -> String {
    let mut out = String::new();
    for table in Table::ALL {
        if !ops.iter().any(|op| op.table() == table) {
            continue;
        }
        out.push('*');
        out.push_str(table.as_str());
        out.push('\n');
        for op in ops.iter().filter(|op| op.table() == table) {
            op.write_lines(&mut out);
        }
        out.push_str("COMMIT\n");
    }
    out
}

/// The chains of one table as `iptables-save -t TABLE` lists them.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SavedTable {
    /// Every chain with its rules (after `-A CHAIN `), built-in ones too.
    pub chains: HashMap<String, Vec<String>>,
    /// The built-in chains (their line has a policy, not "-").
    pub builtin: HashSet<String>,
}

impl SavedTable {
    /// Read the output of `iptables-save -t TABLE`.
    pub fn parse(text: &str) -> SavedTable {
        let mut saved = SavedTable::default();
        for line in text.lines() {
            if let Some(decl) = line.strip_prefix(':') {
                let mut words = decl.split_whitespace();
                if let (Some(name), Some(policy)) = (words.next(), words.next()) {
                    saved.chains.entry(name.to_string()).or_default();
                    if policy != "-" {
                        saved.builtin.insert(name.to_string());
                    }
                }
            } else if let Some(rest) = line.strip_prefix("-A ") {
                let (chain, rule) = rest.split_once(' ').unwrap_or((rest, ""));
                saved.chains.entry(chain.to_string()).or_default().push(rule.to_string());
            }
        }
        saved
    }
}

/// What is in the kernel, per table.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Saved {
    pub filter: SavedTable,
    pub nat: SavedTable,
}

impl Saved {
    /// Read the output of `iptables-save` (every table; the others are skipped).
    pub fn parse(text: &str) -> Saved {
        let mut saved = Saved::default();
        let mut section: Option<(Table, String)> = None;
        let finish = |saved: &mut Saved, section: Option<(Table, String)>| {
            if let Some((table, text)) = section {
                *match table {
                    Table::Filter => &mut saved.filter,
                    Table::Nat => &mut saved.nat,
                } = SavedTable::parse(&text);
            }
        };
        for line in text.lines() {
            if let Some(name) = line.strip_prefix('*') {
                finish(&mut saved, section.take());
                section = Table::ALL.into_iter().find(|t| t.as_str() == name).map(|t| (t, String::new()));
            } else if let Some((_, body)) = section.as_mut() {
                body.push_str(line);
                body.push('\n');
            }
        }
        finish(&mut saved, section);
        saved
    }

    fn table(&self, table: Table) -> &SavedTable {
        match table {
            Table::Filter => &self.filter,
            Table::Nat => &self.nat,
        }
    }

    fn chain(&self, table: Table, name: &str) -> Option<&Vec<String>> {
        self.table(table).chains.get(name)
    }
}

/// The stages of a plan; units are emitted stage by stage.
#[derive(Default)]
struct Builder<'a> {
    /// Node-wide chains, first: everything else jumps to them.
    base: Unit<'a>,
    /// One unit per service port: its chains and its rules in the dispatch chains.
    services: Vec<Unit<'a>>,
    /// Dispatch chains written whole (when their tail was not right).
    rewrites: Unit<'a>,
    /// `-D` of rules that jump to chains about to go; any split is safe.
    removes: Vec<Op<'a>>,
    flushes: Vec<Op<'a>>,
    deletes: Vec<Op<'a>>,
    /// Jumps from built-in chains, last: traffic enters only complete rules.
    jumps: Unit<'a>,
}

impl<'a> Builder<'a> {
    fn stale(&mut self, table: Table, chain: &'a str) {
        self.flushes.push(Op::Flush { table, chain });
        self.deletes.push(Op::Delete { table, chain });
    }

    fn finish(self) -> Plan<'a> {
        let mut units = vec![self.base];
        units.extend(self.services);
        units.push(self.rewrites);
        for stage in [self.removes, self.flushes, self.deletes] {
            units.extend(stage.into_iter().map(|op| Unit { ops: vec![op] }));
        }
        units.push(self.jumps);
        units.retain(|u| !u.ops.is_empty());
        Plan { units }
    }
}

/// A multiset of rules: the service rules present in one dispatch chain.
type Present<'a> = HashMap<&'a str, usize>;

fn take(present: &mut Present, rule: &str) -> bool {
    match present.get_mut(rule) {
        Some(n) if *n > 0 => {
            *n -= 1;
            true
        }
        _ => false,
    }
}

/// A full sync: compare what `saved` shows with `base`, `services` and `jumps`, and plan every
/// difference. `owned` are the names of the node-wide chains podlab makes: with `base` empty
/// (cleanup) they are deleted too; per-service chains (KUBE-SVC-, KUBE-SEP-...) that nothing
/// wants are deleted always.
pub fn plan_full<'a>(
    saved: &'a Saved,
    base: &'a [BaseChain],
    services: &[&'a ServiceRules],
    jumps: &'a [Jump],
    owned: &[(Table, &str)],
) -> Plan<'a> {
    let mut b = Builder::default();
    let mut present: HashMap<(Table, &'a str), Present<'a>> = HashMap::new();
    let mut rewrite: HashSet<(Table, &'a str)> = HashSet::new();
    for bc in base {
        let c = &bc.chain;
        let there = saved.chain(c.table, &c.name);
        if !bc.dispatch {
            if there != Some(&c.rules) {
                b.base.ops.push(Op::Write(Cow::Borrowed(c)));
            }
            continue;
        }
        let lines = present.entry((c.table, c.name.as_str())).or_default();
        match there {
            None => b.base.ops.push(Op::Write(Cow::Borrowed(c))),
            Some(rules) if rules.ends_with(&c.rules) => {
                for rule in &rules[..rules.len() - c.rules.len()] {
                    *lines.entry(rule.as_str()).or_default() += 1;
                }
            }
            Some(_) => {
                rewrite.insert((c.table, c.name.as_str()));
            }
        }
    }

    let mut wanted: HashSet<(Table, &str)> = base.iter().map(|bc| (bc.chain.table, bc.chain.name.as_str())).collect();
    for rules in services {
        let mut unit = Unit::default();
        for c in &rules.chains {
            wanted.insert((c.table, c.name.as_str()));
            if saved.chain(c.table, &c.name) != Some(&c.rules) {
                unit.ops.push(Op::Write(Cow::Borrowed(c)));
            }
        }
        for d in &rules.dispatch {
            if rewrite.contains(&(d.table, d.chain)) {
                continue;
            }
            let lines = present.entry((d.table, d.chain)).or_default();
            if !take(lines, &d.rule) {
                unit.ops.push(Op::Insert { table: d.table, chain: d.chain, rule: &d.rule });
            }
        }
        b.services.push(unit);
    }

    for bc in base.iter().filter(|bc| rewrite.contains(&(bc.chain.table, bc.chain.name.as_str()))) {
        let c = &bc.chain;
        let mut rules: Vec<String> = services
            .iter()
            .flat_map(|r| &r.dispatch)
            .filter(|d| d.table == c.table && d.chain == c.name)
            .map(|d| d.rule.clone())
            .collect();
        rules.extend(c.rules.iter().cloned());
        b.rewrites.ops.push(Op::Write(Cow::Owned(Chain { table: c.table, name: c.name.clone(), rules })));
    }

    // Rules left over in dispatch chains: services that are gone, or stray copies.
    let mut strays: Vec<((Table, &'a str), Present<'a>)> = present.into_iter().collect();
    strays.sort_by_key(|(key, _)| *key);
    for ((table, chain), lines) in strays {
        let mut lines: Vec<(&str, usize)> = lines.into_iter().collect();
        lines.sort();
        for (rule, n) in lines {
            for _ in 0..n {
                b.removes.push(Op::Remove { table, chain, rule });
            }
        }
    }

    // Jumps from built-in chains: keep the ones wanted (once each), remove other podlab jumps.
    let mut missing = Vec::new();
    for table in Table::ALL {
        let t = saved.table(table);
        let mut builtins: Vec<&String> = t.builtin.iter().collect();
        builtins.sort();
        for chain in builtins {
            let mut seen: HashSet<&str> = HashSet::new();
            for rule in &t.chains[chain] {
                let wanted = jumps.iter().any(|j| j.table == table && j.chain == chain && j.rule == *rule);
                if (wanted && seen.insert(rule.as_str())) || !super::rules::is_our_jump(rule) {
                    continue;
                }
                b.removes.push(Op::Remove { table, chain: chain.as_str(), rule: rule.as_str() });
            }
        }
    }
    for j in jumps {
        let there = saved.table(j.table).chains.get(j.chain).is_some_and(|rules| rules.contains(&j.rule));
        if !there {
            missing.push(j);
        }
    }
    // Each goes to the top: insert the last first, so they read in the listed order.
    for j in missing.into_iter().rev() {
        b.jumps.ops.push(Op::Insert { table: j.table, chain: j.chain, rule: &j.rule });
    }

    // Chains of podlab that nothing wants any more.
    for table in Table::ALL {
        let mut stale: Vec<&String> = saved
            .table(table)
            .chains
            .keys()
            .filter(|name| super::rules::is_service_chain(name) || owned.contains(&(table, name.as_str())))
            .filter(|name| !wanted.contains(&(table, name.as_str())))
            .collect();
        stale.sort();
        for chain in stale {
            b.stale(table, chain);
        }
    }
    b.finish()
}

static EMPTY: ServiceRules = ServiceRules { chains: Vec::new(), dispatch: Vec::new() };

/// One service port that changed since the last sync: what it had, what it has now.
#[derive(Debug, Clone, Copy)]
pub struct Change<'a> {
    pub old: Option<&'a ServiceRules>,
    pub new: Option<&'a ServiceRules>,
}

/// A partial sync: only the service ports in `changes` differ from what was written last time
/// (and is taken to be in the kernel still).
pub fn plan_partial<'a>(changes: &[Change<'a>]) -> Plan<'a> {
    let mut b = Builder::default();
    let empty: &ServiceRules = &EMPTY;
    for change in changes {
        let (old, new): (&'a ServiceRules, &'a ServiceRules) =
            (change.old.unwrap_or(empty), change.new.unwrap_or(empty));
        let mut unit = Unit::default();
        let had: HashMap<(Table, &str), &Vec<String>> =
            old.chains.iter().map(|c| ((c.table, c.name.as_str()), &c.rules)).collect();
        for c in &new.chains {
            if had.get(&(c.table, c.name.as_str())) != Some(&&c.rules) {
                unit.ops.push(Op::Write(Cow::Borrowed(c)));
            }
        }
        let keep: HashSet<(Table, &str)> = new.chains.iter().map(|c| (c.table, c.name.as_str())).collect();
        for c in old.chains.iter().filter(|c| !keep.contains(&(c.table, c.name.as_str()))) {
            b.stale(c.table, &c.name);
        }
        let mut present: HashMap<(Table, &str), Present> = HashMap::new();
        for d in &old.dispatch {
            *present.entry((d.table, d.chain)).or_default().entry(d.rule.as_str()).or_default() += 1;
        }
        for d in &new.dispatch {
            let lines = present.entry((d.table, d.chain)).or_default();
            if !take(lines, &d.rule) {
                unit.ops.push(Op::Insert { table: d.table, chain: d.chain, rule: &d.rule });
            }
        }
        for d in &old.dispatch {
            let lines = present.entry((d.table, d.chain)).or_default();
            if take(lines, &d.rule) {
                b.removes.push(Op::Remove { table: d.table, chain: d.chain, rule: &d.rule });
            }
        }
        b.services.push(unit);
    }
    b.finish()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::proxy::model::{Endpoint, Protocol, ProxyConfig, ServicePort, ServicePortName};
    use crate::proxy::rules::{self, Options};

    fn opts() -> Options {
        Options::new(&ProxyConfig::default()).unwrap()
    }

    fn port(name: &str, vip: u8, endpoints: &[u8]) -> ServicePort {
        ServicePort {
            name: ServicePortName {
                namespace: "ns".into(),
                name: name.into(),
                port: "http".into(),
                protocol: Protocol::Tcp,
            },
            cluster_ip: Some(std::net::Ipv4Addr::new(10, 96, 0, vip)),
            port: 80,
            node_port: None,
            affinity_timeout: None,
            endpoints: endpoints
                .iter()
                .map(|i| Endpoint { ip: std::net::Ipv4Addr::new(10, 244, 0, *i), port: 8080 })
                .collect(),
        }
    }

    /// What the kernel would show after applying `text` on top of `saved` (enough of
    /// iptables-restore --noflush for these tests).
    fn apply(saved: &mut Saved, text: &str) {
        let mut table = Table::Nat;
        fn t(saved: &mut Saved, table: Table) -> &mut SavedTable {
            match table {
                Table::Filter => &mut saved.filter,
                Table::Nat => &mut saved.nat,
            }
        }
        for line in text.lines() {
            if let Some(name) = line.strip_prefix('*') {
                table = if name == "filter" { Table::Filter } else { Table::Nat };
            } else if let Some(decl) = line.strip_prefix(':') {
                let name = decl.split(' ').next().unwrap();
                t(saved, table).chains.insert(name.to_string(), Vec::new());
            } else if let Some(rest) = line.strip_prefix("-A ") {
                let (c, r) = rest.split_once(' ').unwrap();
                t(saved, table).chains.get_mut(c).unwrap().push(r.to_string());
            } else if let Some(rest) = line.strip_prefix("-I ") {
                let (c, r) = rest.split_once(" 1 ").unwrap();
                t(saved, table).chains.entry(c.to_string()).or_default().insert(0, r.to_string());
            } else if let Some(rest) = line.strip_prefix("-D ") {
                let (c, r) = rest.split_once(' ').unwrap();
                let rules = t(saved, table).chains.get_mut(c).unwrap();
                let at = rules.iter().position(|x| x == r).unwrap_or_else(|| panic!("no rule to delete: {line}"));
                rules.remove(at);
            } else if let Some(name) = line.strip_prefix("-X ") {
                assert!(t(saved, table).chains[name].is_empty(), "-X of a non-empty chain {name}");
                t(saved, table).chains.remove(name);
            }
        }
    }

    fn empty_kernel() -> Saved {
        let mut saved = Saved::default();
        for (table, chains) in [
            (Table::Filter, &["INPUT", "FORWARD", "OUTPUT"][..]),
            (Table::Nat, &["PREROUTING", "OUTPUT", "POSTROUTING"][..]),
        ] {
            let t = if table == Table::Filter { &mut saved.filter } else { &mut saved.nat };
            for c in chains {
                t.chains.insert(c.to_string(), Vec::new());
                t.builtin.insert(c.to_string());
            }
        }
        saved
    }

    fn owned() -> Vec<(Table, &'static str)> {
        rules::owned_chains()
    }

    #[test]
    fn full_then_nothing_then_partial() {
        let o = opts();
        let base = rules::base_chains(&o);
        let jumps = rules::jumps();
        let ports = [port("a", 1, &[1, 2, 3]), port("b", 2, &[]), port("c", 3, &[4])];
        let rules: Vec<ServiceRules> = ports.iter().map(|p| rules::service_rules(p, &o)).collect();
        let refs: Vec<&ServiceRules> = rules.iter().collect();

        let mut kernel = empty_kernel();
        let plan = plan_full(&kernel, &base, &refs, &jumps, &owned());
        let counts = plan.counts();
        assert_eq!(counts.chains_written, base.len() + 1 + 3 + 1 + 1, "base, a's SVC and 3 SEPs, c's SVC and SEP");
        for text in plan.batches(None) {
            apply(&mut kernel, &text);
        }
        assert_eq!(kernel.nat.chains["PREROUTING"], [jumps[7].rule.clone()]);
        let services = &kernel.nat.chains[rules::SERVICES];
        assert_eq!(services.len(), 3, "two services and the tail: {services:?}");
        assert!(services[2].ends_with("-j KUBE-NODEPORTS"));
        assert_eq!(kernel.filter.chains[rules::SERVICES].len(), 1, "b is rejected");

        // The same again: the kernel already says it all.
        assert!(plan_full(&kernel, &base, &refs, &jumps, &owned()).is_empty());

        // b gets an endpoint, a loses one, c goes.
        let new_ports = [port("a", 1, &[1, 2]), port("b", 2, &[9])];
        let new_rules: Vec<ServiceRules> = new_ports.iter().map(|p| rules::service_rules(p, &o)).collect();
        let changes = [
            Change { old: Some(&rules[0]), new: Some(&new_rules[0]) },
            Change { old: Some(&rules[1]), new: Some(&new_rules[1]) },
            Change { old: Some(&rules[2]), new: None },
        ];
        let plan = plan_partial(&changes);
        let counts = plan.counts();
        assert_eq!(counts.chains_written, 1 + 2, "a's SVC; b's SVC and SEP (a's other SEPs are unchanged)");
        assert_eq!(counts.chains_deleted, 1 + 2, "a's third SEP; c's SVC and SEP");
        let texts = plan.batches(None);
        assert_eq!(texts.len(), 1);
        assert!(!texts[0].contains(":KUBE-SERVICES"), "KUBE-SERVICES is edited, not rewritten:\n{}", texts[0]);
        apply(&mut kernel, &texts[0]);
        let new_refs: Vec<&ServiceRules> = new_rules.iter().collect();
        assert!(plan_full(&kernel, &base, &new_refs, &jumps, &owned()).is_empty(), "partial == full");

        // Cleanup: nothing of podlab is left.
        for text in plan_full(&kernel, &[], &[], &[], &owned()).batches(Some(3)) {
            apply(&mut kernel, &text);
        }
        let left: Vec<&String> =
            kernel.nat.chains.keys().chain(kernel.filter.chains.keys()).filter(|c| c.starts_with("KUBE-")).collect();
        assert!(left.is_empty(), "{left:?}");
        assert!(kernel.nat.chains["PREROUTING"].is_empty() && kernel.filter.chains["FORWARD"].is_empty());
    }

    #[test]
    fn batches_keep_units_whole_and_order() {
        let o = opts();
        let base = rules::base_chains(&o);
        let ports: Vec<ServicePort> = (0..20).map(|i| port(&format!("s{i}"), i, &[1, 2, 3, 4])).collect();
        let rules: Vec<ServiceRules> = ports.iter().map(|p| rules::service_rules(p, &o)).collect();
        let refs: Vec<&ServiceRules> = rules.iter().collect();
        let mut kernel = empty_kernel();
        let jumps = rules::jumps();
        let plan = plan_full(&kernel, &base, &refs, &jumps, &owned());
        let texts = plan.batches(Some(30));
        assert!(texts.len() > 3, "{} batches", texts.len());
        // Applying them one by one, every rule jumps to a chain that exists.
        for text in &texts {
            apply(&mut kernel, text);
            for t in [&kernel.filter, &kernel.nat] {
                for rules in t.chains.values() {
                    for r in rules {
                        if let Some(target) = jump_target(r).filter(|t| t.starts_with("KUBE-")) {
                            assert!(t.chains.contains_key(target), "{r} before {target} exists");
                        }
                    }
                }
            }
        }
        assert!(plan_full(&kernel, &base, &refs, &rules::jumps(), &owned()).is_empty());
    }

    #[test]
    fn strays_and_broken_tails_are_repaired() {
        let o = opts();
        let base = rules::base_chains(&o);
        let rules = [rules::service_rules(&port("a", 1, &[1]), &o)];
        let refs: Vec<&ServiceRules> = rules.iter().collect();
        let mut kernel = empty_kernel();
        for text in plan_full(&kernel, &base, &refs, &rules::jumps(), &owned()).batches(None) {
            apply(&mut kernel, &text);
        }
        // Someone appends a rule after the tail, and leaves an old service chain and a duplicate jump.
        kernel.nat.chains.get_mut(rules::SERVICES).unwrap().push("-j RETURN".into());
        kernel.nat.chains.insert("KUBE-SVC-OLDOLDOLDOLDOLDO".into(), vec!["-j RETURN".into()]);
        let jump = rules::jumps()[7].rule.clone();
        kernel.nat.chains.get_mut("PREROUTING").unwrap().push(jump);
        let jumps = rules::jumps();
        let texts = plan_full(&kernel, &base, &refs, &jumps, &owned()).batches(None);
        for text in texts {
            apply(&mut kernel, &text);
        }
        assert_eq!(kernel.nat.chains[rules::SERVICES].len(), 2);
        assert!(!kernel.nat.chains.contains_key("KUBE-SVC-OLDOLDOLDOLDOLDO"));
        assert_eq!(kernel.nat.chains["PREROUTING"].len(), 1);
        assert!(plan_full(&kernel, &base, &refs, &rules::jumps(), &owned()).is_empty());
    }

    #[test]
    fn saved_dumps_are_split_by_table() {
        let text = "*mangle\n:PREROUTING ACCEPT [0:0]\n-A PREROUTING -j MARK --set-mark 1\nCOMMIT\n\
                    *filter\n:INPUT ACCEPT [0:0]\n:KUBE-FORWARD - [0:0]\n-A INPUT -j KUBE-FORWARD\nCOMMIT\n\
                    *nat\n:KUBE-SERVICES - [0:0]\nCOMMIT\n";
        let saved = Saved::parse(text);
        assert_eq!(saved.filter.chains["INPUT"], ["-j KUBE-FORWARD"]);
        assert!(saved.filter.builtin.contains("INPUT") && !saved.filter.chains.contains_key("PREROUTING"));
        assert!(saved.nat.chains["KUBE-SERVICES"].is_empty());
    }

    #[test]
    fn saved_tables_are_parsed() {
        let text = "# Generated\n*nat\n:PREROUTING ACCEPT [0:0]\n:KUBE-SERVICES - [0:0]\n\
                    -A PREROUTING -m comment --comment \"podlab: x\" -j KUBE-SERVICES\n-A KUBE-SERVICES -j RETURN\nCOMMIT\n";
        let t = SavedTable::parse(text);
        assert!(t.builtin.contains("PREROUTING") && !t.builtin.contains("KUBE-SERVICES"));
        assert_eq!(t.chains["KUBE-SERVICES"], ["-j RETURN"]);
        assert_eq!(t.chains["PREROUTING"].len(), 1);
    }
}
