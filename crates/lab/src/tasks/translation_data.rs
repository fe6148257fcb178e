//! Translation data shared by the Post-LN / Pre-LN / Admin experiments: Multi30k De→En (BPE,
//! joint vocabulary) when the data directory has it, else a transduction task on the shipped
//! corpus (each tiny-shakespeare line → its words in reverse order), so a sweep never stops for
//! want of data; and the padded batches models take ([`SeqBatch`]).

use std::collections::HashMap;
use std::sync::{Arc, Mutex, OnceLock};

use rand::SeedableRng;
use rand_pcg::Pcg64;
use saturn_datasets::batch::{
    Bucketing, TranslationBatch, TranslationBatchConfig, TranslationExample, translation_batches,
};
use saturn_datasets::rng::{Order, shuffle};
use saturn_datasets::tokenize::{SPECIALS, Tokenizer, TranslationBpe, VocabSharing};
use saturn_datasets::{Multi30kSplit, data_dir, load_multi30k, multi30k_dir, tiny_shakespeare};
use saturn_layers::{ForwardCtx, Seq2Seq, Seq2SeqBatch};
use saturn_tensor::Tensor;
use saturn_tensor::ndarray::Array2;
use serde::{Deserialize, Serialize};

use crate::error::{LabError, Result};

/// Where the pairs came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PairSource {
    /// Multi30k task 1, De→En (train 29,000 / val 1,014).
    Multi30k,
    /// tiny-shakespeare lines → the same words reversed (90 % / 10 % of the lines).
    ShippedCorpus,
}

/// Tokenized sentence pairs with a joint BPE vocabulary.
#[derive(Debug, Clone)]
pub struct TranslationData {
    pub source: PairSource,
    /// Why this source was used (e.g. why Multi30k was not).
    pub note: String,
    pub train: Vec<TranslationExample>,
    pub valid: Vec<TranslationExample>,
    /// The joint vocabulary size (source = target).
    pub vocab: usize,
    /// The longest source and target (with `<eos>`) over both splits.
    pub max_src_len: usize,
    pub max_tgt_len: usize,
    /// Entropy (nats) of the training targets' token frequencies, `<eos>` included: the loss of
    /// the best prediction that ignores all context.
    pub tgt_unigram_entropy: f64,
}

type Cache = Mutex<HashMap<(usize, usize), Arc<TranslationData>>>;

impl TranslationData {
    /// The pairs tokenized with a joint BPE of `vocab_size` learned on the training split, every
    /// sentence cut to `max_len` tokens. Loaded once per process for each setting.
    pub fn load(vocab_size: usize, max_len: usize) -> Result<Arc<TranslationData>> {
        static CACHE: OnceLock<Cache> = OnceLock::new();
        let cache = CACHE.get_or_init(Default::default);
        let key = (vocab_size, max_len);
        if let Some(d) = cache.lock().unwrap_or_else(|e| e.into_inner()).get(&key) {
            return Ok(Arc::clone(d));
        }
        let data = Arc::new(Self::build(vocab_size, max_len)?);
        cache.lock().unwrap_or_else(|e| e.into_inner()).insert(key, Arc::clone(&data));
        Ok(data)
    }

