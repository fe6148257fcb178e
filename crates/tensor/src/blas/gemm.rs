//! C ← α·A·B + β·C for 2-D views, on the selected BLAS backend.
//!
//! With OpenBLAS (the default) this is `ndarray::linalg::general_mat_mul`, which calls
//! cblas_sgemm/dgemm of the linked OpenBLAS; products into new memory call them directly
//! (no zero fill first, see [`product_into`]). With MKL, operands whose layouts CBLAS can take
//! directly (unit stride along one axis: row-major, or column-major read as a transpose) go to
//! MKL's cblas_?gemm; anything else (broadcast or negative strides, a non-row-major output,
//! empty or oversized dimensions, element types other than f32/f64) falls back to
//! `general_mat_mul`, so every product is computed either way.

use std::any::TypeId;
use std::ffi::c_int;
use std::mem::MaybeUninit;

use ndarray::linalg::general_mat_mul;
use ndarray::{
    ArrayBase, ArrayView2, ArrayView3, ArrayView4, ArrayViewMut2, Axis, Data, DataMut, Ix2, s,
};

use super::Backend;
use super::mkl::GemmFn;
use crate::Float;

/// CBLAS enum values (cblas.h).
const ROW_MAJOR: c_int = 101;
const NO_TRANS: c_int = 111;
const TRANS: c_int = 112;

/// How CBLAS sees a row-major-addressed matrix: its transpose flag and leading dimension.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Operand {
    trans: c_int,
    ld: c_int,
}

/// The CBLAS description of a rows×cols view with element strides `strides`, if there is one.
///
/// Row-major (unit column stride, row stride ≥ cols) is `NoTrans` with ld = the row stride;
/// column-major (unit row stride, column stride ≥ rows) is the row-major transpose: `Trans` with
/// ld = the column stride. A unit-length axis may have any stride.
fn operand(rows: usize, cols: usize, strides: [isize; 2]) -> Option<Operand> {
    let fits = |n: usize| c_int::try_from(n).ok();
    let [s0, s1] = strides;
    let row_major = (cols == 1 || s1 == 1) && (rows == 1 || s0 >= cols.max(1) as isize);
    if row_major {
        let ld = if rows == 1 { cols.max(1) } else { s0 as usize };
        return fits(ld).map(|ld| Operand { trans: NO_TRANS, ld });
    }
    let col_major = (rows == 1 || s0 == 1) && (cols == 1 || s1 >= rows.max(1) as isize);
    if col_major {
        let ld = if cols == 1 { rows.max(1) } else { s1 as usize };
        return fits(ld).map(|ld| Operand { trans: TRANS, ld });
    }
    None
}

/// The whole CBLAS call, when all three views and the dimensions allow one.
#[derive(Debug, PartialEq, Eq)]
struct Call {
    m: c_int,
    n: c_int,
    k: c_int,
    a: Operand,
    b: Operand,
    ldc: c_int,
}

/// The call for C ← A·B, or `None` when the shapes disagree, a dimension is empty or too large,
/// or a view is no CBLAS matrix (the caller falls back to `general_mat_mul`).
fn plan<T>(a: &ArrayView2<'_, T>, b: &ArrayView2<'_, T>, c: &ArrayViewMut2<'_, T>) -> Option<Call> {
    let sc = c.strides();
    plan_into(a, b, c.dim(), [sc[0], sc[1]])
}

/// [`plan`] for an output of `c_dim` rows and columns with element strides `c_strides`.
fn plan_into<T>(
    a: &ArrayView2<'_, T>,
    b: &ArrayView2<'_, T>,
    c_dim: (usize, usize),
    c_strides: [isize; 2],
) -> Option<Call> {
    let ((m, k), n) = (a.dim(), b.ncols());
    if b.nrows() != k || c_dim != (m, n) || m == 0 || n == 0 || k == 0 {
        return None;
    }
    let as_int = |x: usize| c_int::try_from(x).ok();
    let (sa, sb) = (a.strides(), b.strides());
    let out = operand(m, n, c_strides).filter(|o| o.trans == NO_TRANS)?;
    Some(Call {
        m: as_int(m)?,
        n: as_int(n)?,
        k: as_int(k)?,
        a: operand(m, k, [sa[0], sa[1]])?,
        b: operand(k, n, [sb[0], sb[1]])?,
        ldc: out.ld,
    })
}

