//! What every model export writes, and the pieces the LM and the encoder–decoder share.
//!
//! An export directory holds four files:
//!
//! - `config.json`: every architectural detail a reimplementation needs;
//! - `model.safetensors`: the f64 parameters under torch_io's names, with the torch_io config
//!   JSON in `__metadata__["config"]`;
//! - `batch.safetensors`: the I64 token batch;
//! - `grads.safetensors`: Saturn's f64 loss, per-token losses, logits, hidden states and
//!   `grad.<parameter name>` for every parameter — the names of `torch_io.py compute`'s output,
//!   so `torch_io.py compare` reads it directly.

use std::collections::HashMap;
use std::path::Path;

use saturn_layers::{Activation, LmConfig, ResidualScheme};
use saturn_tensor::io::{write_atomically, write_safetensors};
use saturn_tensor::ndarray::{Array2, ArrayView2};
use saturn_tensor::{Tensor, no_grad};
use serde_json::json;

use crate::Result;
use crate::batch_io::{Array, write_tensors};

/// The model and batch sizes of an LM or encoder–decoder export. The encoder–decoder's target
/// side uses `layers`, `vocab`, `seq_len`, its source side `enc_layers`, `src_vocab`, `src_len`.
#[derive(Debug, Clone)]
pub struct ExportSpec {
    pub residual: ResidualScheme,
    pub act: Activation,
    pub layers: usize,
    pub enc_layers: usize,
    pub d_model: usize,
    pub heads: usize,
    pub d_ff: usize,
    pub vocab: usize,
    pub src_vocab: usize,
    pub seq_len: usize,
    pub src_len: usize,
    pub batch: usize,
    pub seed: u64,
}

/// The architecture both models share, read from `c` (for the encoder–decoder: the settings it
/// copies from an [`LmConfig`]), for `config.json`.
pub fn architecture(c: &LmConfig) -> serde_json::Value {
    let d_head = c.d_model / c.n_heads;
    json!({
        "format": "saturn-interop/1",
        "dtype": "f64",
        "d_head": d_head,
        "norm": c.norm,
        "norm_rule": "(x − mean)/sqrt(biased variance + ln_eps)·gamma + beta over the last axis",
        "residual": residual_rule(c.residual),
        "linear": "y = x·Wᵀ + b with W [out, in] (torch.nn.Linear)",
        "linear_bias": c.bias,
        "head_layout": "head h uses features [h·d_head, (h+1)·d_head) of q, k and v; \
            head outputs are concatenated in that order before o",
        "score_scale": if c.scale_scores { 1.0 / (d_head as f64).sqrt() } else { 1.0 },
        "positions": c.positions,
        "embed_scale": if c.embed_scale { (c.d_model as f64).sqrt() } else { 1.0 },
        "head": "untied from the token embedding, no bias",
        "dropout": c.dropout,
        "init": crate::weights::DESCRIPTION,
    })
}

/// The update rule of one sublayer f under `scheme` (bench README §6, §8.1, §8.2).
pub fn residual_rule(scheme: ResidualScheme) -> &'static str {
    match scheme {
        ResidualScheme::PostLn => "post: x ← LN_k(x + f(x)); no final norm",
        ResidualScheme::PreLn => "pre: x ← x + f(LN_k(x)); a final norm ln_f after the last layer",
        ResidualScheme::Admin => "admin: x ← LN_k(x ⊙ omega_k + f(x)); no final norm",
        ResidualScheme::DeepNorm => "deepnorm: x ← LN_k(alpha·x + f(x)); no final norm",
        ResidualScheme::BranchLn => "branch: x ← x + LN_k(f(x)); no final norm",
    }
}

/// Adds the keys of the object `extra` to the object `into`.
pub fn merge(into: &mut serde_json::Value, extra: serde_json::Value) {
    if let (Some(a), serde_json::Value::Object(b)) = (into.as_object_mut(), extra) {
        a.extend(b);
    }
}

/// The files of one export, ready to be written.
pub struct Export {
    /// The full description (`config.json`).
    pub config: serde_json::Value,
    /// The subset `torch_io.py` reads from the weights' metadata.
    pub torch_config: serde_json::Value,
    pub params: Vec<(String, Tensor<f64>)>,
    pub batch: Vec<(String, Array)>,
    /// loss, token_loss, logits, hidden states and `grad.*`.
    pub outputs: Vec<(String, Tensor<f64>)>,
}

impl Export {
    /// Writes the four files into `dir` (created if needed), each atomically.
    pub fn write(&self, dir: &Path) -> Result<()> {
        std::fs::create_dir_all(dir)
            .map_err(|e| format!("cannot create output directory {}: {e}", dir.display()))?;
        let text = serde_json::to_string_pretty(&self.config)? + "\n";
        write_atomically(&dir.join("config.json"), text.as_bytes())?;
        let meta = HashMap::from([
            ("format".to_string(), "1".to_string()),
            ("config".to_string(), self.torch_config.to_string()),
        ]);
        write_safetensors(&dir.join("model.safetensors"), &self.params, &meta)?;
        let batch_meta = HashMap::from([("format".to_string(), "1".to_string())]);
        write_tensors(&dir.join("batch.safetensors"), &self.batch, &batch_meta)?;
        let mut meta = HashMap::from([
            ("format".to_string(), "1".to_string()),
            ("config".to_string(), self.torch_config.to_string()),
            ("producer".to_string(), format!("saturn-interop {}", env!("CARGO_PKG_VERSION"))),
        ]);
        if let Some(loss) = self.loss() {
            meta.insert("loss".to_string(), format!("{loss:?}"));
        }
        write_safetensors(&dir.join("grads.safetensors"), &self.outputs, &meta)?;
        Ok(())
    }

