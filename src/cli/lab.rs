//! `podlab lab`: list, show, check, solve and reset the guided labs.

use clap::Subcommand;

use podlab::labs;
use podlab::state::StateDirs;

#[derive(Debug, Subcommand)]
pub enum LabCommand {
    /// List the labs.
    List,
    /// Print a lab's guide.
    Show { number: u8 },
    /// Check your work: inspect the real kernel state and grade each point.
    Check { number: u8 },
    /// Do the lab with podlab's primitives, printing each command.
    Solve { number: u8 },
    /// Remove everything the lab made (processes, mounts, namespaces, cgroups, files).
    Reset {
        number: Option<u8>,
        /// Reset every lab.
        #[arg(long, conflicts_with = "number")]
        all: bool,
    },
}

pub fn run(dirs: &StateDirs, cmd: LabCommand) -> anyhow::Result<i32> {
    match cmd {
        LabCommand::List => {
            for lab in labs::all() {
                println!("{:>2}  {:<18} {}", lab.number, lab.slug, lab.title);
            }
            Ok(0)
        }
        LabCommand::Show { number } => {
            print!("{}", labs::find(number)?.guide);
            Ok(0)
        }
        LabCommand::Check { number } => {
            let lab = labs::find(number)?;
            let points = labs::check(dirs, lab)?;
            let failed = points.iter().filter(|p| !p.passed).count();
            println!("lab {:02} ({}) — workspace {}", lab.number, lab.slug, labs::workspace(dirs, lab).display());
            for p in &points {
                println!("[{}] {}", if p.passed { "pass" } else { "FAIL" }, p.name);
                if !p.passed {
                    println!("       hint: {}", p.hint);
                }
            }
            if failed == 0 {
                println!("all {} points passed", points.len());
                Ok(0)
            } else {
                println!("{failed} of {} points failed", points.len());
                Ok(1)
            }
        }
        LabCommand::Solve { number } => {
            let lab = labs::find(number)?;
            // Solving is a demonstration: always show the commands.
            podlab::explain::set_enabled(true);
            labs::solve(dirs, lab)?;
            println!("lab {:02} solved: run `podlab lab check {number}` to see it graded", lab.number);
            Ok(0)
        }
        LabCommand::Reset { number, all } => {
            let chosen: Vec<&labs::Lab> = match (number, all) {
                (Some(n), _) => vec![labs::find(n)?],
                (None, true) => labs::all().iter().collect(),
                (None, false) => anyhow::bail!("say which lab to reset (podlab lab reset N) or --all"),
            };
            for lab in chosen {
                let removed = labs::reset(dirs, lab)?;
                println!("lab {:02}: {}", lab.number, if removed { "reset" } else { "nothing to reset" });
            }
            Ok(0)
        }
    }
}
