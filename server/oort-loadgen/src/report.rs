//! The figures of a run, for scripts: with `--json` the tables go to stderr
//! and stdout gets one JSON document, `{"command", "date", "figures": [{"name",
//! "value", "unit", "baseline", "baseline_value", "ratio"}]}`, the rows of the
//! current-figures table of BENCHMARKS.md. [`compare`] runs a benchmark on two
//! builds of `oortd`, alternately, and sets each figure of one against the other.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, Ordering};

use anyhow::{Context, Result, bail};
use serde::{Deserialize, Serialize};

static JSON: AtomicBool = AtomicBool::new(false);
static FIGURES: Mutex<Vec<Figure>> = Mutex::new(Vec::new());

/// Prints a line of a benchmark's tables: on stdout, or on stderr when stdout
/// carries the JSON document.
#[macro_export]
macro_rules! out {
    ($($arg:tt)*) => {
        if $crate::report::json() { eprintln!($($arg)*) } else { println!($($arg)*) }
    };
}

/// One measured figure, with the baseline measured beside it in the same run.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Figure {
    /// What was measured, e.g. `file sink: time to write every result`.
    pub name: String,
    /// Its value, in `unit`.
    pub value: f64,
    /// `events/s`, `ms`, `µs`, `MiB`, `s`...
    pub unit: String,
    /// What it is set against, if anything.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub baseline: Option<String>,
    /// The baseline's value, in the same unit.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub baseline_value: Option<f64>,
    /// `value / baseline_value`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ratio: Option<f64>,
}

/// The JSON document of a run.
#[derive(Debug, Serialize, Deserialize)]
struct Run {
    command: String,
    date: String,
    figures: Vec<Figure>,
}

/// Whether the run prints JSON (`--json`).
pub fn json() -> bool {
    JSON.load(Ordering::Relaxed)
}

/// Turns `--json` on.
pub fn set_json() {
    JSON.store(true, Ordering::Relaxed);
}

/// Records a figure without a baseline.
pub fn figure(name: impl Into<String>, value: f64, unit: &str) {
    push(Figure { name: name.into(), value, unit: unit.to_owned(), baseline: None, baseline_value: None, ratio: None });
}

/// Records a figure against the baseline measured beside it.
pub fn against(name: impl Into<String>, value: f64, unit: &str, baseline: impl Into<String>, baseline_value: f64) {
    push(Figure {
        name: name.into(),
        value,
        unit: unit.to_owned(),
        baseline: Some(baseline.into()),
        baseline_value: Some(baseline_value),
        ratio: (baseline_value != 0.0).then(|| value / baseline_value),
    });
}

fn push(figure: Figure) {
    FIGURES.lock().unwrap_or_else(|p| p.into_inner()).push(figure);
}

/// With `--json`, prints the run's figures as one JSON document on stdout.
pub fn finish() -> Result<()> {
    if !json() {
        return Ok(());
    }
    let figures = std::mem::take(&mut *FIGURES.lock().unwrap_or_else(|p| p.into_inner()));
    let command = std::env::args().skip(1).filter(|a| a != "--json").collect::<Vec<_>>().join(" ");
    let run = Run { command, date: chrono::Utc::now().format("%Y-%m-%d").to_string(), figures };
    println!("{}", serde_json::to_string_pretty(&run)?);
    Ok(())
}

/// Runs `bench` (a subcommand that takes `--oortd`, with its arguments)
/// `rounds` times on each build, alternately, and sets the median of each
/// figure on `oortd` against its median on `baseline`.
pub fn compare(baseline: &Path, oortd: &Path, rounds: usize, bench: &[String]) -> Result<()> {
    if bench.iter().any(|a| a == "--oortd" || a.starts_with("--oortd=")) {
        bail!("compare gives the benchmark its --oortd itself: leave it out after --");
    }
    let builds = [baseline, oortd];
    let mut values: [BTreeMap<String, (String, Vec<f64>)>; 2] = Default::default();
    let mut order = Vec::new();
    for round in 0..rounds {
        // Alternate which goes first, so that drift in the machine hits both alike.
        let turns = if round % 2 == 0 { [0, 1] } else { [1, 0] };
        for build in turns {
            eprintln!("compare: round {} of {rounds}, {}", round + 1, builds[build].display());
            for figure in run_once(builds[build], bench)? {
                if !order.contains(&figure.name) {
                    order.push(figure.name.clone());
                }
                let entry = values[build].entry(figure.name).or_insert_with(|| (figure.unit, Vec::new()));
                entry.1.push(figure.value);
            }
        }
    }
    let label = |path: &Path| path.display().to_string();
    out!("| figure (median of {rounds}) | {} | {} (baseline) | ratio |", label(oortd), label(baseline));
    out!("|---|---|---|---|");
    for name in order {
        let [old, new] = &mut values;
        let (Some((unit, new)), Some((_, old))) = (new.get_mut(&name), old.get_mut(&name)) else {
            continue;
        };
        let (new, old) = (median(new), median(old));
        out!("| {name} | {new:.2} {unit} | {old:.2} {unit} | {:.3} |", new / old);
        against(name, new, unit, format!("the same on {}", label(baseline)), old);
    }
    Ok(())
}

/// One run of the benchmark on `oortd`, its figures read from `--json`.
fn run_once(oortd: &Path, bench: &[String]) -> Result<Vec<Figure>> {
    let me: PathBuf = std::env::current_exe()?;
    let output = std::process::Command::new(me)
        .arg("--json")
        .args(bench)
        .arg("--oortd")
        .arg(oortd)
        .stderr(std::process::Stdio::inherit())
        .output()
        .context("running the benchmark")?;
    if !output.status.success() {
        bail!("`{}` on {} failed ({})", bench.join(" "), oortd.display(), output.status);
    }
    let run: Run = serde_json::from_slice(&output.stdout).context("reading the benchmark's JSON")?;
    Ok(run.figures)
}

/// The median, sorting `values`.
pub fn median(values: &mut [f64]) -> f64 {
    values.sort_by(f64::total_cmp);
    values[values.len() / 2]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_figure_against_its_baseline_carries_the_ratio_and_reads_back() {
        against("x", 3.0, "s", "y", 2.0);
        figure("z", 1.0, "MiB");
        let figures = std::mem::take(&mut *FIGURES.lock().unwrap());
        assert_eq!(figures[0].ratio, Some(1.5));
        let run = Run { command: "file-sink".into(), date: "2026-12-07".into(), figures };
        let text = serde_json::to_string(&run).unwrap();
        assert!(!text.contains("\"ratio\":null"), "absent, not null: {text}");
        let back: Run = serde_json::from_str(&text).unwrap();
        assert_eq!(back.figures[1].baseline, None);
        assert_eq!(back.figures[0].baseline_value, Some(2.0));
    }
}
