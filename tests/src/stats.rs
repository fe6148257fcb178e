//! Means with standard errors, for the statistical tests.
//!
//! A statistical test computes one number per seed (seeds fixed, see [`crate::config`]), and
//! compares the mean over seeds with the theorem's value or bounds, allowing k standard errors
//! of the mean (SE = sample std / √K). With k = 4, a theorem that holds fails such a one-sided
//! comparison with probability ≈ 3·10⁻⁵ under the normal approximation; since the seeds are
//! fixed, the default run's verdict never changes from run to run.

use std::fmt;

/// The mean of K samples and its standard error.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Estimate {
    pub mean: f64,
    /// Sample standard deviation / √K (0 for a single sample).
    pub se: f64,
    pub n: usize,
}

impl Estimate {
    /// The mean and standard error of `samples` (at least one).
    pub fn of(samples: &[f64]) -> Estimate {
        let n = samples.len();
        assert!(n > 0, "an estimate needs at least one sample");
        let mean = samples.iter().sum::<f64>() / n as f64;
        let se = if n > 1 {
            let var = samples.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / (n - 1) as f64;
            (var / n as f64).sqrt()
        } else {
            0.0
        };
        Estimate { mean, se, n }
    }

    /// Whether the mean is at least `lo − k·SE` (not significantly below `lo`).
    pub fn not_below(&self, lo: f64, k: f64) -> bool {
        self.mean >= lo - k * self.se
    }

    /// Whether the mean is at most `hi + k·SE` (not significantly above `hi`).
    pub fn not_above(&self, hi: f64, k: f64) -> bool {
        self.mean <= hi + k * self.se
    }

    /// Whether the mean is within k standard errors of `value`.
    pub fn consistent_with(&self, value: f64, k: f64) -> bool {
        (self.mean - value).abs() <= k * self.se
    }

    /// Whether the mean is significantly above zero: mean > k·SE.
    pub fn significantly_positive(&self, k: f64) -> bool {
        self.mean > k * self.se
    }
}

impl fmt::Display for Estimate {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:.5} ± {:.5} (SE, K = {})", self.mean, self.se, self.n)
    }
}

#[cfg(test)]
mod tests {
    use super::Estimate;

    #[test]
    fn mean_and_standard_error_of_a_small_sample() {
        let e = Estimate::of(&[1.0, 2.0, 3.0, 4.0]);
        assert_eq!(e.mean, 2.5);
        // sample variance 5/3, SE = √(5/3 / 4)
        assert!((e.se - (5.0f64 / 12.0).sqrt()).abs() < 1e-15);
        assert!(e.consistent_with(2.5 + 3.0 * e.se, 3.0));
        assert!(!e.consistent_with(2.5 + 3.1 * e.se, 3.0));
    }
}
