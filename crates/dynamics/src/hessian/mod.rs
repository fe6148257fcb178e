//! The Hessian of a loss as a linear operator, and the spectral methods that only need H·v.
//!
//! - [`Hessian`]: exact Hessian-vector products by double backward through saturn-tensor's
//!   graph, H·v = ∇_θ⟨∇_θ L(θ), v⟩ (Pearlmutter 1994), the way PyHessian computes them
//!   (`hessian_vector_product`), summed over batches with weights (PyHessian's dataloader mode
//!   weights each batch by its size).
//! - [`top_eigenpairs`]: power iteration with deflation (PyHessian `eigenvalues`);
//!   [`largest_eigenpair`]: λ_max of an indefinite H by a spectral shift.
//! - [`hutchinson_trace`]: tr H ≈ mean of vᵀHv over Rademacher v (Hutchinson 1989; PyHessian
//!   `trace`).
//! - [`lanczos`], [`slq`], [`spectral_density`]: stochastic Lanczos quadrature of the spectral
//!   density (Ubaru, Chen & Saad 2017; Ghorbani, Krishnan & Xiao 2019; PyHessian `density`).
//!
//! Every method is written against [`LinearOperator`], so the tests check it on dense matrices
//! with known spectra (an `ndarray::Array2<f64>` is an operator).

mod lanczos;
mod power;
mod trace;

pub use lanczos::{
    Density, DensityConfig, ExtremeRitz, Krylov, Quadrature, Tridiagonal, lanczos, slq,
    spectral_density,
};
pub use power::{
    Eigenpair, LargestEigenpair, PowerIteration, WarmStart, largest_eigenpair,
    largest_eigenpair_from, top_eigenpairs,
};
pub use trace::{TraceEstimate, hutchinson_trace};

use std::cell::Cell;

use ndarray::Array2;
use saturn_tensor::{Float, GradModeGuard, Tensor, grad};

use crate::error::{DynamicsError, Result, invalid};

/// A symmetric linear map on ℝⁿ known only through its products with vectors.
pub trait LinearOperator {
    /// n.
    fn dim(&self) -> usize;
    /// A·v for v ∈ ℝⁿ.
    fn apply(&self, v: &[f64]) -> Result<Vec<f64>>;
}

impl LinearOperator for Array2<f64> {
    fn dim(&self) -> usize {
        self.nrows()
    }

    fn apply(&self, v: &[f64]) -> Result<Vec<f64>> {
        if self.nrows() != self.ncols() || v.len() != self.ncols() {
            return Err(invalid(
                "apply",
                format!("a {:?} matrix cannot multiply a vector of {}", self.dim(), v.len()),
            ));
        }
        Ok(self.dot(&ndarray::ArrayView1::from(v)).to_vec())
    }
}

/// The Hessian of a weighted sum of batch losses, Σ_b w_b·L_b(θ), with respect to `params`
/// (flattened in order), applied by exact double backward.
///
/// `loss(b)` must build batch b's scalar loss with gradient recording on, in eval mode
/// (no dropout), so that H is the Hessian of one fixed function. With [`Hessian::cached`] the
/// first-order gradient graphs ∇L_b (with `create_graph`) are kept, so each product costs one
/// backward pass per batch; with [`Hessian::new`] they are rebuilt for every product (a forward
/// and two backward passes per batch, less memory).
pub struct Hessian<T: Float, F> {
    params: Vec<Tensor<T>>,
    weights: Vec<f64>,
    loss: F,
    cached: Option<Vec<Vec<Tensor<T>>>>,
    products: Cell<usize>,
}

