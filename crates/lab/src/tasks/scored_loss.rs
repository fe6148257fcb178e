//! How a trained translation run is scored when it may have diverged (`warmup`,
//! `depth-stability`).

/// What one run contributes to the per-seed statistics, in words.
pub const SCORE: &str = "final validation loss (a diverged run, or one whose loss became \
                     non-finite, scored as ln V: the loss of the uniform prediction)";

/// A run's score: its final validation loss, or ln V (`uniform`) when it diverged — a diverged
/// model is scored as knowing nothing rather than as +∞ (a ratio of two infinities is
/// undefined, and an infinite mean hides how many seeds diverged); NaN (undefined, never a
/// pass) when it has no validation loss at all.
pub fn scored_loss(final_loss: Option<f64>, diverged_at: Option<usize>, uniform: f64) -> f64 {
    match (final_loss, diverged_at) {
        (_, Some(_)) => uniform,
        (Some(v), None) if v.is_finite() => v,
        (Some(_), None) => uniform,
        (None, None) => f64::NAN,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_diverged_run_scores_the_uniform_loss_and_a_missing_one_is_undefined() {
        let ln_v = 2000f64.ln();
        assert_eq!(scored_loss(Some(4.2), None, ln_v), 4.2);
        assert_eq!(scored_loss(Some(9.9), Some(120), ln_v), ln_v);
        assert_eq!(scored_loss(Some(f64::NAN), Some(3), ln_v), ln_v);
        assert_eq!(scored_loss(None, Some(0), ln_v), ln_v);
        assert!(scored_loss(None, None, ln_v).is_nan());
    }
}
