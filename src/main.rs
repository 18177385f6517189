//! The `podlab` command. The box and container inits and the pod's pause process (`__init`,
//! `__rtinit`, `__pause`) are dispatched before anything else runs, so those processes stay
//! single-threaded and fast.

mod cli;

fn main() {
    match std::env::args_os().nth(1) {
        Some(a) if a == "__init" => podlab::boxrun::init::main(),
        Some(a) if a == "__rtinit" => podlab::runtime::init::main(),
        Some(a) if a == "__pause" => podlab::pod::sandbox::main(),
        Some(a) if a == "__supervise" => podlab::pod::supervisor::main(),
        _ => {}
    }
    std::process::exit(cli::main());
}