    fn build(vocab_size: usize, max_len: usize) -> Result<TranslationData> {
        if max_len == 0 {
            return Err(LabError::Config("max_len must be positive".into()));
        }
        let (source, note, train, valid) = match multi30k_pairs() {
            Ok((train, valid)) => (
                PairSource::Multi30k,
                "Multi30k De→En from the data directory".into(),
                train,
                valid,
            ),
            Err(why) => {
                let (train, valid) = shipped_pairs();
                (
                    PairSource::ShippedCorpus,
                    format!(
                        "Multi30k unavailable ({why}); using tiny-shakespeare lines → reversed words"
                    ),
                    train,
                    valid,
                )
            }
        };
        let bpe = TranslationBpe::learn(
            train.iter().map(|(s, t)| (s.as_str(), t.as_str())),
            vocab_size,
            VocabSharing::Joint,
        )?;
        let encode = |pairs: &[(String, String)]| -> Result<Vec<TranslationExample>> {
            let mut out = Vec::with_capacity(pairs.len());
            for (s, t) in pairs {
                let mut src = bpe.src.encode(s)?;
                let mut tgt = bpe.tgt.encode(t)?;
                src.truncate(max_len);
                tgt.truncate(max_len);
                if !src.is_empty() {
                    out.push(TranslationExample { src, tgt });
                }
            }
            Ok(out)
        };
        let (train, valid) = (encode(&train)?, encode(&valid)?);
        let vocab = bpe.tgt.vocab_size();
        let all = train.iter().chain(&valid);
        let max_src_len = all.clone().map(|e| e.src.len()).max().unwrap_or(1);
        let max_tgt_len = all.map(|e| e.tgt.len() + 1).max().unwrap_or(1);
        let mut counts = vec![0usize; vocab];
        for e in &train {
            for &t in &e.tgt {
                counts[t] += 1;
            }
            counts[SPECIALS.eos] += 1;
        }
        let total = counts.iter().sum::<usize>().max(1) as f64;
        let tgt_unigram_entropy = -counts
            .iter()
            .filter(|&&c| c > 0)
            .map(|&c| c as f64 / total * (c as f64 / total).ln())
            .sum::<f64>();
        Ok(TranslationData {
            source,
            note,
            train,
            valid,
            vocab,
            max_src_len,
            max_tgt_len,
            tgt_unigram_entropy,
        })
    }

    /// The first `n` validation pairs (all if fewer), cut into batches of `batch_size` in order.
    pub fn valid_batches(&self, n: usize, batch_size: usize) -> Result<Vec<SeqBatch>> {
        let take = &self.valid[..n.min(self.valid.len())];
        batches_of(take, batch_size, Bucketing::None, Order::Sequential)
    }

    /// The first `pairs` validation pairs as one batch: the fixed batch that init-time
    /// measurements read.
    pub fn fixed_batch(&self, pairs: usize) -> Result<SeqBatch> {
        self.valid_batches(pairs, pairs)?
            .into_iter()
            .next()
            .ok_or_else(|| LabError::Run("no validation pairs".into()))
    }

    /// One shuffled, length-bucketed epoch of training batches.
    pub fn train_epoch(&self, batch_size: usize, seed: u64, epoch: u64) -> Result<Vec<SeqBatch>> {
        batches_of(
            &self.train,
            batch_size,
            Bucketing::ByLength { pool_batches: 16 },
            Order::Shuffled { seed, epoch },
        )
    }
}

fn batches_of(
    examples: &[TranslationExample],
    batch_size: usize,
    bucketing: Bucketing,
    order: Order,
) -> Result<Vec<SeqBatch>> {
    let cfg = TranslationBatchConfig { batch_size, bucketing, specials: SPECIALS };
    Ok(translation_batches(examples, &cfg, order)?.iter().map(SeqBatch::new).collect())
}

/// Raw (source, target) sentences.
type Pairs = Vec<(String, String)>;

fn multi30k_pairs() -> std::result::Result<(Pairs, Pairs), String> {
    let dir = data_dir(None).map_err(|e| e.to_string())?;
    if !multi30k_dir(&dir).is_dir() {
        return Err(format!("no {}", multi30k_dir(&dir).display()));
    }
    let load = |split| -> std::result::Result<Pairs, String> {
        Ok(load_multi30k(&dir, split)
            .map_err(|e| e.to_string())?
            .into_iter()
            .map(|p| (p.de, p.en))
            .collect())
    };
    Ok((load(Multi30kSplit::Train)?, load(Multi30kSplit::Valid)?))
}

