//! `step`: one training step of the decoder-only LM of `shared/bench/torch_ref.py`, to compare
//! with its PyTorch numbers (`shared/bench/README.md` §4–5).
//!
//! Model: saturn-layers' [`DecoderLm`] with torch_ref's configs — tiny (d 64, h 4, ff 256,
//! L 2, V 64, T 32, B 16), small (128, 4, 512, 4, 256, 64, 32), medium (256, 8, 1024, 6, 1024,
//! 128, 16) — each as Post-LN, Pre-LN and Admin (ω = 1: profiling does not change the cost),
//! GELU (tanh), learned positions, biases, f32. A step = forward + loss + backward + Adam
//! (lr 1e-3) + zero_grad, on 4 random token batches [B, T + 1] used in rotation.
//!
//! Lines per case, one per `phase`: `forward` (building the loss), `backward`, `optimizer`
//! (Adam step + zero_grad) and `step` (their sum, timed as one), each the median over the
//! timed steps, with `ms_per_step`, `tokens_per_s` = B·T / phase time, `gflops` (PaLM's count:
//! 6·N·tokens + 12·L·T·d·tokens per step, N the matmul weights; forward ⅓ of it, backward ⅔;
//! 0 for the optimizer, which has no matmul), `peak_fraction` (added by main) and `peak_rss_mb`
//! (VmHWM of the whole bench process so far, so it grows with the largest case run before).
//! With `--profile-backward`, `backward_op` lines follow: for each operation, the wall time of
//! its backward rule per timed step (`ms_per_step`) and `calls_per_step`; `op` = "accumulate" is
//! the summing of gradient contributions. The HVP cases add the same lines with `phase` "hvp":
//! the rules run by both backwards of the timed HVPs.
//!
//! `step/{tiny,small}/{variant}/hvp/f32` and `step/medium/post/hvp/f32` time, alternately on
//! the same batches, one gradient (phase `grad`: forward + `saturn_tensor::grad(loss, all
//! parameters, create_graph = false)`) and one exact Hessian-vector product (phase `hvp`:
//! forward + `saturn_tensor::hvp`, double backward) of the same loss, v a fixed U(−1, 1)
//! direction over every parameter; the `hvp` line carries `hvp_over_grad` (issue 10's target:
//! ≤ 4) and `vhv` = ⟨v, Hv⟩. `gflops` of `grad` is the step's PaLM count; of `hvp` 3× it
//! (nominal: the second backward runs through the forward and the recorded backward, twice the
//! work of both). They run after every training step case, so their memory does not show in the
//! training lines' `peak_rss_mb`.

use std::time::Instant;

use rand::RngExt;
use saturn_layers::{DecoderLm, ForwardCtx, LmConfig, Module, ResidualScheme};
use saturn_optim::{Adam, AdamConfig, Optimizer};
use saturn_tensor::ndarray::{Array2, ArrayD, IxDyn, s};
use saturn_tensor::{Tensor, grad, hvp};

use crate::timing::{Stats, gflops, ms_since};
use crate::{BenchResult, Case, Ctx, Record};

/// One of torch_ref's model sizes.
#[derive(Debug, Clone, Copy)]
pub struct LmSize {
    pub name: &'static str,
    pub d_model: usize,
    pub n_heads: usize,
    pub d_ff: usize,
    pub n_layers: usize,
    pub vocab: usize,
    pub seq_len: usize,
    pub batch: usize,
}

pub const SIZES: [LmSize; 3] = [
    LmSize {
        name: "tiny",
        d_model: 64,
        n_heads: 4,
        d_ff: 256,
        n_layers: 2,
        vocab: 64,
        seq_len: 32,
        batch: 16,
    },
    LmSize {
        name: "small",
        d_model: 128,
        n_heads: 4,
        d_ff: 512,
        n_layers: 4,
        vocab: 256,
        seq_len: 64,
        batch: 32,
    },
    LmSize {
        name: "medium",
        d_model: 256,
        n_heads: 8,
        d_ff: 1024,
        n_layers: 6,
        vocab: 1024,
        seq_len: 128,
        batch: 16,
    },
];

const VARIANTS: [(&str, ResidualScheme); 3] = [
    ("post", ResidualScheme::PostLn),
    ("pre", ResidualScheme::PreLn),
    ("admin", ResidualScheme::Admin),
];

impl LmSize {
    fn tokens(&self) -> usize {
        self.batch * self.seq_len
    }

