//! `mlp`: a training step of a 2-layer MLP written with saturn-tensor operations,
//!
//! logits = act(x·W1 + b1)·W2 + b2,  loss = cross_entropy(logits, targets),
//!
//! with W1 `[in, hidden]`, b1 `[hidden]`, W2 `[hidden, out]`, b2 `[out]` as `Tensor::param`, act ∈
//! {relu, gelu_tanh, gelu (erf)}, and the input x also a parameter, as the input of a transformer
//! FFN sublayer is, so that backward computes every GEMM gradient (dx, dW1, dh, dW2).
//!
//! Phases, each the median over the timed runs:
//! - `forward`: building the loss with gradient recording on;
//! - `backward`: `loss.backward()` plus dropping the graph (a training loop pays both);
//! - `step`: forward + backward of the same run (no optimizer update);
//! - `forward_nograd`: the forward under `no_grad` (inference): its gap to `forward` is the cost
//!   of recording the graph.
//!
//! FLOPs count only the GEMMs: forward = 2·batch·(in·hidden + hidden·out), backward = 2× forward
//! (exact here: dA = dC·Bᵀ and dB = Aᵀ·dC for both products), step = 3× forward. Bias adds,
//! activations and the loss are not counted. `gemm_ms` is the time of the same GEMMs by raw
//! `ndarray` GEMM (preallocated outputs), so `ms − gemm_ms` is what everything else costs:
//! elementwise work, allocations and graph bookkeeping. `tokens_per_s` = batch / phase time.

use std::time::Instant;

use rand::RngExt;
use saturn_tensor::blas::gemm;
use saturn_tensor::ndarray::{Array2, ArrayD, IxDyn};
use saturn_tensor::{CrossEntropy, Float, Tensor, no_grad};

use crate::timing::{self, Stats, gflops, ms_since};
use crate::{BenchResult, Case, Ctx, DType, Record};

/// MLP sides. The tiny and medium ones are the FFN blocks of the tiny and medium LM configs at
/// their tokens per step; `base` is 512 × 256 → 1024 → 256.
#[derive(Debug, Clone, Copy)]
pub struct Size {
    pub name: &'static str,
    pub batch: usize,
    pub input: usize,
    pub hidden: usize,
    pub output: usize,
}

pub const TINY: Size = Size { name: "tiny", batch: 512, input: 64, hidden: 256, output: 64 };
pub const BASE: Size = Size { name: "base", batch: 512, input: 256, hidden: 1024, output: 256 };
pub const MEDIUM: Size =
    Size { name: "medium", batch: 2048, input: 256, hidden: 1024, output: 256 };

impl Size {
    /// GEMM FLOPs of one forward pass.
    pub fn forward_flops(&self) -> f64 {
        2.0 * self.batch as f64 * (self.input * self.hidden + self.hidden * self.output) as f64
    }
}

/// The hidden activation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Act {
    Relu,
    GeluTanh,
    Gelu,
}

impl Act {
    pub fn name(self) -> &'static str {
        match self {
            Act::Relu => "relu",
            Act::GeluTanh => "gelu_tanh",
            Act::Gelu => "gelu",
        }
    }

    fn apply<T: Float>(self, x: &Tensor<T>) -> saturn_tensor::Result<Tensor<T>> {
        match self {
            Act::Relu => Ok(x.relu()),
            Act::GeluTanh => x.gelu_tanh(),
            Act::Gelu => x.gelu(),
        }
    }
}

/// The model, its data, and a fixed batch.
pub struct Mlp<T: Float> {
    pub w1: Tensor<T>,
    pub b1: Tensor<T>,
    pub w2: Tensor<T>,
    pub b2: Tensor<T>,
    /// The input batch [batch, in].
    pub x: Tensor<T>,
    pub targets: Vec<usize>,
    pub act: Act,
}

fn uniform<T: Float>(shape: &[usize], bound: f64, rng: &mut impl RngExt) -> ArrayD<T> {
    ArrayD::from_shape_fn(IxDyn(shape), |_| T::cast(rng.random_range(-bound..bound)))
}

impl<T: Float> Mlp<T> {
    /// PyTorch's default Linear init (U(±1/√fan_in) for weights and biases), x ~ U(−1, 1),
    /// uniform random targets; from the fixed seed. `x_requires_grad` makes x a parameter.
    pub fn new(size: Size, act: Act, x_requires_grad: bool) -> Mlp<T> {
        let mut rng = crate::rng();
        let (b1, b2) = (1.0 / (size.input as f64).sqrt(), 1.0 / (size.hidden as f64).sqrt());
        let x = uniform::<T>(&[size.batch, size.input], 1.0, &mut rng);
        Mlp {
            w1: Tensor::param(uniform::<T>(&[size.input, size.hidden], b1, &mut rng)),
            b1: Tensor::param(uniform::<T>(&[size.hidden], b1, &mut rng)),
            w2: Tensor::param(uniform::<T>(&[size.hidden, size.output], b2, &mut rng)),
            b2: Tensor::param(uniform::<T>(&[size.output], b2, &mut rng)),
            x: if x_requires_grad { Tensor::param(x) } else { Tensor::constant(x) },
            targets: (0..size.batch).map(|_| rng.random_range(0..size.output)).collect(),
            act,
        }
    }

    /// The weights and biases (not x).
    pub fn params(&self) -> Vec<Tensor<T>> {
        vec![self.w1.clone(), self.b1.clone(), self.w2.clone(), self.b2.clone()]
    }

    /// The mean cross-entropy of the batch.
    pub fn loss(&self) -> saturn_tensor::Result<Tensor<T>> {
        let h = self.act.apply(&self.x.matmul(&self.w1)?.add(&self.b1)?)?;
        let logits = h.matmul(&self.w2)?.add(&self.b2)?;
        logits.cross_entropy(&self.targets, CrossEntropy::default())
    }

