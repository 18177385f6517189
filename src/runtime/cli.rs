//! runc's command line, so that tools built for runc (podman, conmon, containerd) drive podlab.
//!
//! The global flags (`--root`, `--log`, `--log-format`, `--systemd-cgroup`) come before the
//! command, like runc's. Errors go to stderr and, when `--log` names a file, into it as one
//! JSON line per message — conmon reads that file to tell podman why a container failed.
//! `podlab runtime ARGS` and the `podlab-runtime` binary both land here.

use std::ffi::OsString;
use std::io::Write;
use std::path::PathBuf;

use clap::{Parser, Subcommand};
use nix::sys::signal::Signal;

use super::container::{CreateOptions, ExecOptions, Runtime};
use super::state::{self, Container};
use crate::error::{Error, Result};

/// podlab-runtime: an OCI container runtime with runc's command line.
#[derive(Debug, Parser)]
#[command(name = "podlab-runtime", version, about)]
pub struct Cli {
    /// Directory for container state (default /run/podlab/runtime).
    #[arg(long, value_name = "DIR")]
    root: Option<PathBuf>,
    /// Also write errors to this file.
    #[arg(long, value_name = "FILE")]
    log: Option<PathBuf>,
    /// Format of the --log file: text or json.
    #[arg(long, value_name = "FORMAT", default_value = "text")]
    log_format: String,
    /// Print the shell equivalent of each step (also --explain).
    #[arg(long, alias = "explain")]
    debug: bool,
    /// cgroupsPath is systemd's "slice:prefix:name".
    #[arg(long)]
    systemd_cgroup: bool,
    /// Accepted for runc compatibility; ignored.
    #[arg(long, value_name = "PATH", hide = true)]
    criu: Option<String>,
    /// Accepted for runc compatibility; ignored.
    #[arg(long, value_name = "BOOL", hide = true, num_args = 0..=1, default_missing_value = "true")]
    rootless: Option<String>,
    #[command(subcommand)]
    command: Cmd,
}

#[derive(Debug, clap::Args)]
struct CreateArgs {
    /// The bundle directory (config.json and the rootfs).
    #[arg(long, short = 'b', default_value = ".")]
    bundle: PathBuf,
    /// Write the container's pid here.
    #[arg(long, value_name = "FILE")]
    pid_file: Option<PathBuf>,
    /// Unix socket that receives the terminal's master fd (terminal: true).
    #[arg(long, value_name = "PATH")]
    console_socket: Option<PathBuf>,
    /// Pass fds 3 .. 3+N-1 on to the container.
    #[arg(long, value_name = "N", default_value_t = 0)]
    preserve_fds: i32,
    /// Accepted for runc compatibility (podlab always pivots).
    #[arg(long, hide = true)]
    no_pivot: bool,
    /// Accepted for runc compatibility (podlab makes no session keyring).
    #[arg(long, hide = true)]
    no_new_keyring: bool,
    /// Accepted for runc compatibility; ignored.
    #[arg(long, hide = true, value_name = "PATH")]
    notify_socket: Option<PathBuf>,
    /// The container id.
    id: String,
}

impl CreateArgs {
    fn options(&self) -> CreateOptions {
        CreateOptions {
            bundle: self.bundle.clone(),
            pid_file: self.pid_file.clone(),
            console_socket: self.console_socket.clone(),
            preserve_fds: self.preserve_fds,
            stdio: None,
        }
    }
}

