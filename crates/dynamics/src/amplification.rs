//! The amplification effect (Liu et al. 2020, §4.1, Theorem 2 and Fig. 4; Transformer-Clinic
//! `--plot_stability`; docs/REFERENCES.md#liu-amplification): how much a model's output moves when
//! every weight moves a little,
//!
//! Δ = ‖F(x, W) − F(x, W + δ)‖²,   δ = η·sign(ξ), ξ ~ N(0, I)   (or δ = −η·sign(∇_W L)),
//!
//! with the squared norm summed over the compared entries (all tokens and features). Liu et al.
//! show E Δ ∝ Σ_i β²_{i,i}: O(N) for Post-LN, O(log N) for Pre-LN and for Admin at init.
//!
//! Which parameters move: the weight matrices and embeddings (parameters with ≥ 2 axes). The
//! reference perturbs every parameter whose name contains none of `bias`, `layer_norm`, `ratio`
//! (its name for ω); in this workspace those are exactly the 1-axis parameters (biases, LN γ/β,
//! ω). sign(ξ) for a Gaussian ξ is a fair ±1 coin, drawn as such.
//!
//! Differences from the reference on purpose: the reference runs the model in train mode
//! (dropout on in both passes, so Δ mixes the perturbation with dropout noise) and uses one δ;
//! here the caller's forward should run in eval mode on a fixed batch, and Δ is averaged over
//! several δ seeds. Parameters are restored exactly after each measurement, even on error.

use rand::SeedableRng;
use rand_pcg::Pcg64;
use saturn_tensor::{Data, Float, RestoreGuard, Tensor};

use crate::error::{DynamicsError, Result, invalid};
use crate::vector::rademacher;

/// Whether the amplification probe perturbs this parameter: weight matrices and embedding
/// tables (≥ 2 axes), not biases, norm gains and biases, or Admin's ω.
pub fn is_weight_matrix<T: Float>(param: &Tensor<T>) -> bool {
    param.ndim() >= 2
}

/// Δ for each δ seed, and their mean.
#[derive(Debug, Clone, PartialEq)]
pub struct OutputChange {
    /// Δ for each seed, in the order given.
    pub per_seed: Vec<f64>,
    pub mean: f64,
    /// How many parameter tensors were perturbed.
    pub perturbed_tensors: usize,
    /// How many scalars were perturbed.
    pub perturbed_entries: usize,
}

/// Δ with δ = η·sign(N(0, I)) on every weight matrix among `params`, one δ per seed.
///
/// `forward` computes the compared output (call it under eval mode on a fixed batch); it runs
/// once unperturbed, then once per seed. `real_rows`, if given, marks which rows of the output
/// (its entries grouped by the last axis, e.g. the B·T tokens of a [B, T, d] output) count.
pub fn output_change<T, E>(
    params: &[(String, Tensor<T>)],
    eta: f64,
    seeds: &[u64],
    real_rows: Option<&[bool]>,
    mut forward: impl FnMut() -> std::result::Result<Tensor<T>, E>,
) -> Result<OutputChange>
where
    T: Float,
    E: Into<DynamicsError>,
{
    if seeds.is_empty() || !(eta.is_finite() && eta > 0.0) {
        return Err(invalid(
            "output_change",
            format!("need seeds and η > 0; got {seeds:?}, η = {eta}"),
        ));
    }
    let weights: Vec<&Tensor<T>> =
        params.iter().map(|(_, p)| p).filter(|p| is_weight_matrix(*p)).collect();
    let base = saturn_tensor::no_grad(&mut forward).map_err(Into::into)?;
    let mut per_seed = Vec::with_capacity(seeds.len());
    for &seed in seeds {
        let mut rng = Pcg64::seed_from_u64(seed);
        let moved = RestoreGuard::apply(weights.iter().copied(), |p| {
            let signs = rademacher(p.len(), &mut rng);
            shifted(p, signs.iter().map(|s| eta * s))
        })?;
        let out = saturn_tensor::no_grad(&mut forward).map_err(Into::into)?;
        drop(moved);
        per_seed.push(squared_distance(&base, &out, real_rows)?);
    }
    let mean = saturn_tensor::flat::mean(&per_seed);
    Ok(OutputChange {
        per_seed,
        mean,
        perturbed_tensors: weights.len(),
        perturbed_entries: weights.iter().map(|p| p.len()).sum(),
    })
}