    /// PaLM's FLOPs per training step: 6·N·tokens + 12·L·T·d·tokens, N = the matmul weights
    /// (q, k, v, o, ffn up and down of every layer, and the head).
    pub fn step_flops(&self) -> f64 {
        let (d, l) = (self.d_model, self.n_layers);
        let n = l * (4 * d * d + 2 * d * self.d_ff) + d * self.vocab;
        let tokens = self.tokens() as f64;
        6.0 * n as f64 * tokens + 12.0 * (l * self.seq_len * d) as f64 * tokens
    }

    fn config(&self, residual: ResidualScheme) -> LmConfig {
        let mut c = LmConfig::new(
            self.vocab,
            self.d_model,
            self.n_heads,
            self.d_ff,
            self.n_layers,
            self.seq_len,
        );
        c.residual = residual;
        c
    }
}

/// The process's peak resident set (VmHWM of /proc/self/status) in MB, if readable.
fn peak_rss_mb() -> Option<f64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    let kb: f64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kb / 1024.0)
}

/// The step cases: every size × variant; `--quick` keeps tiny and small and Post-LN medium.
pub fn cases(ctx: &Ctx) -> Vec<Case> {
    let mut cases = Vec::new();
    for size in SIZES {
        for (variant, residual) in VARIANTS {
            if ctx.quick && size.name == "medium" && variant != "post" {
                continue;
            }
            cases.push(
                Case::new(format!("step/{}/{variant}/f32", size.name), move |ctx| {
                    run(ctx, size, variant, residual)
                })
                .with_torch_cell(size.name, variant),
            );
        }
    }
    // after every training step, so their memory does not show in the step lines' peak_rss_mb
    // tiny and small in every variant, medium Post-LN only (≈ 5 s per HVP); `--quick`: Post-LN
    // tiny and small
    for size in SIZES {
        for (variant, residual) in VARIANTS {
            let medium = size.name == "medium";
            if (ctx.quick && (medium || variant != "post")) || (medium && variant != "post") {
                continue;
            }
            cases.push(
                Case::new(format!("step/{}/{variant}/hvp/f32", size.name), move |ctx| {
                    run_hvp(ctx, size, variant, residual)
                })
                .with_torch_hvp(size.name, variant),
            );
        }
    }
    cases
}

/// `n` random token batches [B, T + 1] (inputs are the first T columns, targets the last T).
fn token_batches(size: LmSize, n: usize) -> Vec<Array2<usize>> {
    let mut rng = crate::rng();
    (0..n)
        .map(|_| {
            Array2::from_shape_fn((size.batch, size.seq_len + 1), |_| {
                rng.random_range(0..size.vocab)
            })
        })
        .collect()
}

/// A line of the step bench with the fields every phase carries (main adds `threads` and
/// `peak_fraction`).
fn record(size: LmSize, variant: &str, phase: &str, stats: &Stats, flops: f64) -> Record {
    let ms = stats.median_ms;
    let mut r = Record::new("step")
        .with("config", size.name)
        .with("variant", variant)
        .with("act", "gelu_tanh")
        .with("dtype", "f32")
        .with("phase", phase)
        .num("ms_per_step", ms)
        .stats(stats)
        .num("tokens_per_s", size.tokens() as f64 / (ms * 1e-3))
        .num("gflops", gflops(flops, ms));
    if let Some(mb) = peak_rss_mb() {
        r = r.num("peak_rss_mb", mb);
    }
    r
}

fn run(
    ctx: &Ctx,
    size: LmSize,
    variant: &'static str,
    residual: ResidualScheme,
) -> BenchResult<Vec<Record>> {
    let model = DecoderLm::<f32>::new(size.config(residual), crate::SEED)?;
    let mut opt = Adam::new(model.named_parameters(), AdamConfig::default())?;
    let batches = token_batches(size, 4);
    // [forward, backward, optimizer, step] per timed step
    let mut samples: [Vec<f64>; 4] = Default::default();
    let plan = ctx.plan;
    for i in 0..plan.warmup + plan.runs {
        let tokens = &batches[i % batches.len()];
        let (inputs, targets) = (tokens.slice(s![.., ..-1]), tokens.slice(s![.., 1..]));
        let start = Instant::now();
        let loss = model.loss(inputs, targets, &mut ForwardCtx::train(i as u64))?;
        let forward = ms_since(start);
        let t = Instant::now();
        // only the timed steps are profiled
        saturn_tensor::profile::enable(ctx.profile_backward && i >= plan.warmup);
        loss.backward()?;
        saturn_tensor::profile::enable(false);
        drop(loss);
        let backward = ms_since(t);
        let t = Instant::now();
        opt.step(1e-3)?;
        opt.zero_grad();
        let optimizer = ms_since(t);
        let step = ms_since(start);
        if i >= plan.warmup {
            for (s, v) in samples.iter_mut().zip([forward, backward, optimizer, step]) {
                s.push(v);
            }
        }
    }
    let flops = size.step_flops();
    let phases = [
        ("forward", flops / 3.0),
        ("backward", 2.0 * flops / 3.0),
        ("optimizer", 0.0),
        ("step", flops),
    ];
    let mut records: Vec<Record> = phases
        .into_iter()
        .zip(samples)
        .map(|((phase, phase_flops), s)| {
            record(size, variant, phase, &Stats::from_ms(s), phase_flops)
        })
        .collect();
    if ctx.profile_backward {
        records.extend(backward_op_records(size, variant, "backward", plan.runs));
    }
    Ok(records)
}

