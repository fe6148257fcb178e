//! softmax(x)ᵢ = e^(xᵢ − m) / Σⱼ e^(xⱼ − m) and log_softmax(x)ᵢ = xᵢ − m − ln Σⱼ e^(xⱼ − m),
//! along one axis, with m = maxⱼ xⱼ subtracted first so that no exponential overflows
//! (logits of 10⁴ stay finite). −∞ entries (masked positions) get probability 0. The
//! exponential is [`Float::exp_fast`] (in `f32` within 1 ulp and vectorized; libm in `f64`).
//!
//! Backward: softmax: dx = y ⊙ (g − Σ g⊙y); log_softmax: dx = g − e^y ⊙ Σ g. Both are written
//! with the output y, so they differentiate again; along the last axis with recording off,
//! softmax's is one fused pass per row (as masked_softmax's).
//!
//! `masked_softmax(blocked, s)` is attention's softmax(s·x + M) along the last axis, M = −∞ where
//! `blocked` is true, in one pass (it replaces `mul_scalar(s)`, `masked_fill(−∞)` and `softmax`,
//! three passes and three allocations, the mask on the general broadcasting path). Backward:
//! dx = s·y ⊙ (g − Σ g⊙y), 0 at blocked positions; fused into one pass per row when recording
//! is off, in differentiable operations under `create_graph`.

use ndarray::{ArrayD, Axis, IxDyn, Zip};

use super::layout::standard_copy;
use super::{lanes, normalize_axis};
use crate::tensor::Data;
use crate::{Float, Result, Tensor, TensorError, is_grad_enabled, parallel};

/// The row maxima along `ax`, kept as a size-1 axis.
fn row_max<T: Float>(x: &Data<T>, ax: usize) -> ArrayD<T> {
    x.fold_axis(Axis(ax), T::neg_infinity(), |&m, &v| if v > m || v.is_nan() { v } else { m })
        .insert_axis(Axis(ax))
}

impl<T: Float> Tensor<T> {
    /// Softmax along `axis`.
    pub fn softmax(&self, axis: isize) -> Result<Tensor<T>> {
        let x = self.data();
        let ax = normalize_axis("softmax", axis, x.ndim())?;
        let e = if ax + 1 == x.ndim() {
            // along the last axis: the row kernel of masked_softmax, unmasked
            let mut e = standard_copy(x.view());
            let d = x.shape()[ax];
            masked_softmax_rows(e.as_slice_mut().expect("standard layout"), d, &[], T::one());
            e
        } else {
            let m = row_max(&x, ax);
            let mut e = x.to_owned();
            let floor = exp_floor::<T>();
            Zip::from(&mut e).and_broadcast(&m).for_each(|v, &m| *v = exp_or_zero(*v - m, floor));
            let s = e.sum_axis(Axis(ax)).insert_axis(Axis(ax));
            e /= &s;
            e
        };
        let last = ax + 1 == x.ndim();
        Ok(Tensor::from_op(e.into_shared(), "softmax", &[self], move |a| {
            let y = a.output;
            let d = y.shape()[ax];
            if last && !is_grad_enabled() && a.grad.shape() == y.shape() && d > 0 {
                return Ok(vec![Some(softmax_backward_rows(y, a.grad, d, T::one()))]);
            }
            let inner = a.grad.mul(y)?.sum_axis(ax as isize, true)?;
            Ok(vec![Some(y.mul(&a.grad.sub(&inner)?)?)])
        }))
    }

    /// log(softmax) along `axis`, computed directly (log-sum-exp) rather than as log of a
    /// softmax, so very negative log-probabilities do not round to −∞.
    pub fn log_softmax(&self, axis: isize) -> Result<Tensor<T>> {
        let x = self.data();
        let ax = normalize_axis("log_softmax", axis, x.ndim())?;
        let m = row_max(&x, ax);
        let mut shifted = x.to_owned();
        Zip::from(&mut shifted).and_broadcast(&m).for_each(|v, &m| *v -= m);
        let lse = shifted.mapv(T::exp_fast).sum_axis(Axis(ax)).mapv(T::ln).insert_axis(Axis(ax));
        shifted -= &lse;
        Ok(Tensor::from_op(shifted.into_shared(), "log_softmax", &[self], move |a| {
            let total = a.grad.sum_axis(ax as isize, true)?;
            Ok(vec![Some(a.grad.sub(&a.output.exp().mul(&total)?)?)])
        }))
    }
}

