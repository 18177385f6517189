//! `podlab-runtime`: podlab's OCI runtime with exactly runc's command line, for tools that
//! take a runtime path (`podman --runtime`). The container init (`__rtinit`) is dispatched
//! first so that process stays single-threaded.

fn main() {
    if std::env::args_os().nth(1).is_some_and(|a| a == "__rtinit") {
        podlab::runtime::init::main();
    }
    std::process::exit(podlab::runtime::cli::main());
}
