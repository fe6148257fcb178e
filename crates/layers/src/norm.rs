//! Normalization layers over the last axis: LayerNorm (affine optional) and RMSNorm, with the
//! formulas in saturn-tensor's `layer_norm` / `rms_norm`.

use saturn_tensor::{Float, Tensor};
use serde::{Deserialize, Serialize};

use crate::error::Result;
use crate::init::filled;
use crate::module::{Module, join};

/// Which normalization.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum NormKind {
    /// (x − μ)/√(σ² + ε)·γ + β.
    #[default]
    LayerNorm,
    /// x/√(mean(x²) + ε)·γ.
    RmsNorm,
}

/// How the gain and bias are named in checkpoints.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NormNames {
    /// `gamma` / `beta` (torch_io, this project).
    GammaBeta,
    /// `weight` / `bias` (PyTorch `nn.LayerNorm`, Hugging Face).
    WeightBias,
}

/// A LayerNorm or RMSNorm with optional gain γ (init 1) and bias β (init 0).
#[derive(Debug, Clone)]
pub struct Norm<T: Float> {
    pub kind: NormKind,
    pub gamma: Option<Tensor<T>>,
    pub beta: Option<Tensor<T>>,
    pub eps: f64,
    pub names: NormNames,
}

impl<T: Float> Norm<T> {
    /// A norm over `d` features; `affine` adds γ (and β for LayerNorm).
    pub fn new(kind: NormKind, d: usize, affine: bool, eps: f64) -> Self {
        Norm {
            kind,
            gamma: affine.then(|| filled(&[d], 1.0)),
            beta: (affine && kind == NormKind::LayerNorm).then(|| filled(&[d], 0.0)),
            eps,
            names: NormNames::GammaBeta,
        }
    }

    /// The same norm with Hugging Face parameter names.
    pub fn with_names(mut self, names: NormNames) -> Self {
        self.names = names;
        self
    }

    /// Normalizes x over its last axis.
    pub fn forward(&self, x: &Tensor<T>) -> Result<Tensor<T>> {
        Ok(match self.kind {
            NormKind::LayerNorm => {
                x.layer_norm(self.gamma.as_ref(), self.beta.as_ref(), self.eps)?
            }
            NormKind::RmsNorm => x.rms_norm(self.gamma.as_ref(), self.eps)?,
        })
    }
}

impl<T: Float> Module<T> for Norm<T> {
    fn visit(&self, prefix: &str, f: &mut dyn FnMut(String, &Tensor<T>)) {
        let (g, b) = match self.names {
            NormNames::GammaBeta => ("gamma", "beta"),
            NormNames::WeightBias => ("weight", "bias"),
        };
        if let Some(t) = &self.gamma {
            f(join(prefix, g), t);
        }
        if let Some(t) = &self.beta {
            f(join(prefix, b), t);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::init::{InitScheme, Initializer};

    #[test]
    fn layer_norm_layer_is_scale_invariant_and_names_its_parameters() {
        let norm: Norm<f64> = Norm::new(NormKind::LayerNorm, 4, true, 1e-12);
        let x = Initializer::new(InitScheme::Normal { std: 1.0 }, 3).normal::<f64>(&[2, 4], 1.0);
        let a = norm.forward(&x).unwrap().to_vec();
        let b = norm.forward(&x.mul_scalar(37.0)).unwrap().to_vec();
        assert!(a.iter().zip(&b).all(|(p, q)| (p - q).abs() < 1e-9));
        let names: Vec<String> = norm.named_parameters().into_iter().map(|(n, _)| n).collect();
        assert_eq!(names, ["gamma", "beta"]);
        let rms: Norm<f64> = Norm::new(NormKind::RmsNorm, 4, true, 1e-6);
        assert_eq!(rms.named_parameters().len(), 1);
    }
}
