//! Branch-free `f32` kernels (tanh, exp, the normal CDF) and the contiguous-slice loops that let
//! LLVM vectorize them.
//!
//! libm's `tanhf`/`expm1f`/`expf` are opaque calls with branches: a loop over them runs one
//! element at a time (≈ 4–8 ns each). The kernels here are straight-line arithmetic — a
//! polynomial, one division, integer bit tricks for 2ⁿ, selects instead of branches — so a plain
//! loop over a slice becomes SIMD code.
//!
//! - [`exp_f32`]: Cody–Waite range reduction x = n·ln 2 + r, |r| ≤ ½ ln 2, n = round(x·log₂ e)
//!   by the 1.5·2²³ rounding trick; eʳ = 1 + r + r²·Q(r), Q a degree-4 minimax fit of
//!   (eʳ − 1 − r)/r² (relative error 3·10⁻⁹ ≈ 0.05 ulp); 2ⁿ built from its exponent bits, in two
//!   factors so that subnormal results round once. **Within 1 ulp** of the exact eˣ: 0.99 ulp
//!   at worst over every `f32` of [−104, 89] (the ignored exhaustive test), 0.96 on the
//!   2·10⁶-point grid the unit test asserts; +∞ above 88.72, 0 below −103.97, NaN stays NaN.
//! - [`tanh_f32`]: with a = |x|, a + a³·P(a²) for a < 0.625 (P a degree-4 minimax fit of
//!   (tanh a − a)/a³, relative error 4·10⁻⁹) and 1 − 2/(e^{2a} + 1) above (no cancellation
//!   there: tanh a ≥ 0.55); the sign restored by `copysign`. **Within 1.5 ulp** of the exact
//!   tanh x: 1.33 ulp at worst over every `f32` of [−20, 20] (the ignored exhaustive test),
//!   1.26 on the 2·10⁶-point grid plus a logarithmic grid down to 10⁻⁴⁰ that the unit test
//!   asserts; ±0 → ±0, ±∞ and |x| ≥ 9.02 → ±1, NaN → NaN.
//! - [`normal_cdf_f32`]: Φ(x) = ½·erfc(−x/√2) for GELU (erf form), erf's odd polynomial near 0
//!   and e^{−z²}·R(1/(1 + z/2)) for erfc in the tails (no cancellation in the lower tail).
//!
//! The coefficients were fitted for this file (Lawson's iteratively reweighted least squares on
//! 1200–1500 points, then rounded to `f32`); the method is the textbook one of Cephes' `expf`
//! and Eigen's `ptanh_float`, not their code.
//!
//! **Determinism.** No fused multiply-add, no reassociation (Rust never contracts `a*b + c`):
//! every path — the scalar call, SSE2, AVX2, AVX-512 — performs the same IEEE-754 operations in
//! the same order, so results are bit-identical across instruction sets and machines
//! (`map_is_bit_identical_to_the_scalar_kernel`).
//!
//! [`map`] and [`zip_map`] run a per-element function ([`Elementwise`], [`Elementwise2`]: a
//! closure, or a unit struct with an `#[inline(always)]` `apply` for bodies too large for LLVM
//! to inline through a closure's call shim) over standard-layout arrays as a slice loop,
//! compiled three times — for the x86-64 baseline (SSE2), AVX2 and AVX-512F — and chosen at run
//! time by CPU feature detection; the workspace keeps the portable baseline target (no
//! `-C target-cpu=native`). Other layouts fall back to ndarray's `mapv` / `Zip` with the same
//! function, hence the same values.

use std::mem::MaybeUninit;

use ndarray::{ArrayD, ArrayViewD, Zip};

use crate::parallel;

