//! `podlab doctor`: print each check and what to fix.

use podlab::doctor::{Status, run_checks};

pub fn run() -> anyhow::Result<i32> {
    let checks = run_checks();
    let mut failed = 0;
    for c in &checks {
        let mark = match c.status {
            Status::Ok => "ok  ",
            Status::Warn => "warn",
            Status::Fail => {
                failed += 1;
                "FAIL"
            }
        };
        println!("[{mark}] {:<16} {}", c.name, c.detail);
        if let Some(fix) = &c.fix {
            println!("       fix: {fix}");
        }
    }
    if failed == 0 {
        println!("\nthis machine can run podlab");
        Ok(0)
    } else {
        println!("\n{failed} check(s) failed: fix them and run `podlab doctor` again");
        Ok(1)
    }
}