#[derive(Debug, Subcommand)]
enum Cmd {
    /// Write a default config.json (like `runc spec`).
    Spec {
        #[arg(long, short = 'b', default_value = ".")]
        bundle: PathBuf,
        #[arg(long, hide = true)]
        rootless: bool,
    },
    /// Create a container and leave it waiting for `start`.
    Create(CreateArgs),
    /// Run the program of a created container.
    Start { id: String },
    /// Print the OCI state of a container as JSON.
    State { id: String },
    /// Send a signal (default SIGTERM) to the container's init.
    Kill {
        /// Signal every process of the container.
        #[arg(long, short = 'a')]
        all: bool,
        id: String,
        #[arg(default_value = "SIGTERM")]
        signal: String,
    },
    /// Remove a container (stopped or created; --force kills a running one).
    Delete {
        #[arg(long, short = 'f')]
        force: bool,
        id: String,
    },
    /// Create, start, wait for and delete a container.
    Run {
        /// Return once the program started.
        #[arg(long, short = 'd')]
        detach: bool,
        /// Accepted for runc compatibility: keep is not supported with podlab run.
        #[arg(long, hide = true)]
        keep: bool,
        #[command(flatten)]
        create: CreateArgs,
    },
    /// Run another process in a running container.
    Exec(Box<ExecArgs>),
    /// List containers.
    List {
        #[arg(long, short = 'f', default_value = "table")]
        format: String,
        #[arg(long, short = 'q')]
        quiet: bool,
    },
    /// Show the processes of a container (`ps` options after the id; default -ef).
    Ps {
        #[arg(long, short = 'f', default_value = "table")]
        format: String,
        id: String,
        #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
        ps_args: Vec<String>,
    },
    /// Freeze every process of the container.
    Pause { id: String },
    /// Thaw a paused container.
    Resume { id: String },
    /// Print what this runtime supports, as JSON.
    Features,
}

#[derive(Debug, clap::Args)]
struct ExecArgs {
    /// A process.json to run instead of COMMAND.
    #[arg(long, short = 'p', value_name = "FILE")]
    process: Option<PathBuf>,
    /// Allocate a terminal (needs --console-socket).
    #[arg(long, short = 't')]
    tty: bool,
    #[arg(long, short = 'd')]
    detach: bool,
    #[arg(long, value_name = "FILE")]
    pid_file: Option<PathBuf>,
    #[arg(long, value_name = "PATH")]
    console_socket: Option<PathBuf>,
    /// Working directory in the container.
    #[arg(long)]
    cwd: Option<PathBuf>,
    /// Extra environment variables (NAME=VALUE).
    #[arg(long, short = 'e')]
    env: Vec<String>,
    /// UID[:GID] to run as.
    #[arg(long, short = 'u')]
    user: Option<String>,
    /// Additional gids.
    #[arg(long, short = 'g')]
    additional_gids: Vec<u32>,
    /// Add a capability (CAP_X).
    #[arg(long, short = 'c')]
    cap: Vec<String>,
    #[arg(long)]
    no_new_privs: bool,
    #[arg(long, default_value_t = 0)]
    preserve_fds: i32,
    #[arg(long, hide = true)]
    process_label: Option<String>,
    #[arg(long, hide = true)]
    apparmor: Option<String>,
    #[arg(long, hide = true)]
    ignore_paused: bool,
    id: String,
    #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
    command: Vec<String>,
}

/// The runtime's state root when `--root` is not given.
pub fn default_root() -> PathBuf {
    crate::state::StateDirs::system().run.join("runtime")
}

/// Parse `args` (the first being the program name) and run; returns the exit code.
pub fn main_with(args: impl IntoIterator<Item = OsString>, default_root: PathBuf) -> i32 {
    let cli = match Cli::try_parse_from(args) {
        Ok(c) => c,
        Err(e) => {
            let _ = e.print();
            return if e.use_stderr() { 2 } else { 0 };
        }
    };
    if cli.debug || std::env::var_os("PODLAB_EXPLAIN").is_some() {
        crate::explain::set_enabled(true);
    }
    let rt = Runtime {
        root: cli.root.clone().unwrap_or(default_root),
        systemd_cgroup: cli.systemd_cgroup,
        explain: crate::explain::enabled(),
    };
    match dispatch(&rt, cli.command) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("podlab-runtime: {e}");
            if let Some(file) = &cli.log {
                log_error(file, &cli.log_format, &e.to_string());
            }
            1
        }
    }
}

/// The `podlab-runtime` binary.
pub fn main() -> i32 {
    main_with(std::env::args_os(), default_root())
}

fn log_error(file: &PathBuf, format: &str, message: &str) {
    let time = state::now_rfc3339();
    let line = if format == "json" {
        serde_json::json!({"level": "error", "msg": message, "time": time}).to_string()
    } else {
        format!("time={time:?} level=error msg={message:?}")
    };
    if let Ok(mut f) = std::fs::OpenOptions::new().create(true).append(true).open(file) {
        let _ = writeln!(f, "{line}");
    }
}

