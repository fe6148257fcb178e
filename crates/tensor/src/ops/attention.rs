//! Multi-head scaled dot-product attention (Vaswani et al. 2017, §3.2) as one operation:
//!
//! y[b, :, head h] = P_bh·V_bh,  P_bh = softmax(s·Q_bh·K_bhᵀ + M),
//!
//! with Q_bh the columns [h·d_h, (h+1)·d_h) of q[b] ([B, T_q, d]; torch_io's head layout), K_bh
//! and V_bh the same columns of k and v ([B, T_k, d]), s the score scale and M = −∞ where the
//! mask blocks a key. Composed of `matmul`, `masked_softmax` and the head `permute`s it is the
//! same arithmetic; fused, each head's scores are formed, normalized and multiplied by V while
//! they are in cache, and the heads are read from and written to their columns in place (no
//! [B, H, T, d_h] copies). The probabilities P [B, H, T_q, T_k] are kept for the backward pass
//! and returned as a node of q and k of their own (rule: dS from dP, then dQ and dK as below), so
//! a caller may differentiate through them.
//!
//! Backward, with G_bh the columns of the gradient of y and dS the gradient of the scores:
//!
//! dV_bh = P_bhᵀ·G_bh,  dP = G_bh·V_bhᵀ,  dS = s·P ⊙ (dP − rowsum(dP ⊙ P)),
//! dQ_bh = dS·K_bh,  dK_bh = dSᵀ·Q_bh.
//!
//! First order (recording off) runs these per head in one pass with the saved P; each GEMM is
//! the call the composed form makes (dK_bhᵀ = Q_bhᵀ·dS, then placed), so outputs and gradients
//! equal the composed form's **bit for bit**. Under `create_graph` the rule is written with
//! differentiable operations on P's node (not recomputed), so HVPs go through it and see P
//! depend on q and k.

use ndarray::{ArrayD, ArrayView2, ArrayView3, CowArray, Ix3, IxDyn, s};

use super::softmax::{mask_rows, masked_softmax_rows_dispatched, softmax_backward_row};
use crate::blas::{MACS_PER_ELEMENT_OF_WORK, OpenBlasOnOneThread, product_into_block};
use crate::{Float, Result, Tensor, TensorError, is_grad_enabled, parallel};

/// The sizes of one attention call.
#[derive(Debug, Clone, Copy)]
struct Heads {
    batch: usize,
    heads: usize,
    tq: usize,
    tk: usize,
    /// Model width d = heads · d_h.
    d: usize,
    dh: usize,
}

impl Heads {
    fn of(q: &[usize], k: &[usize], v: &[usize], heads: usize) -> Result<Heads> {
        let bad = |why: String| Err(TensorError::invalid("attention", why));
        if q.len() != 3 || k.len() != 3 || v.len() != 3 {
            return bad(format!("needs [B, T, d] q, k and v, got {q:?}, {k:?} and {v:?}"));
        }
        if k != v || q[0] != k[0] || q[2] != k[2] {
            return bad(format!(
                "q {q:?}, k {k:?} and v {v:?} need one B and d, and k and v one shape"
            ));
        }
        if heads == 0 || !q[2].is_multiple_of(heads) {
            return bad(format!("d = {} does not split into {heads} heads", q[2]));
        }
        let (batch, tq, tk, d) = (q[0], q[1], k[1], q[2]);
        Ok(Heads { batch, heads, tq, tk, d, dh: d / heads })
    }

    fn count(&self) -> usize {
        self.batch * self.heads
    }

    fn probs_shape(&self) -> [usize; 4] {
        [self.batch, self.heads, self.tq, self.tk]
    }

