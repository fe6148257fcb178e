//! Layer normalization over the last axis (Ba et al. 2016), as one fused operation.
//!
//! y = x̂ ⊙ γ + β, x̂ = (x − μ)·r, r = 1/√(σ² + ε), with μ and σ² the mean and biased variance
//! of each row (the last axis, of length d). Scale-invariant in x: LN(c·x) = LN(x) for c > 0
//! when ε → 0 — the property behind norm growth (Merrill et al. 2021, §4).
//!
//! Backward, with g the gradient of y and ĝ = g ⊙ γ (= g without a gain):
//!
//! dx = r·(ĝ − mean(ĝ) − x̂·mean(ĝ ⊙ x̂)),  dγ = Σ_rows g ⊙ x̂,  dβ = Σ_rows g.
//!
//! The forward pass is two passes over each row and saves nothing but its inputs (μ and r are
//! recomputed from x in the rule). Row sums are taken in 8 interleaved lanes combined in a fixed
//! order (`ops::lanes`), so the loops vectorize and results stay deterministic. The rule has two
//! paths: first order (recording off) computes
//! the three gradients above row by row in one fused pass, as constants; under `create_graph`
//! the same formulas are written with differentiable operations (mean, mul, powf, …), so second
//! derivatives are exact. The composite form this replaces took ≈ 10 operations forward and
//! ≈ 25 backward.

use ndarray::{ArrayD, IxDyn};

use super::lanes;

use crate::{Float, Result, Tensor, TensorError, is_grad_enabled, parallel};

/// Checks that an optional gain or bias has shape [d], d the last side of `x`.
pub(crate) fn check_affine<T: Float>(
    op: &'static str,
    x: &Tensor<T>,
    p: Option<&Tensor<T>>,
) -> Result<()> {
    let shape = x.shape();
    let Some(&d) = shape.last() else {
        return Err(TensorError::invalid(op, "cannot normalize a 0-dimensional tensor"));
    };
    match p {
        Some(p) if p.shape() != [d] => {
            Err(TensorError::ShapeMismatch { op, lhs: shape, rhs: p.shape() })
        }
        _ => Ok(()),
    }
}

/// μ and r = 1/√(σ² + ε) of one row (two passes: the mean, then the centred squares).
#[inline(always)]
fn row_stats<T: Float>(row: &[T], eps: T) -> (T, T) {
    let n = T::cast(row.len() as f64);
    let mu = lanes::sum(row) / n;
    let var = lanes::sum_map(row, |v| (v - mu) * (v - mu)) / n;
    (mu, (var + eps).sqrt().recip())
}

/// The values of a tensor in row-major order (a copy).
fn row_major<T: Float>(t: &Tensor<T>) -> Vec<T> {
    super::layout::row_major_copy(t.data().view())
}

