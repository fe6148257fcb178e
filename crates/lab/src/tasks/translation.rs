//! The translation task shared by the Post-LN / Pre-LN / Admin experiments: the model shape
//! ([`Seq2SeqShape`]), Admin's initialization, and translation as a training [`Task`] over
//! [`TranslationData`].
//!
//! Models follow fairseq's `transformer` (Liu et al. 2020's setting,
//! docs/REFERENCES.md#liu-architectures): ReLU FFN, sinusoidal positions, embeddings scaled by √d,
//! Xavier-uniform weights, zero biases.

use std::cell::RefCell;

use saturn_layers::{
    Activation, ForwardCtx, InitScheme, QkvInit, ResidualScheme, Seq2Seq, Seq2SeqConfig,
    admin_profile,
};
use saturn_tensor::Tensor;
use serde::{Deserialize, Serialize};

use super::translation_data::{SeqBatch, TranslationData};
use crate::error::{LabError, Result};
use crate::train::{Task, derive_seed};

/// The width of a translation model; depths and the residual scheme are chosen per run.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Seq2SeqShape {
    pub d_model: usize,
    pub n_heads: usize,
    pub d_ff: usize,
    #[serde(default)]
    pub dropout: f64,
    /// q, k and v drawn separately (the default) or as one fused matrix (the reference code's
    /// init: [`QkvInit::Fused`]).
    #[serde(default)]
    pub qkv_init: QkvInit,
}

impl Seq2SeqShape {
    /// Width `d` with 4 heads, d_ff = 4d, no dropout and separate q/k/v draws: the shape every
    /// Liu et al. / Xiong et al. experiment starts from.
    pub fn of_width(d: usize) -> Self {
        Seq2SeqShape {
            d_model: d,
            n_heads: 4,
            d_ff: 4 * d,
            dropout: 0.0,
            qkv_init: QkvInit::Separate,
        }
    }

    /// A rough cost in core-minutes of training a `layers`-`layers` model of this shape for
    /// `steps` steps of `batch_size` pairs, for a sweep's plan: ≈ 0.82 ms per step, pair and
    /// layer at d = 64 (`warmup` at the full preset: 95 min for 3 runs of 12,000 steps × 32
    /// pairs × 6 layers, record 6555306), linear in the width — at these widths the cost is far
    /// from the matrix products' d² (`warmup`'s quick runs, d = 32, take ≈ 12 s each on one
    /// core; this says 8 s).
    pub fn training_minutes(&self, layers: usize, steps: usize, batch_size: usize) -> f64 {
        let per_step_pair_layer = 0.82e-3 * self.d_model as f64 / 64.0;
        (steps * batch_size * layers) as f64 * per_step_pair_layer / 60.0
    }

    /// fairseq's transformer with this width, `scheme`, and `enc` / `dec` layers on `data`.
    pub fn config(
        &self,
        scheme: ResidualScheme,
        enc: usize,
        dec: usize,
        data: &TranslationData,
    ) -> Seq2SeqConfig {
        Seq2SeqConfig {
            residual: scheme,
            act: Activation::Relu,
            dropout: self.dropout,
            init: InitScheme::XavierUniform,
            qkv_init: self.qkv_init,
            ..Seq2SeqConfig::fairseq(
                data.vocab,
                self.d_model,
                self.n_heads,
                self.d_ff,
                (enc, dec),
                (data.max_src_len, data.max_tgt_len),
            )
        }
    }
}

/// Admin's initialization (docs/REFERENCES.md#admin-profiling): under the Admin scheme, profile ω
/// on `batch` (one forward pass, eval mode: our models have no dropout at profiling time) and leave
/// the model's ω there; other schemes are untouched. Returns the ω per sublayer.
pub fn init_admin<T: saturn_tensor::Float>(
    model: &Seq2Seq<T>,
    batch: &SeqBatch,
) -> Result<Vec<(String, f64)>> {
    if model.config.residual != ResidualScheme::Admin {
        return Ok(Vec::new());
    }
    let mut ctx = ForwardCtx::eval();
    Ok(admin_profile(&mut ctx, |ctx| model.forward(&batch.view(), ctx))?)
}

