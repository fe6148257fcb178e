//! # saturn-saturation
//!
//! Norm growth and saturation (Merrill, Ramanujan, Goldberg, Schwartz & Smith, "Effects of
//! Parameter Norm Growth During Transformer Training", EMNLP 2021; docs/REFERENCES.md#merrill): as
//! training grows ‖θ‖, a transformer approaches its *saturated* network sf(x; θ) = lim_{c→∞} f(x;
//! cθ), whose attention heads are hard (argmax) or averaging.
//!
//! - [`norms`]: total, per-layer and per-parameter norms of the non-scalar parameters, the
//!   direction cosine cos(θ_t, θ_{t+Δ}), the update alignment cos(θ_{t−1}, δ_t), and a
//!   [`NormTracker`] that records them along a run.
//! - [`fit`](mod@fit): OLS fits ρ(t) ≈ a + b·g(t) for g ∈ {t, √t, t^¼, exp(−t)} with R² (LAPACK least
//!   squares through `ndarray-linalg`), and the growth exponent p of ρ^{1/p} = a + b·t
//!   (½ for Adam, ¼ for SGD on a scale-invariant loss).
//! - [`scaling`]: every parameter scaled θ → cθ and restored ([`with_scaled_parameters`]),
//!   `f64` twins of trained models, the network at cθ ([`probe`]) and the saturated network
//!   (exactly saturated attention at 1000θ), and how attention scores grow with c.
//! - [`layered`]: representations per layer ([`Layered`], for `DecoderLm` and `Bert`) on a
//!   [`TokenBatch`].
//! - [`cosines`]: token, layer and flattened cosines between two sets of representations.
//! - [`homogeneity`]: the saturation similarity cos(f(x; θ), f(x; 1000θ)), homogeneity curves
//!   and the distance to the saturated network.
//! - [`limit`]: the layer-by-layer check that saturated attention is the large-c limit of
//!   softmax(c·s).
//! - [`heads`]: per-head statistics under saturation (keys attended with weight > 1e-5, split
//!   fraction, spread, prefix fraction, normalized entropy, first-token mass) and the class
//!   (averaging, sink, hard, mixed) with every threshold in [`HEAD_THRESHOLDS`].
//!
//! Everything that measures a network runs without gradients and never changes the model
//! (parameters scaled for a probe are restored bit for bit). Statistics take `f32` or `f64`
//! tensors; scaling limits should be taken on `f64` models ([`scaling::to_f64`]).
//!
//! ```
//! use saturn_layers::{DecoderLm, LmConfig};
//! use saturn_saturation::{Snapshot, TokenBatch, saturation_similarity};
//! use saturn_tensor::ndarray::Array2;
//!
//! let model = DecoderLm::<f64>::new(LmConfig::new(10, 16, 2, 32, 2, 8), 0)?;
//! let norm = Snapshot::of(&model).total_norm();
//! let batch = TokenBatch::new(Array2::from_shape_fn((2, 8), |(b, t)| (b + t) % 10));
//! let sat = saturation_similarity(&model, &batch, 1000.0)?; // cos(f(x; θ), f(x; 1000θ))
//! assert!(norm > 0.0 && sat.output <= 1.0 + 1e-12);
//! # Ok::<(), saturn_saturation::SaturationError>(())
//! ```

pub mod cosines;
pub mod error;
pub mod fit;
pub mod heads;
pub mod homogeneity;
pub mod layered;
pub mod limit;
pub mod norms;
pub mod scaling;

pub use cosines::{LayerCosines, flat_cosine, layer_cosines, mean_token_cosine, token_cosines};
pub use error::{Result, SaturationError};
pub use fit::{Fit, GrowthExponent, Regressor, fit, fit_all, growth_exponent, r_squared};
pub use heads::{
    HEAD_THRESHOLDS, HeadBatch, HeadClass, HeadStats, HeadThresholds, Visibility, analyze_heads,
    class_counts, head_stats, head_stats_over,
};
pub use homogeneity::{distance_to_saturated, homogeneity_curve, saturation_similarity};
pub use layered::{Layered, Representations, TokenBatch};
pub use limit::{LimitCheck, compare_saturated_to_scaled, saturated_limit_check};
pub use norms::{NormRecord, NormTracker, Snapshot, UpdateStep, cosine, group_of};
pub use scaling::{
    Probe, SATURATION_SCALE, copy_parameters, probe, saturated_network, to_f64,
    with_scaled_parameters,
};
