//! `podlab reset`: remove every leftover of podlab.
//!
//! Boxes and labs write down what they create before they create it (see
//! `primitives::record`), so a crash leaves a record behind. Reset replays every record,
//! resets every lab, force-deletes the containers of `podlab runtime` (default root), and,
//! for the system-wide state, removes podlab cgroups that lost their record (for example
//! after /run was wiped by hand).

use std::path::Path;

use crate::error::Error;
use crate::primitives::{cgroup, record};
use crate::state::StateDirs;

/// What reset did.
#[derive(Debug, Default)]
pub struct ResetReport {
    pub removed: Vec<String>,
    pub errors: Vec<Error>,
}

/// Remove all of podlab's state under `dirs`.
pub fn reset_all(dirs: &StateDirs) -> ResetReport {
    let mut report = ResetReport::default();
    let (owners, errors) = record::undo_all(&dirs.records());
    report.removed.extend(owners.into_iter().map(|o| format!("everything recorded for {o}")));
    report.errors.extend(errors);
    for lab in crate::labs::all() {
        match crate::labs::reset(dirs, lab) {
            Ok(true) => report.removed.push(format!("lab {:02} state", lab.number)),
            Ok(false) => {}
            Err(e) => report.errors.push(e),
        }
    }
    let (pods, errors) = crate::node::reset::reset(dirs);
    report.removed.extend(pods);
    report.errors.extend(errors);
    let runtime = crate::runtime::container::Runtime {
        root: dirs.run.join("runtime"),
        systemd_cgroup: false,
        explain: crate::explain::enabled(),
    };
    for c in crate::runtime::state::list(&runtime.root).unwrap_or_default() {
        match runtime.delete(&c.id, true) {
            Ok(()) => report.removed.push(format!("container {}", c.id)),
            Err(e) => report.errors.push(e),
        }
    }
    if dirs.run == Path::new("/run/podlab") {
        remove_orphan_box_cgroups(&mut report);
    }
    report
}

fn remove_orphan_box_cgroups(report: &mut ResetReport) {
    let backend = cgroup::backend();
    for dir in backend.dirs(Path::new(cgroup::PARENT)) {
        let Ok(entries) = std::fs::read_dir(&dir) else { continue };
        for entry in entries.flatten() {
            let name = entry.file_name().to_string_lossy().into_owned();
            if !name.starts_with("box-") || !entry.path().is_dir() {
                continue;
            }
            let rel = Path::new(cgroup::PARENT).join(&name);
            match cgroup::Cgroup::new(rel.clone()).and_then(|c| c.remove()) {
                Ok(()) => report.removed.push(format!("cgroup {}", rel.display())),
                Err(e) => report.errors.push(e),
            }
        }
    }
}
