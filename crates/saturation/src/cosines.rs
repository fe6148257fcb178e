//! Cosines between representations of the same batch (Merrill et al. 2021, §4; the norm-growth
//! code's `finetune_trans.get_saturation`, `plot_trans_scale.py`): per token, averaged over real
//! tokens, per layer, or of the whole output flattened over real tokens. Zero-norm conventions
//! are [`saturn_tensor::flat::cosine`]'s.

use saturn_tensor::flat::cosine_from;
use saturn_tensor::ndarray::{Array2, Ix3};
use saturn_tensor::{Float, Tensor};
use serde::{Deserialize, Serialize};

use crate::error::{Result, invalid};
use crate::layered::{Representations, TokenBatch};

/// Mean cosines over real tokens, per representation.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LayerCosines {
    /// One per h_ℓ, ℓ = 0 … L.
    pub layers: Vec<f64>,
    /// Of the output representation.
    pub output: f64,
}

fn rows<T: Float>(x: &Tensor<T>) -> Result<saturn_tensor::ndarray::Array3<f64>> {
    x.to_array().mapv(|v| v.as_f64()).into_dimensionality::<Ix3>().map_err(|_| {
        invalid("token cosine", format!("representations must be [B, T, d], got {:?}", x.shape()))
    })
}

/// The mean over real tokens of cos(a[b, t, :], b[b, t, :]).
pub fn mean_token_cosine<T: Float>(
    a: &Tensor<T>,
    b: &Tensor<T>,
    batch: &TokenBatch,
) -> Result<f64> {
    let cos = token_cosines(a, b)?;
    let (mut sum, mut n) = (0.0, 0usize);
    for ((i, j), c) in cos.indexed_iter() {
        if batch.is_real(i, j) {
            sum += c;
            n += 1;
        }
    }
    if n == 0 {
        return Err(invalid("token cosine", "no real token"));
    }
    Ok(sum / n as f64)
}

/// cos(a[b, t, :], b[b, t, :]) for every token, [B, T].
pub fn token_cosines<T: Float>(a: &Tensor<T>, b: &Tensor<T>) -> Result<Array2<f64>> {
    let (x, y) = (rows(a)?, rows(b)?);
    if x.dim() != y.dim() {
        return Err(invalid("token cosine", format!("{:?} vs {:?}", x.dim(), y.dim())));
    }
    let (nb, nt, _) = x.dim();
    Ok(Array2::from_shape_fn((nb, nt), |(i, j)| {
        let (u, v) = (
            x.slice(saturn_tensor::ndarray::s![i, j, ..]),
            y.slice(saturn_tensor::ndarray::s![i, j, ..]),
        );
        cosine_from(u.dot(&v), u.dot(&u), v.dot(&v))
    }))
}

/// cos(vec a, vec b) over the real tokens, all features flattened.
pub fn flat_cosine<T: Float>(a: &Tensor<T>, b: &Tensor<T>, batch: &TokenBatch) -> Result<f64> {
    let (x, y) = (rows(a)?, rows(b)?);
    if x.dim() != y.dim() {
        return Err(invalid("flat cosine", format!("{:?} vs {:?}", x.dim(), y.dim())));
    }
    let (mut ab, mut aa, mut bb) = (0.0, 0.0, 0.0);
    for (((i, j, _), &u), &v) in x.indexed_iter().zip(y.iter()) {
        if batch.is_real(i, j) {
            ab += u * v;
            aa += u * u;
            bb += v * v;
        }
    }
    Ok(cosine_from(ab, aa, bb))
}

/// Per-representation mean token cosines between two probes of the same batch.
pub fn layer_cosines<T: Float>(
    a: &Representations<T>,
    b: &Representations<T>,
    batch: &TokenBatch,
) -> Result<LayerCosines> {
    if a.layers.len() != b.layers.len() {
        return Err(invalid(
            "layer cosines",
            format!("{} vs {} layers", a.layers.len(), b.layers.len()),
        ));
    }
    Ok(LayerCosines {
        layers: a
            .layers
            .iter()
            .zip(&b.layers)
            .map(|(x, y)| mean_token_cosine(x, y, batch))
            .collect::<Result<_>>()?,
        output: mean_token_cosine(&a.output, &b.output, batch)?,
    })
}