    /// Head i's (= b·H + h) columns of a [B, T, d] view.
    fn columns<'a, T>(&self, x: &ArrayView3<'a, T>, i: usize) -> ArrayView2<'a, T> {
        let (b, h) = (i / self.heads, i % self.heads);
        (*x).slice_move(s![b, .., h * self.dh..(h + 1) * self.dh])
    }

    /// The offset of head i's first element in a standard [B, T, d] array of T rows.
    fn offset(&self, i: usize, t: usize) -> usize {
        (i / self.heads) * t * self.d + (i % self.heads) * self.dh
    }

    /// Multiply-adds per score of one head's products, in the units of
    /// [`MACS_PER_ELEMENT_OF_WORK`]: how the batched products decide to use threads.
    fn work(&self) -> usize {
        self.dh.div_ceil(MACS_PER_ELEMENT_OF_WORK).max(1)
    }
}

/// A pointer that parallel parts may share: each writes its own heads' columns only.
#[derive(Clone, Copy)]
struct Shared<T>(*mut T);
// SAFETY: the parts write disjoint blocks (one head's columns each) and nothing reads them until
// all parts are done
unsafe impl<T> Send for Shared<T> {}
// SAFETY: as for Send: shared only to hand each part its own disjoint blocks
unsafe impl<T> Sync for Shared<T> {}

impl<T> Shared<T> {
    fn at(self, offset: usize) -> *mut T {
        // SAFETY: callers pass offsets of a head's block inside the array this points to
        unsafe { self.0.add(offset) }
    }
}

/// Calls `f(i, unit_i, one_thread)` for every head i, the heads split over Saturn's threads by
/// the same rule as batched products ([`crate::blas::gemm`]), each head's products then on one
/// thread.
fn for_each_head<E: Send>(
    out: &mut [E],
    unit: usize,
    work: usize,
    f: impl Fn(usize, &mut [E], bool) + Sync,
) {
    if parallel::parts(out.len(), unit, work, parallel::threads()) > 1 {
        let _one_thread = OpenBlasOnOneThread::new();
        parallel::for_each_part_of_work(out, unit, work, |first, part| {
            for (j, unit_j) in part.chunks_exact_mut(unit).enumerate() {
                f(first + j, unit_j, true);
            }
        });
    } else {
        for (i, unit_i) in out.chunks_exact_mut(unit).enumerate() {
            f(i, unit_i, false);
        }
    }
}

/// Each row's mask, [`mask_rows`] of a mask broadcast to the probabilities' shape (copied to
/// that shape when it is not one `mask_rows` reads in place); empty without a mask.
fn with_mask_rows<R>(
    blocked: Option<&ArrayD<bool>>,
    shape: [usize; 4],
    f: impl FnOnce(&[&[bool]]) -> R,
) -> Result<R> {
    let Some(mask) = blocked else { return Ok(f(&[])) };
    let view = mask.broadcast(IxDyn(&shape)).ok_or_else(|| TensorError::ShapeMismatch {
        op: "attention",
        lhs: shape.to_vec(),
        rhs: mask.shape().to_vec(),
    })?;
    if let Some(rows) = mask_rows(mask, &shape) {
        return Ok(f(&rows));
    }
    let full = view.as_standard_layout().into_owned();
    Ok(f(&mask_rows(&full, &shape).expect("a standard mask of the full shape")))
}

