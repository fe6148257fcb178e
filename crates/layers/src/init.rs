//! Parameter initialization, from an explicit seed.
//!
//! - Xavier-uniform (Glorot & Bengio 2010) with zero biases, as fairseq initializes `Linear`:
//!   W ~ U(−a, a), a = gain·√(6 / (fan_in + fan_out)); embeddings ~ N(0, d^(−1/2)).
//!   One known deviation from the reference: Transformer-Clinic's fairseq draws q, k and v as
//!   one fused (3d × d) matrix, so Xavier sees fan_out = 3d and each projection gets variance
//!   1/(2d) (later fairseq: gain 1/√2 on each); here each is a (d × d) Xavier matrix with
//!   variance 1/d by default ([`QkvInit::Separate`]). The attention branch then adds twice the
//!   reference's variance at init (admin-profile's `streams.csv` measures it);
//!   [`QkvInit::Fused`] draws them as the reference does.
//! - Normal(0, σ) for every weight and embedding (σ = 0.02: GPT-2 / BERT / `torch_ref.py`).
//! - DeepNorm (Wang et al. 2022): inside the residual branches, the value and output projections
//!   of attention and both FFN matrices get Xavier-normal with gain β,
//!   std = β·√(2 / (fan_in + fan_out)); q and k keep gain 1. β per architecture in
//!   [`deepnorm_constants`].
//! - Admin's closed form ω = √((n+1)/ln(n+1) − 1) (admin-torch, O(log n) output change), in
//!   [`admin_omega_closed_form`]; profiling is in [`crate::admin`].

use rand::SeedableRng;
use rand_distr::{Distribution, Normal, Uniform};
use rand_pcg::Pcg64;
use saturn_tensor::ndarray::{ArrayD, IxDyn};
use saturn_tensor::{Float, Tensor};
use serde::{Deserialize, Serialize};

/// How weights are drawn.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case", tag = "kind")]
pub enum InitScheme {
    /// fairseq: Xavier-uniform Linear weights, zero biases, embeddings N(0, d^(−1/2)).
    #[default]
    XavierUniform,
    /// Every weight and embedding N(0, std²), zero biases.
    Normal { std: f64 },
    /// PyTorch's module defaults (`nn.Linear.reset_parameters`, `nn.Embedding`): Linear weights
    /// and biases U(−1/√fan_in, 1/√fan_in) (kaiming-uniform with a = √5), embeddings N(0, 1).
    /// The only scheme with non-zero biases at init, as in code that keeps PyTorch's defaults.
    TorchDefault,
}

/// How the query, key and value projections of attention are drawn.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum QkvInit {
    /// Three (d × d) matrices, each drawn on its own (Xavier: variance 1/d).
    #[default]
    Separate,
    /// As one fused (3d × d) matrix, as fairseq's and Transformer-Clinic's `in_proj_weight` and
    /// PyTorch's `nn.MultiheadAttention`: Xavier then sees fan_out = 3d, so each projection's
    /// bound (and standard deviation) is 1/√2 of a separate draw's (variance 1/(2d)). Only
    /// [`InitScheme::XavierUniform`] depends on the fan-out; other schemes draw as `Separate`.
    Fused,
}

impl QkvInit {
    /// The gain on each of q, k and v under `scheme`: √((d + d)/(3d + d)) = 1/√2 for a fused
    /// Xavier draw, 1 otherwise.
    pub fn gain(self, scheme: InitScheme) -> f64 {
        match (self, scheme) {
            (QkvInit::Fused, InitScheme::XavierUniform) => std::f64::consts::FRAC_1_SQRT_2,
            _ => 1.0,
        }
    }
}

/// Draws parameters from one seeded, portable RNG (PCG-64), in a fixed order.
pub struct Initializer {
    pub scheme: InitScheme,
    rng: Pcg64,
}

impl Initializer {
    /// An initializer for `scheme`, seeded.
    pub fn new(scheme: InitScheme, seed: u64) -> Self {
        Initializer { scheme, rng: Pcg64::seed_from_u64(seed) }
    }

