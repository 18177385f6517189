//! The `podlab` command. The box and container inits (`podlab __init`, `__rtinit`) are dispatched before anything
//! else runs, so that process stays single-threaded and fast.

mod cli;

fn main() {
    match std::env::args_os().nth(1) {
        Some(a) if a == "__init" => podlab::boxrun::init::main(),
        Some(a) if a == "__rtinit" => podlab::runtime::init::main(),
        _ => {}
    }
    std::process::exit(cli::main());
}
