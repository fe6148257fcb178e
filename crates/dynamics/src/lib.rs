//! # saturn-dynamics
//!
//! Probes of why Post-LN transformers need warmup and fail when deep, and how Pre-LN, Admin and
//! DeepNorm fix it: quantities measured on a model at a point θ, written from the papers'
//! definitions and their reference code (Transformer-Clinic, PyHessian), with the reference
//! code's known pitfalls fixed (see each module).
//!
//! | module | measures | source |
//! |---|---|---|
//! | [`dependency`] | residual dependency β_{i,j}: how much sublayer i's output depends on the embedding (j = 0) and on each earlier branch j, rows with Σ_j β²_{i,j} = 1 | Liu et al. 2020 §3, Fig. 5 |
//! | [`amplification`] | output change ‖F(x, W) − F(x, W + δ)‖² for δ = η·sign(N(0, I)) (or −η·sign ∇L) on the weight matrices | Liu et al. 2020 §4.1, Thm. 2, Fig. 4 |
//! | [`gradients`] | ‖∂L/∂W‖_F per parameter, averaged over batches | Xiong et al. 2020 Thm. 1, Fig. 3 |
//! | [`admin`] | shape of Admin's profiled ω (ω² increments, linear fit) | Liu et al. 2020 §4.2; admin-torch |
//! | [`hessian`] | exact Hessian-vector products; top eigenvalues (power iteration with deflation), Hutchinson trace, spectral density by stochastic Lanczos quadrature | Pearlmutter 1994; Hutchinson 1989; Ubaru et al. 2017; PyHessian (Yao et al. 2020) |
//! | [`fit`] | least-squares lines with R² | — |
//!
//! Key formulas:
//!
//! - β_{i,j} = s_{i,j}/√(Σ_k s²_{i,k}) with s_{i,j} the token-averaged feature standard deviation
//!   of component j of x_i, components carried through every LN's per-token scaling γ/σ (and
//!   Admin's ω, DeepNorm's α). Theory: Post-LN β_{i,i} ≈ 1/√2, Pre-LN β_{i,i} ≈ 1/√(i+1).
//! - E‖F(W) − F(W + δ)‖² ∝ Σ_i β²_{i,i}: O(N) for Post-LN, O(log N) for Pre-LN and Admin at init.
//! - H·v = ∇_θ⟨∇_θ L, v⟩ by double backward (exact, no finite differences).
//! - tr H ≈ mean over Rademacher v of vᵀHv; the density φ(t) = (1/n)Σ δ(t − λᵢ) ≈
//!   Σ_k τ²_k 𝒩(t; θ_k, σ²) from the eigen-decomposition T = Σ θ_k y_k y_kᵀ of the Lanczos
//!   tridiagonal, τ_k = (y_k)₁.
//!
//! Models are read only through saturn-layers' public API: `Module::named_parameters`, the
//! [`Trace`](saturn_layers::Trace) of a forward pass made with `ForwardCtx::eval().with_trace()`,
//! and the public `Sublayer` fields (scheme, norm, ω, α). Every function that runs the model
//! takes a closure that builds the output or loss, so the same probe works for an encoder, a
//! decoder-only LM or an encoder–decoder, in f32 or f64.
//!
//! ```
//! use saturn_dynamics::hessian::{PowerIteration, hutchinson_trace, top_eigenpairs};
//! use saturn_tensor::ndarray::arr2;
//!
//! // any symmetric matrix is an operator; a model's Hessian is `hessian::Hessian`
//! let a = arr2(&[[2.0, 1.0], [1.0, 2.0]]);
//! let top = top_eigenpairs(&a, &PowerIteration { tol: 1e-12, max_iter: 500, ..Default::default() })?;
//! assert!((top[0].value - 3.0).abs() < 1e-9);
//! assert!((hutchinson_trace(&a, 64, 0)?.mean - 4.0).abs() < 0.5);
//! # Ok::<(), saturn_dynamics::DynamicsError>(())
//! ```

pub mod admin;
pub mod amplification;
pub mod dependency;
mod error;
pub mod fit;
pub mod gradients;
pub mod hessian;
mod vector;

pub use admin::OmegaProfile;
pub use amplification::{
    OutputChange, is_weight_matrix, output_change, output_change_along_gradient,
};
pub use dependency::{
    Dependency, decoder_sublayers, encoder_dependency, encoder_sublayers, residual_dependency,
};
pub use error::{DynamicsError, Result};
pub use fit::{LinearFit, linear_fit};
pub use gradients::{GradientNorm, frobenius_norm, gradient_norms};
pub use hessian::{Hessian, LinearOperator};
