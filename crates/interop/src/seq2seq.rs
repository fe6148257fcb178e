//! The encoder–decoder export (bench README §8.2–§8.3): a [`Seq2Seq`] in f64 with
//! non-degenerate weights, a right-padded batch (`src`, `src_mask`, `tgt_in`, `tgt_out`,
//! `tgt_mask`), and Saturn's loss, logits, hidden states and gradients under torch_io's names.

use rand::{RngExt, SeedableRng};
use rand_pcg::Pcg64;
use saturn_layers::{
    ForwardCtx, LmConfig, Module, ResidualScheme, Seq2Seq, Seq2SeqBatch, Seq2SeqConfig,
    token_cross_entropy,
};
use saturn_tensor::ndarray::{Array1, Array2, s};
use serde_json::json;

use crate::Result;
use crate::export::{
    Export, ExportSpec, block_torch_config, description, gradients, ids_i64, loss_outputs,
    mask_i64, merge, stack_outputs,
};
use crate::weights::{deepnorm_gain, randomize};

/// Builds the model and batch of `spec`, runs forward and backward, and collects the files.
/// Source side: `enc_layers`, `src_vocab`, `src_len`; target side: `layers`, `vocab`, `seq_len`.
pub fn export(spec: &ExportSpec) -> Result<Export> {
    // the settings both sides share, with the LM's defaults (bench README §8.2)
    let lm = LmConfig {
        residual: spec.residual,
        act: spec.act,
        ..LmConfig::new(spec.vocab, spec.d_model, spec.heads, spec.d_ff, spec.layers, 1)
    };
    let config = Seq2SeqConfig {
        src_vocab: spec.src_vocab,
        tgt_vocab: spec.vocab,
        d_model: spec.d_model,
        n_heads: spec.heads,
        d_ff: spec.d_ff,
        n_enc_layers: spec.enc_layers,
        n_dec_layers: spec.layers,
        max_src_len: spec.src_len,
        max_tgt_len: spec.seq_len,
        residual: lm.residual,
        act: lm.act,
        norm: lm.norm,
        ln_eps: lm.ln_eps,
        bias: lm.bias,
        scale_scores: lm.scale_scores,
        positions: lm.positions,
        embed_scale: lm.embed_scale,
        dropout: lm.dropout,
        init: lm.init,
        qkv_init: lm.qkv_init,
        deepnorm_alpha_enc: None,
        deepnorm_alpha_dec: None,
        admin_omega: lm.admin_omega,
    };
    let model = Seq2Seq::<f64>::new(config.clone(), spec.seed)?;
    let ((alpha_enc, beta_enc), (alpha_dec, beta_dec)) = config.deepnorm();
    let deepnorm = config.residual == ResidualScheme::DeepNorm;
    randomize(&model, spec.seed, |name| {
        let beta = if name.starts_with("enc.") { beta_enc } else { beta_dec };
        deepnorm.then(|| deepnorm_gain(name, beta)).flatten()
    })?;

    // torch_io's fixture: row 0 full on both sides, every other row right-padded to a random
    // length in [⌈L/2⌉, L−1]; padded positions keep random ids (they must not matter)
    let mut rng = Pcg64::seed_from_u64(spec.seed.wrapping_add(1));
    let (b, sl, tl) = (spec.batch, spec.src_len, spec.seq_len);
    let src = Array2::from_shape_simple_fn((b, sl), || rng.random_range(0..spec.src_vocab));
    let tokens = Array2::from_shape_simple_fn((b, tl + 1), || rng.random_range(0..spec.vocab));
    let src_mask = right_padding(&lengths(b, sl, &mut rng), sl);
    let tgt_mask = right_padding(&lengths(b, tl, &mut rng), tl);
    let tgt_in = tokens.slice(s![.., ..tl]).to_owned();
    let tgt_out = tokens.slice(s![.., 1..]).to_owned();
    let batch = Seq2SeqBatch {
        src: src.view(),
        src_mask: src_mask.view(),
        tgt_in: tgt_in.view(),
        tgt_mask: tgt_mask.view(),
    };

    let (enc_hidden, dec_hidden, logits) = model.forward_hidden(&batch, &mut ForwardCtx::eval())?;
    let loss = token_cross_entropy(&logits, tgt_out.view(), Some(tgt_mask.view()))?;
    loss.backward()?;

    let params = model.named_parameters();
    let mut outputs = loss_outputs(&loss, &logits, tgt_out.view(), Some(tgt_mask.view()))?;
    outputs.extend(stack_outputs(
        "enc_hidden",
        &enc_hidden,
        model.enc_ln_f.as_ref(),
        "enc_final_norm",
    )?);
    outputs.extend(stack_outputs(
        "dec_hidden",
        &dec_hidden,
        model.dec_ln_f.as_ref(),
        "dec_final_norm",
    )?);
    outputs.extend(gradients(&params));

    let mut torch_config = block_torch_config(&lm);
    merge(
        &mut torch_config,
        json!({
            "model": "seq2seq",
            "n_enc_layers": config.n_enc_layers,
            "n_dec_layers": config.n_dec_layers,
            "src_vocab": config.src_vocab,
            "tgt_vocab": config.tgt_vocab,
            "max_src_len": config.max_src_len,
            "max_tgt_len": config.max_tgt_len,
        }),
    );
    if deepnorm {
        torch_config["deepnorm_alpha_enc"] = json!(alpha_enc);
        torch_config["deepnorm_alpha_dec"] = json!(alpha_dec);
    }
    let mut description = description(
        &torch_config,
        &lm,
        json!({
            "mask": {
                "enc.attn": "key u gets −inf where src_mask[b, u] = 0",
                "dec.self_attn": "key u gets −inf where u > t or tgt_mask[b, u] = 0",
                "dec.cross_attn": "q from the decoder stream, k and v from the memory; \
                    key u gets −inf where src_mask[b, u] = 0",
            },
            "memory": "the last encoder layer's output (pre: after enc.ln_f)",
            "loss": "Σ token_loss / Σ tgt_mask, token_loss = −log softmax(logits)[tgt_out] \
                where tgt_mask = 1, else 0",
            "padding": "right padding (mask 1 = real token), position 0 real in every row; \
                padded positions keep random ids",
            "batch": { "batch": b, "src_len": sl, "tgt_len": tl },
            "seed": spec.seed,
            "saturn_config": config,
        }),
    );
    if deepnorm {
        description["deepnorm_beta_enc"] = json!(beta_enc);
        description["deepnorm_beta_dec"] = json!(beta_dec);
    }
    Ok(Export {
        config: description,
        torch_config,
        params,
        batch: vec![
            ("src".into(), ids_i64(&src)),
            ("src_mask".into(), mask_i64(&src_mask)),
            ("tgt_in".into(), ids_i64(&tgt_in)),
            ("tgt_out".into(), ids_i64(&tgt_out)),
            ("tgt_mask".into(), mask_i64(&tgt_mask)),
        ],
        outputs,
    })
}

/// Real lengths of `b` rows of length `l`: row 0 full (when b > 1), the others in [⌈l/2⌉, l−1].
fn lengths(b: usize, l: usize, rng: &mut Pcg64) -> Array1<usize> {
    Array1::from_shape_fn(b, |row| {
        if l < 2 || (row == 0 && b > 1) { l } else { rng.random_range(l.div_ceil(2)..l) }
    })
}

/// `mask[row, t] = t < len[row]`.
fn right_padding(len: &Array1<usize>, l: usize) -> Array2<bool> {
    Array2::from_shape_fn((len.len(), l), |(row, t)| t < len[row])
}
