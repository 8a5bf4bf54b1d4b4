//! The results table on stdout and the JSON results file.

use crate::error::BenchError;
use crate::figures::Figure;
use serde_json::{json, Value};
use std::path::Path;
use std::time::{SystemTime, UNIX_EPOCH};

/// The results table: one row per figure with Coffer, baseline, ratio, target and verdict,
/// followed by p50/p99 latencies and any caveats.
pub fn table(figures: &[Figure]) -> String {
    let mut rows = vec![["figure", "coffer", "baseline", "ratio", "target", "met?"]
        .map(String::from)
        .to_vec()];
    for f in figures {
        rows.push(vec![
            f.name.clone(),
            format!("{:.0}/s", f.coffer),
            format!("{:.0}/s", f.baseline),
            format!("{:.2}", f.ratio),
            format!(">= {}", f.target),
            if f.met() { "yes".into() } else { "NO".into() },
        ]);
    }
    let widths: Vec<usize> = (0..rows[0].len())
        .map(|c| rows.iter().map(|r| r[c].len()).max().unwrap_or(0))
        .collect();
    let mut out = String::new();
    for (i, row) in rows.iter().enumerate() {
        let cells: Vec<String> = row
            .iter()
            .zip(&widths)
            .map(|(cell, w)| format!("{cell:<w$}"))
            .collect();
        out.push_str(cells.join("  ").trim_end());
        out.push('\n');
        if i == 0 {
            out.push_str(
                &widths
                    .iter()
                    .map(|w| "-".repeat(*w))
                    .collect::<Vec<_>>()
                    .join("  "),
            );
            out.push('\n');
        }
    }
    for f in figures {
        out.push_str(&format!("{}: {}", f.name, latency_line(f)));
        out.push('\n');
        if let Some(caveat) = &f.caveat {
            out.push_str(&format!("{}: CAVEAT {caveat}\n", f.name));
        }
    }
    out
}

fn latency_line(f: &Figure) -> String {
    let side = |key: &str| {
        let l = &f.details[key]["latency"];
        match (l["p50_us"].as_u64(), l["p99_us"].as_u64()) {
            (Some(p50), Some(p99)) => format!(
                "p50 {:.2} ms, p99 {:.2} ms",
                p50 as f64 / 1000.0,
                p99 as f64 / 1000.0
            ),
            _ => "no latency samples".into(),
        }
    };
    match f.name.as_str() {
        "kv-read" => format!(
            "coffer {}; bare hyper {}",
            side("coffer"),
            side("baseline_bare_hyper")
        ),
        _ => format!("coffer {}", side("coffer")),
    }
}

/// The whole run as JSON: when, on what, with which settings, and every figure.
pub fn results_json(figures: &[Figure], settings: Value) -> Value {
    let unix_time = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    let cores = std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(0);
    let figures: Vec<Value> = figures
        .iter()
        .map(|f| {
            json!({
                "figure": f.name,
                "unit": f.unit,
                "coffer": f.coffer,
                "baseline": f.baseline,
                "ratio": f.ratio,
                "target": f.target,
                "met": f.met(),
                "caveat": f.caveat,
                "details": f.details,
            })
        })
        .collect();
    json!({ "unix_time": unix_time, "cores": cores, "settings": settings, "figures": figures })
}

/// Write `results` to `path`, creating its directory.
pub fn write_json(path: &Path, results: &Value) -> Result<(), BenchError> {
    if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
        std::fs::create_dir_all(parent)
            .map_err(|e| BenchError::io(format!("creating {}", parent.display()), e))?;
    }
    let text = serde_json::to_string_pretty(results).expect("JSON encodes");
    std::fs::write(path, text + "\n")
        .map_err(|e| BenchError::io(format!("writing {}", path.display()), e))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn figure(ratio_parts: (f64, f64), target: f64, caveat: Option<&str>) -> Figure {
        Figure {
            name: "kv-read".into(),
            unit: "req/s".into(),
            coffer: ratio_parts.0,
            baseline: ratio_parts.1,
            ratio: ratio_parts.0 / ratio_parts.1,
            target,
            details: json!({ "coffer": { "latency": { "p50_us": 1500, "p99_us": 4200 } }, "baseline_bare_hyper": { "latency": null } }),
            caveat: caveat.map(String::from),
        }
    }

    #[test]
    fn a_figure_below_target_is_marked_not_met() {
        let text = table(&[figure((60.0, 100.0), 0.7, None)]);
        let row = text.lines().nth(2).unwrap();
        assert!(
            row.starts_with("kv-read") && row.contains("0.60") && row.ends_with("NO"),
            "{row}"
        );
    }

    #[test]
    fn failed_requests_void_a_figure_that_would_meet_its_target() {
        let f = figure((90.0, 100.0), 0.7, Some("coffer: 3 of 900 requests failed"));
        assert!(!f.met());
        assert!(table(&[f]).contains("CAVEAT coffer: 3 of 900"));
        assert!(figure((90.0, 100.0), 0.7, None).met());
    }

    #[test]
    fn table_shows_latencies_in_milliseconds() {
        let text = table(&[figure((90.0, 100.0), 0.7, None)]);
        assert!(
            text.contains("coffer p50 1.50 ms, p99 4.20 ms; bare hyper no latency samples"),
            "{text}"
        );
    }
}