/// Δ with δ = −η·sign(∇_W L) (Transformer-Clinic `--gradient_as_delta`: a sign-descent step),
/// `grads[k]` being the gradient of `params[k]`.
pub fn output_change_along_gradient<T, E>(
    params: &[(String, Tensor<T>)],
    grads: &[Tensor<T>],
    eta: f64,
    real_rows: Option<&[bool]>,
    mut forward: impl FnMut() -> std::result::Result<Tensor<T>, E>,
) -> Result<f64>
where
    T: Float,
    E: Into<DynamicsError>,
{
    if grads.len() != params.len() || !(eta.is_finite() && eta > 0.0) {
        return Err(invalid(
            "output_change_along_gradient",
            format!("{} gradients for {} parameters, η = {eta}", grads.len(), params.len()),
        ));
    }
    let mut pairs = Vec::new();
    for ((_, p), g) in params.iter().zip(grads) {
        if g.shape() != p.shape() {
            return Err(invalid(
                "output_change_along_gradient",
                format!("gradient {:?} for a parameter {:?}", g.shape(), p.shape()),
            ));
        }
        if is_weight_matrix(p) {
            pairs.push((p, g));
        }
    }
    let base = saturn_tensor::no_grad(&mut forward).map_err(Into::into)?;
    let targets: Vec<&Tensor<T>> = pairs.iter().map(|(p, _)| *p).collect();
    let mut grads = pairs.iter().map(|(_, g)| *g);
    let moved = RestoreGuard::apply(targets.iter().copied(), |p| {
        let g = grads.next().expect("one gradient per parameter");
        let data = g.data();
        shifted(p, data.iter().map(|x| -eta * sign(x.as_f64())).collect::<Vec<_>>().into_iter())
    })?;
    let out = saturn_tensor::no_grad(&mut forward).map_err(Into::into)?;
    drop(moved);
    squared_distance(&base, &out, real_rows)
}

fn sign(x: f64) -> f64 {
    if x > 0.0 {
        1.0
    } else if x < 0.0 {
        -1.0
    } else {
        0.0
    }
}

/// p + shift (row-major order), as a new value.
fn shifted<T: Float>(p: &Tensor<T>, shift: impl Iterator<Item = f64>) -> Data<T> {
    let mut data = p.to_array();
    for (x, s) in data.iter_mut().zip(shift) {
        *x = T::cast(x.as_f64() + s);
    }
    data.into_shared()
}

/// Σ (a − b)² over the rows marked real.
fn squared_distance<T: Float>(
    a: &Tensor<T>,
    b: &Tensor<T>,
    real_rows: Option<&[bool]>,
) -> Result<f64> {
    if a.shape() != b.shape() {
        return Err(invalid(
            "output_change",
            format!("outputs {:?} and {:?}", a.shape(), b.shape()),
        ));
    }
    let width = a.shape().last().copied().unwrap_or(1).max(1);
    if let Some(rows) = real_rows
        && rows.len() * width != a.len()
    {
        return Err(invalid(
            "output_change",
            format!("{} row flags for an output of shape {:?}", rows.len(), a.shape()),
        ));
    }
    let (da, db) = (a.data(), b.data());
    Ok(da
        .iter()
        .zip(db.iter())
        .enumerate()
        .filter(|(k, _)| real_rows.is_none_or(|r| r[k / width]))
        .map(|(_, (x, y))| (x.as_f64() - y.as_f64()).powi(2))
        .sum())
}

#[cfg(test)]
mod tests {
    use saturn_tensor::grad;

    use super::*;