impl<T: Float, F, E> Hessian<T, F>
where
    F: Fn(usize) -> std::result::Result<Tensor<T>, E>,
    E: Into<DynamicsError>,
{
    /// H of Σ_b `weights[b]`·`loss(b)`; each product recomputes the first-order graphs.
    pub fn new(params: Vec<Tensor<T>>, weights: Vec<f64>, loss: F) -> Result<Self> {
        if params.is_empty() || weights.is_empty() {
            return Err(invalid("Hessian", "needs at least one parameter and one batch"));
        }
        if let Some(p) = params.iter().find(|p| !p.requires_grad()) {
            return Err(invalid(
                "Hessian",
                format!("a parameter of shape {:?} does not require grad", p.shape()),
            ));
        }
        Ok(Hessian { params, weights, loss, cached: None, products: Cell::new(0) })
    }

    /// H of Σ_b `weights[b]`·`loss(b)`, keeping every batch's first-order gradient graph.
    pub fn cached(params: Vec<Tensor<T>>, weights: Vec<f64>, loss: F) -> Result<Self> {
        let mut h = Self::new(params, weights, loss)?;
        let mut graphs = Vec::with_capacity(h.weights.len());
        for b in 0..h.weights.len() {
            graphs.push(grad(&[h.batch_loss(b)?], &h.params, true)?);
        }
        h.cached = Some(graphs);
        Ok(h)
    }

    fn batch_loss(&self, b: usize) -> Result<Tensor<T>> {
        let _recording = GradModeGuard::set(true);
        let loss = (self.loss)(b).map_err(Into::into)?;
        if loss.len() != 1 {
            return Err(invalid(
                "Hessian",
                format!("batch {b}'s loss has shape {:?}", loss.shape()),
            ));
        }
        Ok(loss)
    }

    /// The gradient Σ_b w_b·∇L_b, flattened.
    pub fn gradient(&self) -> Result<Vec<f64>> {
        let mut out = vec![0.0; self.dim()];
        for (b, &w) in self.weights.iter().enumerate() {
            let g = match &self.cached {
                Some(graphs) => graphs[b].clone(),
                None => grad(&[self.batch_loss(b)?], &self.params, false)?,
            };
            crate::vector::axpy(w, &flatten(&g), &mut out);
        }
        Ok(out)
    }

    /// How many Hessian-vector products have been computed (each over every batch).
    pub fn products(&self) -> usize {
        self.products.get()
    }
}

impl<T: Float, F, E> LinearOperator for Hessian<T, F>
where
    F: Fn(usize) -> std::result::Result<Tensor<T>, E>,
    E: Into<DynamicsError>,
{
    fn dim(&self) -> usize {
        self.params.iter().map(Tensor::len).sum()
    }

    fn apply(&self, v: &[f64]) -> Result<Vec<f64>> {
        if v.len() != self.dim() {
            return Err(invalid(
                "Hessian::apply",
                format!("vector of {} entries for {} parameters", v.len(), self.dim()),
            ));
        }
        let v = unflatten(v, &self.params)?;
        let _recording = GradModeGuard::set(true);
        let mut out = vec![0.0; v.iter().map(Tensor::len).sum()];
        for (b, &w) in self.weights.iter().enumerate() {
            let hv = match &self.cached {
                Some(graphs) => hvp_through(&graphs[b], &self.params, &v)?,
                None => saturn_tensor::hvp(&self.batch_loss(b)?, &self.params, &v)?,
            };
            crate::vector::axpy(w, &flatten(&hv), &mut out);
        }
        self.products.set(self.products.get() + 1);
        Ok(out)
    }
}

/// H·v = ∇_θ⟨g, v⟩ for a gradient g recorded with `create_graph`.
fn hvp_through<T: Float>(
    grads: &[Tensor<T>],
    params: &[Tensor<T>],
    v: &[Tensor<T>],
) -> Result<Vec<Tensor<T>>> {
    let mut dot: Option<Tensor<T>> = None;
    for (g, vi) in grads.iter().zip(v) {
        if !g.requires_grad() {
            continue; // this block of H is zero
        }
        let term = g.mul(vi)?.sum_all();
        dot = Some(match dot {
            Some(d) => d.add(&term)?,
            None => term,
        });
    }
    match dot {
        Some(dot) => Ok(grad(&[dot], params, false)?),
        None => Ok(params.iter().map(|p| Tensor::zeros(&p.shape())).collect()),
    }
}