/// Products below this many flops (2·m·n·k) run MKL on one thread: waking OpenMP threads costs
/// more than they save (attention's per-head 128×32×128 products ran 4× slower on 2 threads).
const MKL_THREADED_MIN_FLOPS: f64 = 8e6;

/// C ← α·A·B + β·C, a drop-in for `ndarray::linalg::general_mat_mul` that runs on the selected
/// backend. Panics, as `general_mat_mul` does, when the shapes do not agree (m×k · k×n into m×n).
pub fn gemm<T, A, B, C>(
    alpha: T,
    a: &ArrayBase<A, Ix2>,
    b: &ArrayBase<B, Ix2>,
    beta: T,
    c: &mut ArrayBase<C, Ix2>,
) where
    T: Float,
    A: Data<Elem = T>,
    B: Data<Elem = T>,
    C: DataMut<Elem = T>,
{
    gemm_on(Threads::Backend, alpha, &a.view(), &b.view(), beta, &mut c.view_mut());
}

/// How many threads one product may use.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Threads {
    /// The backend's setting ([`super::num_threads`]), for products large enough to split.
    Backend,
    /// One: the product runs inside a parallel part of Saturn's own.
    One,
}

fn gemm_on<T: Float>(
    threads: Threads,
    alpha: T,
    a: &ArrayView2<'_, T>,
    b: &ArrayView2<'_, T>,
    beta: T,
    c: &mut ArrayViewMut2<'_, T>,
) {
    if let Backend::Mkl(mkl) = super::backend()
        && let Some(call) = plan(a, b, c)
        // SAFETY: `call` was planned for these three views, and C is initialized
        && unsafe { mkl_gemm(mkl, threads, &call, alpha, a, b, beta, c.as_mut_ptr()) }
    {
        return;
    }
    general_mat_mul(alpha, a, b, beta, c);
}

/// C ← A·B into `c`: uninitialized room for the m×n product in row-major order (a new array's
/// buffer). With β = 0, cblas_?gemm writes every element without reading any ("when BETA is
/// supplied as zero then C need not be set on input", the reference BLAS's contract, which
/// OpenBLAS and MKL keep), so the buffer needs no zero fill first (it was ≈ 3 % of medium's
/// step on OpenBLAS). Only operands no CBLAS call can take get the fill and `general_mat_mul`.
fn product_into<T: Float>(
    threads: Threads,
    a: &ArrayView2<'_, T>,
    b: &ArrayView2<'_, T>,
    c: &mut [MaybeUninit<T>],
) {
    let (m, n) = (a.nrows(), b.ncols());
    assert_eq!(c.len(), m * n, "product_into: room for m×n elements");
    // SAFETY: `c` is room for the m×n row-major block (ldc = n), ours alone for the call
    unsafe { product_into_block(threads == Threads::One, a, b, c.as_mut_ptr().cast(), n) }
}

/// C ← A·B into the m×n block at `c` whose rows are `ldc` elements apart (a block of columns of
/// a wider row-major matrix: one head's columns of attention's [B, T, d] tensors), on one thread
/// when `one_thread` (the caller runs it inside a parallel part of its own, see
/// [`super::OpenBlasOnOneThread`]). [`product_into`] is the case ldc = n: the same CBLAS call, so
/// the same bits; operands no CBLAS call can take get a zero fill and `general_mat_mul`.
///
/// # Safety
/// `c` must point to an m×n block with row stride `ldc ≥ n` (m = a's rows, n = b's columns)
/// that nothing else reads or writes during the call; its elements need not be initialized.
pub(crate) unsafe fn product_into_block<T: Float>(
    one_thread: bool,
    a: &ArrayView2<'_, T>,
    b: &ArrayView2<'_, T>,
    c: *mut T,
    ldc: usize,
) {
    let (m, n) = (a.nrows(), b.ncols());
    assert!(ldc >= n, "product_into_block: row stride {ldc} below the block's {n} columns");
    let threads = if one_thread { Threads::One } else { Threads::Backend };
    if let Some(call) = plan_into(a, b, (m, n), [ldc as isize, 1]) {
        // SAFETY: `c` is the m×n block of row stride ldc that `call` was planned for (the
        // caller's contract), and with β = 0 BLAS writes each of its elements without reading it
        let done = unsafe {
            match super::backend() {
                Backend::Mkl(mkl) => mkl_gemm(mkl, threads, &call, T::one(), a, b, T::zero(), c),
                Backend::OpenBlas => {
                    let fns = (cblas_sgemm as GemmFn<f32>, cblas_dgemm as GemmFn<f64>);
                    typed_cblas_call(fns, &call, T::one(), a, b, T::zero(), c)
                }
            }
        };
        if done {
            return;
        }
    }
    for i in 0..m {
        for j in 0..n {
            // SAFETY: inside the m×n block of row stride ldc (the caller's contract)
            unsafe { c.add(i * ldc + j).write(T::zero()) };
        }
    }
    let shape = ndarray::ShapeBuilder::strides((m, n), (ldc, 1));
    // SAFETY: the caller's contract: an m×n block of row stride ldc, ours alone for the call,
    // every element initialized just above
    let mut block = unsafe { ArrayViewMut2::from_shape_ptr(shape, c) };
    general_mat_mul(T::one(), a, b, T::zero(), &mut block);
}

