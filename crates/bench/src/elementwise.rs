//! `elementwise`: the non-GEMM operations a transformer step is full of, one at a time, on a
//! [512, 1024] tensor (the hidden activation of the `base` MLP), under `no_grad`.
//!
//! `ns_per_elem` = median time / elements; `gb_s` = (bytes read + bytes written) / time, counting
//! each input and the output once. Where a plain Rust loop over contiguous slices computes the
//! same thing (`a + b`, `max(x, 0)`, `x.tanh()`, …) its median is `raw_ms`, the baseline of what
//! one pass over the memory costs; `raw_ms` is absent for composite ops. No FLOPs are counted.
//!
//! `layer_norm` and `masked_softmax` (scale 1/8, a causal-style mask) are the fused operations;
//! the `*_composite` cases compute the same values the way saturn-tensor did before they were
//! fused (≈ 10 ops; `mul_scalar` + `masked_fill(−∞)` + `softmax`).
//!
//! The `overhead/*` cases time one `add` of two 16-element tensors, untracked and tracked (both
//! inputs parameters, recording on, the graph dropped after each call): the fixed cost of an
//! operation and of recording it.

use rand::RngExt;
use saturn_tensor::ndarray::{ArrayD, IxDyn};
use saturn_tensor::{Float, Result, Tensor, no_grad};

use crate::timing::{self, Stats};
use crate::{BenchResult, Case, Ctx, Record};

const ROWS: usize = 512;
const COLS: usize = 1024;

type Op = fn(&Tensor<f32>, &Tensor<f32>, &Tensor<f32>) -> Result<Tensor<f32>>;
type Raw = fn(&[f32], &[f32]) -> Vec<f32>;

/// (name, tensor inputs read, saturn-tensor op on (x, y, bias), plain-loop baseline).
const OPS: [(&str, usize, Op, Option<Raw>); 17] = [
    ("add", 2, |x, y, _| x.add(y), Some(|a, b| a.iter().zip(b).map(|(x, y)| x + y).collect())),
    ("mul", 2, |x, y, _| x.mul(y), Some(|a, b| a.iter().zip(b).map(|(x, y)| x * y).collect())),
    ("add_bias", 2, |x, _, b| x.add(b), None),
    (
        "mul_scalar",
        1,
        |x, _, _| Ok(x.mul_scalar(0.5)),
        Some(|a, _| a.iter().map(|x| 0.5 * x).collect()),
    ),
    ("relu", 1, |x, _, _| Ok(x.relu()), Some(|a, _| a.iter().map(|x| x.max(0.0)).collect())),
    ("exp", 1, |x, _, _| Ok(x.exp()), Some(|a, _| a.iter().map(|x| x.exp()).collect())),
    ("tanh", 1, |x, _, _| Ok(x.tanh()), Some(|a, _| a.iter().map(|x| x.tanh()).collect())),
    ("powf3", 1, |x, _, _| Ok(x.powf(3.0)), Some(|a, _| a.iter().map(|x| x * x * x).collect())),
    ("gelu_tanh", 1, |x, _, _| x.gelu_tanh(), None),
    ("gelu", 1, |x, _, _| x.gelu(), None),
    ("softmax", 1, |x, _, _| x.softmax(-1), None),
    ("layer_norm", 1, |x, _, b| x.layer_norm(Some(b), Some(b), 1e-5), None),
    ("layer_norm_composite", 1, |x, _, b| layer_norm_composite(x, b), None),
    ("masked_softmax", 1, |x, _, _| x.masked_softmax(Some(causal_mask()), 0.125), None),
    (
        "masked_softmax_composite",
        1,
        |x, _, _| x.mul_scalar(0.125).masked_fill(causal_mask(), f64::NEG_INFINITY)?.softmax(-1),
        None,
    ),
    ("sum_all", 1, |x, _, _| Ok(x.sum_all()), None),
    ("sum_to_bias", 1, |x, _, _| x.sum_to(&[COLS]), None),
];

/// The layer norm saturn-tensor computed before it was fused (≈ 10 operations), for comparison.
fn layer_norm_composite(x: &Tensor<f32>, gb: &Tensor<f32>) -> Result<Tensor<f32>> {
    let centered = x.sub(&x.mean_axis(-1, true)?)?;
    let var = centered.mul(&centered)?.mean_axis(-1, true)?;
    centered.mul(&var.add_scalar(1e-5).powf(-0.5))?.mul(gb)?.add(gb)
}

