//! Residual schemes: how a sublayer f (attention or FFN) joins the residual stream x.
//!
//! | scheme | x_i = | source |
//! |---|---|---|
//! | Post-LN | LN(x + f(x)) | Vaswani et al. 2017 |
//! | Pre-LN | x + f(LN(x)), with a final LN on the stack | Xiong et al. 2020 |
//! | Admin | LN(x ⊙ ω + f(x)), ω a learnable vector set by profiling | Liu et al. 2020 |
//! | DeepNorm | LN(α·x + f(x)), α a constant, β-scaled init | Wang et al. 2022 |
//! | branch-LN | x + LN(f(x)) | what the norm-growth code (Merrill et al. 2021) calls "pre_norm" |
//!
//! Dropout (training only) is applied to the branch output before the residual add (fairseq).

use saturn_tensor::{Float, Tensor};
use serde::{Deserialize, Serialize};

use crate::ctx::{ForwardCtx, SublayerTrace};
use crate::error::Result;
use crate::init::filled;
use crate::module::{Module, join};
use crate::norm::Norm;

/// Where the LayerNorm sits relative to the residual add.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
pub enum ResidualScheme {
    /// x_i = LN(x + f(x)).
    #[default]
    #[serde(rename = "post")]
    PostLn,
    /// x_i = x + f(LN(x)); a final LN closes the stack.
    #[serde(rename = "pre")]
    PreLn,
    /// x_i = LN(x ⊙ ω + f(x)).
    #[serde(rename = "admin")]
    Admin,
    /// x_i = LN(α·x + f(x)).
    #[serde(rename = "deepnorm")]
    DeepNorm,
    /// x_i = x + LN(f(x)) ("pre_norm" in the norm-growth reference code; not Pre-LN).
    #[serde(rename = "branch")]
    BranchLn,
}

impl ResidualScheme {
    /// The name used in configs and torch_io: post, pre, admin, deepnorm, branch.
    pub fn name(self) -> &'static str {
        match self {
            ResidualScheme::PostLn => "post",
            ResidualScheme::PreLn => "pre",
            ResidualScheme::Admin => "admin",
            ResidualScheme::DeepNorm => "deepnorm",
            ResidualScheme::BranchLn => "branch",
        }
    }

    /// Whether the stack ends with a final LN (Pre-LN only).
    pub fn has_final_norm(self) -> bool {
        self == ResidualScheme::PreLn
    }
}

/// One residual sublayer's norm, Admin ω and constants; the branch f is passed to
/// [`Sublayer::apply`].
#[derive(Debug, Clone)]
pub struct Sublayer<T: Float> {
    /// Full name for traces and Admin profiling, e.g. `layers.0.attn`.
    pub name: String,
    /// Parameter name of the norm within its layer, e.g. `ln1`.
    pub norm_name: String,
    /// Parameter name of ω within its layer, e.g. `omega1`.
    pub omega_name: String,
    pub scheme: ResidualScheme,
    pub norm: Norm<T>,
    /// Admin's ω ∈ ℝ^d (Admin only).
    pub omega: Option<Tensor<T>>,
    /// DeepNorm's α (1 for the other schemes).
    pub alpha: f64,
    /// Dropout probability on the branch output.
    pub dropout: f64,
}

impl<T: Float> Sublayer<T> {
    /// A sublayer over `d` features; ω starts at `omega_init` (Admin).
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        name: String,
        index: usize,
        scheme: ResidualScheme,
        norm: Norm<T>,
        d: usize,
        alpha: f64,
        omega_init: f64,
        dropout: f64,
    ) -> Self {
        Sublayer {
            name,
            norm_name: format!("ln{index}"),
            omega_name: format!("omega{index}"),
            scheme,
            norm,
            omega: (scheme == ResidualScheme::Admin).then(|| filled(&[d], omega_init)),
            alpha: if scheme == ResidualScheme::DeepNorm { alpha } else { 1.0 },
            dropout,
        }
    }

    /// x_i from x_{i−1} and the branch `f` under this sublayer's scheme; records a trace and
    /// performs Admin profiling when the context asks for them.
    pub fn apply(
        &self,
        x: &Tensor<T>,
        ctx: &mut ForwardCtx<T>,
        f: impl FnOnce(&Tensor<T>, &mut ForwardCtx<T>) -> Result<Tensor<T>>,
    ) -> Result<Tensor<T>> {
        if let (ResidualScheme::Admin, Some(profile)) = (self.scheme, ctx.admin_profile.as_mut()) {
            // docs/REFERENCES.md#admin-profiling: ω_i ← r before the sublayer runs
            let omega = self.omega.as_ref().expect("Admin sublayers have ω");
            omega.set_data(Tensor::<T>::full(&omega.shape(), T::cast(profile.r)).data())?;
            profile.omegas.push((self.name.clone(), profile.r));
        }
        let input =
            if self.scheme == ResidualScheme::PreLn { self.norm.forward(x)? } else { x.clone() };
        let fx = f(&input, ctx)?;
        let fx = ctx.dropout(&fx, self.dropout)?;
        let (ln_input, out) = match self.scheme {
            ResidualScheme::PostLn | ResidualScheme::DeepNorm => {
                let skip = if self.alpha == 1.0 { x.clone() } else { x.mul_scalar(self.alpha) };
                let b = skip.add(&fx)?;
                (b.clone(), self.norm.forward(&b)?)
            }
            ResidualScheme::Admin => {
                let skip = x.mul(self.omega.as_ref().expect("Admin sublayers have ω"))?;
                if let Some(profile) = ctx.admin_profile.as_mut() {
                    // r ← √(Var[x ⊙ ω] + Var[f(x)]), population variances over all elements
                    profile.r = (population_variance(&skip) + population_variance(&fx)).sqrt();
                }
                let b = skip.add(&fx)?;
                (b.clone(), self.norm.forward(&b)?)
            }
            ResidualScheme::PreLn => (x.clone(), x.add(&fx)?),
            ResidualScheme::BranchLn => (fx.clone(), x.add(&self.norm.forward(&fx)?)?),
        };
        let branch = fx;
        if let Some(trace) = ctx.trace.as_mut() {
            trace.sublayers.push(SublayerTrace {
                name: self.name.clone(),
                residual: x.clone(),
                branch,
                ln_input,
                output: out.clone(),
            });
        }
        Ok(out)
    }
}

impl<T: Float> Module<T> for Sublayer<T> {
    fn visit(&self, prefix: &str, f: &mut dyn FnMut(String, &Tensor<T>)) {
        self.norm.visit(&join(prefix, &self.norm_name), f);
        if let Some(w) = &self.omega {
            f(join(prefix, &self.omega_name), w);
        }
    }
}

/// The population variance of all elements (no gradient), in f64
/// ([`saturn_tensor::flat::population_variance`]).
pub fn population_variance<T: Float>(x: &Tensor<T>) -> f64 {
    let v: Vec<f64> = x.data().iter().map(|a| a.as_f64()).collect();
    saturn_tensor::flat::population_variance(&v)
}
