//! Which iptables: "legacy" (the kernel's x_tables, one table blob replaced whole on every
//! change) or "nft" (the same rules stored as nftables rules, changed in netlink batches).
//!
//! Both kinds of rules are live at once if both were written, and their order against each
//! other is not what either tool shows: a proxy must use the one the node already uses. Like
//! kube-proxy's image (its iptables-wrapper script), podlab looks for the chains the kubelet
//! leaves as a hint (KUBE-IPTABLES-HINT, KUBE-KUBELET-CANARY), then for the side that has more
//! rules, and last asks `iptables --version` what the system's default is.

use std::fmt;
use std::io::Write;
use std::process::{Command, Stdio};
use std::str::FromStr;

use crate::error::{Error, Result};
use crate::explain;

/// The iptables backend the proxy writes with.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Backend {
    Legacy,
    Nft,
}

/// Lines of a restore input shown by `--explain` before it is cut short.
const EXPLAIN_LINES: usize = 24;

impl Backend {
    /// "nft" or "legacy" (what `--backend` takes).
    pub fn from_name(name: &str) -> Result<Backend> {
        match name {
            "nft" => Ok(Backend::Nft),
            "legacy" => Ok(Backend::Legacy),
            other => Err(Error::invalid(format!("unknown iptables backend {other:?}: use \"nft\" or \"legacy\""))),
        }
    }

    pub fn name(&self) -> &'static str {
        match self {
            Backend::Legacy => "legacy",
            Backend::Nft => "nft",
        }
    }

    /// `iptables-nft` or `iptables-legacy`.
    pub fn iptables(&self) -> String {
        format!("iptables-{}", self.name())
    }

    /// `iptables-nft-save` or `iptables-legacy-save`.
    pub fn save_command(&self) -> String {
        format!("iptables-{}-save", self.name())
    }

    /// `iptables-nft-restore` or `iptables-legacy-restore`.
    pub fn restore_command(&self) -> String {
        format!("iptables-{}-restore", self.name())
    }

    /// Pick the backend of this network namespace, the way iptables-wrapper does.
    pub fn detect() -> Result<Backend> {
        let hint = |text: &str| {
            text.lines().any(|l| l.starts_with(":KUBE-IPTABLES-HINT ") || l.starts_with(":KUBE-KUBELET-CANARY "))
        };
        // nft first, and only its mangle table: cheap. (`iptables-legacy-save -t mangle` would
        // load the legacy mangle table into the kernel, so legacy is read whole.)
        let nft_mangle = quiet(&Backend::Nft.save_command(), &["-t", "mangle"]).unwrap_or_default();
        if hint(&nft_mangle) {
            return Ok(Backend::Nft);
        }
        let legacy = quiet(&Backend::Legacy.save_command(), &[]).unwrap_or_default();
        if hint(&legacy) {
            return Ok(Backend::Legacy);
        }
        let nft = quiet(&Backend::Nft.save_command(), &[]).unwrap_or_default();
        let count = |text: &str| text.lines().filter(|l| l.starts_with('-')).count();
        match count(&legacy).cmp(&count(&nft)) {
            std::cmp::Ordering::Greater => return Ok(Backend::Legacy),
            std::cmp::Ordering::Less => return Ok(Backend::Nft),
            std::cmp::Ordering::Equal => {}
        }
        let version = quiet("iptables", &["--version"]).map_err(|e| {
            Error::Missing(format!("cannot tell which iptables to use: {e} (apt-get install iptables)"))
        })?;
        Ok(if version.contains("legacy") { Backend::Legacy } else { Backend::Nft })
    }

    /// `iptables-save -t TABLE` of this thread's network namespace.
    pub fn save(&self, table: &str) -> Result<String> {
        let program = self.save_command();
        let args = ["-t", table];
        let out = run(&program, &args, None)?;
        check(&program, &args, &out)?;
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    }

    /// `iptables-save`: every table of this thread's network namespace.
    pub fn save_all(&self) -> Result<String> {
        let program = self.save_command();
        let out = run(&program, &[], None)?;
        check(&program, &[], &out)?;
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    }

    /// `iptables-restore -w --noflush` with `input` on stdin: each table of it is one atomic
    /// change. With `test`, only parse and check it (`--test`), change nothing.
    pub fn restore(&self, input: &str, test: bool) -> Result<()> {
        let program = self.restore_command();
        let mut args = vec!["-w", "--noflush"];
        if test {
            args.push("--test");
        }
        explain::say(explain_restore(&program, &args, input));
        let out = run(&program, &args, Some(input))?;
        check(&program, &args, &out).map_err(|e| with_failed_line(e, input))
    }
}