impl<T: Float> Tensor<T> {
    /// Multi-head attention of queries `self` [B, T_q, d] over keys `k` and values `v`
    /// [B, T_k, d] in `heads` heads, scores scaled by `scale` and set to −∞ where `blocked`
    /// (broadcast to [B, H, T_q, T_k], e.g. [1, 1, T, T] causal or [B, 1, T, T] with padding) is
    /// true. Returns y [B, T_q, d] and the probabilities [B, H, T_q, T_k]. Equals
    /// the per-head `matmul` → `masked_softmax` → `matmul` composition bit for bit, forward and
    /// first-order backward (see the module docs). A query row blocked everywhere gives NaN, as
    /// softmax does.
    pub fn attention(
        &self,
        k: &Tensor<T>,
        v: &Tensor<T>,
        heads: usize,
        blocked: Option<&ArrayD<bool>>,
        scale: f64,
    ) -> Result<(Tensor<T>, Tensor<T>)> {
        let (qd, kd, vd) = (self.data(), k.data(), v.data());
        let geo = Heads::of(qd.shape(), kd.shape(), vd.shape(), heads)?;
        let (q, k3, v3) =
            (qd.as_standard_layout(), kd.as_standard_layout(), vd.as_standard_layout());
        let s = T::cast(scale);
        let (y, probs) = with_mask_rows(blocked, geo.probs_shape(), |rows| {
            attention_forward(&geo, three(&q), three(&k3), three(&v3), rows, s)
        })?;
        // P as a node of (q, k): the differentiable rule below uses it, so that a second
        // derivative sees P depend on q and k without recomputing it; it is also what callers get
        let probs = Tensor::from_op(probs.into_shared(), "attention_probs", &[self, k], move |a| {
            probs_backward(&geo, &a.inputs[0], &a.inputs[1], a.output, a.grad, scale, a.needs)
        });
        let saved = probs.clone();
        let y = Tensor::from_op(y.into_shared(), "attention", &[self, k, v], move |a| {
            if !is_grad_enabled() && a.grad.shape() == a.output.shape() {
                let [q, k, v] = [&a.inputs[0], &a.inputs[1], &a.inputs[2]].map(|t| t.data());
                let (g, p) = (a.grad.data(), saved.data());
                let [q, k, v, g] = [&q, &k, &v, &g].map(|x| x.as_standard_layout());
                let p = p.as_slice().expect("made in standard layout");
                let [dq, dk, dv] =
                    attention_backward(&geo, three(&q), three(&k), three(&v), p, three(&g), s);
                return Ok([dq, dk, dv]
                    .into_iter()
                    .zip(a.needs)
                    .map(|(d, &need)| need.then(|| Tensor::constant(d)))
                    .collect());
            }
            attention_backward_differentiable(&geo, a.inputs, a.grad, &saved, scale, a.needs)
        });
        Ok((y, probs))
    }
}

/// A [B, T, d] array (checked) as a view of three axes.
fn three<'a, T>(x: &'a CowArray<'_, T, IxDyn>) -> ArrayView3<'a, T> {
    x.view().into_dimensionality::<Ix3>().expect("checked: three axes")
}

/// y and P for every head: scores into P's block, softmax in place, then P·V into y's columns.
fn attention_forward<T: Float>(
    geo: &Heads,
    q: ArrayView3<'_, T>,
    k: ArrayView3<'_, T>,
    v: ArrayView3<'_, T>,
    rows: &[&[bool]],
    s: T,
) -> (ArrayD<T>, ArrayD<T>) {
    let (tq, tk) = (geo.tq, geo.tk);
    let len = geo.count() * tq * tk;
    let mut probs: Vec<T> = Vec::with_capacity(len);
    let mut y = ArrayD::<T>::zeros(IxDyn(&[geo.batch, tq, geo.d]));
    let y_at = Shared(y.as_mut_ptr());
    if len > 0 && geo.dh > 0 {
        for_each_head(&mut probs.spare_capacity_mut()[..len], tq * tk, geo.work(), |i, p, one| {
            let (qh, kh, vh) = (geo.columns(&q, i), geo.columns(&k, i), geo.columns(&v, i));
            // SAFETY: `p` is head i's tq×tk block (ldc = tk), ours alone
            unsafe { product_into_block(one, &qh, &kh.t(), p.as_mut_ptr().cast(), tk) };
            // SAFETY: the product wrote every element of the block
            let p = unsafe { &mut *(std::ptr::from_mut(p) as *mut [T]) };
            let head_rows = if rows.is_empty() { rows } else { &rows[i * tq..(i + 1) * tq] };
            masked_softmax_rows_dispatched(p, tk, head_rows, s);
            let ph = ArrayView2::from_shape((tq, tk), &*p).expect("tq×tk probabilities");
            // SAFETY: head i's tq×dh columns of y (row stride d), written by this head alone
            unsafe { product_into_block(one, &ph, &vh, y_at.at(geo.offset(i, tq)), geo.d) };
        });
    } else {
        probs.resize(len, T::zero());
    }
    // SAFETY: every head's block was written (or the length is 0 / the zeros above)
    unsafe { probs.set_len(len) };
    let probs = ArrayD::from_shape_vec(IxDyn(&geo.probs_shape()), probs).expect("B·H·Tq·Tk");
    (y, probs)
}