const LOG2E: f32 = std::f32::consts::LOG2_E;
/// ln 2 = LN2_HI + LN2_LO; LN2_HI = 355/512 has 9 significant bits, so n·LN2_HI is exact.
const LN2_HI: f32 = 355.0 / 512.0;
const LN2_LO: f32 = -2.121_944_4e-4;
/// 1.5·2²³: for |y| < 2²², y + ROUND rounds y to the nearest integer, held in the low bits.
const ROUND: f32 = 12_582_912.0;
/// Q(r) ≈ (eʳ − 1 − r)/r² on |r| ≤ ½ ln 2 (minimax, relative error of eʳ ≤ 3.1·10⁻⁹).
const EXP_Q: [f32; 5] =
    [4.999_999_4e-1, 1.666_652_1e-1, 4.166_838e-2, 8.368_667e-3, 1.381_472_6e-3];
/// Below this |x|, tanh uses the odd polynomial; above, the exponential.
const TANH_SMALL: f32 = 0.625;
/// P(s) ≈ (tanh a − a)/a³, s = a², on 0 ≤ a ≤ 0.625 (minimax, relative error of tanh ≤ 4.4·10⁻⁹).
const TANH_P: [f32; 5] =
    [-3.333_328e-1, 1.333_144_6e-1, -5.374_009_5e-2, 2.064_038e-2, -5.706_493_3e-3];

/// 2ⁿ for −126 ≤ n ≤ 127, from the exponent bits.
#[inline(always)]
fn pow2i(n: i32) -> f32 {
    f32::from_bits((n.wrapping_add(127) as u32) << 23)
}

/// eˣ in `f32`, branch-free, within 1 ulp (see the module documentation).
#[inline(always)]
pub(crate) fn exp_f32(x: f32) -> f32 {
    // clamp so that n stays in [−150, 128]; written as selects so that NaN passes through
    let x = if x > 89.0 { 89.0 } else { x };
    let x = if x < -104.0 { -104.0 } else { x };
    let k = x * LOG2E + ROUND;
    let nf = k - ROUND;
    let n = (k.to_bits() as i32).wrapping_sub(ROUND.to_bits() as i32);
    let r = (x - nf * LN2_HI) - nf * LN2_LO;
    let [q0, q1, q2, q3, q4] = EXP_Q;
    let er = 1.0 + (r + r * r * (q0 + r * (q1 + r * (q2 + r * (q3 + r * q4)))));
    // 2ⁿ = 2^⌊n/2⌋ · 2^⌈n/2⌉: both factors normal, so a subnormal result is rounded once
    let n1 = n >> 1;
    er * pow2i(n1) * pow2i(n.wrapping_sub(n1))
}

/// tanh x in `f32`, branch-free, within 1.5 ulp (see the module documentation).
#[inline(always)]
pub(crate) fn tanh_f32(x: f32) -> f32 {
    let a = x.abs();
    let s = a * a;
    let [p0, p1, p2, p3, p4] = TANH_P;
    let small = a + a * s * (p0 + s * (p1 + s * (p2 + s * (p3 + s * p4))));
    // e^{2a} overflows to +∞ for a > 44.4 (and for a = +∞), giving exactly 1; NaN stays NaN
    let large = 1.0 - 2.0 / (exp_f32(2.0 * a) + 1.0);
    let t = if a < TANH_SMALL { small } else { large };
    t.copysign(x)
}

/// Below this |z|, erf z uses the odd polynomial; above, erfc z = e^{−z²}·R(1/(1 + z/2)).
const ERF_SMALL: f32 = 0.75;
/// P(s) ≈ erf(z)/z, s = z², on 0 ≤ z ≤ 0.75 (minimax, relative error 1.4·10⁻⁹). The first
/// coefficient is the fitted one, one `f32` ulp below 2/√π.
#[allow(clippy::approx_constant)]
const ERF_P: [f32; 6] =
    [1.128_379_1, -3.761_262e-1, 1.128_337_8e-1, -2.683_469_5e-2, 5.114_504_6e-3, -6.750_761e-4];
/// R(t) ≈ erfc(z)·e^{z²}, t = 1/(1 + z/2), on 0.75 ≤ z ≤ 10.1 (minimax, relative error
/// 1.6·10⁻⁸).
const ERFC_R: [f32; 9] = [
    -8.425_824_5e-6,
    2.823_093_8e-1,
    2.798_088_8e-1,
    2.599_700_7e-1,
    1.330_110_4e-1,
    1.606_617_6e-1,
    -4.886_391e-2,
    -1.303_369_8e-1,
    6.369_647e-2,
];

