//! iptables: the kernel's packet filter and address translation (netfilter), by its command.
//!
//! Rules sit in chains, chains in tables: `filter` decides what passes, `nat` rewrites
//! addresses (DNAT sends a packet for the node's port 8080 to a pod; MASQUERADE gives a packet
//! leaving the node the node's address). The built-in chains are the kernel's hooks
//! (PREROUTING, OUTPUT, FORWARD, POSTROUTING...); a rule there can jump to a chain of our own.
//! Rules belong to a network namespace: the one of the thread that runs `iptables`.
//! podlab tags each of its rules with `-m comment --comment "podlab ..."` to find them again.

use std::io::Write;
use std::process::{Command, Stdio};

use crate::error::{Error, Result};
use crate::explain;

/// The tables iptables knows.
const TABLES: &[&str] = &["filter", "nat", "mangle", "raw", "security"];
/// Longest chain name the kernel keeps (XT_EXTENSION_MAXNAMELEN less the NUL).
const MAX_CHAIN: usize = 28;
/// Longest comment the comment match keeps (XT_MAX_COMMENT_LEN less the NUL).
const MAX_COMMENT: usize = 255;

/// Where [`ensure_rule`] puts a new rule.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Position {
    /// At the end of the chain (`-A`).
    Append,
    /// At the top of the chain (`-I CHAIN 1`), before anything already there.
    First,
}

/// One rule, as `iptables-save` prints it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rule {
    pub table: String,
    pub chain: String,
    /// Everything after `-A CHAIN`, in iptables-save's words and quoting.
    pub spec: String,
    /// The text of its `-m comment --comment`, if it has one.
    pub comment: Option<String>,
}

/// `-m comment --comment TEXT`, to put in a rule.
pub fn comment(text: &str) -> Vec<String> {
    vec!["-m".into(), "comment".into(), "--comment".into(), text.into()]
}

/// `iptables -w -t TABLE -N CHAIN` unless the chain is there already.
pub fn ensure_chain(table: &str, chain: &str) -> Result<()> {
    check_table(table)?;
    check_chain(chain)?;
    if chains(table)?.iter().any(|c| c == chain) {
        return Ok(());
    }
    let args = words(&["-w", "-t", table, "-N", chain]);
    explain::say(command_line("iptables", &args));
    match run("iptables", &args, None) {
        // Created by someone else between the look and the -N: just as good.
        Err(_) if chains(table)?.iter().any(|c| c == chain) => Ok(()),
        other => other.map(drop),
    }
}

/// Whether `chain` exists in `table`.
pub fn chain_exists(table: &str, chain: &str) -> Result<bool> {
    check_table(table)?;
    Ok(chains(table)?.iter().any(|c| c == chain))
}

/// The chains of `table`, built-in ones first, as iptables-save lists them.
pub fn chains(table: &str) -> Result<Vec<String>> {
    check_table(table)?;
    let text = save_table(table)?;
    Ok(text.lines().filter_map(|l| l.strip_prefix(':')?.split_whitespace().next().map(str::to_string)).collect())
}

/// Whether `rule` is in `chain` (`iptables -C`, which compares every match and the target).
pub fn rule_exists(table: &str, chain: &str, rule: &[String]) -> Result<bool> {
    check_table(table)?;
    check_chain(chain)?;
    let mut args = words(&["-w", "-t", table, "-C", chain]);
    args.extend(rule.iter().cloned());
    let out = output("iptables", &args, None)?;
    match out.status.code() {
        Some(0) => Ok(true),
        // 1: "Bad rule (does a matching rule exist in that chain?)", also when the chain is missing.
        Some(1) => Ok(false),
        _ => Err(failed("iptables", &args, &out)),
    }
}

/// Add `rule` to `chain` unless an identical one is there (`iptables -C ... || iptables -A ...`).
/// Returns whether it was added. Not atomic across processes: hold a lock around it.
pub fn ensure_rule(table: &str, chain: &str, position: Position, rule: &[String]) -> Result<bool> {
    check_rule(rule)?;
    if rule_exists(table, chain, rule)? {
        return Ok(false);
    }
    let mut args = words(&["-w", "-t", table]);
    match position {
        Position::Append => args.extend(words(&["-A", chain])),
        Position::First => args.extend(words(&["-I", chain, "1"])),
    }
    args.extend(rule.iter().cloned());
    explain::say(command_line("iptables", &args));
    run("iptables", &args, None)?;
    Ok(true)
}

