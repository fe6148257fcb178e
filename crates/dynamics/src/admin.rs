//! Reading Admin's profiled ω (Liu et al. 2020, §4.2; admin-torch `profile.ratio.init`;
//! docs/REFERENCES.md#admin-profiling). The profiling itself is `saturn_layers::admin_profile`: r =
//! 1, and at sublayer i, ω_i ← r, then r ← √(Var(x_{i−1} ⊙ ω_i) + Var(f_i(x_{i−1}))).
//!
//! Since x_{i−1} is an LN output with unit variance (except x₀, the embedding),
//! ω²_{i+1} ≈ ω²_i + Var(f_i): the squared increments are the branch variances, about constant
//! per sublayer type, so ω² grows linearly in i (≈ 0.2 per attention and ≈ 0.4 per FFN sublayer
//! at d = 512 in admin-torch's 100-layer profile). The closed form ω = √((n+1)/ln(n+1) − 1)
//! (`saturn_layers::init::admin_omega_closed_form`) replaces the profile with one constant.

use serde::{Deserialize, Serialize};

use crate::error::Result;
use crate::fit::{LinearFit, linear_fit};

/// ω per sublayer, in forward order, as profiling set them.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct OmegaProfile {
    pub names: Vec<String>,
    pub omegas: Vec<f64>,
}

impl OmegaProfile {
    /// From `saturn_layers::admin_profile`'s output.
    pub fn new(profile: Vec<(String, f64)>) -> Self {
        let (names, omegas) = profile.into_iter().unzip();
        OmegaProfile { names, omegas }
    }

    /// ω²_{i+1} − ω²_i for i = 1..N−1: the variance sublayer i added (plus, at i = 1, the
    /// embedding's variance minus 1).
    pub fn squared_increments(&self) -> Vec<f64> {
        self.omegas.windows(2).map(|w| w[1] * w[1] - w[0] * w[0]).collect()
    }

    /// Whether ω_{i+1} > ω_i for every i.
    pub fn strictly_increasing(&self) -> bool {
        self.omegas.windows(2).all(|w| w[1] > w[0])
    }

    /// The OLS line of ω²_i against i = 1..N.
    pub fn squared_fit(&self) -> Result<LinearFit> {
        let i: Vec<f64> = (1..=self.omegas.len()).map(|i| i as f64).collect();
        let sq: Vec<f64> = self.omegas.iter().map(|w| w * w).collect();
        Ok(linear_fit(&i, &sq)?)
    }
}

#[cfg(test)]
mod tests {
    use saturn_layers::{ForwardCtx, ResidualScheme, admin_profile};
    use saturn_tensor::flat::population_variance;
    use saturn_tensor::ndarray::Array2;

    use super::*;
    use crate::dependency::tests::encoder;

    #[test]
    fn admin_profiling_reproduces_the_recurrence_computed_by_hand() {
        let model = encoder(ResidualScheme::Admin, 3);
        let src = Array2::from_shape_fn((2, 5), |(b, t)| (3 * b + 2 * t + 1) % 11);
        let mask = Array2::from_elem((2, 5), true);
        let mut ctx = ForwardCtx::eval().with_trace();
        let profile =
            admin_profile(&mut ctx, |ctx| model.encode(src.view(), mask.view(), ctx)).unwrap();
        let trace = ctx.trace.unwrap().sublayers;
        assert_eq!(profile.len(), 6);
        // by hand: r = 1; ω_i = r; r ← √(Var[x_{i−1}·ω_i] + Var[f_i]) over all entries
        let mut r = 1.0f64;
        for ((name, omega), t) in profile.iter().zip(&trace) {
            assert_eq!(name, &t.name);
            assert!((omega - r).abs() < 1e-12, "{name}: ω = {omega}, by hand {r}");
            let skip: Vec<f64> = t.residual.to_vec().iter().map(|x| x * r).collect();
            let branch = t.branch.to_vec();
            // the pass itself used this ω: b_i = x_{i−1}·ω_i + f_i
            for ((b, s), f) in t.ln_input.to_vec().iter().zip(&skip).zip(&branch) {
                assert!((b - (s + f)).abs() < 1e-12);
            }
            r = (population_variance(&skip) + population_variance(&branch)).sqrt();
        }
        let shape = OmegaProfile::new(profile);
        assert_eq!(shape.omegas[0], 1.0);
        assert!(shape.strictly_increasing(), "{:?}", shape.omegas);
        assert_eq!(shape.squared_increments().len(), 5);
    }
}