fn dispatch(rt: &Runtime, cmd: Cmd) -> Result<i32> {
    match cmd {
        Cmd::Spec { bundle, rootless: _ } => {
            let file = bundle.join(super::spec::CONFIG_FILE);
            if file.exists() {
                return Err(Error::invalid(format!("{} exists: remove it first", file.display())));
            }
            super::spec::save(&super::spec::default_spec(), &bundle)?;
            Ok(0)
        }
        Cmd::Create(args) => rt.create(&args.id, &args.options()).map(|_| 0),
        Cmd::Start { id } => rt.start(&id).map(|_| 0),
        Cmd::State { id } => {
            let s = rt.state(&id)?;
            println!("{}", serde_json::to_string_pretty(&s).map_err(|e| Error::invalid(e.to_string()))?);
            Ok(0)
        }
        Cmd::Kill { all, id, signal } => rt.kill(&id, parse_signal(&signal)?, all).map(|_| 0),
        Cmd::Delete { force, id } => rt.delete(&id, force).map(|_| 0),
        Cmd::Run { detach, keep: _, create } => rt.run(&create.id, &create.options(), detach),
        Cmd::Exec(args) => exec(rt, *args),
        Cmd::List { format, quiet } => list(rt, &format, quiet),
        Cmd::Ps { format, id, ps_args } => ps(rt, &id, &format, &ps_args),
        Cmd::Pause { id } => rt.set_paused(&id, true).map(|_| 0),
        Cmd::Resume { id } => rt.set_paused(&id, false).map(|_| 0),
        Cmd::Features => {
            println!("{}", serde_json::to_string_pretty(&super::features::features()).unwrap_or_default());
            Ok(0)
        }
    }
}

/// "KILL", "SIGKILL", "kill" or "9".
pub fn parse_signal(text: &str) -> Result<Signal> {
    if let Ok(n) = text.parse::<i32>() {
        return Signal::try_from(n).map_err(|_| Error::invalid(format!("unknown signal {text:?}")));
    }
    let upper = text.to_ascii_uppercase();
    let name = if upper.starts_with("SIG") { upper } else { format!("SIG{upper}") };
    name.parse::<Signal>().map_err(|_| Error::invalid(format!("unknown signal {text:?}")))
}

fn exec(rt: &Runtime, a: ExecArgs) -> Result<i32> {
    let process: oci_spec::runtime::Process = match &a.process {
        Some(file) => {
            let text = std::fs::read(file).map_err(|e| Error::io("read", file, e))?;
            serde_json::from_slice(&text).map_err(|e| Error::invalid(format!("{}: {e}", file.display())))?
        }
        None => {
            if a.command.is_empty() {
                return Err(Error::invalid("exec needs a COMMAND or --process FILE"));
            }
            let c = Container::load(&rt.root, &a.id)?;
            let spec = super::spec::load(&c.bundle)?;
            let mut p = spec.process().clone().unwrap_or_default();
            p.set_args(Some(a.command.clone()));
            p.set_terminal(Some(a.tty));
            if let Some(cwd) = &a.cwd {
                p.set_cwd(cwd.clone());
            }
            let mut env = p.env().clone().unwrap_or_default();
            for kv in &a.env {
                let key = kv.split('=').next().unwrap_or("");
                env.retain(|e| e.split('=').next() != Some(key));
                env.push(kv.clone());
            }
            p.set_env(Some(env));
            if let Some(user) = &a.user {
                let (uid, gid) = user.split_once(':').unwrap_or((user, "0"));
                let uid = uid.parse().map_err(|_| Error::invalid(format!("--user {user:?}: use UID[:GID]")))?;
                let gid = gid.parse().map_err(|_| Error::invalid(format!("--user {user:?}: use UID[:GID]")))?;
                let mut u = p.user().clone();
                u.set_uid(uid);
                u.set_gid(gid);
                p.set_user(u);
            }
            if !a.additional_gids.is_empty() {
                let mut u = p.user().clone();
                u.set_additional_gids(Some(a.additional_gids.clone()));
                p.set_user(u);
            }
            if !a.cap.is_empty() {
                let mut caps = p.capabilities().clone().unwrap_or_default();
                for name in &a.cap {
                    let cap: oci_spec::runtime::Capability =
                        name.parse().map_err(|_| Error::invalid(format!("--cap {name:?}: unknown capability")))?;
                    let add = |s: &Option<oci_spec::runtime::Capabilities>| {
                        let mut s = s.clone().unwrap_or_default();
                        s.insert(cap);
                        Some(s)
                    };
                    caps.set_bounding(add(caps.bounding()));
                    caps.set_effective(add(caps.effective()));
                    caps.set_permitted(add(caps.permitted()));
                }
                p.set_capabilities(Some(caps));
            }
            if a.no_new_privs {
                p.set_no_new_privileges(Some(true));
            }
            p
        }
    };
    if process.terminal().unwrap_or(false) && a.console_socket.is_none() {
        return Err(Error::invalid("a terminal (-t or terminal: true) needs --console-socket"));
    }
    let opts = ExecOptions {
        detach: a.detach,
        pid_file: a.pid_file,
        console_socket: a.console_socket,
        preserve_fds: a.preserve_fds,
        stdio: None,
        keep_signals: false,
    };
    rt.exec(&a.id, process, &opts)
}

