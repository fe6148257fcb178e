//! The decoder-only LM export (bench README §6–§7, §8.1): a [`DecoderLm`] in f64 with
//! non-degenerate weights, a random batch `inputs`, `targets` [B, T], and Saturn's loss, logits,
//! hidden states and gradients under torch_io's names.

use rand::{RngExt, SeedableRng};
use rand_pcg::Pcg64;
use saturn_layers::{DecoderLm, ForwardCtx, LmConfig, Module, ResidualScheme, token_cross_entropy};
use saturn_tensor::ndarray::{Array2, s};
use serde_json::json;

use crate::Result;
use crate::export::{
    Export, ExportSpec, block_torch_config, description, gradients, ids_i64, loss_outputs, merge,
    stack_outputs,
};
use crate::weights::{deepnorm_gain, randomize};

/// Builds the model and batch of `spec`, runs forward and backward, and collects the files.
pub fn export(spec: &ExportSpec) -> Result<Export> {
    let config = LmConfig {
        residual: spec.residual,
        act: spec.act,
        ..LmConfig::new(spec.vocab, spec.d_model, spec.heads, spec.d_ff, spec.layers, spec.seq_len)
    };
    let model = DecoderLm::<f64>::new(config.clone(), spec.seed)?;
    let (alpha, beta) = config.deepnorm();
    let deepnorm = config.residual == ResidualScheme::DeepNorm;
    randomize(&model, spec.seed, |name| deepnorm.then(|| deepnorm_gain(name, beta)).flatten())?;

    // tokens [B, T+1]: inputs = tokens[:, :-1], targets = tokens[:, 1:]
    let mut rng = Pcg64::seed_from_u64(spec.seed.wrapping_add(1));
    let tokens = Array2::from_shape_simple_fn((spec.batch, spec.seq_len + 1), || {
        rng.random_range(0..spec.vocab)
    });
    let inputs = tokens.slice(s![.., ..spec.seq_len]).to_owned();
    let targets = tokens.slice(s![.., 1..]).to_owned();

    let (hidden, logits) = model.forward_hidden(inputs.view(), &mut ForwardCtx::eval())?;
    let loss = token_cross_entropy(&logits, targets.view(), None)?;
    loss.backward()?;

    let params = model.named_parameters();
    let mut outputs = loss_outputs(&loss, &logits, targets.view(), None)?;
    outputs.extend(stack_outputs("hidden", &hidden, model.ln_f.as_ref(), "final_norm")?);
    outputs.extend(gradients(&params));

    let mut torch_config = block_torch_config(&config);
    merge(
        &mut torch_config,
        json!({ "n_layers": config.n_layers, "vocab": config.vocab, "max_seq": config.max_seq }),
    );
    if deepnorm {
        torch_config["deepnorm_alpha"] = json!(alpha);
    }
    let mut description = description(
        &torch_config,
        &config,
        json!({
            "model": "lm",
            "mask": "causal: key u > query t gets −inf",
            "loss": "mean over all B·T positions of −log softmax(logits)[target]",
            "batch": { "batch": spec.batch, "seq_len": spec.seq_len },
            "seed": spec.seed,
            "saturn_config": config,
        }),
    );
    if deepnorm {
        description["deepnorm_beta"] = json!(beta);
    }
    Ok(Export {
        config: description,
        torch_config,
        params,
        batch: vec![("inputs".into(), ids_i64(&inputs)), ("targets".into(), ids_i64(&targets))],
        outputs,
    })
}