/// o[i] ← a[i]·b[i] for every i along the leading axis, into `o`: uninitialized room for the
/// products in row-major order, one after another (see [`product_into`]); see
/// [`products_into`] for how they are spread over threads.
pub(crate) fn gemm_batched_into<T: Float>(
    a: ArrayView3<'_, T>,
    b: ArrayView3<'_, T>,
    o: &mut [MaybeUninit<T>],
) {
    let (count, m, k) = a.dim();
    let (a, b) = (&a, &b);
    let operands = move |i| (a.index_axis(Axis(0), i), b.index_axis(Axis(0), i));
    products_into(count, [m, k, b.dim().2], operands, o);
}

/// o[i, j] ← a[i, j]·b[i, j] over two leading axes (attention's batch and heads), in row-major
/// order of (i, j), as one batch of products (see [`gemm_batched_into`]).
pub(crate) fn gemm_batched2_into<T: Float>(
    a: ArrayView4<'_, T>,
    b: ArrayView4<'_, T>,
    o: &mut [MaybeUninit<T>],
) {
    let (outer, inner, m, k) = a.dim();
    let (a, b) = (&a, &b);
    let operands = move |i: usize| {
        let (p, q) = (i / inner, i % inner);
        (a.slice(s![p, q, .., ..]), b.slice(s![p, q, .., ..]))
    };
    products_into(outer * inner, [m, k, b.dim().3], operands, o);
}

/// Multiply-adds of a small GEMM that cost about as much as one element of an element-wise
/// kernel (which [`crate::parallel::MIN_PART`] is counted in): a part of products is worth a
/// worker's wake-up only from ≈ 2 M multiply-adds (tiny's attention, 64 heads of 32×16×32,
/// ran slower on two threads than on one).
pub(crate) const MACS_PER_ELEMENT_OF_WORK: usize = 32;

/// The `count` products operands(i) = (m×k, k×n) into `o`. On several threads the batch is
/// split into parts over Saturn's threads ([`crate::parallel`], by work: m·n·k multiply-adds per
/// product), each product on one thread: attention's per-head products are too small to split
/// one by one (on OpenBLAS, medium's 128 products of 128×32×128 per layer ran one after another,
/// each split over the 2 threads with a barrier per call). On one thread, one product after
/// another (and a batch too small to split: one product after another, each on the backend's
/// threads).
fn products_into<'v, T: Float>(
    count: usize,
    [m, k, n]: [usize; 3],
    operands: impl Fn(usize) -> (ArrayView2<'v, T>, ArrayView2<'v, T>) + Sync,
    o: &mut [MaybeUninit<T>],
) {
    let size = m * n;
    assert_eq!(o.len(), count * size, "products_into: room for the batch of products");
    if size == 0 {
        return;
    }
    let work = k.div_ceil(MACS_PER_ELEMENT_OF_WORK).max(1);
    if crate::parallel::parts(o.len(), size, work, crate::parallel::threads()) > 1 {
        let operands = &operands;
        // OpenBLAS 0.3.21 has no per-call thread count: its count is set to one for the
        // batch (each product then runs in the thread that calls it) and restored after
        let _one_thread = super::OpenBlasOnOneThread::new();
        crate::parallel::for_each_part_of_work(o, size, work, |first, part| {
            for (i, oi) in part.chunks_exact_mut(size).enumerate() {
                let (ai, bi) = operands(first + i);
                product_into(Threads::One, &ai, &bi, oi);
            }
        });
        return;
    }
    for (i, oi) in o.chunks_exact_mut(size).enumerate() {
        let (ai, bi) = operands(i);
        product_into(Threads::Backend, &ai, &bi, oi);
    }
}