    fn zero_grads(&self) {
        for p in self.params() {
            p.zero_grad();
        }
        self.x.zero_grad();
    }
}

/// The cases: sizes × activations, for each requested dtype.
pub fn cases(ctx: &Ctx) -> Vec<Case> {
    let sizes: &[Size] = if ctx.quick { &[TINY, BASE] } else { &[TINY, BASE, MEDIUM] };
    let acts: &[Act] = if ctx.quick {
        &[Act::Relu, Act::GeluTanh]
    } else {
        &[Act::Relu, Act::GeluTanh, Act::Gelu]
    };
    let mut out = Vec::new();
    for &dtype in &ctx.dtypes {
        for &size in sizes {
            for &act in acts {
                let name = format!("mlp/{}/{}/{}", size.name, act.name(), dtype.name());
                out.push(Case::new(name, move |ctx| match dtype {
                    DType::F32 => run::<f32>(ctx, size, act),
                    DType::F64 => run::<f64>(ctx, size, act),
                }));
            }
        }
    }
    out
}

/// Time of the model's GEMMs alone by raw ndarray GEMM: (forward, backward) medians in ms.
fn gemm_baseline<T: Float>(ctx: &Ctx, size: Size) -> BenchResult<(f64, f64)> {
    let mut rng = crate::rng();
    let mut m = |r, c| -> Array2<T> {
        uniform::<T>(&[r, c], 1.0, &mut rng).into_dimensionality().expect("two axes")
    };
    let Size { batch: b, input: i, hidden: h, output: o, .. } = size;
    let (x, w1, hid, w2) = (m(b, i), m(i, h), m(b, h), m(h, o));
    let (dl, dh) = (m(b, o), m(b, h));
    let (mut out_h, mut out_l) = (Array2::<T>::zeros((b, h)), Array2::<T>::zeros((b, o)));
    let (mut g_x, mut g_w1, mut g_w2) =
        (Array2::<T>::zeros((b, i)), Array2::<T>::zeros((i, h)), Array2::<T>::zeros((h, o)));
    let (one, zero) = (T::one(), T::zero());
    let fwd = timing::time(ctx.plan, || {
        gemm(one, &x, &w1, zero, &mut out_h);
        gemm(one, &hid, &w2, zero, &mut out_l);
        Ok::<_, saturn_tensor::TensorError>(())
    })?;
    let bwd = timing::time(ctx.plan, || {
        gemm(one, &dl, &w2.t(), zero, &mut out_h); // dh = dlogits·W2ᵀ
        gemm(one, &hid.t(), &dl, zero, &mut g_w2); // dW2 = hᵀ·dlogits
        gemm(one, &dh, &w1.t(), zero, &mut g_x); // dx = dh·W1ᵀ
        gemm(one, &x.t(), &dh, zero, &mut g_w1); // dW1 = xᵀ·dh
        Ok::<_, saturn_tensor::TensorError>(())
    })?;
    Ok((fwd.median_ms, bwd.median_ms))
}

fn run<T: Float>(ctx: &Ctx, size: Size, act: Act) -> BenchResult<Vec<Record>> {
    let mlp = Mlp::<T>::new(size, act, true);
    let (mut fwd, mut bwd, mut step) = (Vec::new(), Vec::new(), Vec::new());
    for i in 0..ctx.plan.warmup + ctx.plan.runs {
        mlp.zero_grads();
        let t0 = Instant::now();
        let loss = mlp.loss()?;
        let t_fwd = ms_since(t0);
        let t1 = Instant::now();
        loss.backward()?;
        drop(loss);
        let t_bwd = ms_since(t1);
        if i >= ctx.plan.warmup {
            fwd.push(t_fwd);
            bwd.push(t_bwd);
            step.push(t_fwd + t_bwd);
        }
    }
    let loss0 = mlp.loss()?.item()?.as_f64();
    if !loss0.is_finite() || mlp.w1.grad().is_none() {
        return Err(format!("bad step: loss {loss0}, grad of W1 missing or not computed").into());
    }
    let nograd = timing::time(ctx.plan, || {
        std::hint::black_box(no_grad(|| mlp.loss())?);
        Ok::<_, saturn_tensor::TensorError>(())
    })?;
    let (gemm_fwd, gemm_bwd) = gemm_baseline::<T>(ctx, size)?;

    let f = size.forward_flops();
    let phases: [(&str, Stats, f64, f64); 4] = [
        ("forward", Stats::from_ms(fwd), f, gemm_fwd),
        ("backward", Stats::from_ms(bwd), 2.0 * f, gemm_bwd),
        ("step", Stats::from_ms(step), 3.0 * f, gemm_fwd + gemm_bwd),
        ("forward_nograd", nograd, f, gemm_fwd),
    ];
    Ok(phases
        .iter()
        .map(|(phase, s, flops, gemm_ms)| {
            Record::new("mlp")
                .with("config", size.name)
                .with("act", act.name())
                .with(
                    "shape",
                    format!("{}x{}x{}x{}", size.batch, size.input, size.hidden, size.output),
                )
                .with("phase", *phase)
                .with("dtype", T::NAME)
                .stats(s)
                .num("gflops", gflops(*flops, s.median_ms))
                .num("gemm_ms", *gemm_ms)
                .num("non_gemm_pct", 100.0 * (1.0 - gemm_ms / s.median_ms))
                .num("tokens_per_s", size.batch as f64 / (s.median_ms * 1e-3))
                .num("loss", loss0)
        })
        .collect())
}