/// Φ(x) = ½·erfc(−x/√2), the standard normal CDF, in `f32`, branch-free: with z = |x|/√2,
/// erfc z = 1 − z·P(z²) below z = 0.75 and e^{−z²}·R(1/(1 + z/2)) above (no cancellation in the
/// lower tail: Φ(x) = ½·erfc z for x < 0, 1 − ½·erfc z for x ≥ 0). Error ≤ 4·(1 + z²) ulp
/// (3.3 measured; the factor allows for the rounding of z², which e^{−z²} amplifies z²-fold;
/// tested in `ops/gelu.rs`); 0 below x ≈ −14, 1 above 5.5, NaN → NaN.
#[inline(always)]
pub(crate) fn normal_cdf_f32(x: f32) -> f32 {
    let z = x.abs() * std::f32::consts::FRAC_1_SQRT_2;
    let s = z * z;
    let [p0, p1, p2, p3, p4, p5] = ERF_P;
    let erfc_small = 1.0 - z * (p0 + s * (p1 + s * (p2 + s * (p3 + s * (p4 + s * p5)))));
    let t = 1.0 / (1.0 + 0.5 * z);
    let [r0, r1, r2, r3, r4, r5, r6, r7, r8] = ERFC_R;
    let r =
        r0 + t * (r1 + t * (r2 + t * (r3 + t * (r4 + t * (r5 + t * (r6 + t * (r7 + t * r8)))))));
    let erfc_large = exp_f32(-s) * r;
    let half_erfc = 0.5 * if z < ERF_SMALL { erfc_small } else { erfc_large };
    if x < 0.0 { half_erfc } else { 1.0 - half_erfc }
}

/// A function applied to every element by [`map`]. Closures and fn items implement it through
/// `Fn`, but they are called through a shim that is not `#[inline(always)]`: a large body (the
/// GELU-erf kernel) then stays an out-of-line scalar call and the loop does not vectorize. Such a
/// kernel implements the trait on a unit struct with an `#[inline(always)]` `apply` instead.
pub(crate) trait Elementwise<T>: Copy + Send + Sync {
    fn apply(self, x: T) -> T;
}

impl<T, F: Fn(T) -> T + Copy + Send + Sync> Elementwise<T> for F {
    #[inline(always)]
    fn apply(self, x: T) -> T {
        self(x)
    }
}

/// A function of two elements, applied by [`zip_map`]; see [`Elementwise`].
pub(crate) trait Elementwise2<T>: Copy + Send + Sync {
    fn apply(self, x: T, y: T) -> T;
}

impl<T, F: Fn(T, T) -> T + Copy + Send + Sync> Elementwise2<T> for F {
    #[inline(always)]
    fn apply(self, x: T, y: T) -> T {
        self(x, y)
    }
}

/// f(x) for every element of `x`; a vectorizable slice loop when `x` is in standard layout.
pub(crate) fn map<T: Copy + Send + Sync>(
    x: ArrayViewD<'_, T>,
    f: impl Elementwise<T>,
) -> ArrayD<T> {
    match x.as_slice() {
        Some(xs) => ArrayD::from_shape_vec(x.raw_dim(), map_slice(xs, f))
            .expect("map_slice returns one element per input"),
        None => x.mapv(|v| f.apply(v)),
    }
}

/// f(a, b) elementwise for two arrays of the same shape; a vectorizable slice loop when both are
/// in standard layout.
pub(crate) fn zip_map<T: Copy + Send + Sync>(
    a: ArrayViewD<'_, T>,
    b: ArrayViewD<'_, T>,
    f: impl Elementwise2<T>,
) -> ArrayD<T> {
    assert_eq!(a.shape(), b.shape(), "zip_map: callers pass arrays of one shape");
    match (a.as_slice(), b.as_slice()) {
        (Some(xs), Some(ys)) => ArrayD::from_shape_vec(a.raw_dim(), zip_map_slice(xs, ys, f))
            .expect("zip_map_slice returns one element per input"),
        _ => Zip::from(&a).and(&b).map_collect(|&x, &y| f.apply(x, y)),
    }
}