/// Replaces `row` by softmax(s·row) with the positions where `blocked[j]` is true set to 0; a
/// row blocked everywhere becomes NaN, as the softmax of a row of −∞ does, and so does a row
/// holding a NaN. Every step is a plain slice loop (the maximum and the sum in `lanes`, the
/// exponential [`Float::exp_fast`]), so the row vectorizes.
/// `floor` is [`exp_floor`], passed in so that it is computed once per call, not per row.
#[inline(always)]
fn masked_softmax_row<T: Float>(row: &mut [T], blocked: Option<&[bool]>, s: T, floor: T) {
    match blocked {
        Some(blocked) => row
            .iter_mut()
            .zip(blocked)
            .for_each(|(v, &b)| *v = if b { T::neg_infinity() } else { s * *v }),
        None => row.iter_mut().for_each(|v| *v = s * *v),
    }
    // a NaN is skipped by the maximum but makes its e^(x − m), the total and so every entry NaN
    let m = lanes::max(row);
    row.iter_mut().for_each(|v| *v = exp_or_zero(*v - m, floor));
    let total = lanes::sum(row);
    row.iter_mut().for_each(|v| *v /= total);
}

/// dx = s·y ⊙ (g − Σ g⊙y) for rows of length `d > 0` along the last axis, as a constant, row by
/// row in parallel parts: the first-order rule of `softmax` (s = 1) and `masked_softmax`. `y` is
/// an output of either (made in standard layout).
fn softmax_backward_rows<T: Float>(y: &Tensor<T>, g: &Tensor<T>, d: usize, s: T) -> Tensor<T> {
    let mut dx = standard_copy(g.data().view());
    let yd = y.data();
    let ys = yd.as_slice().expect("made in standard layout");
    let dxs = dx.as_slice_mut().expect("standard layout");
    parallel::for_each_part(dxs, d, |first, part| {
        for (g, y) in part.chunks_exact_mut(d).zip(ys[first * d..].chunks_exact(d)) {
            softmax_backward_row(g, y, s);
        }
    });
    Tensor::constant(dx)
}

/// g ← s·y ⊙ (g − Σ g⊙y) for one row: the softmax's first-order rule, in place.
#[inline(always)]
pub(super) fn softmax_backward_row<T: Float>(g: &mut [T], y: &[T], s: T) {
    let dot = lanes::dot(g, y);
    for (g, &y) in g.iter_mut().zip(y) {
        *g = s * y * (*g - dot);
    }
}

/// One above the ln of the smallest normal number of `T` (≈ −86.3 in `f32`, ≈ −707.4 in
/// `f64`): the smallest argument [`exp_or_zero`] exponentiates. Its e^z is ≈ e times the
/// smallest normal, so it is normal itself; at the bare ln the rounded argument's e^z lands just
/// below the smallest normal in `f32` (1.1754907·10⁻³⁸ < 1.1754944·10⁻³⁸) and every masked entry
/// paid the subnormal assist that the floor exists to avoid.
#[inline(always)]
pub(super) fn exp_floor<T: Float>() -> T {
    T::min_positive_value().ln() + T::one()
}

/// e^z, or 0 when e^z would be subnormal (z < `floor`, see [`exp_floor`]). The exponential's
/// argument is raised to `floor` first: a subnormal intermediate costs a microcode assist of
/// ≈ 100 cycles per element on x86, and every masked entry (z = −∞) would take one — that made
/// the causal softmax ≈ 10× slower than its arithmetic. In a softmax the flushed values are
/// below 4·10⁻³⁸ of the row's largest term, which is 1. NaN stays NaN.
#[inline(always)]
pub(super) fn exp_or_zero<T: Float>(z: T, floor: T) -> T {
    let e = (if z < floor { floor } else { z }).exp_fast();
    if z < floor { T::zero() } else { e }
}

