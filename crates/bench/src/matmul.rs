//! `matmul`: `Tensor::matmul` (no gradient recorded) at the GEMM shapes of a decoder-only LM
//! step, for the tiny / small / medium configs of `shared/bench/README.md` §4, plus square
//! reference sizes comparable with the GEMM table of DEPENDENCIES.md.
//!
//! Per config (tokens = batch × seq):
//! - `qkv`      [tokens, d]·[d, 3d]         fused Q/K/V projection
//! - `ffn_up`   [tokens, d]·[d, ff]         and `ffn_down` [tokens, ff]·[ff, d]
//! - `head`     [tokens, d]·[d, vocab]      output projection
//! - `ffn_up_xWt`  x·Wᵀ with W stored [ff, d] (torch's Linear layout): B is a transposed view
//! - `ffn_dW`   Xᵀ·dY = [d, tokens]·[tokens, ff], the weight gradient: A is `transpose(0, 1)` of
//!   X stored [tokens, d], a view (`zero_copy` checks it shares X's memory)
//! - `attn_qk`  Q·Kᵀ: [B, H, T, dh]·[B, H, dh, T] with K stored [B, H, T, dh] (a view)
//! - `attn_av`  A·V:  [B, H, T, T]·[B, H, T, dh]
//!
//! FLOPs = 2·batch·m·k·n for C[m, n] = A[m, k]·B[k, n] (`shape` is `m x k x n`, with the batch
//! sides in front for batched products). `raw_ms` times the same products with
//! `saturn_tensor::blas::gemm` (the selected backend's GEMM) into a preallocated output: the difference to `ms` is what
//! the Tensor API adds (allocating and zeroing the output, dynamic-rank indexing).

use rand::RngExt;
use saturn_tensor::blas::gemm;
use saturn_tensor::ndarray::{ArrayD, ArrayView2, ArrayViewD, Axis, Dimension, Ix2, IxDyn};
use saturn_tensor::{Float, Tensor};

use crate::timing::{self, gflops};
use crate::{BenchResult, Case, Ctx, DType, Record};

/// A decoder-LM configuration (shared/bench/README.md §4).
struct LmConfig {
    name: &'static str,
    batch: usize,
    seq: usize,
    d: usize,
    heads: usize,
    ff: usize,
    vocab: usize,
}

const CONFIGS: [LmConfig; 3] = [
    LmConfig { name: "tiny", batch: 16, seq: 32, d: 64, heads: 4, ff: 256, vocab: 64 },
    LmConfig { name: "small", batch: 32, seq: 64, d: 128, heads: 4, ff: 512, vocab: 256 },
    LmConfig { name: "medium", batch: 16, seq: 128, d: 256, heads: 8, ff: 1024, vocab: 1024 },
];

/// Which operand reaches GEMM as a transposed view (BLAS's N/T flags).
#[derive(Debug, Clone, Copy)]
enum Layout {
    /// A·B, both contiguous.
    NN,
    /// Aᵀ·B, A a transposed view.
    TN,
    /// A·Bᵀ, B a transposed view.
    NT,
}

impl Layout {
    fn name(self) -> &'static str {
        match self {
            Layout::NN => "NN",
            Layout::TN => "TN",
            Layout::NT => "NT",
        }
    }
}

/// One product C[…, m, n] = A[…, m, k]·B[…, k, n].
#[derive(Debug, Clone)]
struct Gemm {
    config: &'static str,
    case: &'static str,
    batch: Vec<usize>,
    m: usize,
    k: usize,
    n: usize,
    layout: Layout,
}

impl Gemm {
    fn flops(&self) -> f64 {
        2.0 * self.batch.iter().product::<usize>() as f64 * (self.m * self.k * self.n) as f64
    }

    fn shape(&self) -> String {
        let mut sides = self.batch.clone();
        sides.extend([self.m, self.k, self.n]);
        sides.iter().map(usize::to_string).collect::<Vec<_>>().join("x")
    }
}

fn gemms(quick: bool) -> Vec<Gemm> {
    let mut out = Vec::new();
    let g = |config, case, batch: &[usize], m, k, n, layout| Gemm {
        config,
        case,
        batch: batch.to_vec(),
        m,
        k,
        n,
        layout,
    };
    for c in CONFIGS.iter().filter(|c| !quick || c.name != "medium") {
        let t = c.batch * c.seq;
        let dh = c.d / c.heads;
        let bh = [c.batch, c.heads];
        out.push(g(c.name, "qkv", &[], t, c.d, 3 * c.d, Layout::NN));
        out.push(g(c.name, "ffn_up", &[], t, c.d, c.ff, Layout::NN));
        out.push(g(c.name, "ffn_down", &[], t, c.ff, c.d, Layout::NN));
        out.push(g(c.name, "head", &[], t, c.d, c.vocab, Layout::NN));
        out.push(g(c.name, "ffn_up_xWt", &[], t, c.d, c.ff, Layout::NT));
        out.push(g(c.name, "ffn_dW", &[], c.d, t, c.ff, Layout::TN));
        out.push(g(c.name, "attn_qk", &bh, c.seq, dh, c.seq, Layout::NT));
        out.push(g(c.name, "attn_av", &bh, c.seq, c.seq, dh, Layout::NN));
    }
    let squares: &[usize] = if quick { &[512] } else { &[256, 512, 1024] };
    for &s in squares {
        let case = match s {
            256 => "256",
            512 => "512",
            _ => "1024",
        };
        out.push(g("square", case, &[], s, s, s, Layout::NN));
    }
    out
}

