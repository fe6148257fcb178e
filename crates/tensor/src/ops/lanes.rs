//! Row reductions in 8 interleaved lanes: Σ f(x), Σ x·y and max x over a contiguous row, with
//! element j going to lane j mod 8 and the lanes combined pairwise in a fixed order. Without a
//! loop-carried dependency through one accumulator the loops vectorize, and the fixed order keeps
//! results deterministic (bit-identical from run to run; they may differ in the last bits from a
//! left-to-right sum). Used by layer norm, softmax and cross-entropy.

use crate::Float;

const LANES: usize = 8;

/// The 8 partial results combined pairwise in a fixed order.
#[inline(always)]
fn combine<T: Copy>(acc: [T; LANES], op: impl Fn(T, T) -> T) -> T {
    op(op(op(acc[0], acc[4]), op(acc[2], acc[6])), op(op(acc[1], acc[5]), op(acc[3], acc[7])))
}

/// Σⱼ f(xs[j]).
#[inline(always)]
pub(crate) fn sum_map<T: Float>(xs: &[T], f: impl Fn(T) -> T) -> T {
    let mut acc = [T::zero(); LANES];
    let chunks = xs.chunks_exact(LANES);
    let tail = chunks.remainder();
    for c in chunks {
        for k in 0..LANES {
            acc[k] += f(c[k]);
        }
    }
    for (k, &v) in tail.iter().enumerate() {
        acc[k] += f(v);
    }
    combine(acc, |a, b| a + b)
}

/// Σⱼ xs[j].
#[inline(always)]
pub(crate) fn sum<T: Float>(xs: &[T]) -> T {
    sum_map(xs, |v| v)
}

/// Σⱼ xs[j]·ys[j] over the common length.
#[inline(always)]
pub(crate) fn dot<T: Float>(xs: &[T], ys: &[T]) -> T {
    let n = xs.len().min(ys.len());
    let (xs, ys) = (&xs[..n], &ys[..n]);
    let mut acc = [T::zero(); LANES];
    let (xc, yc) = (xs.chunks_exact(LANES), ys.chunks_exact(LANES));
    let (xt, yt) = (xc.remainder(), yc.remainder());
    for (a, b) in xc.zip(yc) {
        for k in 0..LANES {
            acc[k] += a[k] * b[k];
        }
    }
    for (k, (&a, &b)) in xt.iter().zip(yt).enumerate() {
        acc[k] += a * b;
    }
    combine(acc, |a, b| a + b)
}

/// maxⱼ xs[j], ignoring NaN entries (−∞ for an empty or all-NaN row). Callers that need NaN to
/// propagate get it from what they compute with the maximum (e.g. e^(x − m) stays NaN).
#[inline(always)]
pub(crate) fn max<T: Float>(xs: &[T]) -> T {
    let pick = |a: T, b: T| if b > a { b } else { a };
    let mut acc = [T::neg_infinity(); LANES];
    let chunks = xs.chunks_exact(LANES);
    let tail = chunks.remainder();
    for c in chunks {
        for k in 0..LANES {
            acc[k] = pick(acc[k], c[k]);
        }
    }
    for (k, &v) in tail.iter().enumerate() {
        acc[k] = pick(acc[k], v);
    }
    combine(acc, pick)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lane_reductions_equal_the_plain_ones_on_every_length() {
        for n in 0..40 {
            let xs: Vec<f64> = (0..n).map(|i| ((i * 7919) % 23) as f64 - 11.0).collect();
            let ys: Vec<f64> = (0..n).map(|i| (i % 5) as f64).collect();
            assert_eq!(sum(&xs), xs.iter().sum::<f64>(), "n = {n}");
            assert_eq!(sum_map(&xs, |v| v * v), xs.iter().map(|v| v * v).sum::<f64>());
            assert_eq!(dot(&xs, &ys), xs.iter().zip(&ys).map(|(a, b)| a * b).sum::<f64>());
            assert_eq!(max(&xs), xs.iter().copied().fold(f64::NEG_INFINITY, f64::max));
        }
    }

    #[test]
    fn max_skips_nan_and_keeps_infinities() {
        assert_eq!(max(&[1.0, f64::NAN, 3.0]), 3.0);
        assert_eq!(max(&[f64::NAN]), f64::NEG_INFINITY);
        assert_eq!(max(&[f64::NEG_INFINITY, f64::INFINITY]), f64::INFINITY);
    }
}
