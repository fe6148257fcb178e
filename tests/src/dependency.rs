//! The residual dependency β_{i,j} of Liu et al. (2020, §3; PAPERS.md §2.2), from a forward trace.
//!
//! Write the output of sublayer i as a sum of components, x_i = Σ_{j≤i} c_{i,j}: c_{i,0} comes
//! from the input x_0 and c_{i,j} from branch j, each carried through every later residual
//! scaling (Admin's ω, DeepNorm's α) and LayerNorm scaling (γ/σ per token, the mean removed) so
//! that the components add up to x_i exactly (up to the LN's β, which is kept apart). Then
//!
//! β_{i,j} = s_{i,j} / √(Σ_k s_{i,k}²),  s_{i,j} = mean over tokens of the std over features
//! of c_{i,j},
//!
//! the row-normalized component scales of the reference code (`--plot_variance`). Under the
//! paper's assumption that the components are independent, Σ_j β_{i,j}² = 1 row by row and
//! β_{i,i}² = Var[f_i]/Var[b_i] for Post-LN and Admin (b_i the LN input).
//!
//! Difference from the stored reference code: Transformer-Clinic multiplies the components by
//! the LN weight γ only, not by 1/σ. Within one row a common factor cancels, but the next branch
//! is computed from the *normalized* stream, so leaving 1/σ out biases later rows (a Post-LN
//! stack of unit-variance branches would show β_{i,i}² ≈ 1/(i+1) instead of 1/2). We carry 1/σ.
//!
//! This is a temporary home: the planned saturn-dynamics crate (issue 8) owns β, and the test
//! that uses this should switch to it when it lands.

use saturn_layers::{ResidualScheme, Sublayer, SublayerTrace};
use saturn_tensor::Tensor;
use saturn_tensor::ndarray::{Array1, Array2, Axis};

/// β_{i,j} for every sublayer i = 1..n, and how exactly the components rebuilt the trace.
#[derive(Debug, Clone)]
pub struct Dependency {
    /// `beta[i - 1][j]` = β_{i,j} for j = 0..=i.
    pub beta: Vec<Vec<f64>>,
    /// The largest |Σ_j c_{i,j} + offset − x_i| over all sublayers and entries: how well the
    /// component bookkeeping reproduces the traced outputs (rounding only, ≈ 1e-14).
    pub reconstruction_error: f64,
}

impl Dependency {
    /// β_{i,i} for i = 1..n.
    pub fn diagonal(&self) -> Vec<f64> {
        self.beta.iter().enumerate().map(|(i, row)| row[i + 1]).collect()
    }
}

fn rows(t: &Tensor<f64>) -> Array2<f64> {
    let shape = t.shape();
    let d = *shape.last().expect("rank ≥ 1");
    let n = t.len() / d;
    t.to_array().into_shape_with_order((n, d)).expect("contiguous").to_owned()
}

fn vector(t: &Tensor<f64>) -> Array1<f64> {
    Array1::from(t.to_vec())
}

/// Per-token mean over features, as a column.
fn row_mean(a: &Array2<f64>) -> Array2<f64> {
    a.mean_axis(Axis(1)).expect("d > 0").insert_axis(Axis(1))
}

/// Mean over tokens of the (population) std over features.
fn scale(a: &Array2<f64>) -> f64 {
    let centered = a - &row_mean(a);
    let std = (&centered * &centered).mean_axis(Axis(1)).expect("d > 0").mapv(f64::sqrt);
    std.mean().expect("tokens > 0")
}

/// β from the input `x0` of the first sublayer, the sublayers (for their scheme, ω, α, γ, β and
/// ε), and their trace entries, in forward order.
pub fn residual_dependency(
    x0: &Tensor<f64>,
    sublayers: &[&Sublayer<f64>],
    trace: &[SublayerTrace<f64>],
) -> Dependency {
    assert_eq!(sublayers.len(), trace.len(), "one trace entry per sublayer");
    let mut comps = vec![rows(x0)];
    let mut offset = Array2::<f64>::zeros(comps[0].raw_dim());
    let mut beta = Vec::with_capacity(trace.len());
    let mut error = 0.0f64;
    for (sub, tr) in sublayers.iter().zip(trace) {
        match sub.scheme {
            ResidualScheme::PostLn | ResidualScheme::Admin | ResidualScheme::DeepNorm => {
                let skip = match &sub.omega {
                    Some(w) => vector(w),
                    None => Array1::from_elem(offset.ncols(), sub.alpha),
                };
                for c in comps.iter_mut().chain(std::iter::once(&mut offset)) {
                    *c = &*c * &skip;
                }
                comps.push(rows(&tr.branch));
                let b: Array2<f64> = comps.iter().fold(offset.clone(), |acc, c| acc + c);
                error = error
                    .max((&b - &rows(&tr.ln_input)).mapv(f64::abs).fold(0.0, |m, &v| m.max(v)));
                let centered = &b - &row_mean(&b);
                let var = (&centered * &centered).mean_axis(Axis(1)).expect("d > 0");
                let inv_sigma = var.mapv(|v| 1.0 / (v + sub.norm.eps).sqrt()).insert_axis(Axis(1));
                let gamma = sub
                    .norm
                    .gamma
                    .as_ref()
                    .map_or_else(|| Array1::from_elem(offset.ncols(), 1.0), vector);
                for c in comps.iter_mut().chain(std::iter::once(&mut offset)) {
                    *c = (&*c - &row_mean(c)) * &inv_sigma * &gamma;
                }
                if let Some(bias) = &sub.norm.beta {
                    offset = offset + vector(bias);
                }
            }
            ResidualScheme::PreLn | ResidualScheme::BranchLn => {
                comps.push(rows(&tr.output) - rows(&tr.residual));
            }
        }
        let x: Array2<f64> = comps.iter().fold(offset.clone(), |acc, c| acc + c);
        error = error.max((&x - &rows(&tr.output)).mapv(f64::abs).fold(0.0, |m, &v| m.max(v)));
        let s: Vec<f64> = comps.iter().map(scale).collect();
        let total = s.iter().map(|v| v * v).sum::<f64>().sqrt();
        beta.push(s.iter().map(|v| v / total).collect());
    }
    Dependency { beta, reconstruction_error: error }
}