/// One `backward_op` line per operation whose backward rule ran in the profiled steps of
/// `phase` (the training step's `backward`, or both backwards of an `hvp`): wall time and calls
/// per step (the table of [`saturn_tensor::profile`], divided by `steps`).
fn backward_op_records(size: LmSize, variant: &str, phase: &str, steps: usize) -> Vec<Record> {
    let per_step = |x: f64| x / steps.max(1) as f64;
    saturn_tensor::profile::take()
        .into_iter()
        .map(|row| {
            Record::new("backward_op")
                .with("config", size.name)
                .with("variant", variant)
                .with("dtype", "f32")
                .with("phase", phase)
                .with("op", row.op)
                .num("ms_per_step", per_step(row.total.as_secs_f64() * 1e3))
                .num("calls_per_step", per_step(row.calls as f64))
        })
        .collect()
}

/// One gradient against one exact Hessian-vector product of the LM's loss over every parameter,
/// timed alternately (grad, hvp, grad, hvp, …) so both see the same load.
fn run_hvp(
    ctx: &Ctx,
    size: LmSize,
    variant: &'static str,
    residual: ResidualScheme,
) -> BenchResult<Vec<Record>> {
    let model = DecoderLm::<f32>::new(size.config(residual), crate::SEED)?;
    let params = model.parameters();
    let mut rng = crate::rng();
    let v: Vec<Tensor<f32>> = params
        .iter()
        .map(|p| {
            Tensor::constant(ArrayD::from_shape_fn(IxDyn(&p.shape()), |_| {
                rng.random_range(-1.0f32..1.0)
            }))
        })
        .collect();
    let batches = token_batches(size, 4);
    let plan = ctx.plan;
    let (mut grad_ms, mut hvp_ms) = (Vec::new(), Vec::new());
    let mut vhv = 0.0;
    for i in 0..plan.warmup + plan.runs {
        let tokens = &batches[i % batches.len()];
        let (inputs, targets) = (tokens.slice(s![.., ..-1]), tokens.slice(s![.., 1..]));
        let start = Instant::now();
        let loss = model.loss(inputs, targets, &mut ForwardCtx::train(i as u64))?;
        std::hint::black_box(grad(&[loss], &params, false)?);
        let g = ms_since(start);
        let start = Instant::now();
        let loss = model.loss(inputs, targets, &mut ForwardCtx::train(i as u64))?;
        saturn_tensor::profile::enable(ctx.profile_backward && i >= plan.warmup);
        let hv = hvp(&loss, &params, &v)?;
        saturn_tensor::profile::enable(false);
        let h = ms_since(start);
        if i == 0 {
            for (a, b) in v.iter().zip(&hv) {
                vhv += a.dot(b)?.item()? as f64;
            }
            if !vhv.is_finite() {
                return Err(format!("⟨v, Hv⟩ = {vhv} is not finite").into());
            }
        }
        drop(hv);
        if i >= plan.warmup {
            grad_ms.push(g);
            hvp_ms.push(h);
        }
    }
    let (g, h) = (Stats::from_ms(grad_ms), Stats::from_ms(hvp_ms));
    let flops = size.step_flops();
    let ratio = h.median_ms / g.median_ms;
    let mut records = vec![
        record(size, variant, "grad", &g, flops),
        record(size, variant, "hvp", &h, 3.0 * flops).num("hvp_over_grad", ratio).with("vhv", vhv),
    ];
    if ctx.profile_backward {
        records.extend(backward_op_records(size, variant, "hvp", plan.runs));
    }
    Ok(records)
}

#[cfg(test)]
mod tests {
    use super::SIZES;

    #[test]
    fn step_flops_match_torch_ref() {
        // shared/bench/README.md §4: 0.340, 10.872, 66.035 GFLOP/step
        let expected = [0.340, 10.872, 66.035];
        for (size, e) in SIZES.iter().zip(expected) {
            assert!((size.step_flops() / 1e9 - e).abs() < 1e-3, "{}", size.name);
        }
    }
}
