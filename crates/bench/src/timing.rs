//! Wall-clock timing with [`std::time::Instant`]: a few untimed warm-up runs, then `runs` timed
//! runs, summarised by their median (robust to the odd slow run on a shared 2-vCPU VM), with the
//! minimum and maximum alongside to show the spread.

use std::time::Instant;

use saturn_tensor::Result;

/// Warm-up and timed run counts for one case.
#[derive(Debug, Clone, Copy)]
pub struct Plan {
    /// Untimed runs before measuring (page faults, allocator and OpenBLAS buffer set-up).
    pub warmup: usize,
    /// Timed runs; the median of these is reported.
    pub runs: usize,
}

/// Summary of the timed runs of one quantity, in milliseconds.
#[derive(Debug, Clone, Copy)]
pub struct Stats {
    pub median_ms: f64,
    pub min_ms: f64,
    pub max_ms: f64,
    pub runs: usize,
}

impl Stats {
    /// Summarises samples given in milliseconds (at least one).
    pub fn from_ms(mut samples: Vec<f64>) -> Stats {
        assert!(!samples.is_empty(), "no samples to summarise");
        samples.sort_by(f64::total_cmp);
        let n = samples.len();
        let median =
            if n % 2 == 1 { samples[n / 2] } else { 0.5 * (samples[n / 2 - 1] + samples[n / 2]) };
        Stats { median_ms: median, min_ms: samples[0], max_ms: samples[n - 1], runs: n }
    }
}

/// Times `f`: `plan.warmup` untimed calls, then `plan.runs` timed calls.
pub fn time<F: FnMut() -> Result<()>>(plan: Plan, mut f: F) -> Result<Stats> {
    for _ in 0..plan.warmup {
        f()?;
    }
    let mut samples = Vec::with_capacity(plan.runs);
    for _ in 0..plan.runs {
        let start = Instant::now();
        f()?;
        samples.push(start.elapsed().as_secs_f64() * 1e3);
    }
    Ok(Stats::from_ms(samples))
}

/// Milliseconds elapsed since `start`.
pub fn ms_since(start: Instant) -> f64 {
    start.elapsed().as_secs_f64() * 1e3
}

/// GFLOP/s for `flops` floating-point operations done in `ms` milliseconds.
pub fn gflops(flops: f64, ms: f64) -> f64 {
    flops / (ms * 1e-3) / 1e9
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn median_of_odd_and_even_counts() {
        assert_eq!(Stats::from_ms(vec![3.0, 1.0, 2.0]).median_ms, 2.0);
        let s = Stats::from_ms(vec![4.0, 1.0, 3.0, 2.0]);
        assert_eq!((s.median_ms, s.min_ms, s.max_ms, s.runs), (2.5, 1.0, 4.0, 4));
    }

    #[test]
    fn gflops_counts_per_second() {
        assert_eq!(gflops(2e9, 1000.0), 2.0);
    }
}