/// [`masked_softmax_row`] over the rows of length `d` of `y`, row i blocked by `blocked[i]`.
#[inline(always)]
fn masked_softmax_rows_generic<T: Float>(y: &mut [T], d: usize, blocked: &[&[bool]], s: T) {
    let floor = exp_floor::<T>();
    if blocked.is_empty() {
        y.chunks_exact_mut(d).for_each(|row| masked_softmax_row(row, None, s, floor));
    } else {
        for (row, b) in y.chunks_exact_mut(d).zip(blocked) {
            masked_softmax_row(row, Some(b), s, floor);
        }
    }
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
fn masked_softmax_rows_avx2<T: Float>(y: &mut [T], d: usize, blocked: &[&[bool]], s: T) {
    masked_softmax_rows_generic(y, d, blocked, s)
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f")]
fn masked_softmax_rows_avx512<T: Float>(y: &mut [T], d: usize, blocked: &[&[bool]], s: T) {
    masked_softmax_rows_generic(y, d, blocked, s)
}

/// Softmax of every row of length `d` of `y`, in place, scaled by `s`, row i masked by
/// `blocked[i]` (no mask when `blocked` is empty); built for the CPU's widest vectors (runtime
/// detection, as in `simd_math`). The kernels compute the same operations in the same order, so
/// the bits do not depend on the vector width.
/// Large inputs are split into parts of whole rows over the thread count
/// ([`parallel::for_each_part`]): the same bits on any number of threads.
pub(super) fn masked_softmax_rows<T: Float>(y: &mut [T], d: usize, blocked: &[&[bool]], s: T) {
    if d == 0 {
        return;
    }
    parallel::for_each_part(y, d, |first, part| {
        let rows = if blocked.is_empty() { blocked } else { &blocked[first..] };
        masked_softmax_rows_dispatched(part, d, rows, s)
    });
}

pub(super) fn masked_softmax_rows_dispatched<T: Float>(
    y: &mut [T],
    d: usize,
    blocked: &[&[bool]],
    s: T,
) {
    #[cfg(target_arch = "x86_64")]
    {
        if std::arch::is_x86_feature_detected!("avx512f") {
            // SAFETY: the CPU supports AVX-512F (checked just above)
            return unsafe { masked_softmax_rows_avx512(y, d, blocked, s) };
        }
        if std::arch::is_x86_feature_detected!("avx2") && std::arch::is_x86_feature_detected!("fma")
        {
            // SAFETY: the CPU supports AVX2 and FMA (checked just above)
            return unsafe { masked_softmax_rows_avx2(y, d, blocked, s) };
        }
    }
    masked_softmax_rows_generic(y, d, blocked, s)
}

/// The mask row of every row of an input of `shape` (rows along the last axis), as slices of
/// `mask`'s own data, for a mask in standard layout whose last axis is the rows' length and whose
/// other axes, right-aligned, either match `shape` or have size 1 (broadcast: the row repeats).
/// `None` for any other mask (the caller goes through the broadcast view).
pub(super) fn mask_rows<'m>(mask: &'m ArrayD<bool>, shape: &[usize]) -> Option<Vec<&'m [bool]>> {
    let data = mask.as_slice()?;
    let (&d, lead) = shape.split_last()?;
    let ms = mask.shape();
    if ms.len() > shape.len() || ms.last() != Some(&d) {
        return None;
    }
    let pad = shape.len() - ms.len();
    // the mask's element stride for each leading axis of `shape` (0 where broadcast or absent)
    let mut strides = vec![0usize; lead.len()];
    let mut stride = d;
    for i in (pad..lead.len()).rev() {
        let size = ms[i - pad];
        if size == lead[i] {
            strides[i] = stride;
        } else if size != 1 {
            return None;
        }
        stride *= size;
    }
    let n_rows: usize = lead.iter().product();
    let mut rows = Vec::with_capacity(n_rows);
    let (mut index, mut offset) = (vec![0usize; lead.len()], 0usize);
    for _ in 0..n_rows {
        rows.push(&data[offset..offset + d]);
        // the next row's index, last axis fastest
        for i in (0..lead.len()).rev() {
            index[i] += 1;
            offset += strides[i];
            if index[i] < lead[i] {
                break;
            }
            offset -= strides[i] * index[i];
            index[i] = 0;
        }
    }
    Some(rows)
}