/// Generates a slice loop (`$generic`, inlined into each caller) writing into `dst`, its AVX2 /
/// AVX-512 builds, and a dispatcher `$name` choosing among them by runtime CPU feature detection.
macro_rules! dispatched_loop {
    ($name:ident, $generic:ident, $avx2:ident, $avx512:ident,
     ($($arg:ident: $ty:ty),*), $f:ident: $fty:ty, $body:block) => {
        #[inline(always)]
        fn $generic<T: Copy>($($arg: $ty,)* $f: $fty) $body

        #[cfg(target_arch = "x86_64")]
        #[target_feature(enable = "avx2")]
        fn $avx2<T: Copy>($($arg: $ty,)* $f: $fty) {
            $generic($($arg,)* $f)
        }

        #[cfg(target_arch = "x86_64")]
        #[target_feature(enable = "avx512f")]
        fn $avx512<T: Copy>($($arg: $ty,)* $f: $fty) {
            $generic($($arg,)* $f)
        }

        fn $name<T: Copy>($($arg: $ty,)* $f: $fty) {
            #[cfg(target_arch = "x86_64")]
            {
                if std::arch::is_x86_feature_detected!("avx512f") {
                    // SAFETY: the CPU supports AVX-512F (checked just above)
                    return unsafe { $avx512($($arg,)* $f) };
                }
                if std::arch::is_x86_feature_detected!("avx2") {
                    // SAFETY: the CPU supports AVX2 (checked just above)
                    return unsafe { $avx2($($arg,)* $f) };
                }
            }
            $generic($($arg,)* $f)
        }
    };
}

dispatched_loop!(map_into, map_into_generic, map_into_avx2, map_into_avx512,
(xs: &[T], dst: &mut [MaybeUninit<T>]), f: impl Elementwise<T>, {
    let n = dst.len();
    let xs = &xs[..n];
    for i in 0..n {
        dst[i].write(f.apply(xs[i]));
    }
});

dispatched_loop!(zip_map_into, zip_map_into_generic, zip_map_into_avx2, zip_map_into_avx512,
(xs: &[T], ys: &[T], dst: &mut [MaybeUninit<T>]), f: impl Elementwise2<T>, {
    let n = dst.len();
    let (xs, ys) = (&xs[..n], &ys[..n]);
    for i in 0..n {
        dst[i].write(f.apply(xs[i], ys[i]));
    }
});

dispatched_loop!(row_broadcast_into, row_broadcast_into_generic, row_broadcast_into_avx2,
row_broadcast_into_avx512,
(xs: &[T], row: &[T], dst: &mut [MaybeUninit<T>]), f: impl Elementwise2<T>, {
    // dst[i·m + j] = f(xs[i·m + j], row[j]): one inner slice loop per row, so it vectorizes
    let m = row.len();
    for (d, x) in dst.chunks_exact_mut(m).zip(xs.chunks_exact(m)) {
        for j in 0..m {
            d[j].write(f.apply(x[j], row[j]));
        }
    }
});

dispatched_loop!(column_broadcast_into, column_broadcast_into_generic,
column_broadcast_into_avx2, column_broadcast_into_avx512,
(xs: &[T], column: &[T], block: usize, dst: &mut [MaybeUninit<T>]), f: impl Elementwise2<T>, {
    // dst[i·b + k] = f(xs[i·b + k], column[i]) with b = block
    for ((d, x), &c) in dst.chunks_exact_mut(block).zip(xs.chunks_exact(block)).zip(column) {
        for k in 0..block {
            d[k].write(f.apply(x[k], c));
        }
    }
});

dispatched_loop!(zip_in_place, zip_in_place_generic, zip_in_place_avx2, zip_in_place_avx512,
(acc: &mut [T], ys: &[T]), f: impl Elementwise2<T>, {
    let n = acc.len();
    let ys = &ys[..n];
    for i in 0..n {
        acc[i] = f.apply(acc[i], ys[i]);
    }
});