    /// Saturn's loss.
    pub fn loss(&self) -> Option<f64> {
        self.outputs.iter().find(|(n, _)| n == "loss").map(|(_, t)| t.to_vec()[0])
    }

    /// The one-line JSON summary printed on stdout.
    pub fn summary(&self, dir: &Path) -> serde_json::Value {
        json!({
            "out": dir.display().to_string(),
            "model": self.config["model"],
            "variant": self.config["variant"],
            "loss": self.loss(),
            "n_params": self.params.iter().map(|(_, p)| p.len()).sum::<usize>(),
            "tensors": self.outputs.len(),
        })
    }
}

/// The outputs every export starts with: `loss` (shape `[1]`), `token_loss` ([`token_losses`])
/// and `logits`, cut off from the graph.
pub fn loss_outputs(
    loss: &Tensor<f64>,
    logits: &Tensor<f64>,
    targets: ArrayView2<'_, usize>,
    mask: Option<ArrayView2<'_, bool>>,
) -> Result<Vec<(String, Tensor<f64>)>> {
    Ok(vec![
        ("loss".to_string(), loss.detach().reshape(&[1])?),
        ("token_loss".to_string(), token_losses(logits, targets, mask)),
        ("logits".to_string(), logits.detach()),
    ])
}

/// One layer stack's outputs: its hidden states `{prefix}.0 … {prefix}.L` and, when the stack
/// ends with a final norm (Pre-LN), that norm's output of the last one, named `norm_name`.
pub fn stack_outputs(
    prefix: &str,
    hidden: &[Tensor<f64>],
    ln: Option<&saturn_layers::Norm<f64>>,
    norm_name: &str,
) -> Result<Vec<(String, Tensor<f64>)>> {
    let mut out = hidden_states(prefix, hidden);
    if let (Some(ln), Some(last)) = (ln, hidden.last()) {
        out.push((norm_name.to_string(), final_norm(ln, last)?));
    }
    Ok(out)
}

/// The torch_io config fields of the blocks every model shares: `variant`, `n_heads`, `act`,
/// `ln_eps`, `d_model`, `d_ff`; each model adds its sizes with [`merge`].
pub fn block_torch_config(c: &LmConfig) -> serde_json::Value {
    json!({
        "variant": c.residual.name(),
        "n_heads": c.n_heads,
        "act": c.act,
        "ln_eps": c.ln_eps,
        "d_model": c.d_model,
        "d_ff": c.d_ff,
    })
}

/// The export's description (its `config.json`): the torch config, the [`architecture`] of
/// `blocks`, then `extra` (model, masks, loss, batch, seed, Saturn's own config).
pub fn description(
    torch_config: &serde_json::Value,
    blocks: &LmConfig,
    extra: serde_json::Value,
) -> serde_json::Value {
    let mut description = torch_config.clone();
    merge(&mut description, architecture(blocks));
    merge(&mut description, extra);
    description
}

/// `grad.<name>` for every parameter after `loss.backward()` (zeros for a parameter the loss
/// does not reach).
pub fn gradients(params: &[(String, Tensor<f64>)]) -> Vec<(String, Tensor<f64>)> {
    params
        .iter()
        .map(|(name, p)| {
            let g = p.grad().unwrap_or_else(|| Tensor::zeros(&p.shape()));
            (format!("grad.{name}"), g)
        })
        .collect()
}

/// token_loss[b, t] = −log softmax(logits[b, t])[targets[b, t]], and exactly 0 where `mask` is
/// false. Computed from the logits' values with a max-shifted log-sum-exp, independently of the
/// autodiff loss (so `loss = Σ token_loss / #real` is a check of that loss, too).
pub fn token_losses(
    logits: &Tensor<f64>,
    targets: ArrayView2<'_, usize>,
    mask: Option<ArrayView2<'_, bool>>,
) -> Tensor<f64> {
    let l = logits.to_array();
    let losses = Array2::from_shape_fn(targets.dim(), |(b, t)| {
        if mask.is_some_and(|m| !m[[b, t]]) {
            return 0.0;
        }
        let row: Vec<f64> = (0..l.shape()[2]).map(|v| l[[b, t, v]]).collect();
        let max = row.iter().copied().fold(f64::NEG_INFINITY, f64::max);
        let lse = max + row.iter().map(|x| (x - max).exp()).sum::<f64>().ln();
        lse - row[targets[[b, t]]]
    });
    Tensor::constant(losses.into_dyn())
}

/// Named hidden states `{prefix}.0 … {prefix}.L`, cut off from the graph.
pub fn hidden_states(prefix: &str, hidden: &[Tensor<f64>]) -> Vec<(String, Tensor<f64>)> {
    hidden.iter().enumerate().map(|(i, h)| (format!("{prefix}.{i}"), h.detach())).collect()
}

/// A final norm's output for the export (no graph).
pub fn final_norm(
    norm: &saturn_layers::Norm<f64>,
    x: &Tensor<f64>,
) -> saturn_layers::Result<Tensor<f64>> {
    no_grad(|| norm.forward(x))
}

/// Ids [B, T] as I64 for the batch file.
pub fn ids_i64(ids: &Array2<usize>) -> Array {
    ids.mapv(|v| v as i64).into()
}

/// A 0/1 mask [B, T] as I64 for the batch file.
pub fn mask_i64(mask: &Array2<bool>) -> Array {
    mask.mapv(i64::from).into()
}