impl<T: Float> Tensor<T> {
    /// softmax(scale·x + M) along the last axis, M = −∞ where `blocked` (broadcast to the shape
    /// of x, e.g. [B, 1, T, T] or [T, T] for scores [B, H, T, T]) is true: attention's masked,
    /// scaled softmax in one pass. Equals `x.mul_scalar(scale).masked_fill(blocked, −∞)?
    /// .softmax(-1)` (for scale > 0). A row blocked everywhere gives NaN, as that does.
    pub fn masked_softmax(&self, blocked: Option<&ArrayD<bool>>, scale: f64) -> Result<Tensor<T>> {
        let x = self.data();
        let shape = x.shape().to_vec();
        if shape.is_empty() {
            return Err(TensorError::invalid("masked_softmax", "needs at least one axis"));
        }
        let d = shape[shape.len() - 1];
        let mask = match blocked {
            Some(m) => {
                Some(m.broadcast(IxDyn(&shape)).ok_or_else(|| TensorError::ShapeMismatch {
                    op: "masked_softmax",
                    lhs: shape.clone(),
                    rhs: m.shape().to_vec(),
                })?)
            }
            None => None,
        };
        let s = T::cast(scale);
        let mut y = standard_copy(x.view());
        if d > 0 {
            // each row's mask as a slice of the mask's own data when it is in standard layout
            // (a [1, 1, T, T] causal mask is: its rows are found by index arithmetic), else
            // through the broadcast view's lanes, copied once when they are not contiguous
            let last = Axis(shape.len() - 1);
            let copied: Vec<Vec<bool>>;
            let rows: Vec<&[bool]> = match (&mask, blocked.and_then(|m| mask_rows(m, &shape))) {
                (None, _) => Vec::new(),
                (Some(_), Some(rows)) => rows,
                (Some(mask), None)
                    if mask.lanes(last).into_iter().all(|l| l.as_slice().is_some()) =>
                {
                    mask.lanes(last).into_iter().map(|l| l.to_slice().expect("checked")).collect()
                }
                (Some(mask), None) => {
                    copied = mask.lanes(last).into_iter().map(|l| l.to_vec()).collect();
                    copied.iter().map(Vec::as_slice).collect()
                }
            };
            masked_softmax_rows(y.as_slice_mut().expect("standard layout"), d, &rows, s);
        }
        Ok(Tensor::from_op(y.into_shared(), "masked_softmax", &[self], move |a| {
            let y = a.output;
            if !is_grad_enabled() && a.grad.shape() == y.shape() && d > 0 {
                return Ok(vec![Some(softmax_backward_rows(y, a.grad, d, s))]);
            }
            let inner = a.grad.mul(y)?.sum_axis(-1, true)?;
            Ok(vec![Some(y.mul(&a.grad.sub(&inner)?)?.mul_scalar(scale))])
        }))
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    /// The rows found by index arithmetic are the broadcast view's lanes, for causal, padding
    /// and full masks; masks it cannot serve give `None`.
    #[test]
    fn mask_rows_are_the_broadcast_lanes() {
        use ndarray::{ArrayD, Axis, Dimension, IxDyn};
        let shape = [2, 3, 4, 4];
        let pattern =
            |i: &[usize]| i.iter().enumerate().map(|(k, &v)| v * (k + 3)).sum::<usize>() % 3 == 0;
        for mshape in
            [vec![1, 1, 4, 4], vec![4, 4], vec![2, 1, 1, 4], vec![2, 3, 4, 4], vec![3, 1, 4]]
        {
            let m = ArrayD::from_shape_fn(IxDyn(&mshape), |i| pattern(i.slice()));
            let rows = super::mask_rows(&m, &shape).expect("a mask it serves");
            let view = m.broadcast(IxDyn(&shape)).unwrap();
            let lanes: Vec<Vec<bool>> =
                view.lanes(Axis(3)).into_iter().map(|l| l.to_vec()).collect();
            assert_eq!(rows.len(), lanes.len(), "{mshape:?}");
            for (r, l) in rows.iter().zip(&lanes) {
                assert_eq!(*r, l.as_slice(), "{mshape:?}");
            }
        }
        let column = ArrayD::from_elem(IxDyn(&[2, 3, 4, 1]), true);
        assert!(super::mask_rows(&column, &shape).is_none(), "a broadcast last axis");
        let transposed = ArrayD::from_elem(IxDyn(&[4, 4]), true).reversed_axes();
        assert!(super::mask_rows(&transposed, &[4, 4]).is_none(), "not in standard layout");
    }

    use ndarray::{ArrayD, IxDyn};

    use crate::check::{gradcheck, gradgradcheck};
    use crate::ops::testing::{shape, uniform};
    use crate::{Float, Tensor, grad};

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(24))]

        #[test]
        fn softmax_passes_gradcheck_and_gradgradcheck(s in shape(3, 5), seed: u64) {
            let x = uniform(&s, -2.0, 2.0, seed);
            gradcheck(|t| t[0].softmax(-1), &[x.clone()]).unwrap();
            gradcheck(|t| t[0].log_softmax(0), &[x.clone()]).unwrap();
            gradgradcheck(|t| t[0].softmax(-1), &[x.clone()]).unwrap();
            gradgradcheck(|t| t[0].log_softmax(-1), &[x]).unwrap();
        }

        #[test]
        fn softmax_rows_sum_to_one_and_ignore_a_shift(s in shape(3, 6), shift in -50.0f64..50.0, seed: u64) {
            let x = uniform(&s, -5.0, 5.0, seed);
            let y = x.softmax(-1).unwrap();
            for row in y.sum_axis(-1, false).unwrap().to_vec() {
                prop_assert!((row - 1.0).abs() < 1e-12);
            }
            let shifted = x.add_scalar(shift).softmax(-1).unwrap();
            for (a, b) in y.to_vec().iter().zip(shifted.to_vec()) {
                prop_assert!((a - b).abs() < 1e-12);
            }
            let logs = x.log_softmax(-1).unwrap().to_vec();
            for (l, p) in logs.iter().zip(y.to_vec()) {
                prop_assert!((l.exp() - p).abs() < 1e-12);
            }
        }
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(24))]

        #[test]
        fn masked_softmax_passes_gradcheck_and_gradgradcheck(s in shape(4, 5), scale in 0.1f64..3.0, bits: u64, seed: u64) {
            let x = uniform(&s, -2.0, 2.0, seed);
            let mask = random_mask(&s, bits);
            gradcheck(|t| t[0].masked_softmax(Some(&mask), scale), &[x.clone()]).unwrap();
            gradgradcheck(|t| t[0].masked_softmax(Some(&mask), scale), &[x.clone()]).unwrap();
            gradgradcheck(|t| t[0].masked_softmax(None, scale), &[x]).unwrap();
        }

        #[test]
        fn masked_softmax_matches_scale_fill_softmax(s in shape(4, 6), scale in 0.1f64..3.0, bits: u64, seed: u64) {
            let x = uniform(&s, -3.0, 3.0, seed);
            let w = uniform(&s, -1.0, 1.0, seed ^ 5).detach();
            let mask = random_mask(&s, bits);
            let y = x.masked_softmax(Some(&mask), scale).unwrap();
            let yc = x.mul_scalar(scale).masked_fill(&mask, f64::NEG_INFINITY).unwrap().softmax(-1).unwrap();
            for (p, q) in y.to_vec().iter().zip(yc.to_vec()) {
                prop_assert!((p - q).abs() < 1e-12, "forward: {p} vs {q}");
            }
            let fused = grad(&[y.mul(&w).unwrap().sum_all()], &[x.clone()], false).unwrap();
            let expected = grad(&[yc.mul(&w).unwrap().sum_all()], &[x.clone()], false).unwrap();
            let again = x.masked_softmax(Some(&mask), scale).unwrap();
            let differentiable = grad(&[again.mul(&w).unwrap().sum_all()], &[x.clone()], true).unwrap();
            for ((p, q), r) in fused[0].to_vec().iter().zip(expected[0].to_vec()).zip(differentiable[0].to_vec()) {
                prop_assert!((p - q).abs() < 1e-12, "fused: {p} vs {q}");
                prop_assert!((r - q).abs() < 1e-12, "create_graph: {r} vs {q}");
            }
        }
    }

    /// A mask broadcast along the leading axis, with the first column never blocked (no row is
    /// blocked everywhere).
    fn random_mask(s: &[usize], bits: u64) -> ArrayD<bool> {
        let mut ms = s.to_vec();
        ms[0] = 1;
        let rank = ms.len();
        ArrayD::from_shape_fn(IxDyn(&ms), |p| {
            let flat: usize = (0..rank).map(|i| p[i] * (i + 1)).sum();
            p[rank - 1] > 0 && (bits >> (flat % 64)) & 1 == 1
        })
    }

    #[test]
    fn masked_softmax_blocks_the_future_and_checks_the_mask_shape() {
        let x = Tensor::<f32>::zeros(&[2, 3, 3]);
        let causal = ArrayD::from_shape_fn(IxDyn(&[3, 3]), |p| p[1] > p[0]);
        let y = x.masked_softmax(Some(&causal), 0.5).unwrap().to_vec();
        assert_eq!(y[..9], [1.0, 0.0, 0.0, 0.5, 0.5, 0.0, 1.0 / 3.0, 1.0 / 3.0, 1.0 / 3.0]);
        assert!(x.masked_softmax(Some(&ArrayD::from_elem(IxDyn(&[2]), false)), 1.0).is_err());
        assert!(Tensor::<f32>::scalar(1.0).masked_softmax(None, 1.0).is_err());
    }

    #[test]
    fn exp_or_zero_flushes_only_what_would_be_subnormal() {
        let floor = super::exp_floor::<f32>();
        assert!((floor - (-86.336_54)).abs() < 1e-4, "{floor}");
        // the floor's own exponential, computed for every flushed entry, must not be subnormal
        assert!(floor.exp_fast().is_normal(), "{:e}", floor.exp_fast());
        assert!(super::exp_floor::<f64>().exp_fast().is_normal());
        for z in [0.0f32, -1.0, -50.0, -86.0] {
            assert_eq!(super::exp_or_zero(z, floor), z.exp_fast());
        }
        for z in [-87.0f32, -88.0, -104.0, f32::NEG_INFINITY] {
            assert_eq!(super::exp_or_zero(z, floor).to_bits(), 0);
        }
        assert!(super::exp_or_zero(f32::NAN, floor).is_nan());
    }

    #[test]
    fn huge_logits_stay_finite() {
        let x = Tensor::<f32>::from_vec(vec![1e4, -1e4, 0.0, 1e4], &[2, 2]).unwrap();
        assert!(x.softmax(-1).unwrap().to_vec().iter().all(|v| v.is_finite()));
        let ls = x.log_softmax(-1).unwrap().to_vec();
        assert!(ls.iter().all(|v| v.is_finite()));
        assert_eq!(ls[0], 0.0);
        assert_eq!(ls[1], -2e4);
    }
}
