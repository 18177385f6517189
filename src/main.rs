//! The `podlab` command. The container init (`podlab __init`) is dispatched before anything
//! else runs, so that process stays single-threaded and fast.

mod cli;

fn main() {
    if std::env::args_os().nth(1).is_some_and(|a| a == "__init") {
        podlab::boxrun::init::main();
    }
    std::process::exit(cli::main());
}
