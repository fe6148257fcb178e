//! Residual dependency β_{i,j} (Liu et al. 2020, §3 and Fig. 5; Transformer-Clinic
//! `--plot_variance`; docs/REFERENCES.md#liu-dependency).
//!
//! Write the output of sublayer i as a sum of components, x_i = Σ_{j≤i} c_{i,j}: c_{i,0} comes
//! from the embedding x₀ and c_{i,j} from the branch output a_j = f_j(x_{j−1}), each carried
//! through everything applied to the residual stream since it joined it:
//!
//! | scheme | x_i | components after sublayer i |
//! |---|---|---|
//! | Post-LN | LN(x_{i−1} + a_i) | (c − μ(c))·γ_i/σ_i for every c, with a_i appended |
//! | Admin | LN(x_{i−1} ⊙ ω_i + a_i) | old components ⊙ ω_i first, then as Post-LN |
//! | DeepNorm | LN(α·x_{i−1} + a_i) | old components · α first, then as Post-LN |
//! | Pre-LN | x_{i−1} + a_i | unchanged, a_i appended |
//! | branch-LN | x_{i−1} + LN(a_i) | unchanged, LN(a_i) appended |
//!
//! where μ(c) is c's per-token mean and σ_i = √(Var(b_i) + ε) the per-token standard deviation of
//! the LN input b_i (RMSNorm: no centering, σ_i the root mean square). Then
//!
//! β_{i,j} = s_{i,j} / √(Σ_k s²_{i,k}),   s_{i,j} = mean over tokens of std over features of c_{i,j},
//!
//! so every row has Σ_j β²_{i,j} = 1 (the paper's normalization, which assumes independent
//! components). Liu et al.'s Theorem 2 predicts the output change under a parameter
//! perturbation to grow as Σ_i β²_{i,i}.
//!
//! The reference code multiplies the components by the LN weight (and ω) only and lets the
//! common 1/σ cancel in the row normalization; that is exact only if σ is the same for every
//! token. Here each token is divided by its own σ_i, which makes the components sum to the
//! layer output exactly (checked by [`Dependency::reconstruction_error`]; the LN biases β_LN
//! are carried as an extra component that the rows do not report, as in the reference).

use ndarray::{Array1, Array2, ArrayView2, Axis};
use saturn_layers::{
    DecoderLayer, EncoderLayer, ForwardCtx, NormKind, ResidualScheme, Seq2Seq, Sublayer,
    SublayerTrace,
};
use saturn_tensor::{Float, Tensor};

use crate::error::{Result, invalid};

/// The dependency matrix of a stack of N sublayers.
#[derive(Debug, Clone, PartialEq)]
pub struct Dependency {
    /// The sublayers' names, i = 1..N.
    pub names: Vec<String>,
    /// `beta[i − 1][j]` = β_{i,j} for j = 0..=i (j = 0: the embedding).
    pub beta: Vec<Vec<f64>>,
    /// The largest |Σ_j c_{i,j} + (carried LN biases) − x_i| over every sublayer and entry: the
    /// decomposition's exactness (round-off only).
    pub reconstruction_error: f64,
}

impl Dependency {
    /// β_{i,i} for i = 1..N: how much sublayer i's output depends on its own branch.
    pub fn diagonal(&self) -> Vec<f64> {
        self.beta.iter().enumerate().map(|(i, row)| row[i + 1]).collect()
    }

    /// Σ_i β²_{i,i}, to which Liu et al.'s Theorem 2 makes the output change proportional.
    pub fn diagonal_square_sum(&self) -> f64 {
        self.diagonal().iter().map(|b| b * b).sum()
    }
}

/// The sublayers of encoder layers in forward order (attention, FFN of each layer).
pub fn encoder_sublayers<T: Float>(layers: &[EncoderLayer<T>]) -> Vec<&Sublayer<T>> {
    layers.iter().flat_map(|l| [&l.sub_attn, &l.sub_ffn]).collect()
}

/// The sublayers of decoder layers in forward order (self-attention, cross-attention, FFN).
pub fn decoder_sublayers<T: Float>(layers: &[DecoderLayer<T>]) -> Vec<&Sublayer<T>> {
    layers.iter().flat_map(|l| [&l.sub_self, &l.sub_cross, &l.sub_ffn]).collect()
}

/// β_{i,j} of an encoder–decoder's encoder on one source batch: a traced forward pass in eval
/// mode without gradients, token averages over the real (unpadded) tokens.
pub fn encoder_dependency<T: Float>(
    model: &Seq2Seq<T>,
    src: ArrayView2<'_, usize>,
    src_mask: ArrayView2<'_, bool>,
) -> Result<Dependency> {
    let mut ctx = ForwardCtx::eval().with_trace();
    saturn_tensor::no_grad(|| model.encode(src, src_mask, &mut ctx))?;
    let trace = ctx.trace.take().unwrap_or_default();
    residual_dependency(&trace.sublayers, &encoder_sublayers(&model.enc), Some(src_mask))
}

