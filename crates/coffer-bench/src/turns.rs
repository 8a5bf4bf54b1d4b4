//! Measuring two or three servers in alternating turns.
//!
//! A ratio compares Coffer with a baseline. Measured one after the other, each for the whole
//! window, the two sides see different minutes of a machine whose speed drifts (on the
//! project's machine one binary's rate moved by a third within the hour), and the drift lands
//! in the ratio. Here every server is started first and kept running; the measured window is
//! cut into turns of about a second, the sides take turns under load (the order rotates each
//! round, so no side always goes first), and each side's turns are merged into one run: its
//! requests over its total measured time, percentiles over all its samples. A drift then
//! reaches every side alike and divides out of the ratio.

use crate::cpu::CpuUse;
use crate::error::BenchError;
use crate::figures::{run_side, SideRun};
use crate::latency::LatencySummary;
use crate::load::{LoadPlan, LoadReport};
use std::time::Duration;

/// About how long one turn's measured window lasts.
pub const TURN: Duration = Duration::from_secs(1);
/// Most turns per side, however long the run.
pub const MAX_TURNS: u32 = 10;
/// Warm-up of every turn after a side's first (which gets the run's whole warm-up): enough
/// for the connections to open and the first answers to come back.
pub const REWARM: Duration = Duration::from_millis(200);

/// One server to be measured in turns: the plan for its whole measured window, and the
/// process whose CPU use is watched with the harness's.
pub(crate) struct Side {
    /// The plan as for a single run: its duration and request cap are shared out over turns.
    pub(crate) plan: LoadPlan,
    /// The server process.
    pub(crate) pid: u32,
}

/// How many turns a measured window of `duration` is cut into: one per [`TURN`], at least
/// one and at most [`MAX_TURNS`].
pub fn turns_for(duration: Duration) -> u32 {
    let turns = (duration.as_secs_f64() / TURN.as_secs_f64()).round();
    (turns as u32).clamp(1, MAX_TURNS)
}

/// Which side goes when: in round `round`, the sides in rotated order, so each side is first
/// in as many rounds as the others (give or take one).
pub fn order(round: u32, sides: usize) -> Vec<usize> {
    (0..sides)
        .map(|k| (k + round as usize) % sides.max(1))
        .collect()
}

/// The plan for turn `turn` (0-based) of `turns`: an equal share of the window and of the
/// request cap; the whole warm-up on the first turn, [`REWARM`] (or less) after that.
pub fn turn_plan(plan: &LoadPlan, turn: u32, turns: u32) -> LoadPlan {
    let mut part = plan.clone();
    part.duration = plan.duration / turns;
    part.max_requests = plan.max_requests.div_ceil(u64::from(turns)).max(1);
    if turn > 0 {
        part.warmup = plan.warmup.min(REWARM);
    }
    if turns > 1 {
        part.label = format!("{} (turn {}/{turns})", plan.label, turn + 1);
    }
    part
}

/// Measure every side in `turns` turns each and merge each side's turns (results in the
/// order of `sides`).
pub(crate) async fn run_in_turns(sides: &[Side], turns: u32) -> Result<Vec<SideRun>, BenchError> {
    let mut taken: Vec<Vec<SideRun>> = sides.iter().map(|_| Vec::new()).collect();
    for round in 0..turns {
        for index in order(round, sides.len()) {
            let side = &sides[index];
            let run = run_side(turn_plan(&side.plan, round, turns), side.pid).await?;
            taken[index].push(run);
        }
    }
    Ok(taken.into_iter().map(merge_runs).collect())
}

/// One run made of `runs` (a side's turns): counts and times summed, throughput over the
/// summed window, percentiles over every sample, CPU use weighted by each turn's window.
pub(crate) fn merge_runs(runs: Vec<SideRun>) -> SideRun {
    let weights: Vec<f64> = runs.iter().map(|r| r.report.window_secs).collect();
    let cpu = merge_cpu(
        &runs
            .iter()
            .zip(&weights)
            .map(|(r, w)| r.cpu.map(|c| (c, *w)))
            .collect::<Option<Vec<_>>>(),
    );
    let report = merge_reports(runs.into_iter().map(|r| r.report).collect());
    SideRun { report, cpu }
}

fn merge_reports(reports: Vec<LoadReport>) -> LoadReport {
    let mut samples: Vec<u64> =
        Vec::with_capacity(reports.iter().map(|r| r.samples_us.len()).sum());
    let mut merged = LoadReport {
        measured_requests: 0,
        failed_requests: 0,
        issued_requests: 0,
        window_secs: 0.0,
        throughput: 0.0,
        latency: None,
        capped: false,
        first_failure: None,
        samples_us: Vec::new(),
    };
    for report in reports {
        merged.measured_requests += report.measured_requests;
        merged.failed_requests += report.failed_requests;
        merged.issued_requests += report.issued_requests;
        merged.window_secs += report.window_secs;
        merged.capped |= report.capped;
        merged.first_failure = merged.first_failure.or(report.first_failure);
        samples.extend(report.samples_us);
    }
    if merged.window_secs > 0.0 {
        merged.throughput = samples.len() as f64 / merged.window_secs;
    }
    merged.latency = LatencySummary::from_samples(&mut samples);
    merged.samples_us = samples;
    merged
}

