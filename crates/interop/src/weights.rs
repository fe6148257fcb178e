//! Non-degenerate parameters for an interop check, drawn like `torch_io.py random_params`.
//!
//! A freshly initialized model hides mistakes: with γ = 1, β = 0, zero biases and ω = 1 a
//! swapped γ/β, a missing bias or a wrong ω would not change a single number. So every
//! parameter is redrawn (all from one seeded stream, in `named_parameters` order):
//!
//! | parameter | distribution |
//! |---|---|
//! | LN `*.gamma` | N(1, 0.2²) |
//! | LN `*.beta`, every `*.bias` | N(0, 0.2²) |
//! | Admin `*.omega{k}` | N(1.5, 0.2²) |
//! | embeddings and positions (`*embed.weight`, `*pos.weight`) | N(0, 0.8²) |
//! | Linear weights [out, in] | N(0, (1.5/√in)²), so attention is far from uniform |
//! | DeepNorm: `attn.{q,k}` / `attn.{v,o}`, `ffn.{w1,w2}` | Xavier-normal, std = gain·√(2/(in+out)), gain 1 / β (DeepNet's init) |

use saturn_layers::{InitScheme, Initializer, Module};

use crate::Result;

/// The table above in one line, for `config.json`.
pub const DESCRIPTION: &str = "torch_io.py random_params-like, one seeded PCG-64 stream in \
    parameter order: gamma N(1, 0.2²); beta and biases N(0, 0.2²); omega N(1.5, 0.2²); \
    embeddings and positions N(0, 0.8²); Linear weights [out, in] N(0, (1.5/√in)²); \
    deepnorm: q, k Xavier-normal gain 1, v, o, w1, w2 Xavier-normal gain beta";

/// The Xavier-normal gain of a weight under DeepNorm's init: 1 for q and k, β for v, o, w1 and
/// w2, `None` for everything else (the head, embeddings, norms).
pub fn deepnorm_gain(name: &str, beta: f64) -> Option<f64> {
    if name.ends_with("attn.q.weight") || name.ends_with("attn.k.weight") {
        Some(1.0)
    } else if ["attn.v.weight", "attn.o.weight", "ffn.w1.weight", "ffn.w2.weight"]
        .iter()
        .any(|s| name.ends_with(s))
    {
        Some(beta)
    } else {
        None
    }
}

/// Redraws every parameter of `model` (table above). `gain(name)` is the DeepNorm gain of a
/// weight (always `None` for the other schemes).
pub fn randomize(
    model: &impl Module<f64>,
    seed: u64,
    gain: impl Fn(&str) -> Option<f64>,
) -> Result<()> {
    let mut init = Initializer::new(InitScheme::Normal { std: 1.0 }, seed);
    for (name, param) in model.named_parameters() {
        let shape = param.shape();
        let (mean, std) = if name.ends_with(".gamma") {
            (1.0, 0.2)
        } else if name.ends_with(".beta") || name.ends_with(".bias") {
            (0.0, 0.2)
        } else if name.contains(".omega") {
            (1.5, 0.2)
        } else if name.ends_with("embed.weight") || name.ends_with("pos.weight") {
            (0.0, 0.8)
        } else if let [out, inp] = shape[..] {
            match gain(&name) {
                Some(g) => (0.0, g * (2.0 / (out + inp) as f64).sqrt()),
                None => (0.0, 1.5 / (inp as f64).sqrt()),
            }
        } else {
            return Err(format!("no init rule for parameter `{name}` of shape {shape:?}").into());
        };
        let values = init.normal::<f64>(&shape, std).data().mapv(|v| v + mean);
        param.set_data(values)?;
    }
    Ok(())
}