/// β_{i,j} of one residual stack from its forward trace (`trace[k]` made by `sublayers[k]`, in
/// forward order, names matching). `real_tokens` ([B, T], true for real tokens) restricts the
/// token averages to real tokens.
pub fn residual_dependency<T: Float>(
    trace: &[SublayerTrace<T>],
    sublayers: &[&Sublayer<T>],
    real_tokens: Option<ArrayView2<'_, bool>>,
) -> Result<Dependency> {
    const OP: &str = "residual_dependency";
    if trace.is_empty() || trace.len() != sublayers.len() {
        return Err(invalid(
            OP,
            format!("{} traced sublayers for {} sublayers", trace.len(), sublayers.len()),
        ));
    }
    let x0 = rows(&trace[0].residual)?;
    let (m, d) = x0.dim();
    let real: Vec<bool> = match real_tokens {
        Some(mask) if mask.len() == m => mask.iter().copied().collect(),
        Some(mask) => {
            return Err(invalid(OP, format!("token mask {:?} for {m} tokens", mask.dim())));
        }
        None => vec![true; m],
    };
    if !real.iter().any(|&r| r) {
        return Err(invalid(OP, "the token mask has no real token"));
    }
    let mut components = vec![x0];
    let mut biases = Array2::<f64>::zeros((m, d));
    let mut beta = Vec::with_capacity(trace.len());
    let mut worst = 0.0f64;
    for (t, sub) in trace.iter().zip(sublayers) {
        if t.name != sub.name {
            return Err(invalid(
                OP,
                format!("trace entry `{}` does not belong to sublayer `{}`", t.name, sub.name),
            ));
        }
        let branch = rows(&t.branch)?;
        let output = rows(&t.output)?;
        if branch.dim() != (m, d) || output.dim() != (m, d) {
            return Err(invalid(OP, format!("sublayer `{}` changes the stream's shape", t.name)));
        }
        match sub.scheme {
            ResidualScheme::PreLn => components.push(branch),
            ResidualScheme::BranchLn => components.push(&output - &rows(&t.residual)?),
            ResidualScheme::PostLn | ResidualScheme::Admin | ResidualScheme::DeepNorm => {
                let skip: Array1<f64> = match (sub.scheme, &sub.omega) {
                    (ResidualScheme::Admin, Some(omega)) => vector(omega),
                    (ResidualScheme::Admin, None) => {
                        return Err(invalid(OP, format!("Admin sublayer `{}` has no ω", t.name)));
                    }
                    _ => Array1::from_elem(d, sub.alpha),
                };
                if skip.len() != d {
                    return Err(invalid(
                        OP,
                        format!("ω of `{}` has {} entries", t.name, skip.len()),
                    ));
                }
                for c in components.iter_mut().chain(std::iter::once(&mut biases)) {
                    *c *= &skip;
                }
                components.push(branch);
                let norm_input = rows(&t.ln_input)?;
                let gamma = sub.norm.gamma.as_ref().map(vector).unwrap_or_else(|| Array1::ones(d));
                let center = sub.norm.kind == NormKind::LayerNorm;
                let inv_sigma = inverse_scale(&norm_input, sub.norm.eps, center);
                for c in components.iter_mut().chain(std::iter::once(&mut biases)) {
                    if center {
                        let mean = c.mean_axis(Axis(1)).expect("d > 0");
                        *c -= &mean.insert_axis(Axis(1));
                    }
                    *c *= &inv_sigma.view().insert_axis(Axis(1));
                    *c *= &gamma;
                }
                if let Some(b) = &sub.norm.beta {
                    biases += &vector(b);
                }
            }
        }
        let sum = components.iter().fold(biases.clone(), |acc, c| acc + c);
        worst = worst.max((&sum - &output).iter().fold(0.0f64, |w, e| w.max(e.abs())));
        let stds: Vec<f64> = components.iter().map(|c| mean_token_std(c, &real)).collect();
        let total = stds.iter().map(|s| s * s).sum::<f64>().sqrt();
        beta.push(stds.iter().map(|s| if total > 0.0 { s / total } else { 0.0 }).collect());
    }
    Ok(Dependency {
        names: trace.iter().map(|t| t.name.clone()).collect(),
        beta,
        reconstruction_error: worst,
    })
}

/// A [..., d] tensor as [tokens, d] in f64.
fn rows<T: Float>(t: &Tensor<T>) -> Result<Array2<f64>> {
    let shape = t.shape();
    let Some(&d) = shape.last() else {
        return Err(invalid("residual_dependency", "a traced value is a scalar"));
    };
    let m = shape[..shape.len() - 1].iter().product();
    let values: Vec<f64> = t.data().iter().map(|x| x.as_f64()).collect();
    Array2::from_shape_vec((m, d), values)
        .map_err(|e| invalid("residual_dependency", e.to_string()))
}

fn vector<T: Float>(t: &Tensor<T>) -> Array1<f64> {
    t.data().iter().map(|x| x.as_f64()).collect()
}