/// `iptables -w -t TABLE -D CHAIN RULE...`; returns false when there was no such rule.
pub fn delete_rule(table: &str, chain: &str, rule: &[String]) -> Result<bool> {
    if !rule_exists(table, chain, rule)? {
        return Ok(false);
    }
    let mut args = words(&["-w", "-t", table, "-D", chain]);
    args.extend(rule.iter().cloned());
    explain::say(command_line("iptables", &args));
    run("iptables", &args, None)?;
    Ok(true)
}

/// Empty `chain` and delete it (`-F` then `-X`); a chain that is not there is fine. Rules of
/// other chains that jump to it must be gone first (the kernel refuses otherwise).
pub fn delete_chain(table: &str, chain: &str) -> Result<()> {
    if !chain_exists(table, chain)? {
        return Ok(());
    }
    for op in ["-F", "-X"] {
        let args = words(&["-w", "-t", table, op, chain]);
        explain::say(command_line("iptables", &args));
        run("iptables", &args, None)?;
    }
    Ok(())
}

/// Every rule of `table` (`iptables-save -t TABLE`), in order.
pub fn list(table: &str) -> Result<Vec<Rule>> {
    check_table(table)?;
    let text = save_table(table)?;
    let mut rules = Vec::new();
    for line in text.lines() {
        let Some(rest) = line.strip_prefix("-A ") else { continue };
        let (chain, spec) = rest.split_once(' ').unwrap_or((rest, ""));
        let comment = comment_of(spec);
        rules.push(Rule { table: table.to_string(), chain: chain.to_string(), spec: spec.to_string(), comment });
    }
    Ok(rules)
}

/// The rules of the `filter` and `nat` tables whose comment starts with "podlab".
pub fn podlab_rules() -> Result<Vec<Rule>> {
    let mut ours = Vec::new();
    for table in ["filter", "nat"] {
        ours.extend(list(table)?.into_iter().filter(|r| r.comment.as_deref().is_some_and(|c| c.starts_with("podlab"))));
    }
    Ok(ours)
}

/// Delete, in one `iptables-restore --noflush` transaction, every rule of `table` for which
/// `matches` is true. Returns how many went.
pub fn delete_matching(table: &str, matches: impl Fn(&Rule) -> bool) -> Result<usize> {
    let doomed: Vec<Rule> = list(table)?.into_iter().filter(|r| matches(r)).collect();
    if doomed.is_empty() {
        return Ok(0);
    }
    let mut input = format!("*{table}\n");
    for rule in &doomed {
        input.push_str(&format!("-D {} {}\n", rule.chain, rule.spec));
    }
    input.push_str("COMMIT\n");
    let args = words(&["-w", "--noflush"]);
    explain::say(format!("iptables-restore -w --noflush <<EOF\n{input}EOF"));
    run("iptables-restore", &args, Some(&input))?;
    Ok(doomed.len())
}

/// `iptables-save`: every table of this network namespace, as text.
pub fn save() -> Result<String> {
    run("iptables-save", &[], None)
}

fn save_table(table: &str) -> Result<String> {
    run("iptables-save", &words(&["-t", table]), None)
}

/// The comment of a rule in iptables-save's words (`--comment "a b"` or `--comment word`).
fn comment_of(spec: &str) -> Option<String> {
    let tokens = split(spec);
    let at = tokens.iter().position(|t| t == "--comment")?;
    tokens.get(at + 1).cloned()
}

/// Split an iptables-save line into words: spaces separate them, except inside double quotes,
/// where `\"` and `\\` stand for `"` and `\`.
fn split(line: &str) -> Vec<String> {
    let mut words = Vec::new();
    let mut word = String::new();
    let (mut quoted, mut in_word) = (false, false);
    let mut chars = line.chars();
    while let Some(c) = chars.next() {
        match c {
            '"' => {
                quoted = !quoted;
                in_word = true;
            }
            '\\' if quoted => word.extend(chars.next()),
            c if c.is_whitespace() && !quoted => {
                if in_word {
                    words.push(std::mem::take(&mut word));
                }
                in_word = false;
            }
            c => {
                word.push(c);
                in_word = true;
            }
        }
    }
    if in_word {
        words.push(word);
    }
    words
}

fn words(list: &[&str]) -> Vec<String> {
    list.iter().map(|s| s.to_string()).collect()
}

