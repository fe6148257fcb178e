//! What the Post-LN / Pre-LN / Admin / DeepNorm experiments share: display names, seed lists
//! and averages.

use saturn_layers::ResidualScheme;

/// The name a figure or table shows for a scheme.
pub fn label(scheme: ResidualScheme) -> &'static str {
    match scheme {
        ResidualScheme::PostLn => "Post-LN",
        ResidualScheme::PreLn => "Pre-LN",
        ResidualScheme::Admin => "Admin",
        ResidualScheme::DeepNorm => "DeepNorm",
        ResidualScheme::BranchLn => "branch-LN",
    }
}

/// The arithmetic mean (NaN for no values).
pub fn mean(values: &[f64]) -> f64 {
    values.iter().sum::<f64>() / values.len() as f64
}

/// `n` seeds for an experiment that needs several: the command's seeds, then the integers after
/// the largest of them, until there are `n` (all are run and counted).
pub fn seeds_for(given: &[u64], n: usize) -> Vec<u64> {
    let mut seeds = given.to_vec();
    let mut next = given.iter().max().map_or(0, |m| m + 1);
    while seeds.len() < n {
        seeds.push(next);
        next += 1;
    }
    seeds
}

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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seeds_are_extended_after_the_given_ones() {
        assert_eq!(seeds_for(&[0], 3), vec![0, 1, 2]);
        assert_eq!(seeds_for(&[5, 2], 3), vec![5, 2, 6]);
        assert_eq!(seeds_for(&[1, 2, 3, 4], 3), vec![1, 2, 3, 4]);
    }

    #[test]
    fn mean_curves_average_the_runs_that_reached_each_point() {
        let a = vec![(0.0, 1.0), (10.0, 3.0)];
        let b = vec![(0.0, 3.0)];
        assert_eq!(mean_curve(&[a, b]), vec![(0.0, 2.0), (10.0, 3.0)]);
    }
}