/// A vector of `n` elements filled by `fill(first_unit, part)` over parts made of whole `unit`s
/// (in parallel on large outputs: [`parallel::for_each_part`]); `fill` must write every element
/// of its part.
fn filled<T: Send>(
    n: usize,
    unit: usize,
    fill: impl Fn(usize, &mut [MaybeUninit<T>]) + Sync,
) -> Vec<T> {
    let mut out = Vec::with_capacity(n);
    parallel::for_each_part(&mut out.spare_capacity_mut()[..n], unit, fill);
    // SAFETY: the parts cover the first n elements (unit divides n, the callers' contract) and
    // every part was written by the kernels above, which write each element of `dst`
    unsafe { out.set_len(n) };
    out
}

fn map_slice<T: Copy + Send + Sync>(xs: &[T], f: impl Elementwise<T>) -> Vec<T> {
    filled(xs.len(), 1, |first, dst| map_into(&xs[first..], dst, f))
}

fn zip_map_slice<T: Copy + Send + Sync>(xs: &[T], ys: &[T], f: impl Elementwise2<T>) -> Vec<T> {
    let n = xs.len().min(ys.len());
    filled(n, 1, |first, dst| zip_map_into(&xs[first..], &ys[first..], dst, f))
}

/// f(x, row[j]) for every element x of `xs` read as rows of `row.len()` elements (a row vector
/// broadcast over leading axes: a bias, an LN gain). `row.len()` must divide `xs.len()`.
pub(crate) fn row_broadcast<T: Copy + Send + Sync>(
    xs: &[T],
    row: &[T],
    f: impl Elementwise2<T>,
) -> Vec<T> {
    assert!(!row.is_empty() && xs.len().is_multiple_of(row.len()), "row_broadcast: ragged rows");
    let m = row.len();
    filled(xs.len(), m, |first, dst| row_broadcast_into(&xs[first * m..], row, dst, f))
}

/// f(x, column[i]) for every element x of the i-th of `column.len()` equal blocks of `xs` (a
/// column broadcast over trailing axes: LN statistics). `column.len()` must divide `xs.len()`.
pub(crate) fn column_broadcast<T: Copy + Send + Sync>(
    xs: &[T],
    column: &[T],
    f: impl Elementwise2<T>,
) -> Vec<T> {
    assert!(
        !column.is_empty() && !xs.is_empty() && xs.len().is_multiple_of(column.len()),
        "column_broadcast: ragged blocks"
    );
    let block = xs.len() / column.len();
    filled(xs.len(), block, |first, dst| {
        column_broadcast_into(&xs[first * block..], &column[first..], block, dst, f)
    })
}

/// Runs `f` inside a function compiled for the widest vector extension the CPU has (AVX-512F,
/// else AVX2, else the baseline), chosen at run time. `f` is inlined there, and so are the
/// `#[inline(always)]` functions it calls, so their loops vectorize at that width: the row
/// kernels (layer norm, cross-entropy) wrap their per-part loops in it. The same IEEE operations
/// run in the same order on every path (no fused multiply-add), so the bits do not depend on it.
#[inline(always)]
pub(crate) fn widest<R>(f: impl FnOnce() -> R) -> R {
    #[cfg(target_arch = "x86_64")]
    {
        #[target_feature(enable = "avx512f")]
        fn avx512<R>(f: impl FnOnce() -> R) -> R {
            f()
        }
        #[target_feature(enable = "avx2")]
        fn avx2<R>(f: impl FnOnce() -> R) -> R {
            f()
        }
        if std::arch::is_x86_feature_detected!("avx512f") {
            // SAFETY: the CPU supports AVX-512F (checked just above)
            return unsafe { avx512(f) };
        }
        if std::arch::is_x86_feature_detected!("avx2") {
            // SAFETY: the CPU supports AVX2 (checked just above)
            return unsafe { avx2(f) };
        }
    }
    f()
}