/// C ← A·B into `c`: uninitialized room for the m×n product in row-major order, written whole
/// (no zero fill first with MKL: see [`product_into`]).
pub(crate) fn gemm_into<T: Float>(
    a: &ArrayView2<'_, T>,
    b: &ArrayView2<'_, T>,
    c: &mut [MaybeUninit<T>],
) {
    product_into(Threads::Backend, a, b, c);
}

// The linked OpenBLAS's CBLAS entry points (the same signatures as MKL's, `mkl::GemmFn`).
unsafe extern "C" {
    fn cblas_sgemm(
        layout: c_int,
        trans_a: c_int,
        trans_b: c_int,
        m: c_int,
        n: c_int,
        k: c_int,
        alpha: f32,
        a: *const f32,
        lda: c_int,
        b: *const f32,
        ldb: c_int,
        beta: f32,
        c: *mut f32,
        ldc: c_int,
    );
    fn cblas_dgemm(
        layout: c_int,
        trans_a: c_int,
        trans_b: c_int,
        m: c_int,
        n: c_int,
        k: c_int,
        alpha: f64,
        a: *const f64,
        lda: c_int,
        b: *const f64,
        ldb: c_int,
        beta: f64,
        c: *mut f64,
        ldc: c_int,
    );
}

/// One cblas_?gemm call on MKL, as planned, writing C through `pc`; products below
/// [`MKL_THREADED_MIN_FLOPS`] (or with [`Threads::One`]) run on one thread. Returns false, doing
/// nothing, for element types other than f32 and f64.
///
/// # Safety
/// `call` was planned for `a`, `b` and the matrix at `pc` (so MKL reads and writes only their
/// elements); with β ≠ 0 that matrix is initialized.
#[allow(clippy::too_many_arguments)]
unsafe fn mkl_gemm<T: Float>(
    mkl: &super::mkl::Mkl,
    threads: Threads,
    call: &Call,
    alpha: T,
    a: &ArrayView2<'_, T>,
    b: &ArrayView2<'_, T>,
    beta: T,
    pc: *mut T,
) -> bool {
    // SAFETY: as the caller guarantees
    let run = || unsafe { typed_cblas_call((mkl.sgemm, mkl.dgemm), call, alpha, a, b, beta, pc) };
    let flops = 2.0 * call.m as f64 * call.n as f64 * call.k as f64;
    if threads == Threads::One || flops < MKL_THREADED_MIN_FLOPS {
        mkl.on_one_thread(run)
    } else {
        run()
    }
}

/// The call with the f32 or the f64 entry point of `(sgemm, dgemm)`, as T is; false, doing
/// nothing, for other element types.
///
/// # Safety
/// As for [`mkl_gemm`].
#[allow(clippy::too_many_arguments)]
unsafe fn typed_cblas_call<T: Float>(
    (sgemm, dgemm): (GemmFn<f32>, GemmFn<f64>),
    call: &Call,
    alpha: T,
    a: &ArrayView2<'_, T>,
    b: &ArrayView2<'_, T>,
    beta: T,
    pc: *mut T,
) -> bool {
    let [pa, pb] = [a.as_ptr(), b.as_ptr()];
    let is = |id| TypeId::of::<T>() == id;
    // SAFETY: as the caller guarantees; T is f32 or f64 as the TypeId says, so the pointer casts
    // are to the same type
    unsafe {
        if is(TypeId::of::<f32>()) {
            let (alpha, beta) = (alpha.as_f64() as f32, beta.as_f64() as f32);
            cblas_call(sgemm, call, alpha, pa.cast(), pb.cast(), beta, pc.cast());
        } else if is(TypeId::of::<f64>()) {
            let (alpha, beta) = (alpha.as_f64(), beta.as_f64());
            cblas_call(dgemm, call, alpha, pa.cast(), pb.cast(), beta, pc.cast());
        } else {
            return false;
        }
    }
    true
}

