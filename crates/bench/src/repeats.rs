//! `--repeats N`: the selected cases N times over, Saturn and PyTorch alternating, and one
//! summary line per comparison with the median over the repeats.
//!
//! A single pair of runs on a shared 2-vCPU VM moves by ±10 % (PyTorch medium/post at 2 threads:
//! 1,372 ms, then 1,246 ms), more than the differences a change is judged by. So every
//! comparison line (`step_vs_torch`, `hvp_vs_torch`) of each repeat is kept, in the order
//! Saturn, PyTorch, Saturn, PyTorch, … (repeat 1 of every case, then repeat 2, …), and after the
//! last repeat a `step_vs_torch_median` / `hvp_vs_torch_median` line gives, for every number
//! the repeats' lines all have, the median over the repeats (the ratio's median is the median
//! of the per-repeat ratios, not the ratio of medians), with `ratio_min`, `ratio_max` and the
//! per-repeat `ratios` (and the same for `ratio_compiled`).

use serde_json::Value;

use crate::Record;
use crate::timing::Stats;

/// The comparison lines of every repeat, grouped by (bench, config, variant) in first-seen order.
#[derive(Default)]
pub struct Repeats {
    groups: Vec<((String, String, String), Vec<Record>)>,
}

impl Repeats {
    /// Keeps one repeat's comparison line.
    pub fn push(&mut self, line: &Record) {
        let text = |k| line.get(k).and_then(Value::as_str).unwrap_or("").to_string();
        let key = (text("bench"), text("config"), text("variant"));
        match self.groups.iter_mut().find(|(k, _)| *k == key) {
            Some((_, lines)) => lines.push(line.clone()),
            None => self.groups.push((key, vec![line.clone()])),
        }
    }

    /// One summary line per comparison, in first-seen order.
    pub fn summaries(&self) -> Vec<Record> {
        self.groups
            .iter()
            .map(|((bench, config, variant), lines)| summary(bench, config, variant, lines))
            .collect()
    }
}

/// The names of the summary lines: `step_vs_torch` → `step_vs_torch_median`.
fn summary_bench(bench: &str) -> &'static str {
    match bench {
        "hvp_vs_torch" => "hvp_vs_torch_median",
        _ => "step_vs_torch_median",
    }
}

/// The median over `lines` of every numeric field all of them have, with the spread of the
/// ratios.
fn summary(bench: &str, config: &str, variant: &str, lines: &[Record]) -> Record {
    let mut r = Record::new(summary_bench(bench))
        .with("config", config)
        .with("variant", variant)
        .with("repeats", lines.len());
    let Some(first) = lines.first() else { return r };
    for (key, value) in &first.0 {
        if !value.is_number()
            || matches!(*key, "threads" | "torch_threads" | "torch_steps" | "repeat")
        {
            continue;
        }
        let values: Option<Vec<f64>> =
            lines.iter().map(|l| l.get(key).and_then(Value::as_f64)).collect();
        let Some(values) = values else { continue };
        r = r.num(key, Stats::from_ms(values.clone()).median_ms);
        if let Some(spread) = spread_keys(key) {
            let [min, max, all] = spread;
            let sorted = Stats::from_ms(values.clone());
            r = r.num(min, sorted.min_ms).num(max, sorted.max_ms).with(all, values);
        }
    }
    for key in ["threads", "torch_threads", "blas", "cpu", "git_commit", "openblas_thread_timeout"]
    {
        if let Some(v) = first.get(key) {
            r = r.with(key, v.clone());
        }
    }
    r
}

/// The spread fields of a ratio: (min, max, every repeat's value).
fn spread_keys(key: &str) -> Option<[&'static str; 3]> {
    match key {
        "ratio" => Some(["ratio_min", "ratio_max", "ratios"]),
        "ratio_compiled" => Some(["ratio_compiled_min", "ratio_compiled_max", "ratios_compiled"]),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn line(saturn: f64, torch: f64) -> Record {
        Record::new("step_vs_torch")
            .with("config", "tiny")
            .with("variant", "post")
            .num("saturn_ms", saturn)
            .num("torch_ms", torch)
            .num("ratio", saturn / torch)
            .with("threads", 2)
    }

    #[test]
    fn the_summary_is_the_median_of_each_repeat_and_its_ratio_spread() {
        let mut repeats = Repeats::default();
        for (s, t) in [(10.0, 20.0), (12.0, 10.0), (9.0, 10.0), (30.0, 10.0), (10.0, 10.0)] {
            repeats.push(&line(s, t));
        }
        repeats.push(&line(1.0, 1.0).with("variant", "pre"));
        let out = repeats.summaries();
        assert_eq!(out.len(), 2, "one line per config and variant");
        let get = |k| out[0].get(k).and_then(Value::as_f64).unwrap();
        assert_eq!(out[0].get("bench").and_then(Value::as_str), Some("step_vs_torch_median"));
        assert_eq!(get("repeats"), 5.0);
        assert_eq!(get("saturn_ms"), 10.0);
        assert_eq!(get("torch_ms"), 10.0);
        // the median of the ratios (0.5, 1.2, 0.9, 3, 1), not saturn/torch of the medians
        assert_eq!(get("ratio"), 1.0);
        assert_eq!((get("ratio_min"), get("ratio_max")), (0.5, 3.0));
        assert_eq!(out[0].get("ratios").and_then(Value::as_array).map(Vec::len), Some(5));
        assert_eq!(get("threads"), 2.0, "counts are copied, not averaged");
    }
}
