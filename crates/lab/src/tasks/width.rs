//! The scale cells of the Liu et al. init-time experiments (issue 22, "Scale"): a model shape
//! moved to another width d with everything else kept — the heads, the d_ff / d ratio (4 in
//! fairseq's `transformer_wmt_en_de`: 2048 / 512), dropout and the q/k/v draw — so that a
//! statistic measured at d ∈ {64, 128, 256, 512} differs by the width alone.

use crate::error::{LabError, Result};
use crate::tasks::translation::Seq2SeqShape;

/// `shape` at width `d`: the same heads, d_ff scaled by d / d_model, the same dropout and
/// q/k/v init.
pub fn at_width(shape: &Seq2SeqShape, d: usize) -> Seq2SeqShape {
    Seq2SeqShape { d_model: d, d_ff: shape.d_ff * d / shape.d_model.max(1), ..shape.clone() }
}

/// Checks a list of scale widths: each positive and divisible by `heads`, increasing.
pub fn check_widths(widths: &[usize], heads: usize) -> Result<()> {
    if widths.iter().any(|&d| d == 0 || heads == 0 || d % heads != 0)
        || widths.windows(2).any(|w| w[1] <= w[0])
    {
        return Err(LabError::Config(format!(
            "scale widths {widths:?} must increase and each be a positive multiple of the {heads} heads"
        )));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_shape_moves_to_another_width_keeping_its_ratio() {
        let s = Seq2SeqShape::of_width(64);
        let t = at_width(&s, 512);
        assert_eq!((t.d_model, t.d_ff, t.n_heads), (512, 2048, s.n_heads));
        assert!(check_widths(&[64, 128, 256, 512], 4).is_ok());
        assert!(check_widths(&[128, 64], 4).is_err());
        assert!(check_widths(&[66], 4).is_err());
    }
}