/// tiny-shakespeare's lines of ≥ 3 words, each paired with its words reversed; a seeded
/// shuffle, then 90 % train / 10 % valid.
fn shipped_pairs() -> (Pairs, Pairs) {
    let mut pairs: Pairs = tiny_shakespeare()
        .lines()
        .filter(|l| l.split_whitespace().count() >= 3)
        .map(|l| {
            let words: Vec<&str> = l.split_whitespace().collect();
            let reversed: Vec<&str> = words.iter().rev().copied().collect();
            (words.join(" "), reversed.join(" "))
        })
        .collect();
    shuffle(&mut Pcg64::seed_from_u64(0), &mut pairs);
    let valid = pairs.split_off(pairs.len() - pairs.len() / 10);
    (pairs, valid)
}

/// A padded translation batch as the model takes it (masks true at real tokens).
#[derive(Debug, Clone)]
pub struct SeqBatch {
    pub src: Array2<usize>,
    pub src_mask: Array2<bool>,
    pub tgt_in: Array2<usize>,
    pub tgt_out: Array2<usize>,
    pub tgt_mask: Array2<bool>,
}

impl SeqBatch {
    /// From the datasets crate's batch (whose masks are true at padding).
    pub fn new(b: &TranslationBatch) -> Self {
        let (n, s, t) = (b.batch_size, b.src_len, b.tgt_len);
        let ids = |v: &[usize], w| Array2::from_shape_vec((n, w), v.to_vec()).expect("batch shape");
        let real = |v: &[bool], w| {
            Array2::from_shape_vec((n, w), v.iter().map(|p| !p).collect()).expect("batch shape")
        };
        SeqBatch {
            src: ids(&b.src, s),
            src_mask: real(&b.src_padding, s),
            tgt_in: ids(&b.tgt_in, t),
            tgt_out: ids(&b.tgt_out, t),
            tgt_mask: real(&b.tgt_padding, t),
        }
    }

    /// The borrowed form `Seq2Seq` takes.
    pub fn view(&self) -> Seq2SeqBatch<'_> {
        Seq2SeqBatch {
            src: self.src.view(),
            src_mask: self.src_mask.view(),
            tgt_in: self.tgt_in.view(),
            tgt_mask: self.tgt_mask.view(),
        }
    }

    /// The number of real target tokens (the loss's denominator).
    pub fn target_tokens(&self) -> usize {
        self.tgt_mask.iter().filter(|&&m| m).count()
    }

    /// The mean token cross-entropy of `model` on this batch.
    pub fn loss<T: saturn_tensor::Float>(
        &self,
        model: &Seq2Seq<T>,
        ctx: &mut ForwardCtx<T>,
    ) -> Result<Tensor<T>> {
        Ok(model.loss(&self.view(), self.tgt_out.view(), ctx)?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shipped_pairs_reverse_the_words_of_each_line() {
        let (train, valid) = shipped_pairs();
        assert!(train.len() > 9 * valid.len() - 10 && !valid.is_empty());
        for (src, tgt) in train.iter().take(50) {
            let mut words: Vec<&str> = src.split_whitespace().collect();
            words.reverse();
            assert_eq!(words.join(" "), *tgt);
            assert!(words.len() >= 3);
        }
    }

    #[test]
    fn batch_masks_mark_real_tokens() {
        let examples = vec![
            TranslationExample { src: vec![5, 6, 7], tgt: vec![8] },
            TranslationExample { src: vec![9], tgt: vec![10, 11] },
        ];
        let cfg = TranslationBatchConfig {
            batch_size: 2,
            bucketing: Bucketing::None,
            specials: SPECIALS,
        };
        let b = SeqBatch::new(&translation_batches(&examples, &cfg, Order::Sequential).unwrap()[0]);
        assert_eq!(b.src_mask.row(0).to_vec(), vec![true, true, true]);
        assert_eq!(b.src_mask.row(1).to_vec(), vec![true, false, false]);
        assert_eq!(b.tgt_in.row(0).to_vec(), vec![SPECIALS.bos, 8, SPECIALS.pad]);
        assert_eq!(b.tgt_out.row(1).to_vec(), vec![10, 11, SPECIALS.eos]);
        assert_eq!(b.target_tokens(), 2 + 3);
    }
}
