//! The command line: clap definitions and the only place that prints for humans.

mod apibench;
mod boxcmd;
mod describe;
mod doctor;
mod image;
mod inspect;
mod lab;
mod node;
mod pod;
mod podexec;
mod podexplain;
mod proxybench;
mod server;
mod svc;

use std::path::PathBuf;

use clap::{CommandFactory, Parser, Subcommand};

/// podlab: build a Kubernetes pod from Linux primitives.
#[derive(Debug, Parser)]
#[command(name = "podlab", version, about, propagate_version = true)]
pub struct Cli {
    /// Keep all state under DIR (DIR/run and DIR/lib) instead of /run/podlab and /var/lib/podlab.
    #[arg(long, global = true, value_name = "DIR", env = "PODLAB_ROOT")]
    root: Option<PathBuf>,
    /// Print the shell command equivalent to each kernel-visible action as it happens.
    #[arg(long, global = true)]
    explain: bool,
    #[command(subcommand)]
    command: Commands,
}

#[derive(Debug, Subcommand)]
enum Commands {
    /// Run a command in an isolated, resource-limited box (the labs' steps composed).
    Box(boxcmd::BoxArgs),
    /// Images: pull, load, build, ls, inspect, rm, prune.
    #[command(subcommand)]
    Image(image::ImageCommand),
    /// Guided labs: list, show, check, solve and reset them.
    #[command(subcommand)]
    Lab(lab::LabCommand),
    /// The OCI runtime with runc's command line (create, start, state, kill, delete, run, exec,
    /// list, ps, pause, resume, spec, features). `podlab runtime --help` lists it all.
    #[command(disable_help_flag = true)]
    Runtime {
        #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
        args: Vec<std::ffi::OsString>,
    },
    /// Run the pods of a manifest on this machine (starts the node agent when needed).
    Run(pod::RunArgs),
    /// List pods: `podlab get pods [-o wide|yaml|json]`.
    Get(pod::GetArgs),
    /// Show a pod in detail, with its events: `podlab describe pod NAME`.
    Describe(pod::PodRef),
    /// Print a container's log: `podlab logs [-f] [-c C] [--previous] POD`.
    Logs(pod::LogsArgs),
    /// Run a command in a pod's container: `podlab exec [-it] POD [-c C] -- CMD`.
    Exec(pod::ExecArgs),
    /// Delete pods: `podlab delete -f FILE` or `podlab delete pod NAME`.
    Delete(pod::DeleteArgs),
    /// The X-ray of a pod: namespaces, cgroups, network, mounts, processes.
    Inspect(pod::PodRef),
    /// The node agent (podlab's kubelet): runs the pods of a manifest directory.
    Node(node::NodeArgs),
    /// The API server of a cluster: the Kubernetes REST API that kubectl drives.
    Server(server::ServerArgs),
    /// Build a root filesystem from a recipe shipped with podlab (busybox).
    Rootfs {
        /// Recipe name.
        recipe: String,
        /// Directory to build into.
        dest: PathBuf,
    },
    /// Check that this machine can run podlab, and say what to fix.
    Doctor,
    /// Remove every leftover of podlab: boxes, lab state, cgroups, namespaces, mounts.
    Reset,
    /// Time the service proxy's syncs (bench/proxy.sh).
    #[command(name = "__proxy-bench", hide = true)]
    ProxyBench(proxybench::ProxyBenchArgs),
    /// Time the API server's answers to many clients (bench/api.sh).
    #[command(name = "__api-bench", hide = true)]
    ApiBench(apibench::ApiBenchArgs),
    /// Print shell completions.
    Completions {
        /// bash, zsh, fish, elvish or powershell.
        shell: clap_complete::Shell,
    },
}