impl<T: Float> Tensor<T> {
    /// Layer normalization over the last axis, with optional gain γ and bias β of shape `[d]`.
    pub fn layer_norm(
        &self,
        gamma: Option<&Tensor<T>>,
        beta: Option<&Tensor<T>>,
        eps: f64,
    ) -> Result<Tensor<T>> {
        check_affine("layer_norm", self, gamma)?;
        check_affine("layer_norm", self, beta)?;
        let shape = self.shape();
        let d = *shape.last().expect("checked: at least one axis");
        let (g, b) = (gamma.map(row_major), beta.map(row_major));
        let x = self.data();
        let x = x.as_standard_layout();
        let xs = x.as_slice().expect("standard layout");
        let mut y = Vec::with_capacity(xs.len());
        let e = T::cast(eps);
        if d > 0 {
            // rows in parallel parts (the same bits on any thread count); per row one plain
            // slice loop, vectorized, computing ((x − μ)·r)·γ + β in that order
            let dst = &mut y.spare_capacity_mut()[..xs.len()];
            parallel::for_each_wide_part(
                dst,
                d,
                1,
                #[inline(always)]
                |first, part| {
                    let rows = xs[first * d..].chunks_exact(d);
                    for (xr, out) in rows.zip(part.chunks_exact_mut(d)) {
                        let (mu, r) = row_stats(xr, e);
                        let xo = out.iter_mut().zip(xr);
                        match (&g, &b) {
                            (Some(g), Some(b)) => {
                                for ((o, &x), (&g, &b)) in xo.zip(g.iter().zip(b)) {
                                    o.write((x - mu) * r * g + b);
                                }
                            }
                            (Some(g), None) => {
                                for ((o, &x), &g) in xo.zip(g) {
                                    o.write((x - mu) * r * g);
                                }
                            }
                            (None, Some(b)) => {
                                for ((o, &x), &b) in xo.zip(b) {
                                    o.write((x - mu) * r + b);
                                }
                            }
                            (None, None) => {
                                for (o, &x) in xo {
                                    o.write((x - mu) * r);
                                }
                            }
                        }
                    }
                },
            );
            // SAFETY: the parts cover all rows and every element of each row was written
            unsafe { y.set_len(xs.len()) };
        }
        let y = ArrayD::from_shape_vec(IxDyn(&shape), y).expect("the shape of x");
        let mut inputs = vec![self];
        inputs.extend(gamma);
        inputs.extend(beta);
        let (has_gamma, has_beta) = (gamma.is_some(), beta.is_some());
        Ok(Tensor::from_op(y.into_shared(), "layer_norm", &inputs, move |a| {
            let gamma = has_gamma.then(|| &a.inputs[1]);
            let grads = if !is_grad_enabled() && a.grad.shape() == a.inputs[0].shape() {
                layer_norm_backward_fused(&a.inputs[0], gamma, a.grad, eps)
            } else {
                layer_norm_backward(&a.inputs[0], gamma, a.grad, eps)?
            };
            let [dx, dg, db] = grads;
            let mut out = vec![Some(dx)];
            if has_gamma {
                out.push(Some(dg));
            }
            if has_beta {
                out.push(Some(db));
            }
            Ok(out)
        }))
    }
}

/// [dx, dγ, dβ] in differentiable operations (the `create_graph` path). x̂ is the fused layer
/// norm itself and r = 1/√(σ² + ε) the fused [`Tensor::row_inv_std`], so a double backward
/// runs through their fused first-order rules instead of a chain of ≈ 10 elementwise
/// operations; both rules are differentiable again, so every order follows.
fn layer_norm_backward<T: Float>(
    x: &Tensor<T>,
    gamma: Option<&Tensor<T>>,
    g: &Tensor<T>,
    eps: f64,
) -> Result<[Tensor<T>; 3]> {
    let d = *x.shape().last().expect("at least one axis");
    let xhat = x.layer_norm(None, None, eps)?;
    let r = x.row_inv_std(eps)?;
    let gh = match gamma {
        Some(gm) => g.mul(gm)?,
        None => g.clone(),
    };
    let inner =
        gh.sub(&gh.mean_axis(-1, true)?)?.sub(&xhat.mul(&gh.mul(&xhat)?.mean_axis(-1, true)?)?)?;
    let dx = r.mul(&inner)?;
    let dg = g.mul(&xhat)?.sum_to(&[d])?;
    let db = g.sum_to(&[d])?;
    Ok([dx, dg, db])
}

impl<T: Float> Tensor<T> {
    /// r = 1/√(σ² + ε) of every row (the last axis, of length d), shape [..., 1]: the factor
    /// layer norm scales the centred row by. Backward: ∂r/∂xⱼ = −r³·(xⱼ − μ)/d = −(r²/d)·x̂ⱼ,
    /// written with the fused layer norm (x̂) and the output r, so every derivative order
    /// follows. The `create_graph` rule of [`Tensor::layer_norm`] is built on it.
    pub(crate) fn row_inv_std(&self, eps: f64) -> Result<Tensor<T>> {
        check_affine::<T>("row_inv_std", self, None)?;
        let mut shape = self.shape();
        let d = *shape.last().expect("checked: at least one axis");
        *shape.last_mut().expect("at least one axis") = 1;
        let rows: usize = shape.iter().product();
        let r = if d == 0 {
            vec![T::nan(); rows]
        } else {
            let xs = row_major(self);
            let e = T::cast(eps);
            let mut r = vec![T::zero(); rows];
            parallel::for_each_wide_part(&mut r, 1, d, |first, part| {
                for (ri, xr) in part.iter_mut().zip(xs[first * d..].chunks_exact(d)) {
                    *ri = row_stats(xr, e).1;
                }
            });
            r
        };
        let r = ArrayD::from_shape_vec(IxDyn(&shape), r).expect("one value per row");
        Ok(Tensor::from_op(r.into_shared(), "row_inv_std", &[self], move |a| {
            let x = &a.inputs[0];
            let r = a.output;
            let coef = a.grad.mul(&r.mul(r)?)?.mul_scalar(-1.0 / d as f64);
            Ok(vec![Some(x.layer_norm(None, None, eps)?.mul(&coef)?)])
        }))
    }
}