/// `gemm` (cblas_sgemm or cblas_dgemm) with the planned flags, dimensions and strides.
///
/// # Safety
/// `a`, `b` and `c` address the matrices `call` was planned for.
unsafe fn cblas_call<E>(
    gemm: GemmFn<E>,
    call: &Call,
    alpha: E,
    a: *const E,
    b: *const E,
    beta: E,
    c: *mut E,
) {
    let &Call { m, n, k, a: oa, b: ob, ldc } = call;
    // SAFETY: guaranteed by the caller
    unsafe {
        gemm(ROW_MAJOR, oa.trans, ob.trans, m, n, k, alpha, a, oa.ld, b, ob.ld, beta, c, ldc)
    };
}

#[cfg(test)]
mod tests {
    use ndarray::{Array2, ShapeBuilder, s};

    use super::*;

    #[test]
    fn row_and_column_major_views_map_to_cblas_flags() {
        let a = Array2::<f32>::zeros((3, 5));
        assert_eq!(operand(3, 5, [5, 1]), Some(Operand { trans: NO_TRANS, ld: 5 }));
        let t = a.t();
        let st = t.strides();
        assert_eq!(operand(5, 3, [st[0], st[1]]), Some(Operand { trans: TRANS, ld: 5 }));
        // a column slice of a wider matrix keeps the parent's row stride
        let wide = Array2::<f32>::zeros((4, 10));
        let v = wide.slice(s![.., 2..6]);
        assert_eq!(operand(4, 4, [v.strides()[0], v.strides()[1]]).map(|o| o.ld), Some(10));
        // every other column: neither layout
        let every_other = wide.slice(s![.., ..;2]);
        let so = every_other.strides();
        assert_eq!(operand(4, 5, [so[0], so[1]]), None);
        // broadcast rows (stride 0) and reversed axes are not CBLAS matrices
        assert_eq!(operand(4, 5, [0, 1]), None);
        assert_eq!(operand(4, 5, [-5, 1]), None);
        // unit-length axes take any stride
        assert_eq!(operand(1, 5, [0, 1]), Some(Operand { trans: NO_TRANS, ld: 5 }));
        assert_eq!(operand(5, 1, [1, 0]), Some(Operand { trans: NO_TRANS, ld: 1 }));
    }

    #[test]
    fn a_plan_needs_a_row_major_output_and_nonempty_dimensions() {
        let a = Array2::<f64>::zeros((3, 4));
        let b = Array2::<f64>::zeros((4, 2));
        let mut c = Array2::<f64>::zeros((3, 2));
        let call = plan(&a.view(), &b.view(), &c.view_mut()).expect("plain row-major");
        assert_eq!((call.m, call.n, call.k, call.ldc), (3, 2, 4, 2));
        let mut wrong = Array2::<f64>::zeros((2, 3));
        assert_eq!(plan(&a.view(), &b.view(), &wrong.view_mut()), None, "C of the wrong shape");
        let mut cf = Array2::<f64>::zeros((3, 2).f());
        assert_eq!(plan(&a.view(), &b.view(), &cf.view_mut()), None);
        let empty = Array2::<f64>::zeros((3, 0));
        let b0 = Array2::<f64>::zeros((0, 2));
        assert_eq!(plan(&empty.view(), &b0.view(), &c.view_mut()), None);
    }

