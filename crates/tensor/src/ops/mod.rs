//! The differentiable operations, one concept per file. Each file holds an operation's forward
//! pass, its backward rule (written in differentiable operations, so it can be differentiated
//! again) and its tests, including a gradient check and, for operations used in transformers, a
//! second-order check.

mod arith;
mod attention;
mod broadcast;
mod dropout;
mod gelu;
mod index;
mod lanes;
mod layer_norm;
pub(crate) mod layout;
mod linear;
mod loss;
mod matmul;
mod norm;
mod reduce;
mod select;
mod softmax;
mod unary;

pub use broadcast::broadcast_shape;
pub use loss::CrossEntropy;

use crate::{Result, TensorError};

/// Maps a possibly negative axis (−1 is the last) to `0..ndim`.
pub(crate) fn normalize_axis(op: &'static str, axis: isize, ndim: usize) -> Result<usize> {
    let n = ndim as isize;
    let a = if axis < 0 { axis + n } else { axis };
    if a < 0 || a >= n {
        return Err(TensorError::AxisOutOfRange { op, axis, ndim });
    }
    Ok(a as usize)
}

/// Maps axes to `0..ndim`, sorted; a repeated axis is an error.
pub(crate) fn normalize_axes(op: &'static str, axes: &[isize], ndim: usize) -> Result<Vec<usize>> {
    let mut out = axes.iter().map(|&a| normalize_axis(op, a, ndim)).collect::<Result<Vec<_>>>()?;
    out.sort_unstable();
    if out.windows(2).any(|w| w[0] == w[1]) {
        return Err(TensorError::invalid(op, format!("axis repeated in {axes:?}")));
    }
    Ok(out)
}

#[cfg(test)]
pub(crate) mod testing {
    //! Shared strategies and helpers for the op tests.

    use proptest::prelude::*;

    use crate::Tensor;

    /// A tensor of the given shape with values drawn uniformly from [lo, hi), from a seed.
    pub fn uniform(shape: &[usize], lo: f64, hi: f64, seed: u64) -> Tensor<f64> {
        use rand::{RngExt, SeedableRng};
        let mut rng = rand_pcg::Pcg64::seed_from_u64(seed);
        let n: usize = shape.iter().product();
        let v = (0..n).map(|_| lo + (hi - lo) * rng.random::<f64>()).collect();
        Tensor::param_from_vec(v, shape).unwrap()
    }

    /// Shapes of rank 1..=max_rank with sides 1..=max_side.
    pub fn shape(max_rank: usize, max_side: usize) -> impl Strategy<Value = Vec<usize>> {
        prop::collection::vec(1..=max_side, 1..=max_rank)
    }

    /// A pair of shapes that broadcast against each other: a random shape, and a copy with some
    /// sides set to 1 and some leading axes dropped.
    pub fn broadcastable_pair() -> impl Strategy<Value = (Vec<usize>, Vec<usize>)> {
        (shape(4, 4), prop::collection::vec(any::<bool>(), 4), 0usize..3, any::<bool>()).prop_map(
            |(a, ones, drop, swap)| {
                let mut b: Vec<usize> =
                    a.iter().zip(&ones).map(|(&s, &one)| if one { 1 } else { s }).collect();
                let drop = drop.min(b.len() - 1);
                b.drain(..drop);
                if swap { (b, a) } else { (a, b) }
            },
        )
    }
}
