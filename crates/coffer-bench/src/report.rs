//! The results table on stdout and the JSON results file.

use crate::error::BenchError;
use crate::figures::{Bound, Figure, SubResult};
use serde_json::{json, Value};
use std::path::Path;
use std::time::{SystemTime, UNIX_EPOCH};

/// The results table: one row per figure with Coffer, baseline, ratio, target and verdict,
/// followed by p50/p99 latencies, notes and caveats, then a sub-table for each composite figure.
pub fn table(figures: &[Figure]) -> String {
    let mut rows = vec![["figure", "coffer", "baseline", "ratio", "target", "met?"]
        .map(String::from)
        .to_vec()];
    for f in figures {
        // A CAVEAT voids a figure whatever its value: the verdict says so, and the CAVEAT line
        // under the table says why.
        let verdict = if f.met() {
            "yes"
        } else if f.caveat.is_some() {
            "NO (CAVEAT)"
        } else {
            "NO"
        }
        .to_string();
        if f.parts.is_empty() {
            let baseline = match &f.published_baseline {
                Some(whose) => format!("{:.0}/s ({whose})", f.baseline),
                None => format!("{:.0}/s", f.baseline),
            };
            rows.push(vec![
                f.name.clone(),
                format!("{:.0}/s", f.coffer),
                baseline,
                format!("{:.2}", f.ratio),
                format!(">= {}", f.target),
                verdict,
            ]);
        } else {
            let with_target: Vec<&SubResult> =
                f.parts.iter().filter(|p| p.target.is_some()).collect();
            let met = with_target.iter().filter(|p| p.met() == Some(true)).count();
            rows.push(vec![
                f.name.clone(),
                format!("{met} of {} met", with_target.len()),
                "-".into(),
                "-".into(),
                "see below".into(),
                verdict,
            ]);
        }
    }
    let mut out = aligned(&rows);
    for f in figures {
        if f.parts.is_empty() && f.name != "loadgen" {
            out.push_str(&format!("{}: {}", f.name, latency_line(f)));
            out.push('\n');
        }
        for note in &f.notes {
            out.push_str(&format!("{}: {note}\n", f.name));
        }
        if let Some(caveat) = &f.caveat {
            out.push_str(&format!("{}: CAVEAT {caveat}\n", f.name));
        }
    }
    for f in figures.iter().filter(|f| !f.parts.is_empty()) {
        out.push('\n');
        let mut rows = vec![vec![
            f.name.clone(),
            "value".into(),
            "target".into(),
            "met?".into(),
        ]];
        for part in &f.parts {
            rows.push(vec![
                part.name.clone(),
                format_value(part.value, &part.unit),
                match part.target {
                    Some(Bound::AtMost(max)) => format!("<= {}", format_value(max, &part.unit)),
                    Some(Bound::AtLeast(min)) => format!(">= {}", format_value(min, &part.unit)),
                    None => "-".into(),
                },
                match part.met() {
                    Some(true) => "yes".into(),
                    Some(false) => "NO".into(),
                    None => "-".into(),
                },
            ]);
        }
        out.push_str(&aligned(&rows));
    }
    out
}

/// A value with its unit: times under a second in milliseconds, rates and bytes whole (bytes with one
/// decimal when small).
fn format_value(value: f64, unit: &str) -> String {
    if value.is_nan() {
        return "n/a".into();
    }
    match unit {
        "s" if value.abs() < 1.0 => format!("{:.1} ms", value * 1000.0),
        "s" => format!("{value:.2} s"),
        "B" if value.abs() < 1000.0 => format!("{value:.1} B"),
        "B" => format!("{value:.0} B"),
        "/s" => format!("{value:.0}/s"),
        other => format!("{value} {other}"),
    }
}

/// Rows with columns padded to their widest cell and a rule under the header.
fn aligned(rows: &[Vec<String>]) -> String {
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
        "approle-login" => format!(
            "coffer {}; bare hyper {}",
            side("coffer"),
            side("machine_ceiling_bare_hyper")
        ),
        "kv-write" => format!(
            "coffer on file storage {}; in memory {}",
            side("coffer"),
            side("baseline_in_memory")
        ),
        "vs-rustyvault" => format!("rustyvault {}", side("rustyvault")),
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
                "published_baseline": f.published_baseline,
                "notes": f.notes,
                "parts": f.parts.iter().map(|p| json!({
                    "name": p.name,
                    "value": p.value,
                    "unit": p.unit,
                    "target": p.target.map(|t| match t {
                        Bound::AtMost(max) => json!({ "at_most": max }),
                        Bound::AtLeast(min) => json!({ "at_least": min }),
                    }),
                    "met": p.met(),
                })).collect::<Vec<_>>(),
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
            published_baseline: None,
            notes: Vec::new(),
            parts: Vec::new(),
        }
    }

    fn composite(parts: Vec<SubResult>) -> Figure {
        Figure {
            name: "leases".into(),
            unit: "composite".into(),
            coffer: 1.0,
            baseline: f64::NAN,
            ratio: f64::NAN,
            target: f64::NAN,
            details: json!({}),
            caveat: None,
            published_baseline: None,
            notes: Vec::new(),
            parts,
        }
    }

    #[test]
    fn a_composite_figure_is_met_only_when_every_targeted_part_is() {
        let restart = SubResult::with_target("restart", 0.4, "s", Bound::AtMost(1.0));
        let rate = SubResult::reported("create", 9000.0, "/s");
        let memory = SubResult::with_target("memory", 250.0, "B", Bound::AtMost(200.0));
        assert!(composite(vec![restart.clone(), rate.clone()]).met());
        let missed = composite(vec![restart, rate, memory]);
        assert!(!missed.met());
        let text = table(&[missed]);
        assert!(text.contains("1 of 2 met"), "{text}");
        let memory_row = text.lines().find(|l| l.starts_with("memory")).unwrap();
        assert!(
            memory_row.contains("250.0 B")
                && memory_row.contains("<= 200.0 B")
                && memory_row.ends_with("NO"),
            "{memory_row}"
        );
        let create_row = text.lines().find(|l| l.starts_with("create")).unwrap();
        assert!(
            create_row.contains("9000/s") && create_row.ends_with('-'),
            "{create_row}"
        );
    }

    #[test]
    fn a_published_baseline_is_named_in_its_cell() {
        let mut f = figure((16000.0, 5200.0), 3.0, None);
        f.name = "approle-login".into();
        f.published_baseline = Some("Vault dev server, published".into());
        let text = table(&[f]);
        assert!(
            text.contains("5200/s (Vault dev server, published)"),
            "{text}"
        );
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
        let text = table(&[f]);
        assert!(text.contains("CAVEAT coffer: 3 of 900"));
        let row = text.lines().nth(2).unwrap();
        assert!(row.ends_with("NO (CAVEAT)"), "{row}");
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