/// `podlab [--root DIR] [--explain] runtime ARGS...`: everything after `runtime` is runc's
/// command line, whose own `--root` must not be taken for podlab's global one.
fn runtime_args() -> Option<(Option<PathBuf>, bool, Vec<std::ffi::OsString>)> {
    let args: Vec<std::ffi::OsString> = std::env::args_os().skip(1).collect();
    let (mut root, mut explain, mut i) = (std::env::var_os("PODLAB_ROOT").map(PathBuf::from), false, 0);
    while i < args.len() {
        let a = args[i].to_string_lossy();
        match a.as_ref() {
            "--explain" => explain = true,
            "--root" => {
                root = Some(PathBuf::from(args.get(i + 1)?));
                i += 1;
            }
            "runtime" => return Some((root, explain, args[i + 1..].to_vec())),
            other if other.starts_with("--root=") => root = Some(PathBuf::from(&other["--root=".len()..])),
            _ => return None,
        }
        i += 1;
    }
    None
}

/// Parse the command line, run it, and return the process exit code.
pub fn main() -> i32 {
    if let Some((root, explain, args)) = runtime_args() {
        podlab::explain::set_enabled(explain);
        let dirs = podlab::state::StateDirs::from_option(root.as_deref());
        let argv = std::iter::once(std::ffi::OsString::from("podlab runtime")).chain(args);
        return podlab::runtime::cli::main_with(argv, dirs.run.join("runtime"));
    }
    let mut cli = Cli::parse();
    podlab::explain::set_enabled(cli.explain);
    // Absolute, so that the node agent and the supervisors it starts agree on it.
    cli.root = cli.root.map(|r| std::path::absolute(&r).unwrap_or(r));
    let dirs = podlab::state::StateDirs::from_option(cli.root.as_deref());
    let root = cli.root.clone();
    let result = match cli.command {
        Commands::Box(args) => boxcmd::run(&dirs, args),
        Commands::Lab(cmd) => lab::run(&dirs, cmd),
        Commands::Image(cmd) => image::run(&dirs, cmd),
        Commands::Rootfs { recipe, dest } => podlab::image::recipe::build(&recipe, &dest)
            .map(|()| {
                println!("built {recipe} root filesystem in {}", dest.display());
                0
            })
            .map_err(Into::into),
        Commands::Runtime { args } => {
            // Reached only through paths runtime_args() does not recognise.
            let argv = std::iter::once(std::ffi::OsString::from("podlab runtime")).chain(args);
            Ok(podlab::runtime::cli::main_with(argv, dirs.run.join("runtime")))
        }
        Commands::Run(args) => pod::run(&dirs, root.as_deref(), args, cli.explain),
        Commands::Get(args) => pod::get(&dirs, args),
        Commands::Describe(args) => pod::describe(&dirs, args),
        Commands::Logs(args) => pod::logs(&dirs, args),
        Commands::Exec(args) => pod::exec(&dirs, args),
        Commands::Delete(args) => pod::delete(&dirs, args, cli.explain),
        Commands::Inspect(args) => pod::inspect(&dirs, args),
        Commands::Node(args) => node::run(&dirs, root.as_deref(), args, cli.explain),
        Commands::Server(args) => server::run(&dirs, args),
        Commands::Doctor => doctor::run(),
        Commands::Reset => reset(&dirs),
        Commands::ProxyBench(args) => proxybench::run(args),
        Commands::ApiBench(args) => apibench::run(args),
        Commands::Completions { shell } => {
            clap_complete::generate(shell, &mut Cli::command(), "podlab", &mut std::io::stdout());
            Ok(0)
        }
    };
    match result {
        Ok(code) => code,
        Err(e) => {
            eprintln!("podlab: {e:#}");
            125
        }
    }
}

fn reset(dirs: &podlab::state::StateDirs) -> anyhow::Result<i32> {
    let report = podlab::reset::reset_all(dirs);
    for line in &report.removed {
        println!("removed {line}");
    }
    for err in &report.errors {
        eprintln!("podlab reset: {err}");
    }
    if report.removed.is_empty() && report.errors.is_empty() {
        println!("nothing to remove");
    }
    Ok(if report.errors.is_empty() { 0 } else { 1 })
}

/// Log lines of the long-running commands (node agent, API server) to stderr: RUST_LOG, else
/// `default` (an EnvFilter such as "info").
fn init_logging(default: &str) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(default));
    let _ = tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_ansi(false)
        .with_target(false)
        .with_env_filter(filter)
        .try_init();
}