fn command_line(program: &str, args: &[String]) -> String {
    let mut all = vec![program.to_string()];
    all.extend(args.iter().cloned());
    explain::join(&all)
}

/// Run `program args` (stdin from `input`) and return its stdout, or an error with its stderr.
fn run(program: &str, args: &[String], input: Option<&str>) -> Result<String> {
    let out = output(program, args, input)?;
    if !out.status.success() {
        return Err(failed(program, args, &out));
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

fn output(program: &str, args: &[String], input: Option<&str>) -> Result<std::process::Output> {
    let not_started = |e: std::io::Error| match e.kind() {
        std::io::ErrorKind::NotFound => Error::Missing(format!(
            "{program} is not installed: podlab needs it for the pod network (apt-get install iptables)"
        )),
        _ => Error::io("run", program, e),
    };
    let mut cmd = Command::new(program);
    cmd.args(args).stdout(Stdio::piped()).stderr(Stdio::piped());
    cmd.stdin(if input.is_some() { Stdio::piped() } else { Stdio::null() });
    let mut child = cmd.spawn().map_err(not_started)?;
    if let (Some(text), Some(mut stdin)) = (input, child.stdin.take()) {
        stdin.write_all(text.as_bytes()).map_err(|e| Error::io("write to", program, e))?;
    }
    child.wait_with_output().map_err(|e| Error::io("wait for", program, e))
}

fn failed(program: &str, args: &[String], out: &std::process::Output) -> Error {
    let code = out.status.code().map(|c| format!("exit status {c}")).unwrap_or_else(|| "killed".into());
    let stderr = String::from_utf8_lossy(&out.stderr).trim().to_string();
    Error::Child {
        step: format!("`{}` failed ({code})", command_line(program, args)),
        message: if stderr.is_empty() { "no message".into() } else { stderr },
    }
}

fn check_table(table: &str) -> Result<()> {
    if TABLES.contains(&table) {
        return Ok(());
    }
    Err(Error::invalid(format!("unknown iptables table {table:?}: use one of {}", TABLES.join(", "))))
}

fn check_chain(chain: &str) -> Result<()> {
    let bad = chain.is_empty()
        || chain.len() > MAX_CHAIN
        || chain.starts_with('-')
        || chain.contains(|c: char| c.is_whitespace() || c == '"' || c == '\\');
    if bad {
        return Err(Error::invalid(format!(
            "invalid iptables chain name {chain:?}: 1 to {MAX_CHAIN} characters, no spaces or quotes"
        )));
    }
    Ok(())
}

/// Words of a rule must survive iptables-save's quoting (used to delete it again).
fn check_rule(rule: &[String]) -> Result<()> {
    for (i, word) in rule.iter().enumerate() {
        if word.contains(['"', '\\', '\n', '\0']) {
            return Err(Error::invalid(format!(
                "invalid iptables rule word {word:?}: no quotes, backslashes or newlines"
            )));
        }
        if i > 0 && rule[i - 1] == "--comment" && word.len() > MAX_COMMENT {
            return Err(Error::invalid(format!("iptables comment {word:?} is longer than {MAX_COMMENT} bytes")));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn split_follows_iptables_save_quoting() {
        let line = r#"-s 10.0.0.0/8 -m comment --comment "podlab a \"b\" c\\d" -j RETURN"#;
        assert_eq!(
            split(line),
            ["-s", "10.0.0.0/8", "-m", "comment", "--comment", "podlab a \"b\" c\\d", "-j", "RETURN"]
        );
        assert_eq!(comment_of(line).as_deref(), Some("podlab a \"b\" c\\d"));
        assert_eq!(comment_of("-m comment --comment y -j ACCEPT").as_deref(), Some("y"));
        assert_eq!(comment_of("-j ACCEPT"), None);
        assert_eq!(split(r#"--comment """#), ["--comment", ""]);
    }

    #[test]
    fn names_and_words_are_checked() {
        assert!(check_table("nat").is_ok());
        assert!(check_table("nta").unwrap_err().to_string().contains("unknown iptables table"));
        assert!(check_chain("PODLAB-HOSTPORTS").is_ok());
        assert!(check_chain(&"X".repeat(29)).is_err());
        assert!(check_chain("A B").is_err());
        assert!(check_rule(&comment("podlab ok")).is_ok());
        assert!(check_rule(&comment("podlab \"quoted\"")).is_err());
        assert!(check_rule(&comment(&"c".repeat(256))).is_err());
    }
}