    /// A batch of products into new memory (split into parallel parts on MKL with several
    /// threads) gives the bits of one `gemm` per matrix into zeros, on 1 and 2 threads.
    #[test]
    fn batched_products_match_one_product_per_matrix_on_any_thread_count() {
        use ndarray::Array3;
        let (batch, m, k, n): (usize, usize, usize, usize) = (24, 64, 64, 64);
        let work = k.div_ceil(MACS_PER_ELEMENT_OF_WORK);
        assert!(crate::parallel::parts(batch * m * n, m * n, work, 2) == 2, "split on 2 threads");
        let value = |i: usize, salt: usize| ((i * 7919 + salt) % 101) as f32 * 0.03 - 1.5;
        let a = Array3::from_shape_fn((batch, m, k), |(b, i, j)| value(b * 1000 + i * 31 + j, 1));
        let b = Array3::from_shape_fn((batch, k, n), |(b, i, j)| value(b * 1000 + i * 17 + j, 2));
        let mut want = Array3::<f32>::zeros((batch, m, n));
        for i in 0..batch {
            let mut oi = want.index_axis_mut(Axis(0), i);
            gemm(1.0, &a.index_axis(Axis(0), i), &b.index_axis(Axis(0), i), 0.0, &mut oi);
        }
        for threads in [1, 2] {
            // NaN-filled room: every element must be written
            let mut o = vec![MaybeUninit::new(f32::NAN); batch * m * n];
            crate::parallel::with_threads(threads, || {
                gemm_batched_into(a.view(), b.view(), &mut o)
            });
            // SAFETY: the elements were initialized (to NaN) before the call
            let o: Vec<f32> = o.iter().map(|x| unsafe { x.assume_init() }).collect();
            assert!(o == want.as_slice().unwrap(), "{threads} thread(s)");
            // the same batch as 4 × 6 (attention's batch × heads)
            let a4 = a.view().into_shape_with_order((4, 6, m, k)).unwrap();
            let b4 = b.view().into_shape_with_order((4, 6, k, n)).unwrap();
            let mut o = vec![MaybeUninit::new(f32::NAN); batch * m * n];
            crate::parallel::with_threads(threads, || gemm_batched2_into(a4, b4, &mut o));
            // SAFETY: the elements were initialized (to NaN) before the call
            let o: Vec<f32> = o.iter().map(|x| unsafe { x.assume_init() }).collect();
            assert!(o == want.as_slice().unwrap(), "two batch axes, {threads} thread(s)");
        }
        let mut single = vec![MaybeUninit::new(f32::NAN); m * n];
        gemm_into(&a.index_axis(Axis(0), 3), &b.index_axis(Axis(0), 3), &mut single);
        // SAFETY: initialized (to NaN) before the call
        let single: Vec<f32> = single.iter().map(|x| unsafe { x.assume_init() }).collect();
        assert!(single == want.index_axis(Axis(0), 3).as_slice().unwrap());
    }

    /// Every layout pair through `gemm` (whichever backend is selected) against a plain triple
    /// loop in f64, with α and β other than 1 and 0.
    #[test]
    fn gemm_matches_the_definition_for_every_layout() {
        let (m, k, n) = (5, 7, 3);
        let value = |i: usize, j: usize, salt: usize| ((i * 31 + j * 17 + salt) % 13) as f64 - 6.0;
        let a_rm = Array2::from_shape_fn((m, k), |(i, j)| value(i, j, 1));
        let b_rm = Array2::from_shape_fn((k, n), |(i, j)| value(i, j, 2));
        let a_cm = Array2::from_shape_fn((m, k).f(), |(i, j)| value(i, j, 1));
        let b_cm = Array2::from_shape_fn((k, n).f(), |(i, j)| value(i, j, 2));
        let c0 = Array2::from_shape_fn((m, n), |(i, j)| value(i, j, 3));
        let (alpha, beta) = (0.5, -2.0);
        let mut want = c0.clone() * beta;
        for i in 0..m {
            for j in 0..n {
                want[[i, j]] += alpha * (0..k).map(|p| a_rm[[i, p]] * b_rm[[p, j]]).sum::<f64>();
            }
        }
        for a in [a_rm.view(), a_cm.view()] {
            for b in [b_rm.view(), b_cm.view()] {
                let mut c = c0.clone();
                gemm(alpha, &a, &b, beta, &mut c);
                assert_eq!(c, want, "f64, strides {:?} · {:?}", a.strides(), b.strides());
                let (a32, b32) = (a.mapv(|x| x as f32), b.mapv(|x| x as f32));
                let mut c32 = c0.mapv(|x| x as f32);
                gemm(alpha as f32, &a32, &b32, beta as f32, &mut c32);
                assert_eq!(c32, want.mapv(|x| x as f32), "f32");
            }
        }
    }
}
