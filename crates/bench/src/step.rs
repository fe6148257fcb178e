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
//! none for the optimizer), `peak_fraction` (added by main) and `peak_rss_mb` (VmHWM).

use std::time::Instant;

use rand::RngExt;
use saturn_layers::{DecoderLm, ForwardCtx, LmConfig, Module, ResidualScheme};
use saturn_optim::{Adam, AdamConfig, Optimizer};
use saturn_tensor::ndarray::{Array2, s};

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
            cases.push(Case::new(format!("step/{}/{variant}/f32", size.name), move |ctx| {
                run(ctx, size, variant, residual)
            }));
        }
    }
    cases
}

fn run(
    ctx: &Ctx,
    size: LmSize,
    variant: &'static str,
    residual: ResidualScheme,
) -> BenchResult<Vec<Record>> {
    let model = DecoderLm::<f32>::new(size.config(residual), crate::SEED)?;
    let mut opt = Adam::new(model.named_parameters(), AdamConfig::default())?;
    let mut rng = crate::rng();
    let batches: Vec<Array2<usize>> = (0..4)
        .map(|_| {
            Array2::from_shape_fn((size.batch, size.seq_len + 1), |_| {
                rng.random_range(0..size.vocab)
            })
        })
        .collect();
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
        loss.backward()?;
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
    let rss = peak_rss_mb();
    let mut records = Vec::new();
    for ((phase, phase_flops), s) in phases.into_iter().zip(samples) {
        let stats = Stats::from_ms(s);
        let ms = stats.median_ms;
        let mut r = Record::new("step")
            .with("config", size.name)
            .with("variant", variant)
            .with("act", "gelu_tanh")
            .with("dtype", "f32")
            .with("phase", phase)
            .num("ms_per_step", ms)
            .stats(&stats)
            .num("tokens_per_s", size.tokens() as f64 / (ms * 1e-3));
        if phase_flops > 0.0 {
            r = r.num("gflops", gflops(phase_flops, ms));
        }
        if let Some(mb) = rss {
            r = r.num("peak_rss_mb", mb);
        }
        records.push(r);
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