/// dq, dk, dv from the saved probabilities `p` and the gradient `g` of y, head by head.
fn attention_backward<T: Float>(
    geo: &Heads,
    q: ArrayView3<'_, T>,
    k: ArrayView3<'_, T>,
    v: ArrayView3<'_, T>,
    p: &[T],
    g: ArrayView3<'_, T>,
    s: T,
) -> [ArrayD<T>; 3] {
    let (tq, tk, dh, d) = (geo.tq, geo.tk, geo.dh, geo.d);
    let mut dq = ArrayD::<T>::zeros(IxDyn(&[geo.batch, tq, d]));
    let mut dk = ArrayD::<T>::zeros(IxDyn(&[geo.batch, tk, d]));
    let mut dv = ArrayD::<T>::zeros(IxDyn(&[geo.batch, tk, d]));
    if geo.count() * tq * tk * dh == 0 {
        return [dq, dk, dv];
    }
    let (dq_at, dk_at, dv_at) =
        (Shared(dq.as_mut_ptr()), Shared(dk.as_mut_ptr()), Shared(dv.as_mut_ptr()));
    // one unit per head, weighted by its scores (the split follows the work, as in the forward)
    let mut heads = vec![(); geo.count() * tq * tk];
    for_each_head(&mut heads, tq * tk, geo.work(), |i, _, one| {
        let (qh, kh, vh, gh) =
            (geo.columns(&q, i), geo.columns(&k, i), geo.columns(&v, i), geo.columns(&g, i));
        let ph = ArrayView2::from_shape((tq, tk), &p[i * tq * tk..(i + 1) * tq * tk])
            .expect("tq×tk probabilities");
        // SAFETY: head i's tk×dh columns of dv (row stride d), written by this head alone
        unsafe { product_into_block(one, &ph.t(), &gh, dv_at.at(geo.offset(i, tk)), d) };
        let mut ds: Vec<T> = Vec::with_capacity(tq * tk);
        // SAFETY: room for the tq×tk block (ldc = tk), a local buffer
        unsafe { product_into_block(one, &gh, &vh.t(), ds.as_mut_ptr(), tk) };
        // SAFETY: the product wrote all tq·tk elements
        unsafe { ds.set_len(tq * tk) };
        for (g_row, p_row) in
            ds.chunks_exact_mut(tk).zip(ph.as_slice().expect("a block of p").chunks_exact(tk))
        {
            softmax_backward_row(g_row, p_row, s);
        }
        let dsh = ArrayView2::from_shape((tq, tk), &ds[..]).expect("tq×tk score gradient");
        // SAFETY: head i's tq×dh columns of dq (row stride d), written by this head alone
        unsafe { product_into_block(one, &dsh, &kh, dq_at.at(geo.offset(i, tq)), d) };
        // dK_bhᵀ = Q_bhᵀ·dS, the composed form's product, then placed in head i's columns
        let mut dk_t: Vec<T> = Vec::with_capacity(dh * tk);
        // SAFETY: room for the dh×tk block (ldc = tk), a local buffer
        unsafe { product_into_block(one, &qh.t(), &dsh, dk_t.as_mut_ptr(), tk) };
        // SAFETY: the product wrote all dh·tk elements
        unsafe { dk_t.set_len(dh * tk) };
        let base = dk_at.at(geo.offset(i, tk));
        for (j, row) in dk_t.chunks_exact(tk).enumerate() {
            for (u, &x) in row.iter().enumerate() {
                // SAFETY: row u, column j of head i's tk×dh block of dk (row stride d)
                unsafe { base.add(u * d + j).write(x) };
            }
        }
    });
    [dq, dk, dv]
}

