//! `hvp`: the cost of one exact Hessian-vector product relative to one gradient, for the MLP of
//! [`crate::mlp`] (x a constant; derivatives with respect to W1, b1, W2, b2), in f64 and f32.
//!
//! - `grad`: forward + `saturn_tensor::grad(loss, params, create_graph = false)`;
//! - `hvp`:  forward + `saturn_tensor::hvp(loss, params, v)`, i.e. a first backward that records
//!   its own graph, ⟨g, v⟩, and a second backward through that graph (double backward).
//!
//! Both include the forward pass, so `hvp_over_grad` compares the two as a Hessian-spectrum method
//! (power iteration, Lanczos, Hutchinson) pays for them; theory puts it around 2–4. v is a fixed
//! random direction (U(−1, 1), same seed). `vhv` = ⟨v, H·v⟩ is reported as a determinism check.
//! `gflops` counts the model's GEMMs only: grad = 3× the forward GEMM FLOPs minus the skipped
//! dx product, and no FLOP count is given for hvp (its extra work is not GEMM-shaped only).

use rand::RngExt;
use saturn_tensor::ndarray::{ArrayD, IxDyn};
use saturn_tensor::{Float, Tensor, grad, hvp};

use crate::mlp::{Act, BASE, Mlp, Size, TINY};
use crate::timing::{self, gflops};
use crate::{BenchResult, Case, Ctx, Record};

/// The cases: sizes × activations × {f64, f32} (independent of `--dtype`).
pub fn cases(ctx: &Ctx) -> Vec<Case> {
    let sizes: &[Size] = if ctx.quick { &[TINY] } else { &[TINY, BASE] };
    let mut out = Vec::new();
    for &size in sizes {
        for act in [Act::Relu, Act::GeluTanh] {
            for f64_ in [true, false] {
                let dtype = if f64_ { "f64" } else { "f32" };
                let name = format!("hvp/{}/{}/{dtype}", size.name, act.name());
                out.push(Case::new(name, move |ctx| {
                    if f64_ { run::<f64>(ctx, size, act) } else { run::<f32>(ctx, size, act) }
                }));
            }
        }
    }
    out
}

fn run<T: Float>(ctx: &Ctx, size: Size, act: Act) -> BenchResult<Vec<Record>> {
    let mlp = Mlp::<T>::new(size, act, false);
    let params = mlp.params();
    let mut rng = crate::rng();
    let v: Vec<Tensor<T>> = params
        .iter()
        .map(|p| {
            Tensor::constant(ArrayD::from_shape_fn(IxDyn(&p.shape()), |_| {
                T::cast(rng.random_range(-1.0..1.0))
            }))
        })
        .collect();

    let g_stats = timing::time(ctx.plan, || {
        let loss = mlp.loss()?;
        std::hint::black_box(grad(&[loss], &params, false)?);
        Ok::<_, saturn_tensor::TensorError>(())
    })?;
    let h_stats = timing::time(ctx.plan, || {
        let loss = mlp.loss()?;
        std::hint::black_box(hvp(&loss, &params, &v)?);
        Ok::<_, saturn_tensor::TensorError>(())
    })?;

    let hv = hvp(&mlp.loss()?, &params, &v)?;
    let mut vhv = 0.0;
    for (a, b) in v.iter().zip(&hv) {
        vhv += a.dot(b)?.item()?.as_f64();
    }
    if !vhv.is_finite() {
        return Err(format!("⟨v, Hv⟩ = {vhv} is not finite").into());
    }

    // forward GEMMs + dlogits·W2ᵀ, hᵀ·dlogits, xᵀ·dh (no dx: x is a constant)
    let Size { batch: b, input: i, hidden: h, output: o, .. } = size;
    let grad_flops = size.forward_flops() + 2.0 * b as f64 * (2 * h * o + i * h) as f64;
    let shape = format!("{b}x{i}x{h}x{o}");
    let base = || {
        Record::new("hvp")
            .with("config", size.name)
            .with("act", act.name())
            .with("shape", shape.clone())
    };
    let ratio = h_stats.median_ms / g_stats.median_ms;
    Ok(vec![
        base()
            .with("phase", "grad")
            .with("dtype", T::NAME)
            .stats(&g_stats)
            .num("gflops", gflops(grad_flops, g_stats.median_ms)),
        base()
            .with("phase", "hvp")
            .with("dtype", T::NAME)
            .stats(&h_stats)
            .num("hvp_over_grad", ratio)
            .with("vhv", vhv),
    ])
}