/// Rows per block of the first-order rule: each block sums its rows' dγ and dβ terms, and the
/// blocks' sums are added in block order. The blocks do not depend on the thread count, so
/// neither do the bits.
const LN_BLOCK_ROWS: usize = 64;

/// [dx, dγ, dβ] in one pass over the rows, as constants (the first-order path).
///
/// Each block of [`LN_BLOCK_ROWS`] rows is one work item ([`parallel::map_items_of_work`]):
/// per row μ and r, then x̂, ĝ = g ⊙ γ, mean(ĝ) and mean(ĝ ⊙ x̂), the row of dx, and the row's
/// g ⊙ x̂ and g added to the block's column sums. x and g are read from memory once.
fn layer_norm_backward_fused<T: Float>(
    x: &Tensor<T>,
    gamma: Option<&Tensor<T>>,
    g: &Tensor<T>,
    eps: f64,
) -> [Tensor<T>; 3] {
    let shape = x.shape();
    let d = *shape.last().expect("at least one axis");
    let (x, g) = (x.data(), g.data());
    let (x, g) = (x.as_standard_layout(), g.as_standard_layout());
    let (xs, gs) = (x.as_slice().expect("standard layout"), g.as_slice().expect("standard layout"));
    let gm = gamma.map(row_major);
    let mut dx: Vec<T> = Vec::with_capacity(xs.len());
    let (mut dg, mut db) = (vec![T::zero(); d], vec![T::zero(); d]);
    let e = T::cast(eps);
    let n = T::cast(d as f64);
    if d > 0 {
        let block = LN_BLOCK_ROWS * d;
        let items: Vec<_> =
            dx.spare_capacity_mut()[..xs.len()].chunks_mut(block).enumerate().collect();
        let gm = gm.as_deref();
        let sums = parallel::map_items_of_work(items, 2 * xs.len(), |(b, dxb)| {
            crate::simd_math::widest(
                #[inline(always)]
                || {
                    let (xb, gb) = (&xs[b * block..][..dxb.len()], &gs[b * block..][..dxb.len()]);
                    let (mut dgb, mut dbb) = (vec![T::zero(); d], vec![T::zero(); d]);
                    let mut gh = vec![T::zero(); d];
                    let mut xhat = vec![T::zero(); d];
                    let rows = xb.chunks_exact(d).zip(gb.chunks_exact(d));
                    for ((xr, gr), dxr) in rows.zip(dxb.chunks_exact_mut(d)) {
                        let (mu, r) = row_stats(xr, e);
                        for j in 0..d {
                            xhat[j] = (xr[j] - mu) * r;
                        }
                        match gm {
                            Some(gm) => (0..d).for_each(|j| gh[j] = gr[j] * gm[j]),
                            None => gh.copy_from_slice(gr),
                        }
                        let mean_gh = lanes::sum(&gh) / n;
                        let mean_gh_xhat = lanes::dot(&gh, &xhat) / n;
                        for j in 0..d {
                            dxr[j].write(r * (gh[j] - mean_gh - xhat[j] * mean_gh_xhat));
                            dgb[j] += gr[j] * xhat[j];
                            dbb[j] += gr[j];
                        }
                    }
                    (dgb, dbb)
                },
            )
        });
        // SAFETY: the blocks cover all rows and every element of each row was written
        unsafe { dx.set_len(xs.len()) };
        for (dgb, dbb) in sums {
            for j in 0..d {
                dg[j] += dgb[j];
                db[j] += dbb[j];
            }
        }
    }
    let constant = |v: Vec<T>, s: &[usize]| {
        Tensor::constant(ArrayD::from_shape_vec(IxDyn(s), v).expect("matching length"))
    };
    [constant(dx, &shape), constant(dg, &[d]), constant(db, &[d])]
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use crate::check::{gradcheck, gradgradcheck};
    use crate::ops::testing::{shape, uniform};
    use crate::{Result, Tensor, grad};

    /// Layer norm and the masked softmax (forward and fused backward: dx, dγ, dβ) give the
    /// same bits on 1, 2 and 3 threads, on inputs large enough to be split into parts.
    #[test]
    fn row_kernels_are_bitwise_the_same_on_any_thread_count() {
        let (rows, d) = (crate::parallel::MIN_PART * 2 / 64 + 3, 64);
        let x = uniform(&[rows, d], -3.0, 3.0, 7).to_vec().iter().map(|&v| v as f32).collect();
        let x = Tensor::<f32>::param_from_vec(x, &[rows, d]).unwrap();
        let g =
            Tensor::<f32>::param_from_vec((0..d).map(|j| 1.0 + j as f32 / 64.0).collect(), &[d])
                .unwrap();
        let b = Tensor::<f32>::param_from_vec(vec![0.25; d], &[d]).unwrap();
        let mask = ndarray::ArrayD::from_shape_fn(ndarray::IxDyn(&[rows, d]), |i| i[1] > i[0] % d);
        let run = || {
            let y = x.layer_norm(Some(&g), Some(&b), 1e-5).unwrap();
            let p = x.masked_softmax(Some(&mask), 0.125).unwrap();
            let loss = y.mul(&p).unwrap().sum_all();
            let grads = grad(&[loss], &[x.clone(), g.clone(), b.clone()], false).unwrap();
            let grads: Vec<Vec<f32>> = grads.iter().map(|t| t.to_vec()).collect();
            (y.to_vec(), p.to_vec(), grads)
        };
        let one = crate::parallel::with_threads(1, run);
        for threads in [2, 3] {
            let many = crate::parallel::with_threads(threads, run);
            assert!(one == many, "{threads} threads changed the bits");
        }
    }

    /// The composite form the fused operation replaces.
    fn composite(
        x: &Tensor<f64>,
        g: &Tensor<f64>,
        b: &Tensor<f64>,
        eps: f64,
    ) -> Result<Tensor<f64>> {
        let centered = x.sub(&x.mean_axis(-1, true)?)?;
        let var = centered.mul(&centered)?.mean_axis(-1, true)?;
        centered.mul(&var.add_scalar(eps).powf(-0.5))?.mul(g)?.add(b)
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(16))]

        #[test]
        fn fused_layer_norm_passes_gradcheck_and_gradgradcheck(s in shape(3, 5), seed: u64) {
            let d = *s.last().unwrap();
            let x = uniform(&s, -2.0, 2.0, seed);
            let g = uniform(&[d], 0.5, 1.5, seed ^ 1);
            let b = uniform(&[d], -0.5, 0.5, seed ^ 2);
            gradcheck(|t| t[0].layer_norm(Some(&t[1]), None, 1e-5), &[x.clone(), g.clone()]).unwrap();
            gradgradcheck(|t| t[0].layer_norm(Some(&t[1]), None, 1e-5), &[x.clone(), g.clone()]).unwrap();
            gradcheck(|t| t[0].layer_norm(None, Some(&t[1]), 1e-5), &[x.clone(), b.clone()]).unwrap();
            gradgradcheck(|t| t[0].layer_norm(None, Some(&t[1]), 1e-5), &[x.clone(), b]).unwrap();
            gradgradcheck(|t| t[0].layer_norm(None, None, 1e-5), &[x]).unwrap();
        }

        #[test]
        fn row_inv_std_passes_gradcheck_and_gradgradcheck(s in shape(3, 5), seed: u64) {
            let x = uniform(&s, -2.0, 2.0, seed);
            let r = x.row_inv_std(1e-5).unwrap();
            let var = x.var_axis(-1, false, true).unwrap();
            for (p, v) in r.to_vec().iter().zip(var.to_vec()) {
                prop_assert!((p - 1.0 / (v + 1e-5).sqrt()).abs() < 1e-9 * p.abs().max(1.0));
            }
            gradcheck(|t| t[0].row_inv_std(1e-5), &[x.clone()]).unwrap();
            gradgradcheck(|t| t[0].row_inv_std(1e-5), &[x]).unwrap();
        }

        /// Third order: the second derivative of the `create_graph` rule (built on the fused
        /// x̂ and r) against finite differences of a first derivative.
        #[test]
        fn layer_norm_third_derivatives_match_finite_differences(s in shape(2, 4), seed: u64) {
            let d = *s.last().unwrap();
            let x = uniform(&s, -2.0, 2.0, seed);
            let g = uniform(&[d], 0.5, 1.5, seed ^ 1);
            let w = uniform(&s, -1.0, 1.0, seed ^ 3).detach();
            // ∂/∂x of a scalar whose first derivative is not linear in x; the checker's
            // finite-difference points come as constants under no_grad, so those get a leaf
            let first = |t: &[Tensor<f64>]| -> Result<Tensor<f64>> {
                let _recording = crate::GradModeGuard::set(true);
                let x = if t[0].requires_grad() { t[0].clone() } else { t[0].detach_param() };
                let y = x.layer_norm(Some(&t[1]), None, 1e-5)?.mul(&w)?.mul(&x)?.sum_all();
                Ok(grad(&[y], &[x], true)?.remove(0))
            };
            gradgradcheck(first, &[x, g]).unwrap();
        }

        #[test]
        fn fused_layer_norm_matches_its_composite_form(s in shape(3, 6), seed: u64) {
            let d = *s.last().unwrap();
            let x = uniform(&s, -3.0, 3.0, seed);
            let g = uniform(&[d], 0.5, 1.5, seed ^ 1);
            let b = uniform(&[d], -0.5, 0.5, seed ^ 2);
            let w = uniform(&s, -1.0, 1.0, seed ^ 3).detach();
            let y = x.layer_norm(Some(&g), Some(&b), 1e-5).unwrap();
            let yc = composite(&x, &g, &b, 1e-5).unwrap();
            for (p, q) in y.to_vec().iter().zip(yc.to_vec()) {
                prop_assert!((p - q).abs() < 1e-12, "forward: {p} vs {q}");
            }
            let leaves = [x.clone(), g.clone(), b.clone()];
            let fused = grad(&[y.mul(&w).unwrap().sum_all()], &leaves, false).unwrap();
            let reference = grad(&[yc.mul(&w).unwrap().sum_all()], &leaves, false).unwrap();
            let y2 = x.layer_norm(Some(&g), Some(&b), 1e-5).unwrap();
            let differentiable = grad(&[y2.mul(&w).unwrap().sum_all()], &leaves, true).unwrap();
            for i in 0..3 {
                let r = reference[i].to_vec();
                for ((p, q), c) in fused[i].to_vec().iter().zip(&r).zip(differentiable[i].to_vec()) {
                    prop_assert!((p - q).abs() < 1e-12, "fused grad {i}: {p} vs {q}");
                    prop_assert!((c - q).abs() < 1e-12, "create_graph grad {i}: {c} vs {q}");
                }
            }
        }
    }

    /// The first-order rule sums dγ and dβ over blocks of 64 rows: with several blocks and a
    /// partial last one, its gradients still match the composite form's.
    #[test]
    fn fused_gradients_over_several_row_blocks_match_the_composite_form() {
        let s = [2, 70, 6];
        let x = uniform(&s, -3.0, 3.0, 11);
        let g = uniform(&[6], 0.5, 1.5, 12);
        let b = uniform(&[6], -0.5, 0.5, 13);
        let w = uniform(&s, -1.0, 1.0, 14).detach();
        let leaves = [x.clone(), g.clone(), b.clone()];
        let y = x.layer_norm(Some(&g), Some(&b), 1e-5).unwrap();
        let fused = grad(&[y.mul(&w).unwrap().sum_all()], &leaves, false).unwrap();
        let yc = composite(&x, &g, &b, 1e-5).unwrap();
        let reference = grad(&[yc.mul(&w).unwrap().sum_all()], &leaves, false).unwrap();
        for (i, (f, r)) in fused.iter().zip(&reference).enumerate() {
            for (p, q) in f.to_vec().iter().zip(r.to_vec()) {
                assert!((p - q).abs() < 1e-11, "grad {i}: {p} vs {q}");
            }
        }
    }
}