/// The entries of `tensors`, one after the other, each in row-major order, as `f64`.
pub fn flatten<T: Float>(tensors: &[Tensor<T>]) -> Vec<f64> {
    let mut out = Vec::with_capacity(tensors.iter().map(Tensor::len).sum());
    for t in tensors {
        out.extend(t.data().iter().map(|x| x.as_f64()));
    }
    out
}

/// Constants shaped like `like`, filled from the flat `v` (the inverse of [`flatten`]).
pub fn unflatten<T: Float>(v: &[f64], like: &[Tensor<T>]) -> Result<Vec<Tensor<T>>> {
    let total: usize = like.iter().map(Tensor::len).sum();
    if v.len() != total {
        return Err(invalid("unflatten", format!("{} entries for {total} parameters", v.len())));
    }
    let mut out = Vec::with_capacity(like.len());
    let mut at = 0;
    for t in like {
        let n = t.len();
        let values = v[at..at + n].iter().map(|&x| T::cast(x)).collect();
        out.push(Tensor::from_vec(values, &t.shape())?);
        at += n;
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use saturn_tensor::Tensor;

    use super::*;

    /// L(x, y) = x²y + y³, so H = [[2y, 2x], [2x, 6y]].
    fn cubic(p: &[Tensor<f64>]) -> saturn_tensor::Result<Tensor<f64>> {
        let (x, y) = (&p[0], &p[1]);
        Ok(x.mul(x)?.mul(y)?.add(&y.mul(y)?.mul(y)?)?.sum_all())
    }

    #[test]
    fn hessian_products_match_the_analytic_hessian_with_and_without_cache() {
        let x = Tensor::<f64>::param_from_vec(vec![0.7], &[1]).unwrap();
        let y = Tensor::<f64>::param_from_vec(vec![-1.3], &[1]).unwrap();
        let params = vec![x.clone(), y.clone()];
        let p2 = params.clone();
        let loss = move |_b: usize| cubic(&p2);
        let h = [2.0 * -1.3, 2.0 * 0.7, 2.0 * 0.7, 6.0 * -1.3];
        let expect = |v: [f64; 2]| [h[0] * v[0] + h[1] * v[1], h[2] * v[0] + h[3] * v[1]];
        let fresh = Hessian::new(params.clone(), vec![1.0], loss.clone()).unwrap();
        let cached = Hessian::cached(params, vec![1.0], loss).unwrap();
        for v in [[1.0, 0.0], [0.3, -2.0]] {
            for op in [&fresh as &dyn LinearOperator, &cached] {
                let hv = op.apply(&v).unwrap();
                let e = expect(v);
                assert!((hv[0] - e[0]).abs() < 1e-12 && (hv[1] - e[1]).abs() < 1e-12);
            }
        }
        assert_eq!(cached.products(), 2);
        let g = cached.gradient().unwrap();
        assert!((g[0] - 2.0 * 0.7 * -1.3).abs() < 1e-12);
    }

    #[test]
    fn batch_weights_sum_the_batch_hessians() {
        let x = Tensor::<f64>::param_from_vec(vec![1.5, -0.5], &[2]).unwrap();
        let xs = x.clone();
        // L_b = (b + 1)·Σ x⁴ ⇒ H_b = 12(b + 1)·diag(x²)
        let loss = move |b: usize| {
            Ok::<_, DynamicsError>(xs.powf(4.0).sum_all().mul_scalar((b + 1) as f64))
        };
        let h = Hessian::new(vec![x], vec![0.25, 0.75], loss).unwrap();
        let hv = h.apply(&[1.0, 1.0]).unwrap();
        let w = 0.25 * 12.0 + 0.75 * 24.0;
        assert!((hv[0] - w * 2.25).abs() < 1e-9 && (hv[1] - w * 0.25).abs() < 1e-9);
    }

    #[test]
    fn a_transformer_hessian_is_symmetric_and_matches_finite_differences() {
        use saturn_layers::{ForwardCtx, Module, ResidualScheme, Seq2SeqBatch};
        use saturn_tensor::ndarray::Array2;

        let model = crate::dependency::tests::encoder(ResidualScheme::PostLn, 1);
        let src = Array2::from_shape_fn((2, 4), |(b, t)| (b + 3 * t + 1) % 11);
        let tgt = Array2::from_shape_fn((2, 3), |(b, t)| (2 * b + t + 2) % 11);
        let out = Array2::from_shape_fn((2, 3), |(b, t)| (b + 5 * t + 4) % 11);
        let (sm, tm) = (Array2::from_elem((2, 4), true), Array2::from_elem((2, 3), true));
        let batch = Seq2SeqBatch {
            src: src.view(),
            src_mask: sm.view(),
            tgt_in: tgt.view(),
            tgt_mask: tm.view(),
        };
        let params = model.parameters();
        let loss = |_| model.loss(&batch, out.view(), &mut ForwardCtx::eval());
        let h = Hessian::cached(params.clone(), vec![1.0], loss).unwrap();
        let n = h.dim();
        let mut rng = <rand_pcg::Pcg64 as rand::SeedableRng>::seed_from_u64(4);
        let u = crate::vector::gaussian(n, &mut rng);
        let v = crate::vector::gaussian(n, &mut rng);
        let (hu, hv) = (h.apply(&u).unwrap(), h.apply(&v).unwrap());
        let (a, b) = (crate::vector::dot(&u, &hv), crate::vector::dot(&v, &hu));
        assert!((a - b).abs() < 1e-9 * a.abs().max(1.0), "uᵀHv = {a}, vᵀHu = {b}");
        // H·v ≈ (∇L(θ + εv) − ∇L(θ − εv)) / 2ε
        let eps = 1e-5;
        let shifted_gradient = |c: f64| {
            for (p, d) in params.iter().zip(unflatten(&v, &params).unwrap()) {
                let moved = p.to_array() + &(d.to_array() * c);
                p.set_data(moved).unwrap();
            }
            let g = Hessian::new(params.clone(), vec![1.0], loss).unwrap().gradient().unwrap();
            for (p, d) in params.iter().zip(unflatten(&v, &params).unwrap()) {
                let back = p.to_array() - &(d.to_array() * c);
                p.set_data(back).unwrap();
            }
            g
        };
        let (plus, minus) = (shifted_gradient(eps), shifted_gradient(-eps));
        let err: f64 = hv
            .iter()
            .zip(plus.iter().zip(&minus))
            .map(|(x, (p, m))| (x - (p - m) / (2.0 * eps)).powi(2))
            .sum::<f64>()
            .sqrt();
        assert!(err < 1e-5 * crate::vector::norm(&hv), "‖Hv − FD‖ = {err}");
    }

    #[test]
    fn flatten_and_unflatten_are_inverse() {
        let a = Tensor::<f32>::from_vec(vec![1.0, 2.0, 3.0, 4.0, 5.0, 6.0], &[2, 3]).unwrap();
        let b = Tensor::<f32>::from_vec(vec![7.0], &[1]).unwrap();
        let t = a.transpose(0, 1).unwrap();
        let flat = flatten(&[t.clone(), b.clone()]);
        assert_eq!(flat, vec![1.0, 4.0, 2.0, 5.0, 3.0, 6.0, 7.0]);
        let back = unflatten(&flat, &[t.clone(), b]).unwrap();
        assert_eq!(back[0].to_vec(), t.to_vec());
        assert!(unflatten(&flat[2..], &[t]).is_err());
    }
}