    fn draw<T: Float>(&mut self, shape: &[usize], dist: impl Distribution<f64>) -> Tensor<T> {
        let rng = &mut self.rng;
        Tensor::param(ArrayD::from_shape_simple_fn(IxDyn(shape), || T::cast(dist.sample(rng))))
    }

    /// A Linear weight [out, in] under the scheme, scaled by `gain`.
    pub fn linear_weight<T: Float>(&mut self, out: usize, inp: usize, gain: f64) -> Tensor<T> {
        match self.scheme {
            InitScheme::XavierUniform => {
                let a = gain * (6.0 / (inp + out).max(1) as f64).sqrt();
                self.draw(&[out, inp], Uniform::new_inclusive(-a, a).expect("finite bound"))
            }
            InitScheme::Normal { std } => self.normal(&[out, inp], gain * std),
            InitScheme::TorchDefault => {
                let a = gain / (inp.max(1) as f64).sqrt();
                self.draw(&[out, inp], Uniform::new_inclusive(-a, a).expect("finite bound"))
            }
        }
    }

    /// A Linear bias `[out]` for `inp` inputs under the scheme: U(−1/√inp, 1/√inp) for
    /// [`InitScheme::TorchDefault`], zeros otherwise (drawn after the weight).
    pub fn linear_bias<T: Float>(&mut self, out: usize, inp: usize) -> Tensor<T> {
        match self.scheme {
            InitScheme::TorchDefault => {
                let a = 1.0 / (inp.max(1) as f64).sqrt();
                self.draw(&[out], Uniform::new_inclusive(-a, a).expect("finite bound"))
            }
            InitScheme::XavierUniform | InitScheme::Normal { .. } => filled(&[out], 0.0),
        }
    }

    /// A Linear weight [out, in] ~ Xavier-normal with `gain` (DeepNorm's init).
    pub fn xavier_normal<T: Float>(&mut self, out: usize, inp: usize, gain: f64) -> Tensor<T> {
        self.normal(&[out, inp], gain * (2.0 / (inp + out).max(1) as f64).sqrt())
    }

    /// An embedding table [n, d] under the scheme.
    pub fn embedding<T: Float>(&mut self, n: usize, d: usize) -> Tensor<T> {
        let std = match self.scheme {
            InitScheme::XavierUniform => (d.max(1) as f64).powf(-0.5),
            InitScheme::Normal { std } => std,
            InitScheme::TorchDefault => 1.0,
        };
        self.normal(&[n, d], std)
    }

    /// N(0, std²) of any shape.
    pub fn normal<T: Float>(&mut self, shape: &[usize], std: f64) -> Tensor<T> {
        if std == 0.0 {
            return Tensor::param(ArrayD::zeros(IxDyn(shape)));
        }
        self.draw(shape, Normal::new(0.0, std.abs()).expect("finite std"))
    }
}

/// A parameter filled with `value`.
pub fn filled<T: Float>(shape: &[usize], value: f64) -> Tensor<T> {
    Tensor::param(ArrayD::from_elem(IxDyn(shape), T::cast(value)))
}

/// Which model a DeepNorm stack belongs to; the constants depend on it.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum DeepNormArch {
    /// An encoder-only model of N layers.
    Encoder { layers: usize },
    /// A decoder-only model of M layers.
    Decoder { layers: usize },
    /// The encoder side of an N-layer encoder, M-layer decoder model.
    Seq2SeqEncoder { enc_layers: usize, dec_layers: usize },
    /// The decoder side of an N-layer encoder, M-layer decoder model.
    Seq2SeqDecoder { enc_layers: usize, dec_layers: usize },
}

/// DeepNorm's (α, β) (Wang et al. 2022, Table 1; docs/REFERENCES.md#deepnet):
/// encoder-only (2N)^¼, (8N)^−¼; decoder-only (2M)^¼, (8M)^−¼; encoder–decoder:
/// encoder 0.81·(N⁴M)^(1/16), 0.87·(N⁴M)^(−1/16); decoder (3M)^¼, (12M)^−¼.
pub fn deepnorm_constants(arch: DeepNormArch) -> (f64, f64) {
    match arch {
        DeepNormArch::Encoder { layers: n } | DeepNormArch::Decoder { layers: n } => {
            ((2.0 * n as f64).powf(0.25), (8.0 * n as f64).powf(-0.25))
        }
        DeepNormArch::Seq2SeqEncoder { enc_layers: n, dec_layers: m } => {
            let k = (n as f64).powi(4) * m as f64;
            (0.81 * k.powf(1.0 / 16.0), 0.87 * k.powf(-1.0 / 16.0))
        }
        DeepNormArch::Seq2SeqDecoder { dec_layers: m, .. } => {
            ((3.0 * m as f64).powf(0.25), (12.0 * m as f64).powf(-0.25))
        }
    }
}

