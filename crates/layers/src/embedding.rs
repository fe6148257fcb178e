//! Token embeddings and positions.
//!
//! - [`Embedding`]: row v of a [V, d] table is token v's vector (a lookup by `index_select`,
//!   whose backward adds into the rows that were used).
//! - [`Positions`]: learned ([S, d] table, rows 0..T used) or sinusoidal (Vaswani et al. 2017:
//!   PE[t, 2i] = sin(t / 10000^(2i/d)), PE[t, 2i+1] = cos(t / 10000^(2i/d)); a constant).

use saturn_tensor::ndarray::{Array2, ArrayView2};
use saturn_tensor::{Float, Tensor};
use serde::{Deserialize, Serialize};

use crate::error::{Result, batch_err};
use crate::init::Initializer;
use crate::module::{Module, join};

/// A lookup table of token vectors.
#[derive(Debug, Clone)]
pub struct Embedding<T: Float> {
    /// [V, d].
    pub weight: Tensor<T>,
}

impl<T: Float> Embedding<T> {
    /// A table of `n` vectors of size `d` from the initializer.
    pub fn new(init: &mut Initializer, n: usize, d: usize) -> Self {
        Embedding { weight: init.embedding(n, d) }
    }

    /// The vectors of `ids` [B, T] as [B, T, d]; an id ≥ V is an error.
    pub fn forward(&self, ids: ArrayView2<'_, usize>) -> Result<Tensor<T>> {
        let shape = self.weight.shape();
        let (v, d) = (shape[0], shape[1]);
        if let Some(&bad) = ids.iter().find(|&&i| i >= v) {
            return Err(batch_err(format!("token id {bad} is outside the vocabulary of {v}")));
        }
        let flat: Vec<usize> = ids.iter().copied().collect();
        Ok(self.weight.index_select(0, &flat)?.reshape(&[ids.nrows(), ids.ncols(), d])?)
    }
}

impl<T: Float> Module<T> for Embedding<T> {
    fn visit(&self, prefix: &str, f: &mut dyn FnMut(String, &Tensor<T>)) {
        f(join(prefix, "weight"), &self.weight);
    }
}

/// How positions enter the model.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum PositionKind {
    /// A learned [S, d] table (torch_io's `pos.weight`).
    #[default]
    Learned,
    /// Fixed sinusoids (fairseq, Vaswani et al. 2017).
    Sinusoidal,
    /// No positions: attention is then permutation-equivariant.
    None,
}

/// Position vectors for sequences of up to `max_len` tokens.
#[derive(Debug, Clone)]
pub enum Positions<T: Float> {
    /// A learned table [max_len, d].
    Learned(Embedding<T>),
    /// A constant sinusoid table [max_len, d].
    Sinusoidal(Tensor<T>),
    /// Nothing is added.
    None,
}

impl<T: Float> Positions<T> {
    /// Positions of the given kind for `max_len` tokens of size `d`.
    pub fn new(kind: PositionKind, init: &mut Initializer, max_len: usize, d: usize) -> Self {
        match kind {
            PositionKind::Learned => Positions::Learned(Embedding::new(init, max_len, d)),
            PositionKind::Sinusoidal => {
                Positions::Sinusoidal(Tensor::constant(sinusoids::<T>(max_len, d).into_dyn()))
            }
            PositionKind::None => Positions::None,
        }
    }

    /// x [B, T, d] plus the vectors of positions 0..T.
    pub fn add_to(&self, x: &Tensor<T>) -> Result<Tensor<T>> {
        let table = match self {
            Positions::Learned(e) => &e.weight,
            Positions::Sinusoidal(t) => t,
            Positions::None => return Ok(x.clone()),
        };
        let t = x.shape()[1];
        let max = table.shape()[0];
        if t > max {
            return Err(batch_err(format!(
                "sequence of {t} tokens is longer than the {max} positions"
            )));
        }
        Ok(x.add(&table.narrow(0, 0, t)?)?)
    }
}

impl<T: Float> Module<T> for Positions<T> {
    fn visit(&self, prefix: &str, f: &mut dyn FnMut(String, &Tensor<T>)) {
        if let Positions::Learned(e) = self {
            e.visit(prefix, f);
        }
    }
}

/// The sinusoid table [n, d]: sin in even columns, cos in odd ones.
pub fn sinusoids<T: Float>(n: usize, d: usize) -> Array2<T> {
    Array2::from_shape_fn((n, d), |(t, j)| {
        let freq = 10000f64.powf(-((j / 2 * 2) as f64) / d as f64);
        let angle = t as f64 * freq;
        T::cast(if j % 2 == 0 { angle.sin() } else { angle.cos() })
    })
}

#[cfg(test)]
mod tests {
    use saturn_tensor::ndarray::array;

    use super::*;
    use crate::init::InitScheme;

    #[test]
    fn lookup_returns_the_rows_and_rejects_unknown_ids() {
        let mut init = Initializer::new(InitScheme::XavierUniform, 0);
        let e: Embedding<f64> = Embedding::new(&mut init, 5, 3);
        let out = e.forward(array![[4, 0], [1, 4]].view()).unwrap();
        assert_eq!(out.shape(), vec![2, 2, 3]);
        assert_eq!(out.to_vec()[..3], e.weight.to_vec()[12..15]);
        assert!(e.forward(array![[5]].view()).is_err());
    }

    #[test]
    fn sinusoids_start_at_sin0_cos0() {
        let s = sinusoids::<f64>(3, 4);
        assert_eq!(s[[0, 0]], 0.0);
        assert_eq!(s[[0, 1]], 1.0);
        assert!((s[[1, 0]] - 1f64.sin()).abs() < 1e-15);
        assert!((s[[1, 2]] - (0.01f64).sin()).abs() < 1e-15);
    }
}