/// x [B, T, d] as heads [B, H, T, d_h] (a view).
fn split<T: Float>(geo: &Heads, x: &Tensor<T>) -> Result<Tensor<T>> {
    let t = x.shape()[1];
    x.reshape(&[geo.batch, t, geo.heads, geo.dh])?.permute(&[0, 2, 1, 3])
}

/// Heads [B, H, T, d_h] back to [B, T, d].
fn join<T: Float>(geo: &Heads, x: Tensor<T>) -> Result<Tensor<T>> {
    let t = x.shape()[2];
    x.permute(&[0, 2, 1, 3])?.reshape(&[geo.batch, t, geo.d])
}

/// The gradient of the scores from that of the probabilities:
/// dS = s·P ⊙ (dP − rowsum(dP ⊙ P)), 0 where P is (masked positions).
fn scores_grad<T: Float>(p: &Tensor<T>, dp: &Tensor<T>, scale: f64) -> Result<Tensor<T>> {
    let inner = dp.mul(p)?.sum_axis(-1, true)?;
    Ok(p.mul(&dp.sub(&inner)?)?.mul_scalar(scale))
}

/// dq = dS·K and dk = dSᵀ·Q per head, joined back to [B, T, d], as `needs` asks.
fn query_key_grads<T: Float>(
    geo: &Heads,
    q: &Tensor<T>,
    k: &Tensor<T>,
    ds: &Tensor<T>,
    needs: &[bool],
) -> Result<[Option<Tensor<T>>; 2]> {
    Ok([
        needs[0].then(|| join(geo, ds.matmul(&split(geo, k)?)?)).transpose()?,
        needs[1].then(|| join(geo, ds.transpose(-2, -1)?.matmul(&split(geo, q)?)?)).transpose()?,
    ])
}

/// The rule of the probabilities P (as a node of q and k) in differentiable operations.
fn probs_backward<T: Float>(
    geo: &Heads,
    q: &Tensor<T>,
    k: &Tensor<T>,
    p: &Tensor<T>,
    grad: &Tensor<T>,
    scale: f64,
    needs: &[bool],
) -> Result<Vec<Option<Tensor<T>>>> {
    let ds = scores_grad(p, grad, scale)?;
    Ok(query_key_grads(geo, q, k, &ds, needs)?.into())
}

/// The rule of y in differentiable operations, for `create_graph`, with P the probabilities'
/// node (so that the second derivative flows through P into q and k).
fn attention_backward_differentiable<T: Float>(
    geo: &Heads,
    inputs: &[Tensor<T>],
    grad: &Tensor<T>,
    p: &Tensor<T>,
    scale: f64,
    needs: &[bool],
) -> Result<Vec<Option<Tensor<T>>>> {
    let g = split(geo, grad)?;
    let dp = g.matmul(&split(geo, &inputs[2])?.transpose(-2, -1)?)?;
    let ds = scores_grad(p, &dp, scale)?;
    let [dq, dk] = query_key_grads(geo, &inputs[0], &inputs[1], &ds, needs)?;
    let dv = needs[2].then(|| join(geo, p.transpose(-2, -1)?.matmul(&g)?)).transpose()?;
    Ok(vec![dq, dk, dv])
}

#[cfg(test)]
mod tests {
    use ndarray::{ArrayD, IxDyn};
    use proptest::prelude::*;

    use crate::check::{gradcheck, gradgradcheck};
    use crate::ops::testing::uniform;
    use crate::{Float, Result, Tensor, grad};