/// 1/√(Var + ε) per row (LayerNorm), or 1/√(mean(x²) + ε) (RMSNorm).
fn inverse_scale(x: &Array2<f64>, eps: f64, center: bool) -> Array1<f64> {
    x.rows()
        .into_iter()
        .map(|r| {
            let n = r.len() as f64;
            let mean = if center { r.sum() / n } else { 0.0 };
            let second = r.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / n;
            1.0 / (second + eps).sqrt()
        })
        .collect()
}

/// The mean over real tokens of the (population) standard deviation over features.
fn mean_token_std(c: &Array2<f64>, real: &[bool]) -> f64 {
    let (mut sum, mut count) = (0.0, 0usize);
    for (r, _) in c.rows().into_iter().zip(real).filter(|(_, real)| **real) {
        let n = r.len() as f64;
        let mean = r.sum() / n;
        sum += (r.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / n).sqrt();
        count += 1;
    }
    sum / count as f64
}

#[cfg(test)]
pub(crate) mod tests {
    use saturn_layers::{ForwardCtx, Seq2Seq, Seq2SeqConfig, admin_profile};
    use saturn_tensor::ndarray::Array2 as TArray2;

    use super::*;

    pub(crate) fn encoder(scheme: ResidualScheme, layers: usize) -> Seq2Seq<f64> {
        let cfg = Seq2SeqConfig {
            residual: scheme,
            ..Seq2SeqConfig::fairseq(11, 16, 2, 32, (layers, 1), (8, 8))
        };
        Seq2Seq::new(cfg, 3).unwrap()
    }

    fn batch() -> (TArray2<usize>, TArray2<bool>) {
        let src = TArray2::from_shape_fn((3, 7), |(b, t)| (b * 5 + t * 3) % 11);
        let mask = TArray2::from_shape_fn((3, 7), |(b, t)| t < 7 - 2 * b);
        (src, mask)
    }

    fn dependency(scheme: ResidualScheme, layers: usize) -> Dependency {
        let model = encoder(scheme, layers);
        let (src, mask) = batch();
        if scheme == ResidualScheme::Admin {
            let mut ctx = ForwardCtx::eval();
            admin_profile(&mut ctx, |ctx| model.encode(src.view(), mask.view(), ctx)).unwrap();
        }
        let mut ctx = ForwardCtx::eval().with_trace();
        model.encode(src.view(), mask.view(), &mut ctx).unwrap();
        let trace = ctx.trace.unwrap();
        residual_dependency(&trace.sublayers, &encoder_sublayers(&model.enc), Some(mask.view()))
            .unwrap()
    }

    #[test]
    fn dependency_rows_sum_to_one_in_square() {
        for scheme in [
            ResidualScheme::PostLn,
            ResidualScheme::PreLn,
            ResidualScheme::Admin,
            ResidualScheme::DeepNorm,
        ] {
            let dep = dependency(scheme, 3);
            assert_eq!(dep.beta.len(), 6);
            for (i, row) in dep.beta.iter().enumerate() {
                assert_eq!(row.len(), i + 2);
                let sq: f64 = row.iter().map(|b| b * b).sum();
                assert!((sq - 1.0).abs() < 1e-12, "{scheme:?} row {i}: {sq}");
            }
        }
    }

    #[test]
    fn components_reconstruct_every_sublayer_output() {
        for scheme in [ResidualScheme::PostLn, ResidualScheme::PreLn, ResidualScheme::Admin] {
            let dep = dependency(scheme, 2);
            assert!(dep.reconstruction_error < 1e-9, "{scheme:?}: {}", dep.reconstruction_error);
        }
    }

    #[test]
    fn pre_ln_diagonal_is_the_branch_share_of_the_stream_variance() {
        // Pre-LN: β_{i,i} = s(a_i)/√(Σ_j s(c_j)²) with untouched components; at i = 1 that is
        // s(a₁)/√(s(x₀)² + s(a₁)²)
        let model = encoder(ResidualScheme::PreLn, 1);
        let (src, mask) = batch();
        let mut ctx = ForwardCtx::eval().with_trace();
        model.encode(src.view(), mask.view(), &mut ctx).unwrap();
        let trace = ctx.trace.unwrap().sublayers;
        let real: Vec<bool> = mask.iter().copied().collect();
        let s0 = mean_token_std(&rows(&trace[0].residual).unwrap(), &real);
        let s1 = mean_token_std(&rows(&trace[0].branch).unwrap(), &real);
        let dep =
            residual_dependency(&trace, &encoder_sublayers(&model.enc), Some(mask.view())).unwrap();
        assert!((dep.beta[0][1] - s1 / (s0 * s0 + s1 * s1).sqrt()).abs() < 1e-12);
    }

    #[test]
    fn a_trace_of_another_stack_is_refused() {
        let model = encoder(ResidualScheme::PostLn, 2);
        let (src, mask) = batch();
        let mut ctx = ForwardCtx::eval().with_trace();
        model.encode(src.view(), mask.view(), &mut ctx).unwrap();
        let trace = ctx.trace.unwrap().sublayers;
        let subs = encoder_sublayers(&model.enc);
        assert!(residual_dependency(&trace[1..], &subs[..3], None).is_err());
        assert!(residual_dependency(&trace, &subs[..3], None).is_err());
    }
}
