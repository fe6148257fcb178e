//! Values taken over runs: the mean, the mean curve, and the worst value of a seed's runs.
//!
//! A claim about every scheme (or task) of a seed counts that seed by its worst run: the
//! smallest value for a `> t` rule, the largest for a `< t` rule, the farthest outside for an
//! `in [low, high]` rule ([`Worst`]). An undefined value (NaN or ±∞), or a seed without runs,
//! makes the seed's value NaN: never a passing default.

/// The arithmetic mean (NaN for no values): the workspace's one, from saturn-tensor.
pub use saturn_tensor::flat::mean;

/// The pointwise mean of several (x, y) curves at each x that any of them has (a run that
/// stopped early contributes to the points it reached).
pub fn mean_curve(curves: &[Vec<(f64, f64)>]) -> Vec<(f64, f64)> {
    let mut xs: Vec<f64> = curves.iter().flatten().map(|p| p.0).collect();
    xs.sort_by(f64::total_cmp);
    xs.dedup();
    xs.into_iter()
        .map(|x| {
            let ys: Vec<f64> =
                curves.iter().filter_map(|c| c.iter().find(|p| p.0 == x).map(|p| p.1)).collect();
            (x, mean(&ys))
        })
        .collect()
}

/// Which value of several counts as the worst: the one farthest from passing the claim's rule.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Worst {
    /// The smallest value (for a `> t` rule).
    Min,
    /// The largest value (for a `< t` rule).
    Max,
    /// The value farthest from inside `[low, high]`, each side measured in units of its
    /// distance from the window's middle (for an `in [low, high]` rule).
    Window(f64, f64),
}

/// The worst of `values` by `how` (the first of equally bad ones); NaN for no value or any
/// undefined (non-finite) one.
pub fn worst(values: impl IntoIterator<Item = f64>, how: Worst) -> f64 {
    let excursion = |v: f64| match how {
        Worst::Min => -v,
        Worst::Max => v,
        Worst::Window(low, high) => {
            let mid = (low + high) / 2.0;
            if v >= mid { (v - mid) / (high - mid) } else { (mid - v) / (mid - low) }
        }
    };
    let mut out: Option<f64> = None;
    for v in values {
        if !v.is_finite() {
            return f64::NAN;
        }
        out = match out {
            Some(w) if excursion(v) <= excursion(w) => Some(w),
            _ => Some(v),
        };
    }
    out.unwrap_or(f64::NAN)
}

/// One value per seed of `seeds`: the worst (`how`) of `value` over that seed's items.
pub fn worst_per_seed<T>(
    items: &[T],
    seeds: &[u64],
    seed_of: impl Fn(&T) -> u64,
    value: impl Fn(&T) -> f64,
    how: Worst,
) -> Vec<f64> {
    seeds
        .iter()
        .map(|&seed| worst(items.iter().filter(|i| seed_of(i) == seed).map(&value), how))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mean_curves_average_the_runs_that_reached_each_point() {
        let a = vec![(0.0, 1.0), (10.0, 3.0)];
        let b = vec![(0.0, 3.0)];
        assert_eq!(mean_curve(&[a, b]), vec![(0.0, 2.0), (10.0, 3.0)]);
    }

    #[test]
    fn a_seed_counts_by_its_worst_run_and_undefined_stays_undefined() {
        assert_eq!(worst([0.3, 0.1, 0.2], Worst::Min), 0.1);
        assert_eq!(worst([0.3, 0.1, 0.2], Worst::Max), 0.3);
        // half-windows past the middle 0.5625: 0.74 is 0.95 of one, 0.4 only 0.87
        assert_eq!(worst([0.5, 0.74, 0.4], Worst::Window(0.375, 0.75)), 0.74);
        assert_eq!(worst([0.5, 0.6, 0.38], Worst::Window(0.375, 0.75)), 0.38);
        assert!(worst([0.5, f64::NAN], Worst::Min).is_nan());
        assert!(worst([0.5, f64::INFINITY], Worst::Max).is_nan());
        assert!(worst([], Worst::Max).is_nan());
    }

    #[test]
    fn each_seed_takes_the_worst_of_its_own_runs() {
        let items = [(0, 0.9), (1, 0.4), (0, 0.7), (2, f64::NAN)];
        let v = worst_per_seed(&items, &[0, 1, 2, 3], |i| i.0, |i| i.1, Worst::Min);
        assert_eq!(v[..2], [0.7, 0.4]);
        assert!(v[2].is_nan() && v[3].is_nan(), "undefined value, no run: NaN");
    }
}