/// `row` repeated `times` times (a bias as the initial output of a GEMM), one `memcpy` per row,
/// rows in parallel parts on large outputs.
pub(crate) fn repeat_rows<T: Copy + Send + Sync>(row: &[T], times: usize) -> Vec<T> {
    let m = row.len();
    filled(m * times, m.max(1), |_, dst| {
        for d in dst.chunks_exact_mut(m.max(1)) {
            // SAFETY: `d` has room for exactly m elements, `row` holds m initialized ones, and
            // the two do not overlap (`d` is spare capacity of a new vector)
            unsafe { std::ptr::copy_nonoverlapping(row.as_ptr(), d.as_mut_ptr().cast::<T>(), m) };
        }
    })
}

/// acc[i] ← f(acc[i], ys[i]) for two slices of the same length (a gradient summed in place), in
/// parallel parts on large slices.
pub(crate) fn zip_slices_in_place<T: Copy + Send + Sync>(
    acc: &mut [T],
    ys: &[T],
    f: impl Elementwise2<T>,
) {
    assert_eq!(acc.len(), ys.len(), "zip_slices_in_place: callers pass slices of one length");
    parallel::for_each_part(acc, 1, |first, part| zip_in_place(part, &ys[first..], f));
}

/// f(a, b) for two slices of the same length; a vectorized loop.
pub(crate) fn zip_slices<T: Copy + Send + Sync>(
    xs: &[T],
    ys: &[T],
    f: impl Elementwise2<T>,
) -> Vec<T> {
    assert_eq!(xs.len(), ys.len(), "zip_slices: callers pass slices of one length");
    zip_map_slice(xs, ys, f)
}

