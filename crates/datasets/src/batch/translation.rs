//! Translation batches: padded source and target, key-padding masks, length bucketing.
//!
//! Rows are sentence pairs. The source is taken as given; the decoder reads `<bos> y` and
//! predicts `y <eos>` (teacher forcing). Each side is padded with `<pad>` to the longest row of
//! its batch; the masks are `true` at padding (PyTorch's `key_padding_mask` convention), so
//! attention adds −∞ there and the loss skips those targets.
//!
//! Bucketing (as fairseq / torchtext's `BucketIterator`): shuffle all pairs with the seed, cut
//! the order into pools of `pool_batches · B` pairs, sort each pool by (source, target) length,
//! cut it into batches, then shuffle the batches. Similar lengths share a batch (less padding)
//! while the order stays random.

use crate::error::{DatasetError, Result};
use crate::rng::{Order, shuffle};
use crate::tokenize::Specials;

/// A tokenized sentence pair (no `<bos>` / `<eos>`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TranslationExample {
    pub src: Vec<usize>,
    pub tgt: Vec<usize>,
}

/// How pairs are grouped into batches.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Bucketing {
    /// Batches in (shuffled) order, whatever their lengths.
    None,
    /// Sort pools of `pool_batches` batches by length before cutting them into batches.
    ByLength { pool_batches: usize },
}

/// Batch size, bucketing and the special ids.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TranslationBatchConfig {
    /// Pairs per batch (the last batch may have fewer).
    pub batch_size: usize,
    pub bucketing: Bucketing,
    /// `pad`, `bos` and `eos` are used; `unk` is not.
    pub specials: Specials,
}

/// A padded batch of `B` pairs; every buffer is row-major.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TranslationBatch {
    pub batch_size: usize,
    /// Longest source in the batch (`S`).
    pub src_len: usize,
    /// Longest target + 1 (`T`).
    pub tgt_len: usize,
    /// `[B, S]` source ids, padded.
    pub src: Vec<usize>,
    /// `[B, S]`, `true` at padding.
    pub src_padding: Vec<bool>,
    /// `[B, T]` decoder inputs `<bos> y`, padded.
    pub tgt_in: Vec<usize>,
    /// `[B, T]` decoder targets `y <eos>`, padded.
    pub tgt_out: Vec<usize>,
    /// `[B, T]`, `true` at padding (of both `tgt_in` and `tgt_out`).
    pub tgt_padding: Vec<bool>,
    /// The index of each row's pair in the input slice.
    pub indices: Vec<usize>,
}

impl TranslationBatch {
    fn new(examples: &[TranslationExample], indices: Vec<usize>, sp: Specials) -> Self {
        let b = indices.len();
        let s = indices.iter().map(|&i| examples[i].src.len()).max().unwrap_or(0);
        let t = indices.iter().map(|&i| examples[i].tgt.len() + 1).max().unwrap_or(1);
        let mut batch = Self {
            batch_size: b,
            src_len: s,
            tgt_len: t,
            src: vec![sp.pad; b * s],
            src_padding: vec![true; b * s],
            tgt_in: vec![sp.pad; b * t],
            tgt_out: vec![sp.pad; b * t],
            tgt_padding: vec![true; b * t],
            indices,
        };
        for (row, &i) in batch.indices.iter().enumerate() {
            let ex = &examples[i];
            batch.src[row * s..row * s + ex.src.len()].copy_from_slice(&ex.src);
            batch.src_padding[row * s..row * s + ex.src.len()].fill(false);
            let n = ex.tgt.len() + 1;
            batch.tgt_in[row * t] = sp.bos;
            batch.tgt_in[row * t + 1..row * t + n].copy_from_slice(&ex.tgt);
            batch.tgt_out[row * t..row * t + n - 1].copy_from_slice(&ex.tgt);
            batch.tgt_out[row * t + n - 1] = sp.eos;
            batch.tgt_padding[row * t..row * t + n].fill(false);
        }
        batch
    }

    /// The number of padding positions over both sides.
    pub fn padding(&self) -> usize {
        self.src_padding.iter().chain(&self.tgt_padding).filter(|&&p| p).count()
    }
}