fn list(rt: &Runtime, format: &str, quiet: bool) -> Result<i32> {
    let all = state::list(&rt.root)?;
    if quiet {
        for c in &all {
            println!("{}", c.id);
        }
        return Ok(0);
    }
    let states: Vec<state::OciState> = all.iter().map(|c| c.oci_state(&rt.root)).collect();
    match format {
        "json" => println!("{}", serde_json::to_string(&states).map_err(|e| Error::invalid(e.to_string()))?),
        "table" => {
            println!("{:<20} {:<8} {:<10} {:<40} {:<32} OWNER", "ID", "PID", "STATUS", "BUNDLE", "CREATED");
            for s in &states {
                println!(
                    "{:<20} {:<8} {:<10} {:<40} {:<32} {}",
                    s.id,
                    s.pid,
                    s.status.to_string(),
                    s.bundle.display(),
                    s.created,
                    s.owner
                );
            }
        }
        other => return Err(Error::invalid(format!("--format {other:?}: use table or json"))),
    }
    Ok(0)
}

fn ps(rt: &Runtime, id: &str, format: &str, ps_args: &[String]) -> Result<i32> {
    let pids = rt.pids(id)?;
    if format == "json" {
        println!("{}", serde_json::to_string(&pids).map_err(|e| Error::invalid(e.to_string()))?);
        return Ok(0);
    }
    if format != "table" {
        return Err(Error::invalid(format!("--format {format:?}: use table or json")));
    }
    // Like runc: run ps with the given options and keep the header and the container's rows.
    let args: Vec<String> = if ps_args.is_empty() { vec!["-ef".into()] } else { ps_args.to_vec() };
    let out = std::process::Command::new("ps").args(&args).output().map_err(|e| Error::io("run", "ps", e))?;
    let text = String::from_utf8_lossy(&out.stdout);
    let mut lines = text.lines();
    let Some(header) = lines.next() else { return Ok(0) };
    let col = header
        .split_whitespace()
        .position(|h| h == "PID")
        .ok_or_else(|| Error::invalid("ps output has no PID column"))?;
    println!("{header}");
    for line in lines {
        let pid: Option<i32> = line.split_whitespace().nth(col).and_then(|p| p.parse().ok());
        if pid.is_some_and(|p| pids.contains(&p)) {
            println!("{line}");
        }
    }
    Ok(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signals() {
        assert_eq!(parse_signal("KILL").unwrap(), Signal::SIGKILL);
        assert_eq!(parse_signal("sigterm").unwrap(), Signal::SIGTERM);
        assert_eq!(parse_signal("9").unwrap(), Signal::SIGKILL);
        assert!(parse_signal("NOPE").is_err());
    }

    #[test]
    fn runc_command_lines_parse() {
        let parse = |s: &str| Cli::try_parse_from(s.split_whitespace()).map(|_| ());
        parse("r --root /x --log /l --log-format json --systemd-cgroup create --bundle /b --pid-file /p --no-new-keyring id").unwrap();
        parse("r delete --force id").unwrap();
        parse("r kill id KILL").unwrap();
        parse("r exec --process /p.json --detach --pid-file /p id").unwrap();
        parse("r exec id sh -c true").unwrap();
        parse("r run -d -b /b id").unwrap();
        parse("r ps --format json id").unwrap();
    }
}