/// Admin's initialization as the reference runs it (Transformer-Clinic profiles ω in train
/// mode, with the recipe's dropout; docs/REFERENCES.md#admin-profiling): under the Admin scheme,
/// one forward pass of `batch` in train mode, dropout drawn from `seed`, leaves ω in the model.
/// A model without dropout gets [`init_admin`]'s profile exactly. Other schemes are untouched.
/// Returns the ω per sublayer.
pub fn init_admin_in_train_mode<T: saturn_tensor::Float>(
    model: &Seq2Seq<T>,
    batch: &SeqBatch,
    seed: u64,
) -> Result<Vec<(String, f64)>> {
    if model.config.residual != ResidualScheme::Admin {
        return Ok(Vec::new());
    }
    let mut ctx = ForwardCtx::train(derive_seed(seed, ADMIN_PROFILE_DROPOUT, 0));
    Ok(admin_profile(&mut ctx, |ctx| model.forward(&batch.view(), ctx))?)
}

/// Seed purposes of the translation task (distinct from the LM task's).
const TRAIN_DROPOUT: u64 = 11;
const ADMIN_PROFILE_DROPOUT: u64 = 12;

/// Translation as a [`Task`]: step t takes batch t mod K of epoch ⌊t / K⌋ (each epoch a seeded
/// shuffle with length bucketing); validation is the token-weighted mean loss on the first
/// `valid_pairs` validation pairs.
pub struct TranslationTask<'a> {
    pub data: &'a TranslationData,
    pub batch_size: usize,
    pub seed: u64,
    valid: Vec<SeqBatch>,
    epoch: RefCell<Option<(u64, Vec<SeqBatch>)>>,
}

impl<'a> TranslationTask<'a> {
    pub fn new(
        data: &'a TranslationData,
        batch_size: usize,
        valid_pairs: usize,
        seed: u64,
    ) -> Result<Self> {
        if batch_size == 0 || data.train.is_empty() || valid_pairs == 0 {
            return Err(LabError::Config("empty batches, training set or validation set".into()));
        }
        let valid = data.valid_batches(valid_pairs, batch_size)?;
        Ok(TranslationTask { data, batch_size, seed, valid, epoch: RefCell::new(None) })
    }

    /// The batch of training step `step`.
    pub fn batch(&self, step: usize) -> Result<SeqBatch> {
        let mut slot = self.epoch.borrow_mut();
        let per_epoch = self.data.train.len().div_ceil(self.batch_size);
        let epoch = (step / per_epoch) as u64;
        if slot.as_ref().is_none_or(|(e, _)| *e != epoch) {
            *slot = Some((epoch, self.data.train_epoch(self.batch_size, self.seed, epoch)?));
        }
        let (_, batches) = slot.as_ref().expect("filled above");
        Ok(batches[step % batches.len()].clone())
    }
}

impl Task for TranslationTask<'_> {
    type Model = Seq2Seq<f32>;

    fn train_loss(&self, model: &Seq2Seq<f32>, step: usize) -> Result<Tensor<f32>> {
        let batch = self.batch(step)?;
        let mut ctx = ForwardCtx::train(derive_seed(self.seed, TRAIN_DROPOUT, step as u64));
        batch.loss(model, &mut ctx)
    }

    fn valid_loss(&self, model: &Seq2Seq<f32>) -> Result<f64> {
        saturn_tensor::no_grad(|| {
            let (mut total, mut tokens) = (0.0, 0usize);
            for b in &self.valid {
                let n = b.target_tokens();
                total += b.loss(model, &mut ForwardCtx::eval())?.item()? as f64 * n as f64;
                tokens += n;
            }
            Ok(total / tokens.max(1) as f64)
        })
    }

    fn uniform_loss(&self) -> f64 {
        (self.data.vocab as f64).ln()
    }
}