impl fmt::Display for Backend {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for Backend {
    type Err = Error;

    fn from_str(s: &str) -> Result<Backend> {
        Backend::from_name(s)
    }
}

/// `iptables-nft-restore -w --noflush <<'EOF'` and the input, its first lines only when long.
fn explain_restore(program: &str, args: &[&str], input: &str) -> String {
    let total = input.lines().count();
    let mut text = format!("{program} {} <<'EOF'\n", args.join(" "));
    for line in input.lines().take(EXPLAIN_LINES) {
        text.push_str(line);
        text.push('\n');
    }
    if total > EXPLAIN_LINES {
        text.push_str(&format!("# ... {} more lines ({total} in all)\n", total - EXPLAIN_LINES));
    }
    text.push_str("EOF");
    text
}

/// iptables-restore names the line it choked on ("line 7 failed"): quote it in the error.
fn with_failed_line(e: Error, input: &str) -> Error {
    let Error::Child { step, message } = e else { return e };
    let line = message
        .split_whitespace()
        .skip_while(|w| *w != "line")
        .nth(1)
        .and_then(|n| n.trim_end_matches(|c: char| !c.is_ascii_digit()).parse::<usize>().ok())
        .and_then(|n| input.lines().nth(n.checked_sub(1)?));
    match line {
        Some(line) => Error::Child { step, message: format!("{message} (the line: {line})") },
        None => Error::Child { step, message },
    }
}

/// Run a command and return its stdout, or an error that says why not (no message when quiet).
fn quiet(program: &str, args: &[&str]) -> Result<String> {
    let out = run(program, args, None)?;
    check(program, args, &out)?;
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

fn run(program: &str, args: &[&str], input: Option<&str>) -> Result<std::process::Output> {
    let mut cmd = Command::new(program);
    cmd.args(args).stdout(Stdio::piped()).stderr(Stdio::piped());
    cmd.stdin(if input.is_some() { Stdio::piped() } else { Stdio::null() });
    let mut child = cmd.spawn().map_err(|e| match e.kind() {
        std::io::ErrorKind::NotFound => {
            Error::Missing(format!("{program} is not installed: the service proxy needs it (apt-get install iptables)"))
        }
        _ => Error::io("run", program, e),
    })?;
    if let (Some(text), Some(mut stdin)) = (input, child.stdin.take()) {
        // A failing restore may exit before reading everything: its exit status tells more.
        let _ = stdin.write_all(text.as_bytes());
    }
    child.wait_with_output().map_err(|e| Error::io("wait for", program, e))
}

fn check(program: &str, args: &[&str], out: &std::process::Output) -> Result<()> {
    if out.status.success() {
        return Ok(());
    }
    let code = out.status.code().map(|c| format!("exit status {c}")).unwrap_or_else(|| "killed".into());
    let stderr = String::from_utf8_lossy(&out.stderr).trim().to_string();
    Err(Error::Child {
        step: format!("`{program} {}` failed ({code})", args.join(" ")),
        message: if stderr.is_empty() { "no message".into() } else { stderr },
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_and_commands() {
        assert_eq!(Backend::from_name("nft").unwrap(), Backend::Nft);
        assert_eq!("legacy".parse::<Backend>().unwrap(), Backend::Legacy);
        assert!(Backend::from_name("xt").unwrap_err().to_string().contains("\"nft\" or \"legacy\""));
        assert_eq!(Backend::Nft.restore_command(), "iptables-nft-restore");
        assert_eq!(Backend::Legacy.save_command(), "iptables-legacy-save");
    }

    #[test]
    fn long_inputs_are_explained_short() {
        let input: String = (0..100).map(|i| format!("-A X {i}\n")).collect();
        let text = explain_restore("iptables-nft-restore", &["-w", "--noflush"], &input);
        assert!(text.starts_with("iptables-nft-restore -w --noflush <<'EOF'\n-A X 0\n"));
        assert!(text.ends_with("# ... 76 more lines (100 in all)\nEOF"), "{text}");
        let e = Error::Child { step: "restore".into(), message: "iptables-restore: line 2 failed".into() };
        assert!(with_failed_line(e, "*nat\n-A BAD\nCOMMIT\n").to_string().contains("(the line: -A BAD)"));
    }
}
