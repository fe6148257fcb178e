//! Gradient-norm profiles (Xiong et al. 2020, Theorem 1 and Fig. 3; Liu et al. 2020, Fig. 3;
//! docs/REFERENCES.md#xiong-theorem, docs/REFERENCES.md#xiong-experiments): ‖∂L/∂W‖_F for every
//! parameter, averaged over batches.
//!
//! Xiong et al.'s Theorem 1 bounds the gradient of W^{2,L} (the second FFN matrix of the last
//! layer) at init by O(d·√(ln d)) for Post-LN, independent of depth L, and by O(d·√(ln d / L))
//! for Pre-LN, whose final LN divides the gradient by the norm of a residual stream that grows
//! like √L. Their Fig. 3 shows the per-layer profile: rising toward the output for Post-LN,
//! flat for Pre-LN.

use saturn_tensor::{Float, Tensor, grad};
use serde::{Deserialize, Serialize};

use crate::error::{DynamicsError, Result, invalid};

/// The Frobenius norm ‖W‖_F = √(Σ w²), in f64.
pub fn frobenius_norm<T: Float>(t: &Tensor<T>) -> f64 {
    saturn_tensor::flat::frobenius_norm(t.data().iter())
}

/// One parameter's gradient norm over batches.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct GradientNorm {
    pub name: String,
    /// The mean over batches of ‖∂L_b/∂W‖_F.
    pub mean: f64,
    /// ‖∂L_b/∂W‖_F for each batch b.
    pub per_batch: Vec<f64>,
}

/// ‖∂L_b/∂W‖_F for every parameter W of `params` and every batch b < `batches`, where
/// `loss(b)` builds batch b's loss with gradient recording on (eval mode for a profile at a
/// fixed point). Parameters' accumulated `.grad` are not touched.
pub fn gradient_norms<T, E>(
    params: &[(String, Tensor<T>)],
    batches: usize,
    mut loss: impl FnMut(usize) -> std::result::Result<Tensor<T>, E>,
) -> Result<Vec<GradientNorm>>
where
    T: Float,
    E: Into<DynamicsError>,
{
    if batches == 0 || params.is_empty() {
        return Err(invalid("gradient_norms", "needs at least one batch and one parameter"));
    }
    let tensors: Vec<Tensor<T>> = params.iter().map(|(_, p)| p.clone()).collect();
    let mut norms: Vec<Vec<f64>> = vec![Vec::with_capacity(batches); params.len()];
    for b in 0..batches {
        let l = loss(b).map_err(Into::into)?;
        for (slot, g) in norms.iter_mut().zip(grad(&[l], &tensors, false)?) {
            slot.push(frobenius_norm(&g));
        }
    }
    Ok(params
        .iter()
        .zip(norms)
        .map(|((name, _), per_batch)| GradientNorm {
            name: name.clone(),
            mean: per_batch.iter().sum::<f64>() / per_batch.len() as f64,
            per_batch,
        })
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gradient_norms_average_the_per_batch_frobenius_norms() {
        // L_b = (b + 1)·Σ W ⇒ ∂L_b/∂W = (b + 1)·1, ‖·‖_F = (b + 1)·√len
        let w = Tensor::<f64>::param_from_vec(vec![0.1; 6], &[2, 3]).unwrap();
        let v = Tensor::<f64>::param_from_vec(vec![1.0, 2.0], &[2]).unwrap();
        let params = vec![("w".to_string(), w.clone()), ("v".to_string(), v)];
        let norms = gradient_norms(&params, 3, |b| {
            Ok::<_, DynamicsError>(w.sum_all().mul_scalar((b + 1) as f64))
        })
        .unwrap();
        let s6 = 6f64.sqrt();
        assert_eq!(norms[0].name, "w");
        assert!((norms[0].mean - 2.0 * s6).abs() < 1e-12);
        assert_eq!(norms[0].per_batch.len(), 3);
        assert_eq!(norms[1].mean, 0.0, "an unused parameter has a zero gradient");
        assert!(w.grad().is_none());
    }
}