/// A causal-style [512, 1024] mask (column j blocked for row i when j > 2i), built once.
fn causal_mask() -> &'static ArrayD<bool> {
    static MASK: std::sync::OnceLock<ArrayD<bool>> = std::sync::OnceLock::new();
    MASK.get_or_init(|| ArrayD::from_shape_fn(IxDyn(&[ROWS, COLS]), |p| p[1] > 2 * p[0]))
}

fn random(shape: &[usize], rng: &mut impl RngExt) -> ArrayD<f32> {
    ArrayD::from_shape_fn(IxDyn(shape), |_| rng.random_range(-2.0f32..2.0))
}

/// The cases (f32 only).
pub fn cases(_ctx: &Ctx) -> Vec<Case> {
    let mut out: Vec<Case> = OPS
        .iter()
        .map(|&(name, reads, op, raw)| {
            Case::new(format!("elementwise/{name}/f32"), move |ctx| run(ctx, name, reads, op, raw))
        })
        .collect();
    for tracked in [false, true] {
        let name = if tracked { "add_16_tracked" } else { "add_16" };
        out.push(Case::new(format!("elementwise/overhead/{name}/f32"), move |ctx| {
            overhead(ctx, name, tracked)
        }));
    }
    out
}

fn run(ctx: &Ctx, name: &str, reads: usize, op: Op, raw: Option<Raw>) -> BenchResult<Vec<Record>> {
    let mut rng = crate::rng();
    let x = Tensor::constant(random(&[ROWS, COLS], &mut rng));
    let y = Tensor::constant(random(&[ROWS, COLS], &mut rng));
    let b = Tensor::constant(random(&[COLS], &mut rng));
    let stats = no_grad(|| {
        timing::time(ctx.plan, || {
            std::hint::black_box(op(&x, &y, &b)?);
            Ok::<_, saturn_tensor::TensorError>(())
        })
    })?;
    let n = (ROWS * COLS) as f64;
    let out_len = op(&x, &y, &b)?.len() as f64;
    let bytes = 4.0 * (reads as f64 * n + out_len);
    let mut r = Record::new("elementwise")
        .with("case", name)
        .with("shape", format!("{ROWS}x{COLS}"))
        .with("dtype", f32::NAME)
        .stats(&stats)
        .num("ns_per_elem", stats.median_ms * 1e6 / n)
        .num("gb_s", bytes / (stats.median_ms * 1e-3) / 1e9);
    if let Some(raw) = raw {
        let (xs, ys) = (x.to_vec(), y.to_vec());
        let s = timing::time(ctx.plan, || {
            std::hint::black_box(raw(std::hint::black_box(&xs), &ys));
            Ok::<_, saturn_tensor::TensorError>(())
        })?;
        r = r.num("raw_ms", s.median_ms).num("slowdown_vs_raw", stats.median_ms / s.median_ms);
    }
    Ok(vec![r])
}

fn overhead(ctx: &Ctx, name: &str, tracked: bool) -> BenchResult<Vec<Record>> {
    let make = |v: f32| {
        let data = ArrayD::from_elem(IxDyn(&[16]), v);
        if tracked { Tensor::param(data) } else { Tensor::constant(data) }
    };
    let (a, b) = (make(1.0), make(2.0));
    // many adds per timed run, so the timer's resolution does not matter
    const REPS: usize = 1000;
    let s = timing::time(ctx.plan, || {
        for _ in 0..REPS {
            std::hint::black_box(a.add(&b)?);
        }
        Ok::<_, saturn_tensor::TensorError>(())
    })?;
    let per = Stats {
        median_ms: s.median_ms / REPS as f64,
        min_ms: s.min_ms / REPS as f64,
        max_ms: s.max_ms / REPS as f64,
        runs: s.runs,
    };
    Ok(vec![
        Record::new("elementwise")
            .with("case", name)
            .with("shape", "16")
            .with("dtype", f32::NAME)
            .with("tracked", tracked)
            .stats(&per)
            .num("us_per_op", per.median_ms * 1e3),
    ])
}
