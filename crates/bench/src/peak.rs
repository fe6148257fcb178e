//! The machine's measured FMA peak: the denominator of `peak_fraction`.
//!
//! A peak taken from another machine means nothing here (the sessions run on AMD and Intel
//! CPUs, with and without AVX-512), so the bench measures the one it runs on: each thread runs a
//! loop of fused multiply-adds on independent accumulators in the widest SIMD registers the CPU
//! has, and the peak is
//!
//! ```text
//! peak = 2 · lanes · accumulators · iterations / seconds      (summed over the threads)
//! ```
//!
//! with lanes = register width / element width (AVX-512: 16 f32 or 8 f64; AVX2 + FMA: 8 or 4;
//! NEON: 4 or 2). Enough accumulators cover the FMA latency × the FMA pipes (4 cycles × 2 on
//! current x86 cores: 8 chains; 12 are used with 16 registers, 24 with AVX-512's 32). The
//! independent probe is `shared/bench/fma_peak.c` (C, the same scheme); `saturn-bench --peak`
//! prints this module's figure to compare with it.

use std::hint::black_box;
use std::time::Instant;

/// Which SIMD form the probe ran.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Isa {
    Avx512,
    Avx2Fma,
    #[cfg_attr(not(target_arch = "aarch64"), allow(dead_code))]
    Neon,
    /// No SIMD FMA detected: `f32::mul_add` on scalars (what the compiler makes of it).
    Scalar,
}

impl Isa {
    /// The widest FMA form this CPU runs.
    pub fn detect() -> Isa {
        #[cfg(target_arch = "x86_64")]
        {
            if std::arch::is_x86_feature_detected!("avx512f") {
                return Isa::Avx512;
            }
            if std::arch::is_x86_feature_detected!("avx2")
                && std::arch::is_x86_feature_detected!("fma")
            {
                return Isa::Avx2Fma;
            }
        }
        #[cfg(target_arch = "aarch64")]
        {
            if std::arch::is_aarch64_feature_detected!("neon") {
                return Isa::Neon;
            }
        }
        Isa::Scalar
    }

    pub fn name(self) -> &'static str {
        match self {
            Isa::Avx512 => "avx512",
            Isa::Avx2Fma => "avx2+fma",
            Isa::Neon => "neon",
            Isa::Scalar => "scalar",
        }
    }
}

/// The measured peak of `threads` threads running at once, in GFLOP/s.
#[derive(Debug, Clone, Copy)]
pub struct Peak {
    pub isa: Isa,
    pub threads: usize,
    pub f32_gflops: f64,
    pub f64_gflops: f64,
}

impl Peak {
    /// The peak for a line's `dtype` (`"f64"`, else f32).
    pub fn for_dtype(&self, dtype: &str) -> f64 {
        if dtype == "f64" { self.f64_gflops } else { self.f32_gflops }
    }
}

/// FMA iterations per timed run: ≈ 0.1–0.5 s on a current core (each iteration is one FMA on
/// every accumulator).
const ITERATIONS: u64 = 50_000_000;

/// Measures the peak of `threads` threads (each on its own accumulators, all started together):
/// the best of three runs of each element type, so a scheduler hiccup does not lower it.
pub fn measure(threads: usize) -> Peak {
    let isa = Isa::detect();
    let threads = threads.max(1);
    let best = |f: fn(Isa, u64) -> f64| -> f64 {
        (0..3).map(|_| all_threads(threads, || f(isa, ITERATIONS))).fold(0.0, f64::max)
    };
    Peak { isa, threads, f32_gflops: best(flops_f32), f64_gflops: best(flops_f64) }
}

/// Runs `work` (which returns FLOPs done) on `threads` threads at once; GFLOP/s over the wall
/// time of the slowest.
fn all_threads(threads: usize, work: impl Fn() -> f64 + Sync) -> f64 {
    let start = Instant::now();
    let flops: f64 = std::thread::scope(|s| {
        let handles: Vec<_> = (0..threads).map(|_| s.spawn(&work)).collect();
        handles.into_iter().map(|h| h.join().unwrap_or(0.0)).sum()
    });
    flops / start.elapsed().as_secs_f64() / 1e9
}

/// FLOPs of `iterations` FMA rounds in f32 on the widest registers.
fn flops_f32(isa: Isa, iterations: u64) -> f64 {
    match isa {
        #[cfg(target_arch = "x86_64")]
        // SAFETY: `Isa::detect` returned Avx512 only after detecting avx512f.
        Isa::Avx512 => unsafe { x86::fma_f32_avx512(iterations) },
        #[cfg(target_arch = "x86_64")]
        // SAFETY: `Isa::detect` returned Avx2Fma only after detecting avx2 and fma.
        Isa::Avx2Fma => unsafe { x86::fma_f32_avx2(iterations) },
        #[cfg(target_arch = "aarch64")]
        Isa::Neon => arm::fma_f32_neon(iterations),
        _ => fma_scalar_f32(iterations),
    }
}