    fn linear_model() -> (Vec<(String, Tensor<f64>)>, Tensor<f64>) {
        let w = Tensor::param_from_vec(vec![0.5, -0.2, 0.1, 0.3, 0.7, -0.4], &[3, 2]).unwrap();
        let b = Tensor::param_from_vec(vec![1.0, 2.0, 3.0], &[3]).unwrap();
        let x = Tensor::from_vec(vec![1.0, 2.0, -1.0, 0.5], &[2, 2]).unwrap();
        (vec![("w".into(), w), ("b".into(), b)], x)
    }

    fn forward(p: &[(String, Tensor<f64>)], x: &Tensor<f64>) -> saturn_tensor::Result<Tensor<f64>> {
        x.matmul(&p[0].1.transpose(0, 1)?)?.add(&p[1].1)
    }

    #[test]
    fn a_linear_model_moves_by_exactly_its_sign_perturbation() {
        // F = x·Wᵀ + b, δ on W only: F(W+δ) − F(W) = x·δᵀ, and each row of δ is η·(±1, ±1)
        let (params, x) = linear_model();
        let before: Vec<Vec<f64>> = params.iter().map(|(_, p)| p.to_vec()).collect();
        let change =
            output_change(&params, 1e-3, &[1, 2, 3], None, || forward(&params, &x)).unwrap();
        assert_eq!((change.perturbed_tensors, change.perturbed_entries), (1, 6));
        // Δ = Σ_rows Σ_out (x_row · δ_out)², with |x_row·δ_out| ∈ {|x1 ± x2|}·η
        for d in &change.per_seed {
            assert!(*d > 0.0 && *d <= 1e-6 * 3.0 * (9.0 + 2.25) + 1e-18);
        }
        let after: Vec<Vec<f64>> = params.iter().map(|(_, p)| p.to_vec()).collect();
        assert_eq!(before, after, "parameters are restored");
        assert_eq!(change.per_seed.len(), 3);
    }

    #[test]
    fn the_change_scales_with_eta_squared() {
        let (params, x) = linear_model();
        let small = output_change(&params, 1e-4, &[7], None, || forward(&params, &x)).unwrap();
        let large = output_change(&params, 2e-4, &[7], None, || forward(&params, &x)).unwrap();
        assert!((large.mean / small.mean - 4.0).abs() < 1e-6);
    }

    #[test]
    fn masked_rows_do_not_count() {
        let (params, x) = linear_model();
        let all = output_change(&params, 1e-3, &[4], None, || forward(&params, &x)).unwrap();
        let first =
            output_change(&params, 1e-3, &[4], Some(&[true, false]), || forward(&params, &x))
                .unwrap();
        let second =
            output_change(&params, 1e-3, &[4], Some(&[false, true]), || forward(&params, &x))
                .unwrap();
        assert!((first.mean + second.mean - all.mean).abs() < 1e-18);
        assert!(
            output_change(&params, 1e-3, &[4], Some(&[true]), || forward(&params, &x)).is_err()
        );
    }

    #[test]
    fn a_gradient_sign_step_lowers_a_convex_loss() {
        let (params, x) = linear_model();
        let loss = forward(&params, &x).unwrap().powf(2.0).sum_all();
        let all: Vec<Tensor<f64>> = params.iter().map(|(_, p)| p.clone()).collect();
        let grads = grad(std::slice::from_ref(&loss), &all, false).unwrap();
        let d = output_change_along_gradient(&params, &grads, 1e-3, None, || forward(&params, &x))
            .unwrap();
        assert!(d > 0.0);
        // the step itself, applied by hand, lowers the loss
        let w = &params[0].1;
        let old = w.data();
        let g = grads[0].to_vec();
        let stepped: Vec<f64> =
            w.to_vec().iter().zip(&g).map(|(p, g)| p - 1e-3 * g.signum()).collect();
        w.set_data(Tensor::from_vec(stepped, &[3, 2]).unwrap().data()).unwrap();
        let lower = forward(&params, &x).unwrap().powf(2.0).sum_all().item().unwrap();
        w.set_data(old).unwrap();
        assert!(lower < loss.item().unwrap());
    }
}
