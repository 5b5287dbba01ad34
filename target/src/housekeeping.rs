//! Keeping the daemon's other threads — the tokio runtime that serves the management API,
//! timers and keep-alive, and the blocking pool it spawns — off the CPUs the reactors are
//! pinned to, so management work never preempts the data path. Threads created later inherit
//! the mask of the thread that creates them (the blocking pool: a runtime worker).

use std::collections::BTreeSet;

use nix::sched::{sched_getaffinity, sched_setaffinity, CpuSet};
use nix::unistd::Pid;

/// Where the housekeeping threads run.
#[derive(Debug, PartialEq, Eq)]
pub enum Placement {
    /// Moved to these CPUs (the allowed ones without a reactor).
    Moved { cpus: Vec<usize>, threads: usize },
    /// Every allowed CPU has a reactor: the threads stay where they are.
    Shared,
    /// No reactor is pinned (`[reactor] count`): nothing to keep apart.
    Unpinned,
}

/// The CPUs of `allowed` without a reactor.
pub fn housekeeping_cpus(allowed: &BTreeSet<usize>, reactor_cores: &[usize]) -> Vec<usize> {
    allowed
        .iter()
        .copied()
        .filter(|c| !reactor_cores.contains(c))
        .collect()
}

/// Move every thread of this process except the reactors (`ff-reactor-N`) to the CPUs the
/// calling thread may use minus `reactor_cores`.
pub fn keep_off_reactor_cores(reactor_cores: Option<&[usize]>) -> Result<Placement, String> {
    let Some(cores) = reactor_cores else {
        return Ok(Placement::Unpinned);
    };
    let mine =
        sched_getaffinity(Pid::from_raw(0)).map_err(|e| format!("sched_getaffinity: {e}"))?;
    let allowed: BTreeSet<usize> = (0..CpuSet::count())
        .filter(|&c| mine.is_set(c).unwrap_or(false))
        .collect();
    let cpus = housekeeping_cpus(&allowed, cores);
    if cpus.is_empty() {
        return Ok(Placement::Shared);
    }
    let mut set = CpuSet::new();
    for &c in &cpus {
        set.set(c).map_err(|e| format!("CPU {c}: {e}"))?;
    }
    let tasks =
        std::fs::read_dir("/proc/self/task").map_err(|e| format!("/proc/self/task: {e}"))?;
    let mut threads = 0;
    for task in tasks.flatten() {
        let Some(tid) = task
            .file_name()
            .to_str()
            .and_then(|t| t.parse::<i32>().ok())
        else {
            continue;
        };
        let comm = std::fs::read_to_string(task.path().join("comm")).unwrap_or_default();
        if comm.starts_with("ff-reactor-") {
            continue;
        }
        // A thread that exited meanwhile (ESRCH) is not an error.
        match sched_setaffinity(Pid::from_raw(tid), &set) {
            Ok(()) => threads += 1,
            Err(nix::errno::Errno::ESRCH) => {}
            Err(e) => return Err(format!("thread {tid}: sched_setaffinity: {e}")),
        }
    }
    Ok(Placement::Moved { cpus, threads })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn housekeeping_gets_the_allowed_cpus_without_a_reactor() {
        let allowed: BTreeSet<usize> = [0, 1, 2, 3].into();
        assert_eq!(housekeeping_cpus(&allowed, &[0]), vec![1, 2, 3]);
        assert_eq!(housekeeping_cpus(&allowed, &[1, 3, 7]), vec![0, 2]);
        assert!(housekeeping_cpus(&allowed, &[0, 1, 2, 3]).is_empty());
        assert_eq!(keep_off_reactor_cores(None).unwrap(), Placement::Unpinned);
        // Reactors on every CPU this thread may use: nothing is moved, the caller is told.
        let mine = sched_getaffinity(Pid::from_raw(0)).unwrap();
        let all: Vec<usize> = (0..CpuSet::count())
            .filter(|&c| mine.is_set(c).unwrap_or(false))
            .collect();
        assert_eq!(
            keep_off_reactor_cores(Some(&all)).unwrap(),
            Placement::Shared
        );
    }
}