/// |y − exact| in units in the last place of `f32` at `exact` (the spacing of the `f32`
/// binade holding |exact|; subnormal spacing below 2⁻¹²⁶).
#[cfg(test)]
pub(crate) fn ulp_error(y: f32, exact: f64) -> f64 {
    // `as f32` rounds to nearest: an overflow to ±∞ is right when the exact value rounds there
    if y as f64 == exact || y == exact as f32 && y.is_infinite() {
        return 0.0;
    }
    let e = (((exact.abs().to_bits() >> 52) & 0x7ff) as i32 - 1023).max(-126);
    (y as f64 - exact).abs() / 2f64.powi(e - 23)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The slice loops give the same bits on 1, 2 and 3 threads (outputs large enough to be
    /// split), and ragged part boundaries keep whole rows and blocks.
    #[test]
    fn element_wise_loops_are_bitwise_the_same_on_any_thread_count() {
        let n = parallel::MIN_PART * 3 + 384;
        let xs: Vec<f32> = (0..n).map(|i| ((i * 7919) % 1000) as f32 * 0.013 - 6.0).collect();
        let ys: Vec<f32> = (0..n).map(|i| ((i * 104_729) % 997) as f32 * 0.007 - 3.0).collect();
        let row: Vec<f32> = (0..384).map(|j| j as f32 * 0.25 - 1.0).collect();
        let column: Vec<f32> = (0..n / 384).map(|i| i as f32 * 0.5).collect();
        let run = || {
            let view = ArrayViewD::from_shape(ndarray::IxDyn(&[n]), &xs).unwrap();
            (
                map(view.view(), |x: f32| exp_f32(x) * 0.5),
                zip_slices(&xs, &ys, |x: f32, y: f32| x * y + tanh_f32(x)),
                row_broadcast(&xs, &row, |x: f32, r: f32| x - r),
                column_broadcast(&xs, &column, |x: f32, c: f32| x / (c + 1.0)),
                {
                    let mut acc = xs.clone();
                    zip_slices_in_place(&mut acc, &ys, |a: f32, y: f32| a + y);
                    acc
                },
            )
        };
        let one = parallel::with_threads(1, run);
        for threads in [2, 3] {
            let many = parallel::with_threads(threads, run);
            assert_eq!(one.0, many.0, "map on {threads}");
            assert_eq!(one.1, many.1, "zip on {threads}");
            assert_eq!(one.2, many.2, "row broadcast on {threads}");
            assert_eq!(one.3, many.3, "column broadcast on {threads}");
            assert_eq!(one.4, many.4, "in-place zip on {threads}");
        }
        assert_eq!(one.4[n - 1], xs[n - 1] + ys[n - 1]);
        assert_eq!(one.2[385], xs[385] - row[1]);
        assert_eq!(one.3[384 * 5 + 2], xs[384 * 5 + 2] / (column[5] + 1.0));
    }

    /// 2·10⁶ + 1 evenly spaced points of [lo, hi], rounded to `f32`.
    fn dense_grid(lo: f64, hi: f64) -> impl Iterator<Item = f32> {
        const N: i32 = 2_000_000;
        (0..=N).map(move |i| (lo + (hi - lo) * i as f64 / N as f64) as f32)
    }

    /// ±10^(k/1000) for k in [−40 000, 1 000]: tiny, subnormal and moderate magnitudes.
    fn log_grid() -> impl Iterator<Item = f32> {
        (-40_000..=1_000).flat_map(|k| {
            let v = 10f64.powf(k as f64 / 1000.0) as f32;
            [v, -v]
        })
    }

    #[test]
    fn tanh_f32_is_within_1_5_ulp_of_the_exact_tanh() {
        let mut worst = (0.0, 0.0f32);
        for x in dense_grid(-20.0, 20.0).chain(log_grid()) {
            let err = ulp_error(tanh_f32(x), (x as f64).tanh());
            if err > worst.0 {
                worst = (err, x);
            }
        }
        eprintln!("tanh_f32: worst {} ulp at x = {}", worst.0, worst.1);
        assert!(worst.0 <= 1.5, "tanh_f32: {} ulp at x = {}", worst.0, worst.1);
    }

    #[test]
    fn tanh_f32_keeps_signed_zeros_saturates_and_propagates_nan() {
        assert_eq!(tanh_f32(0.0).to_bits(), 0.0f32.to_bits());
        assert_eq!(tanh_f32(-0.0).to_bits(), (-0.0f32).to_bits());
        for (x, y) in [
            (f32::INFINITY, 1.0),
            (f32::NEG_INFINITY, -1.0),
            (f32::MAX, 1.0),
            (-f32::MAX, -1.0),
            (1e30, 1.0),
            (-1e30, -1.0),
            (9.02, 1.0),
            (f32::MIN_POSITIVE, f32::MIN_POSITIVE),
            (-1e-45, -1e-45),
        ] {
            assert_eq!(tanh_f32(x), y, "tanh({x})");
        }
        assert!(tanh_f32(f32::NAN).is_nan() && tanh_f32(-f32::NAN).is_nan());
    }

    #[test]
    fn exp_f32_is_within_1_ulp_of_the_exact_exp() {
        let mut worst = (0.0, 0.0f32);
        for x in dense_grid(-104.0, 89.0).chain(log_grid()) {
            let err = ulp_error(exp_f32(x), (x as f64).exp());
            if err > worst.0 {
                worst = (err, x);
            }
        }
        eprintln!("exp_f32: worst {} ulp at x = {}", worst.0, worst.1);
        assert!(worst.0 <= 1.0, "exp_f32: {} ulp at x = {}", worst.0, worst.1);
    }

    #[test]
    fn exp_f32_overflows_underflows_and_propagates_nan_like_libm() {
        for x in [f32::INFINITY, f32::MAX, 1e30, 88.73, 89.0, 100.0] {
            assert_eq!(exp_f32(x), f32::INFINITY, "exp({x})");
        }
        for x in [f32::NEG_INFINITY, -f32::MAX, -1e30, -104.0, -200.0] {
            assert_eq!(exp_f32(x), 0.0, "exp({x})");
        }
        assert_eq!(exp_f32(0.0), 1.0);
        assert_eq!(exp_f32(-0.0), 1.0);
        assert!(exp_f32(88.72).is_finite() && exp_f32(-103.0) > 0.0);
        assert!(exp_f32(f32::NAN).is_nan());
    }

    /// Every `f32` of [lo, hi] (`cargo test --release -p saturn-tensor -- --ignored`).
    fn worst_over_every_f32(
        lo: f32,
        hi: f32,
        f: fn(f32) -> f32,
        exact: fn(f64) -> f64,
    ) -> (f64, f32) {
        let mut worst = (0.0, 0.0f32);
        for (a, b) in [(0.0f32, hi), (0.0, -lo)] {
            let mut bits = a.to_bits();
            while f32::from_bits(bits) <= b {
                for x in [f32::from_bits(bits), -f32::from_bits(bits)] {
                    if (lo..=hi).contains(&x) {
                        let err = ulp_error(f(x), exact(x as f64));
                        if err > worst.0 {
                            worst = (err, x);
                        }
                    }
                }
                bits += 1;
            }
        }
        worst
    }

    #[test]
    #[ignore = "exhaustive: several minutes in release"]
    fn tanh_and_exp_f32_bounds_hold_for_every_f32() {
        let t = worst_over_every_f32(-20.0, 20.0, tanh_f32, f64::tanh);
        eprintln!("tanh_f32 over every f32 of [−20, 20]: {} ulp at {}", t.0, t.1);
        let e = worst_over_every_f32(-104.0, 89.0, exp_f32, f64::exp);
        eprintln!("exp_f32 over every f32 of [−104, 89]: {} ulp at {}", e.0, e.1);
        assert!(t.0 <= 1.5 && e.0 <= 1.0);
    }

    #[test]
    fn map_is_bit_identical_to_the_scalar_kernel() {
        // an odd length, so that the vector loops' remainders run too
        let xs: Vec<f32> = dense_grid(-30.0, 30.0).take(100_003).collect();
        let x = ArrayViewD::from_shape(ndarray::IxDyn(&[xs.len()]), &xs).unwrap();
        for (name, f) in [("tanh", tanh_f32 as fn(f32) -> f32), ("exp", exp_f32)] {
            let y = map(x.view(), f);
            for (xi, yi) in xs.iter().zip(y.iter()) {
                assert_eq!(yi.to_bits(), f(*xi).to_bits(), "{name}({xi})");
            }
            let z = zip_map(x.view(), x.view(), |a, b| f(a) * b);
            for (xi, zi) in xs.iter().zip(z.iter()) {
                assert_eq!(zi.to_bits(), (f(*xi) * xi).to_bits(), "{name}({xi})·{xi}");
            }
        }
        // a transposed (non-standard) view takes the ndarray fallback with the same values
        let m = ArrayD::from_shape_vec(ndarray::IxDyn(&[3, 5]), xs[..15].to_vec()).unwrap();
        let t = m.t();
        assert_eq!(map(t.view(), tanh_f32), t.mapv(tanh_f32));
    }

    #[test]
    fn row_and_column_broadcasts_equal_the_indexed_loops() {
        // 37 rows of 13: odd sizes, so that the vector loops' remainders run too
        let (rows, cols) = (37, 13);
        let xs: Vec<f32> = (0..rows * cols).map(|i| (i as f32).sin()).collect();
        let row: Vec<f32> = (0..cols).map(|j| j as f32 - 6.5).collect();
        let column: Vec<f32> = (0..rows).map(|i| 1.0 / (i as f32 + 1.0)).collect();
        let f = |x: f32, y: f32| x * y + x;
        let by_row = row_broadcast(&xs, &row, f);
        let by_column = column_broadcast(&xs, &column, f);
        for i in 0..rows {
            for j in 0..cols {
                let x = xs[i * cols + j];
                assert_eq!(by_row[i * cols + j].to_bits(), f(x, row[j]).to_bits());
                assert_eq!(by_column[i * cols + j].to_bits(), f(x, column[i]).to_bits());
            }
        }
        assert_eq!(zip_slices(&xs, &xs, f), xs.iter().map(|&x| f(x, x)).collect::<Vec<_>>());
    }

    #[test]
    #[should_panic(expected = "ragged")]
    fn a_row_that_does_not_divide_the_input_is_refused() {
        row_broadcast(&[1.0f32; 10], &[1.0; 3], |x, y| x + y);
    }
}
