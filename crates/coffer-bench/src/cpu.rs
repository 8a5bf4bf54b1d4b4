//! CPU used by other processes during a load run, from `/proc`.
//!
//! Server and load generator share the machine's cores, so a compile or test run elsewhere
//! during one side of a ratio skews it. The harness measures how much CPU went to processes
//! other than itself and the server under test and flags figures where that was significant.
//! Linux only; elsewhere the measurement is simply absent.

use std::time::Instant;

/// Linux reports CPU times in USER_HZ ticks, fixed at 100 per second for user space.
const TICKS_PER_SECOND: f64 = 100.0;

/// CPU counters at one instant.
#[derive(Debug, Clone, Copy)]
pub struct CpuSnapshot {
    taken: Instant,
    /// User + nice + system + irq + softirq ticks of all CPUs. Interrupt time is included
    /// because the kernel charges some of it to whichever process was running, so the watched
    /// processes' own counters can contain it.
    machine_busy: u64,
    /// Idle + iowait ticks of all CPUs.
    machine_idle: u64,
    /// Hypervisor steal ticks of all CPUs.
    machine_steal: u64,
    /// User + system ticks of the watched processes.
    watched_busy: u64,
}

/// CPU use between two snapshots, in cores (1.0 = one core fully busy).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct CpuUse {
    /// Used by the watched processes (harness and server).
    pub watched_cores: f64,
    /// Used by everything else in user or system mode.
    pub other_cores: f64,
    /// Taken by the hypervisor.
    pub steal_cores: f64,
    /// Left idle (a closed-loop run that is not CPU-bound leaves some).
    pub idle_cores: f64,
}

impl CpuSnapshot {
    /// Counters now for the machine and the processes `pids`; `None` without `/proc`.
    pub fn take(pids: &[u32]) -> Option<CpuSnapshot> {
        let stat = std::fs::read_to_string("/proc/stat").ok()?;
        let fields: Vec<u64> = stat
            .lines()
            .next()?
            .split_whitespace()
            .skip(1)
            .filter_map(|f| f.parse().ok())
            .collect();
        let field = |i: usize| fields.get(i).copied().unwrap_or(0);
        let mut watched_busy = 0;
        for pid in pids {
            watched_busy += process_ticks(*pid)?;
        }
        Some(CpuSnapshot {
            taken: Instant::now(),
            machine_busy: field(0) + field(1) + field(2) + field(5) + field(6),
            machine_idle: field(3) + field(4),
            machine_steal: field(7),
            watched_busy,
        })
    }

    /// CPU use from `self` to `later`.
    pub fn until(&self, later: &CpuSnapshot) -> CpuUse {
        let seconds = later
            .taken
            .duration_since(self.taken)
            .as_secs_f64()
            .max(1e-3);
        let cores = |ticks: u64| ticks as f64 / TICKS_PER_SECOND / seconds;
        let machine = later.machine_busy.saturating_sub(self.machine_busy);
        let watched = later.watched_busy.saturating_sub(self.watched_busy);
        CpuUse {
            watched_cores: cores(watched),
            other_cores: cores(machine.saturating_sub(watched)),
            steal_cores: cores(later.machine_steal.saturating_sub(self.machine_steal)),
            idle_cores: cores(later.machine_idle.saturating_sub(self.machine_idle)),
        }
    }
}

/// utime + stime of a process (all its threads), from `/proc/PID/stat`.
fn process_ticks(pid: u32) -> Option<u64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name may contain spaces and parentheses; fields resume after the last ')'.
    let rest = &stat[stat.rfind(')')? + 1..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    // After the name: state is field 3 of the file, utime 14 and stime 15.
    let utime: u64 = fields.get(11)?.parse().ok()?;
    let stime: u64 = fields.get(12)?.parse().ok()?;
    Some(utime + stime)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn burning_cpu_in_this_process_counts_as_watched_not_other() {
        let me = std::process::id();
        let Some(before) = CpuSnapshot::take(&[me]) else {
            return; // no /proc on this platform
        };
        let started = Instant::now();
        let mut x = 0u64;
        while started.elapsed().as_millis() < 300 {
            x = std::hint::black_box(x.wrapping_mul(6364136223846793005).wrapping_add(1));
        }
        let used = before.until(&CpuSnapshot::take(&[me]).unwrap());
        assert!(used.watched_cores > 0.3, "{used:?}");
    }
}