/// FLOPs of `iterations` FMA rounds in f64 on the widest registers.
fn flops_f64(isa: Isa, iterations: u64) -> f64 {
    match isa {
        #[cfg(target_arch = "x86_64")]
        // SAFETY: `Isa::detect` returned Avx512 only after detecting avx512f.
        Isa::Avx512 => unsafe { x86::fma_f64_avx512(iterations) },
        #[cfg(target_arch = "x86_64")]
        // SAFETY: `Isa::detect` returned Avx2Fma only after detecting avx2 and fma.
        Isa::Avx2Fma => unsafe { x86::fma_f64_avx2(iterations) },
        #[cfg(target_arch = "aarch64")]
        Isa::Neon => arm::fma_f64_neon(iterations),
        _ => fma_scalar_f64(iterations),
    }
}

/// Scalar fallback: 8 independent `mul_add` chains of `$elem`.
macro_rules! fma_scalar {
    ($name:ident, $elem:ty) => {
        fn $name(iterations: u64) -> f64 {
            let (a, b): ($elem, $elem) = (0.999_999, 1e-7);
            let mut acc: [$elem; 8] = [0.0, 1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0];
            for _ in 0..iterations {
                for x in acc.iter_mut() {
                    *x = x.mul_add(a, b);
                }
            }
            black_box(acc);
            2.0 * 8.0 * iterations as f64
        }
    };
}
fma_scalar!(fma_scalar_f32, f32);
fma_scalar!(fma_scalar_f64, f64);

#[cfg(target_arch = "x86_64")]
mod x86 {
    use std::arch::x86_64::*;
    use std::hint::black_box;

    /// One macro body for the four x86 kernels: `n` accumulators of `$ty`, `lanes` lanes each.
    macro_rules! fma_kernel {
        ($name:ident, $feature:literal, $ty:ty, $set1:ident, $fma:ident, $n:literal, $lanes:literal, $elem:ty) => {
            #[target_feature(enable = $feature)]
            pub(super) fn $name(iterations: u64) -> f64 {
                let a: $ty = $set1(0.999_999 as $elem);
                let b: $ty = $set1(1e-7 as $elem);
                let mut acc: [$ty; $n] = [$set1(0.0); $n];
                for (i, x) in acc.iter_mut().enumerate() {
                    *x = $set1(i as $elem);
                }
                for _ in 0..iterations {
                    for x in acc.iter_mut() {
                        *x = $fma(*x, a, b);
                    }
                }
                black_box(acc);
                2.0 * ($lanes * $n) as f64 * iterations as f64
            }
        };
    }

    // 16 ymm registers: 12 accumulators + the two constants; 32 zmm: 24 accumulators
    fma_kernel!(fma_f32_avx2, "avx2,fma", __m256, _mm256_set1_ps, _mm256_fmadd_ps, 12, 8, f32);
    fma_kernel!(fma_f64_avx2, "avx2,fma", __m256d, _mm256_set1_pd, _mm256_fmadd_pd, 12, 4, f64);
    fma_kernel!(fma_f32_avx512, "avx512f", __m512, _mm512_set1_ps, _mm512_fmadd_ps, 24, 16, f32);
    fma_kernel!(fma_f64_avx512, "avx512f", __m512d, _mm512_set1_pd, _mm512_fmadd_pd, 24, 8, f64);
}

#[cfg(target_arch = "aarch64")]
mod arm {
    use std::arch::aarch64::*;
    use std::hint::black_box;

    /// 24 of the 32 NEON registers as accumulators.
    pub(super) fn fma_f32_neon(iterations: u64) -> f64 {
        let a = vdupq_n_f32(0.999_999);
        let b = vdupq_n_f32(1e-7);
        let mut acc = [vdupq_n_f32(0.0); 24];
        for _ in 0..iterations {
            for x in acc.iter_mut() {
                *x = vfmaq_f32(b, *x, a);
            }
        }
        black_box(acc);
        2.0 * (4 * 24) as f64 * iterations as f64
    }

    pub(super) fn fma_f64_neon(iterations: u64) -> f64 {
        let a = vdupq_n_f64(0.999_999);
        let b = vdupq_n_f64(1e-7);
        let mut acc = [vdupq_n_f64(0.0); 24];
        for _ in 0..iterations {
            for x in acc.iter_mut() {
                *x = vfmaq_f64(b, *x, a);
            }
        }
        black_box(acc);
        2.0 * (2 * 24) as f64 * iterations as f64
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_probe_measures_a_positive_peak_and_f64_is_at_most_f32() {
        let isa = Isa::detect();
        // the best of five interleaved runs of each, so that both see the same machine load (one
        // run each failed under a loaded test run: f32 preempted, 35 against f64's 86)
        let (mut f32_gflops, mut f64_gflops) = (0.0f64, 0.0f64);
        for _ in 0..5 {
            f32_gflops = f32_gflops.max(all_threads(1, || flops_f32(isa, 200_000)));
            f64_gflops = f64_gflops.max(all_threads(1, || flops_f64(isa, 200_000)));
        }
        assert!(f32_gflops > 0.0 && f64_gflops > 0.0, "{f32_gflops} {f64_gflops}");
        // half the lanes: f64 cannot run at more than f32's rate (generous: timing noise)
        assert!(f64_gflops < 1.5 * f32_gflops, "f64 {f64_gflops} vs f32 {f32_gflops}");
    }
}