/// The benchmark cases, one per shape and requested dtype.
pub fn cases(ctx: &Ctx) -> Vec<Case> {
    let mut out = Vec::new();
    for &dtype in &ctx.dtypes {
        for gemm in gemms(ctx.quick) {
            let name = format!("matmul/{}/{}/{}", gemm.config, gemm.case, dtype.name());
            out.push(Case::new(name, move |ctx| match dtype {
                DType::F32 => run::<f32>(ctx, &gemm),
                DType::F64 => run::<f64>(ctx, &gemm),
            }));
        }
    }
    out
}

fn random<T: Float>(shape: &[usize], rng: &mut impl RngExt) -> ArrayD<T> {
    ArrayD::from_shape_fn(IxDyn(shape), |_| T::cast(rng.random_range(-1.0..1.0)))
}

/// Stored operands with the shapes the layout asks for; returns (A, B, whether a view was made).
fn operands<T: Float>(g: &Gemm) -> BenchResult<(Tensor<T>, Tensor<T>, Option<bool>)> {
    let mut rng = crate::rng();
    let dims = |r: usize, c: usize| [g.batch.as_slice(), &[r, c]].concat();
    Ok(match g.layout {
        Layout::NN => {
            let a = Tensor::constant(random::<T>(&dims(g.m, g.k), &mut rng));
            let b = Tensor::constant(random::<T>(&dims(g.k, g.n), &mut rng));
            (a, b, None)
        }
        Layout::TN => {
            let stored = Tensor::constant(random::<T>(&dims(g.k, g.m), &mut rng));
            let a = stored.transpose(-2, -1)?;
            let b = Tensor::constant(random::<T>(&dims(g.k, g.n), &mut rng));
            let shared = shares_memory(&stored, &a);
            (a, b, Some(shared))
        }
        Layout::NT => {
            let a = Tensor::constant(random::<T>(&dims(g.m, g.k), &mut rng));
            let stored = Tensor::constant(random::<T>(&dims(g.n, g.k), &mut rng));
            let b = stored.transpose(-2, -1)?;
            let shared = shares_memory(&stored, &b);
            (a, b, Some(shared))
        }
    })
}

/// Whether `view` is a non-contiguous view over the very buffer of `stored` (no copy made).
fn shares_memory<T: Float>(stored: &Tensor<T>, view: &Tensor<T>) -> bool {
    let (s, v) = (stored.data(), view.data());
    s.as_ptr() == v.as_ptr() && !v.is_standard_layout()
}

fn matrix<'a, T>(mut v: ArrayViewD<'a, T>, index: &[usize]) -> ArrayView2<'a, T> {
    for &i in index {
        v = v.index_axis_move(Axis(0), i);
    }
    v.into_dimensionality::<Ix2>().expect("two axes remain")
}

/// The product with ndarray's GEMM directly, into `out` (no allocation): the BLAS baseline.
fn raw_matmul<T: Float>(a: &ArrayViewD<'_, T>, b: &ArrayViewD<'_, T>, out: &mut ArrayD<T>) {
    let batch = out.shape()[..out.ndim() - 2].to_vec();
    for index in saturn_tensor::ndarray::indices(IxDyn(&batch)) {
        let index = index.slice();
        let mut o = out.view_mut();
        for &i in index {
            o = o.index_axis_move(Axis(0), i);
        }
        let mut o = o.into_dimensionality::<Ix2>().expect("two axes remain");
        gemm(T::one(), &matrix(a.view(), index), &matrix(b.view(), index), T::zero(), &mut o);
    }
}

fn run<T: Float>(ctx: &Ctx, g: &Gemm) -> BenchResult<Vec<Record>> {
    let (a, b, zero_copy) = operands::<T>(g)?;
    let stats = timing::time(ctx.plan, || {
        std::hint::black_box(a.matmul(&b)?);
        Ok::<_, saturn_tensor::TensorError>(())
    })?;

    let (ad, bd) = (a.data(), b.data());
    let mut out = ArrayD::<T>::zeros(IxDyn(&[g.batch.as_slice(), &[g.m, g.n]].concat()));
    let raw = timing::time(ctx.plan, || {
        raw_matmul(&ad.view(), &bd.view(), &mut out);
        std::hint::black_box(&out);
        Ok::<_, saturn_tensor::TensorError>(())
    })?;
    // the two paths must agree (same GEMM calls, so to the bit at one thread)
    let c = a.matmul(&b)?.data();
    let worst = c.iter().zip(out.iter()).map(|(x, y)| (*x - *y).abs().as_f64()).fold(0.0, f64::max);
    if worst > 1e-3 {
        return Err(format!("Tensor::matmul and raw GEMM differ by {worst}").into());
    }

    let flops = g.flops();
    let mut r = Record::new("matmul")
        .with("config", g.config)
        .with("case", g.case)
        .with("shape", g.shape())
        .with("layout", g.layout.name())
        .with("dtype", T::NAME)
        .stats(&stats)
        .num("gflops", gflops(flops, stats.median_ms))
        .num("raw_ms", raw.median_ms)
        .num("raw_gflops", gflops(flops, raw.median_ms))
        .num("api_overhead_pct", 100.0 * (stats.median_ms / raw.median_ms - 1.0))
        .num("mflop", flops / 1e6);
    if let Some(z) = zero_copy {
        r = r.with("zero_copy", z);
    }
    Ok(vec![r])
}