/// CPU use over several turns, each weighted by its length; `None` when any turn lacks it.
fn merge_cpu(turns: &Option<Vec<(CpuUse, f64)>>) -> Option<CpuUse> {
    let turns = turns.as_ref()?;
    let total: f64 = turns.iter().map(|(_, w)| w).sum();
    if turns.is_empty() || total <= 0.0 {
        return None;
    }
    let mean =
        |field: fn(&CpuUse) -> f64| turns.iter().map(|(c, w)| field(c) * w).sum::<f64>() / total;
    Some(CpuUse {
        watched_cores: mean(|c| c.watched_cores),
        other_cores: mean(|c| c.other_cores),
        steal_cores: mean(|c| c.steal_cores),
        idle_cores: mean(|c| c.idle_cores),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::Bytes;
    use std::sync::Arc;

    fn report(successes: u64, failed: u64, window_secs: f64, base_latency: u64) -> LoadReport {
        let mut samples: Vec<u64> = (0..successes).map(|i| base_latency + i).collect();
        LoadReport {
            measured_requests: successes + failed,
            failed_requests: failed,
            issued_requests: successes + failed + 3,
            window_secs,
            throughput: successes as f64 / window_secs,
            latency: LatencySummary::from_samples(&mut samples),
            capped: false,
            first_failure: (failed > 0).then(|| format!("status {base_latency}")),
            samples_us: samples,
        }
    }

    fn cpu(other: f64) -> CpuUse {
        CpuUse {
            watched_cores: 1.5,
            other_cores: other,
            steal_cores: 0.0,
            idle_cores: 0.5 - other,
        }
    }

    #[test]
    fn merged_throughput_is_requests_over_total_window_not_a_mean_of_rates() {
        // 1,000 requests in 1 s and 100 in 0.5 s: 1,100 / 1.5 s, not (1000 + 200) / 2.
        let merged = merge_runs(vec![
            SideRun {
                report: report(1_000, 0, 1.0, 10),
                cpu: Some(cpu(0.0)),
            },
            SideRun {
                report: report(100, 0, 0.5, 5_000),
                cpu: Some(cpu(0.3)),
            },
        ]);
        let r = &merged.report;
        assert!(
            (r.throughput - 1_100.0 / 1.5).abs() < 1e-6,
            "{}",
            r.throughput
        );
        assert_eq!(r.measured_requests, 1_100);
        assert!((r.window_secs - 1.5).abs() < 1e-9);
        // Percentiles over all samples: the slow turn's 100 samples are the top 9 %.
        let latency = r.latency.unwrap();
        assert_eq!(latency.p50_us, 10 + 549);
        assert!(latency.p99_us >= 5_000, "{latency:?}");
        assert_eq!(latency.max_us, 5_099);
        // CPU weighted by window: (0.0 * 1.0 + 0.3 * 0.5) / 1.5 = 0.1.
        assert!((merged.cpu.unwrap().other_cores - 0.1).abs() < 1e-9);
    }

    #[test]
    fn a_failure_in_any_turn_survives_the_merge() {
        let merged = merge_runs(vec![
            SideRun {
                report: report(10, 0, 1.0, 1),
                cpu: None,
            },
            SideRun {
                report: report(10, 2, 1.0, 503),
                cpu: Some(cpu(0.0)),
            },
            SideRun {
                report: report(10, 1, 1.0, 500),
                cpu: None,
            },
        ]);
        assert_eq!(merged.report.failed_requests, 3);
        assert_eq!(merged.report.first_failure.as_deref(), Some("status 503"));
        assert!(
            merged.cpu.is_none(),
            "a turn without CPU figures leaves the merge without"
        );
    }

    #[test]
    fn every_side_leads_a_round_in_turn() {
        assert_eq!(order(0, 2), vec![0, 1]);
        assert_eq!(order(1, 2), vec![1, 0]);
        assert_eq!(order(2, 3), vec![2, 0, 1]);
        let firsts: Vec<usize> = (0..6).map(|r| order(r, 3)[0]).collect();
        assert_eq!(firsts, vec![0, 1, 2, 0, 1, 2]);
    }

    #[test]
    fn turns_share_the_window_and_the_cap_and_only_the_first_warms_up_fully() {
        let plan = LoadPlan {
            label: "kv-read coffer".into(),
            addr: "127.0.0.1:1".parse().unwrap(),
            connections: 32,
            warmup: Duration::from_secs(1),
            duration: Duration::from_secs(10),
            max_requests: 5_000_001,
            requests: Arc::new(|_, _| Bytes::new()),
        };
        let turns = turns_for(plan.duration);
        assert_eq!(turns, 10);
        let first = turn_plan(&plan, 0, turns);
        let later = turn_plan(&plan, 3, turns);
        assert_eq!(first.duration, Duration::from_secs(1));
        assert_eq!(first.warmup, Duration::from_secs(1));
        assert_eq!(later.warmup, REWARM);
        assert_eq!(later.label, "kv-read coffer (turn 4/10)");
        assert_eq!(first.max_requests * u64::from(turns), 5_000_010);
        assert_eq!(turns_for(Duration::from_millis(1_500)), 2);
        assert_eq!(turns_for(Duration::from_millis(200)), 1);
        assert_eq!(turns_for(Duration::from_secs(60)), MAX_TURNS);
        assert_eq!(turn_plan(&plan, 0, 1).label, "kv-read coffer");
    }
}