/// Admin's closed-form ω for n residual sublayers (admin-torch, O(log n) variant):
/// ω = √((n+1)/ln(n+1) − 1). It solves (n+1)/(ω²+1) = ln(n+1), so the sum of squared
/// dependencies with a constant ω, Σᵢ β²ᵢ,ᵢ = n/(ω²+1) = ln(n+1)·n/(n+1), grows like ln n
/// (docs/REFERENCES.md#admin-closed-form; an earlier digest wrote n/(ω²+1) = ln(n+1),
/// which is off by the factor n/(n+1); see the Admin theorem test).
pub fn admin_omega_closed_form(n: usize) -> f64 {
    let m = n as f64 + 1.0;
    (m / m.ln() - 1.0).max(0.0).sqrt()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn admin_closed_form_matches_admin_torch_values() {
        for (n, w) in [(12, 2.02), (24, 2.60), (48, 3.40), (200, 6.07)] {
            assert!((admin_omega_closed_form(n) - w).abs() < 0.005, "n = {n}");
        }
    }

    #[test]
    fn deepnorm_constants_match_the_paper() {
        let (a, b) = deepnorm_constants(DeepNormArch::Decoder { layers: 2 });
        assert!((a - 2f64.sqrt()).abs() < 1e-12 && (b - 0.5).abs() < 1e-12);
        let (ae, _) =
            deepnorm_constants(DeepNormArch::Seq2SeqEncoder { enc_layers: 3, dec_layers: 2 });
        let (ad, _) =
            deepnorm_constants(DeepNormArch::Seq2SeqDecoder { enc_layers: 3, dec_layers: 2 });
        assert!((ae - 1.1132).abs() < 1e-4 && (ad - 1.5651).abs() < 1e-4);
    }

    /// PyTorch's nn.Linear defaults: weights and biases in [−1/√fan_in, 1/√fan_in], spread over
    /// the interval (variance (1/√fan_in)²/3), biases non-zero; the other schemes' biases are 0.
    #[test]
    fn torch_default_draws_weights_and_biases_within_one_over_sqrt_fan_in() {
        let (out, inp) = (64, 100);
        let mut init = Initializer::new(InitScheme::TorchDefault, 3);
        let w: Tensor<f64> = init.linear_weight(out, inp, 1.0);
        let b: Tensor<f64> = init.linear_bias(out, inp);
        let bound = 0.1;
        let w = w.to_vec();
        assert!(w.iter().chain(&b.to_vec()).all(|v| v.abs() <= bound));
        let var = w.iter().map(|v| v * v).sum::<f64>() / w.len() as f64;
        assert!((var / (bound * bound / 3.0) - 1.0).abs() < 0.1, "variance {var}");
        assert!(b.to_vec().iter().all(|&v| v != 0.0));
        for scheme in [InitScheme::XavierUniform, InitScheme::Normal { std: 0.1 }] {
            let zero: Tensor<f64> = Initializer::new(scheme, 3).linear_bias(out, inp);
            assert!(zero.to_vec().iter().all(|&v| v == 0.0));
        }
    }

    #[test]
    fn the_same_seed_gives_the_same_parameters() {
        let a: Tensor<f32> =
            Initializer::new(InitScheme::XavierUniform, 7).linear_weight(4, 3, 1.0);
        let b: Tensor<f32> =
            Initializer::new(InitScheme::XavierUniform, 7).linear_weight(4, 3, 1.0);
        assert_eq!(a.to_vec(), b.to_vec());
        let bound = (6.0f32 / 7.0).sqrt();
        assert!(a.to_vec().iter().all(|v| v.abs() <= bound));
    }
}
