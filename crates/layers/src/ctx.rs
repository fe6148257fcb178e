//! What a forward pass needs besides the input: train or eval mode, the dropout RNG, the
//! attention mode, an optional trace of intermediate values, and the Admin profiling state.

use rand::SeedableRng;
use rand_pcg::Pcg64;
use saturn_tensor::{Float, Tensor};

use crate::attention::AttentionMode;

/// The state of one forward pass. Make one per pass (or reuse it: the RNG advances).
pub struct ForwardCtx<T: Float> {
    /// Training mode: dropout is applied. Eval mode: it is not.
    pub train: bool,
    /// How attention turns scores into probabilities.
    pub attention: AttentionMode,
    /// When set, every sublayer and attention head records its values here.
    pub trace: Option<Trace<T>>,
    pub(crate) rng: Pcg64,
    pub(crate) admin_profile: Option<AdminProfile>,
}

impl<T: Float> ForwardCtx<T> {
    /// Eval mode, softmax attention, no trace.
    pub fn eval() -> Self {
        ForwardCtx {
            train: false,
            attention: AttentionMode::Softmax,
            trace: None,
            rng: Pcg64::seed_from_u64(0),
            admin_profile: None,
        }
    }

    /// Training mode with dropout drawn from `seed`.
    pub fn train(seed: u64) -> Self {
        ForwardCtx { train: true, rng: Pcg64::seed_from_u64(seed), ..Self::eval() }
    }

    /// The same context with another attention mode.
    pub fn with_attention(mut self, mode: AttentionMode) -> Self {
        self.attention = mode;
        self
    }

    /// The same context, recording a [`Trace`].
    pub fn with_trace(mut self) -> Self {
        self.trace = Some(Trace::default());
        self
    }

    /// Applies dropout with probability `p` in training mode; the identity otherwise.
    pub(crate) fn dropout(&mut self, x: &Tensor<T>, p: f64) -> saturn_tensor::Result<Tensor<T>> {
        if self.train && p > 0.0 { x.dropout(p, &mut self.rng) } else { Ok(x.clone()) }
    }
}

/// Intermediate values of a forward pass, in the order they were computed.
#[derive(Debug, Clone, Default)]
pub struct Trace<T: Float> {
    /// One entry per residual sublayer.
    pub sublayers: Vec<SublayerTrace<T>>,
    /// One entry per attention layer: probabilities [B, H, T_query, T_key].
    pub attention: Vec<AttentionTrace<T>>,
}

/// What one residual sublayer saw and produced.
#[derive(Debug, Clone)]
pub struct SublayerTrace<T: Float> {
    /// The sublayer's name, e.g. `layers.2.attn` or `dec.layers.0.cross_attn`.
    pub name: String,
    /// x_{i−1}, the residual stream entering the sublayer.
    pub residual: Tensor<T>,
    /// f_i(·), the branch output (after dropout).
    pub branch: Tensor<T>,
    /// The input of the sublayer's LayerNorm (b_i = x ⊙ ω + f for Post-LN / Admin / DeepNorm,
    /// x_{i−1} for Pre-LN, f for branch-LN).
    pub ln_input: Tensor<T>,
    /// x_i, the sublayer's output.
    pub output: Tensor<T>,
}

/// The attention probabilities of one attention layer.
#[derive(Debug, Clone)]
pub struct AttentionTrace<T: Float> {
    /// The layer's name, e.g. `layers.0.attn`.
    pub name: String,
    /// [B, H, T_query, T_key]; rows sum to 1 over unmasked keys.
    pub probs: Tensor<T>,
}

/// Running state of Admin profiling (Liu et al. 2020, docs/REFERENCES.md#admin-profiling): the
/// running r and the ω values set so far, by sublayer name.
#[derive(Debug, Clone, Default)]
pub(crate) struct AdminProfile {
    pub r: f64,
    pub omegas: Vec<(String, f64)>,
}