    /// The composition the fused op replaces: heads split by `permute`, `matmul`,
    /// `masked_softmax`, `matmul`, heads joined.
    fn composed<T: Float>(
        q: &Tensor<T>,
        k: &Tensor<T>,
        v: &Tensor<T>,
        heads: usize,
        blocked: Option<&ArrayD<bool>>,
        scale: f64,
    ) -> Result<Tensor<T>> {
        let (b, tq, tk, d) = (q.shape()[0], q.shape()[1], k.shape()[1], q.shape()[2]);
        let dh = d / heads;
        let qh = q.reshape(&[b, tq, heads, dh])?.permute(&[0, 2, 1, 3])?;
        let kt = k.reshape(&[b, tk, heads, dh])?.permute(&[0, 2, 3, 1])?;
        let vh = v.reshape(&[b, tk, heads, dh])?.permute(&[0, 2, 1, 3])?;
        let p = qh.matmul(&kt)?.masked_softmax(blocked, scale)?;
        p.matmul(&vh)?.permute(&[0, 2, 1, 3])?.reshape(&[b, tq, d])
    }

    /// Causal (when tq = tk) and a padded last key in batch 1; no row is blocked everywhere.
    fn mask(b: usize, tq: usize, tk: usize, causal: bool, padded: bool) -> Option<ArrayD<bool>> {
        if !causal && !padded {
            return None;
        }
        let rows = if padded { b } else { 1 };
        Some(ArrayD::from_shape_fn(IxDyn(&[rows, 1, tq, tk]), |p| {
            (causal && p[3] > p[2]) || (padded && p[0] == 1 && p[3] == tk - 1 && p[3] > 0)
        }))
    }

    fn to_f32(x: &Tensor<f64>) -> Tensor<f32> {
        let v = x.to_vec().iter().map(|&v| v as f32).collect();
        Tensor::param_from_vec(v, &x.shape()).unwrap()
    }