/// One epoch of translation batches: every pair exactly once, order from `order`.
///
/// Errors: `batch_size` or `pool_batches` of 0, or an empty source (its row would attend to
/// padding only, and a softmax over only −∞ is NaN).
pub fn translation_batches(
    examples: &[TranslationExample],
    config: &TranslationBatchConfig,
    order: Order,
) -> Result<Vec<TranslationBatch>> {
    let b = config.batch_size;
    if b == 0 || config.bucketing == (Bucketing::ByLength { pool_batches: 0 }) {
        return Err(DatasetError::Config(format!(
            "batch_size and pool_batches must be positive: {config:?}"
        )));
    }
    if let Some(i) = examples.iter().position(|e| e.src.is_empty()) {
        return Err(DatasetError::Config(format!(
            "pair {i} has an empty source: its attention would see padding only"
        )));
    }
    let mut rng = order.rng();
    let mut order: Vec<usize> = (0..examples.len()).collect();
    if let Some(rng) = rng.as_mut() {
        shuffle(rng, &mut order);
    }
    let mut groups: Vec<Vec<usize>> = Vec::new();
    match config.bucketing {
        Bucketing::None => groups.extend(order.chunks(b).map(<[usize]>::to_vec)),
        Bucketing::ByLength { pool_batches } => {
            for pool in order.chunks_mut(b * pool_batches) {
                // Stable: equal lengths keep their shuffled order, so the result is seeded.
                pool.sort_by_key(|&i| (examples[i].src.len(), examples[i].tgt.len()));
                groups.extend(pool.chunks(b).map(<[usize]>::to_vec));
            }
        }
    }
    if let Some(rng) = rng.as_mut() {
        shuffle(rng, &mut groups);
    }
    Ok(groups.into_iter().map(|g| TranslationBatch::new(examples, g, config.specials)).collect())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rng::{between, seeded_rng};
    use crate::tokenize::SPECIALS;

    /// Pairs whose target length follows the source length, as in real translation.
    fn examples(n: usize) -> Vec<TranslationExample> {
        let mut rng = seeded_rng(5);
        (0..n)
            .map(|i| {
                let len = between(&mut rng, 1, 30);
                let tgt_len = len + between(&mut rng, 0, 4) - 2.min(len);
                TranslationExample {
                    src: (0..len).map(|k| 4 + (i + k) % 50).collect(),
                    tgt: (0..tgt_len).map(|k| 4 + (i * k) % 50).collect(),
                }
            })
            .collect()
    }

    fn config(bucketing: Bucketing) -> TranslationBatchConfig {
        TranslationBatchConfig { batch_size: 16, bucketing, specials: SPECIALS }
    }

    const SHUFFLED: Order = Order::Shuffled { seed: 7, epoch: 0 };

    #[test]
    fn every_pair_appears_once_per_epoch() {
        let ex = examples(203);
        for bucketing in [Bucketing::None, Bucketing::ByLength { pool_batches: 4 }] {
            let batches = translation_batches(&ex, &config(bucketing), SHUFFLED).unwrap();
            let mut seen: Vec<usize> = batches.iter().flat_map(|b| b.indices.clone()).collect();
            seen.sort_unstable();
            assert_eq!(seen, (0..203).collect::<Vec<_>>());
            assert!(batches.iter().all(|b| b.batch_size <= 16));
        }
    }

    #[test]
    fn padding_masks_mark_exactly_the_padding() {
        let ex = examples(50);
        for batch in translation_batches(&ex, &config(Bucketing::None), SHUFFLED).unwrap() {
            let (s, t) = (batch.src_len, batch.tgt_len);
            for (row, &i) in batch.indices.iter().enumerate() {
                let (src, tgt) = (&ex[i].src, &ex[i].tgt);
                for k in 0..s {
                    assert_eq!(batch.src_padding[row * s + k], k >= src.len());
                    let want = src.get(k).copied().unwrap_or(SPECIALS.pad);
                    assert_eq!(batch.src[row * s + k], want);
                }
                let mut tgt_in = vec![SPECIALS.bos];
                tgt_in.extend(tgt);
                let mut tgt_out = tgt.clone();
                tgt_out.push(SPECIALS.eos);
                for k in 0..t {
                    assert_eq!(batch.tgt_padding[row * t + k], k > tgt.len());
                    let pad = SPECIALS.pad;
                    assert_eq!(batch.tgt_in[row * t + k], tgt_in.get(k).copied().unwrap_or(pad));
                    assert_eq!(batch.tgt_out[row * t + k], tgt_out.get(k).copied().unwrap_or(pad));
                }
            }
            // Padded to the longest row: no column is padding in every row.
            let b = batch.batch_size;
            assert!((0..b).any(|r| !batch.src_padding[r * s + s - 1]));
            assert!((0..b).any(|r| !batch.tgt_padding[r * t + t - 1]));
        }
    }

    #[test]
    fn length_bucketing_reduces_padding() {
        let ex = examples(1000);
        let pad = |bucketing| -> usize {
            let batches = translation_batches(&ex, &config(bucketing), SHUFFLED).unwrap();
            batches.iter().map(TranslationBatch::padding).sum()
        };
        let (plain, bucketed) =
            (pad(Bucketing::None), pad(Bucketing::ByLength { pool_batches: 8 }));
        assert!(bucketed * 3 < plain, "bucketed {bucketed} vs plain {plain}");
    }

    #[test]
    fn the_same_seed_gives_the_same_batches() {
        let ex = examples(100);
        let cfg = config(Bucketing::ByLength { pool_batches: 2 });
        let run = |order| translation_batches(&ex, &cfg, order).unwrap();
        assert_eq!(run(SHUFFLED), run(SHUFFLED));
        assert_ne!(run(SHUFFLED), run(Order::Shuffled { seed: 8, epoch: 0 }));
        assert_ne!(run(SHUFFLED), run(Order::Shuffled { seed: 7, epoch: 1 }));
        let seq = run(Order::Sequential);
        assert_eq!(seq, run(Order::Sequential));
    }

    #[test]
    fn bad_configurations_are_errors() {
        let ex = examples(10);
        let zero = TranslationBatchConfig { batch_size: 0, ..config(Bucketing::None) };
        assert!(translation_batches(&ex, &zero, SHUFFLED).is_err());
        let pool = config(Bucketing::ByLength { pool_batches: 0 });
        assert!(translation_batches(&ex, &pool, SHUFFLED).is_err());
        let empty = [TranslationExample { src: vec![], tgt: vec![5] }];
        let err = translation_batches(&empty, &config(Bucketing::None), SHUFFLED).unwrap_err();
        assert!(err.to_string().contains("empty source"), "{err}");
    }
}