    /// Forward output and the three first-order gradients of Σ y ⊙ w.
    fn outputs<T: Float>(y: &Tensor<T>, w: &Tensor<T>, inputs: &[Tensor<T>]) -> Vec<Vec<T>> {
        let gs = grad(&[y.mul(w).unwrap().sum_all()], inputs, false).unwrap();
        std::iter::once(y.to_vec()).chain(gs.iter().map(Tensor::to_vec)).collect()
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(16))]

        /// The fused op is the composition to the bit in f32, forward and first-order backward,
        /// for self- and cross-attention with causal and padding masks.
        #[test]
        fn attention_equals_the_composed_form_bit_for_bit(
            b in 1usize..3, tq in 1usize..9, cross in 0usize..3, heads in 1usize..4,
            dh in 1usize..6, causal: bool, padded: bool, scale in 0.1f64..2.0, seed: u64,
        ) {
            let tk = if causal { tq } else { tq + cross };
            let d = heads * dh;
            let q = to_f32(&uniform(&[b, tq, d], -2.0, 2.0, seed));
            let k = to_f32(&uniform(&[b, tk, d], -2.0, 2.0, seed ^ 1));
            let v = to_f32(&uniform(&[b, tk, d], -2.0, 2.0, seed ^ 2));
            let w = to_f32(&uniform(&[b, tq, d], -1.0, 1.0, seed ^ 7)).detach();
            let m = mask(b, tq, tk, causal, padded);
            let inputs = [q.clone(), k.clone(), v.clone()];
            let (y, p) = q.attention(&k, &v, heads, m.as_ref(), scale).unwrap();
            let fused = outputs(&y, &w, &inputs);
            let expected = outputs(&composed(&q, &k, &v, heads, m.as_ref(), scale).unwrap(), &w, &inputs);
            for (f, e) in fused.iter().zip(&expected) {
                let (fb, eb): (Vec<u32>, Vec<u32>) = (f.iter().map(|x| x.to_bits()).collect(), e.iter().map(|x| x.to_bits()).collect());
                prop_assert_eq!(fb, eb);
            }
            prop_assert_eq!(p.shape(), vec![b, heads, tq, tk]);
        }

        #[test]
        fn attention_passes_gradcheck_and_gradgradcheck(
            tq in 1usize..4, heads in 1usize..3, dh in 1usize..3, causal: bool, padded: bool, seed: u64,
        ) {
            let (b, d) = (2, heads * dh);
            let tk = tq + usize::from(!causal);
            let params = [uniform(&[b, tq, d], -1.5, 1.5, seed), uniform(&[b, tk, d], -1.5, 1.5, seed ^ 1), uniform(&[b, tk, d], -1.5, 1.5, seed ^ 2)];
            let m = mask(b, tq, tk, causal, padded);
            let f = |t: &[Tensor<f64>]| Ok::<_, crate::TensorError>(t[0].attention(&t[1], &t[2], heads, m.as_ref(), 0.7)?.0);
            gradcheck(f, &params).unwrap();
            gradgradcheck(f, &params).unwrap();
            // through the probabilities too (their own node), and through both at once
            let w = uniform(&[b, heads, tq, tk], -1.0, 1.0, seed ^ 3).detach();
            let through_p = |t: &[Tensor<f64>]| -> crate::Result<Tensor<f64>> {
                let (y, p) = t[0].attention(&t[1], &t[2], heads, m.as_ref(), 0.7)?;
                p.mul(&w)?.sum_all().add(&y.mul(&y)?.sum_all())
            };
            gradcheck(through_p, &params).unwrap();
            gradgradcheck(through_p, &params).unwrap();
        }
    }

    /// Under `create_graph` the rule's gradients are the first-order ones (to rounding), and a
    /// gradient needed for one input only is computed for that one.
    #[test]
    fn the_differentiable_rule_agrees_with_the_fused_one() {
        let (b, t, heads, d) = (2, 5, 2, 6);
        let m = mask(b, t, t, true, true);
        let [q, k, v] = [0u64, 1, 2].map(|i| uniform(&[b, t, d], -2.0, 2.0, 40 + i));
        let w = uniform(&[b, t, d], -1.0, 1.0, 44).detach();
        let loss = |q: &Tensor<f64>| {
            q.attention(&k, &v, heads, m.as_ref(), 0.5).unwrap().0.mul(&w).unwrap().sum_all()
        };
        let first = grad(&[loss(&q)], &[q.clone(), k.clone(), v.clone()], false).unwrap();
        let second = grad(&[loss(&q)], &[q.clone(), k.clone(), v.clone()], true).unwrap();
        for (f, s) in first.iter().zip(&second) {
            for (a, b) in f.to_vec().iter().zip(s.to_vec()) {
                assert!((a - b).abs() < 1e-12, "{a} vs {b}");
            }
        }
        let only_v = grad(&[loss(&q)], &[v.clone()], true).unwrap();
        assert_eq!(only_v[0].to_vec(), second[2].to_vec());
    }

    #[test]
    fn bad_shapes_and_masks_are_errors() {
        let x = Tensor::<f32>::zeros(&[2, 3, 4]);
        assert!(x.attention(&x, &x, 3, None, 1.0).is_err(), "4 features in 3 heads");
        assert!(x.attention(&x, &x, 0, None, 1.0).is_err(), "no heads");
        assert!(x.attention(&Tensor::zeros(&[2, 3, 2]), &x, 2, None, 1.0).is_err(), "d differs");
        assert!(x.attention(&x, &Tensor::zeros(&[2, 4, 4]), 2, None, 1.0).is_err(), "k ≠ v");
        assert!(Tensor::<f32>::zeros(&[3, 4]).attention(&x, &x, 2, None, 1.0).is_err(), "rank 2");
        let wrong = ArrayD::from_elem(IxDyn(&[1, 1, 2, 3]), false);
        assert!(x.attention(&x, &x, 2, Some(&wrong), 1.0).is_err(), "a mask of 2 queries");
        let empty = Tensor::<f32>::zeros(&[2, 0, 4]);
        let (y, p) = empty.attention(&empty, &empty, 2, None, 1.0).unwrap();
        assert_eq!((y.shape(), p.shape()), (vec![2, 0, 4], vec![2, 2, 0, 0]));
    }
}
