//! Language-model batches from one token stream.
//!
//! An epoch cuts the stream into `n = ⌊(len − 1) / T⌋` contiguous, non-overlapping windows
//! `tokens[kT .. kT + T]` with targets shifted by one, `tokens[kT + 1 .. kT + T + 1]`, and deals
//! them in a (seeded) order into batches of `B` rows; the last batch may have fewer rows. So one
//! epoch sees every input position of `tokens[0 .. nT]` exactly once. [`LmStream::random_batch`]
//! samples windows at uniform offsets instead (nanoGPT's `get_batch`).

use rand::Rng;

use crate::error::{DatasetError, Result};
use crate::rng::{Order, below, shuffle};

/// A token stream.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LmStream {
    tokens: Vec<usize>,
}

/// `B` windows of `T` tokens: row-major `[B, T]` inputs and targets (inputs shifted by one).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LmBatch {
    pub inputs: Vec<usize>,
    pub targets: Vec<usize>,
    pub batch_size: usize,
    pub seq_len: usize,
    /// The stream offset of each row's first input.
    pub starts: Vec<usize>,
}

impl LmBatch {
    /// `[B, T]`.
    pub fn shape(&self) -> [usize; 2] {
        [self.batch_size, self.seq_len]
    }

    fn from_starts(tokens: &[usize], starts: Vec<usize>, seq_len: usize) -> Self {
        let mut inputs = Vec::with_capacity(starts.len() * seq_len);
        let mut targets = Vec::with_capacity(starts.len() * seq_len);
        for &s in &starts {
            inputs.extend_from_slice(&tokens[s..s + seq_len]);
            targets.extend_from_slice(&tokens[s + 1..s + seq_len + 1]);
        }
        Self { inputs, targets, batch_size: starts.len(), seq_len, starts }
    }
}

impl LmStream {
    /// A stream of token ids.
    pub fn new(tokens: Vec<usize>) -> Self {
        Self { tokens }
    }

    /// Splits a stream into train (the first `⌊len · (1 − valid_fraction)⌋` tokens) and
    /// validation (the rest), contiguously, as nanoGPT does (tiny-shakespeare: 0.1).
    pub fn split(tokens: Vec<usize>, valid_fraction: f64) -> Result<(Self, Self)> {
        if !(valid_fraction > 0.0 && valid_fraction < 1.0) {
            return Err(DatasetError::Config(format!(
                "valid_fraction {valid_fraction} must lie strictly between 0 and 1"
            )));
        }
        // ⌊len · (1 − f)⌋ as nanoGPT's int(n * 0.9); the epsilon absorbs 0.9 · 100 = 89.999….
        let cut = ((tokens.len() as f64) * (1.0 - valid_fraction) + 1e-9).floor() as usize;
        if cut == 0 || cut >= tokens.len() {
            return Err(DatasetError::Config(format!(
                "a stream of {} tokens cannot be split with valid_fraction {valid_fraction}",
                tokens.len()
            )));
        }
        let mut train = tokens;
        let valid = train.split_off(cut);
        Ok((Self::new(train), Self::new(valid)))
    }

    /// The tokens.
    pub fn tokens(&self) -> &[usize] {
        &self.tokens
    }

    /// The number of tokens.
    pub fn len(&self) -> usize {
        self.tokens.len()
    }

    /// Whether the stream is empty.
    pub fn is_empty(&self) -> bool {
        self.tokens.is_empty()
    }

    /// The number of windows of `seq_len` inputs in an epoch.
    pub fn num_windows(&self, seq_len: usize) -> usize {
        self.tokens.len().saturating_sub(1).checked_div(seq_len).unwrap_or(0)
    }

    fn check(&self, batch_size: usize, seq_len: usize) -> Result<()> {
        if batch_size == 0 || seq_len == 0 {
            return Err(DatasetError::Config(format!(
                "batch_size ({batch_size}) and seq_len ({seq_len}) must be positive"
            )));
        }
        if seq_len + 1 > self.tokens.len() {
            return Err(DatasetError::Config(format!(
                "a window of {seq_len} inputs + 1 target needs {} tokens, the stream has {}",
                seq_len + 1,
                self.tokens.len()
            )));
        }
        Ok(())
    }

    /// One epoch of batches (see the module docs). `Order::Shuffled { seed, epoch }` deals the
    /// windows in a seeded order; `Order::Sequential` in stream order.
    pub fn epoch(&self, batch_size: usize, seq_len: usize, order: Order) -> Result<LmEpoch<'_>> {
        self.check(batch_size, seq_len)?;
        let mut starts: Vec<usize> = (0..self.num_windows(seq_len)).map(|k| k * seq_len).collect();
        if let Some(mut rng) = order.rng() {
            shuffle(&mut rng, &mut starts);
        }
        Ok(LmEpoch { stream: self, starts, next: 0, batch_size, seq_len })
    }

    /// `batch_size` windows at uniform random offsets (windows may overlap).
    pub fn random_batch<R: Rng + ?Sized>(
        &self,
        batch_size: usize,
        seq_len: usize,
        rng: &mut R,
    ) -> Result<LmBatch> {
        self.check(batch_size, seq_len)?;
        let offsets = self.tokens.len() - seq_len;
        let starts = (0..batch_size).map(|_| below(rng, offsets)).collect();
        Ok(LmBatch::from_starts(&self.tokens, starts, seq_len))
    }
}

/// The batches of one epoch, in order.
#[derive(Debug, Clone)]
pub struct LmEpoch<'a> {
    stream: &'a LmStream,
    starts: Vec<usize>,
    next: usize,
    batch_size: usize,
    seq_len: usize,
}

impl Iterator for LmEpoch<'_> {
    type Item = LmBatch;

    fn next(&mut self) -> Option<LmBatch> {
        if self.next >= self.starts.len() {
            return None;
        }
        let end = (self.next + self.batch_size).min(self.starts.len());
        let starts = self.starts[self.next..end].to_vec();
        self.next = end;
        Some(LmBatch::from_starts(&self.stream.tokens, starts, self.seq_len))
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        let n = (self.starts.len() - self.next).div_ceil(self.batch_size);
        (n, Some(n))
    }
}

impl ExactSizeIterator for LmEpoch<'_> {}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rng::seeded_rng;

    fn shuffled(seed: u64, epoch: u64) -> Order {
        Order::Shuffled { seed, epoch }
    }

    #[test]
    fn an_epoch_covers_the_stream_once_without_overlap() {
        let stream = LmStream::new((0..1000).map(|i| i * 7 % 13).collect());
        let (b, t) = (4, 10);
        let batches: Vec<LmBatch> = stream.epoch(b, t, shuffled(1, 0)).unwrap().collect();
        assert_eq!(batches.len(), 25); // ⌊999 / 10⌋ = 99 windows in batches of 4
        let mut seen = vec![0u8; stream.len()];
        for batch in &batches {
            assert!(batch.batch_size <= b && batch.shape() == [batch.batch_size, t]);
            for (row, &s) in batch.starts.iter().enumerate() {
                for k in 0..t {
                    seen[s + k] += 1;
                    assert_eq!(batch.inputs[row * t + k], stream.tokens()[s + k]);
                    assert_eq!(batch.targets[row * t + k], stream.tokens()[s + k + 1]);
                }
            }
        }
        assert!(seen[..990].iter().all(|&c| c == 1));
        assert!(seen[990..].iter().all(|&c| c == 0));
    }

    #[test]
    fn the_same_seed_gives_the_same_batches() {
        let stream = LmStream::new((0..500).collect());
        let a: Vec<_> = stream.epoch(3, 8, shuffled(42, 0)).unwrap().collect();
        let b: Vec<_> = stream.epoch(3, 8, shuffled(42, 0)).unwrap().collect();
        let c: Vec<_> = stream.epoch(3, 8, shuffled(43, 0)).unwrap().collect();
        let d: Vec<_> = stream.epoch(3, 8, shuffled(42, 1)).unwrap().collect();
        assert_eq!(a, b);
        assert_ne!(a, c);
        assert_ne!(a, d);
        let seq: Vec<_> = stream.epoch(3, 8, Order::Sequential).unwrap().collect();
        assert_eq!(seq[0].starts, [0, 8, 16]);
        let r1 = stream.random_batch(5, 8, &mut seeded_rng(9)).unwrap();
        let r2 = stream.random_batch(5, 8, &mut seeded_rng(9)).unwrap();
        assert_eq!(r1, r2);
        assert!(r1.starts.iter().all(|&s| s + 8 < 500));
    }

    #[test]
    fn split_is_contiguous_train_then_valid() {
        let (train, valid) = LmStream::split((0..100).collect(), 0.1).unwrap();
        assert_eq!(train.tokens(), (0..90).collect::<Vec<_>>());
        assert_eq!(valid.tokens(), (90..100).collect::<Vec<_>>());
        assert!(LmStream::split((0..100).collect(), 1.0).is_err());
        assert!(LmStream::split(vec![1], 0.5).is_err());
    }

    #[test]
    fn a_window_longer_than_the_stream_is_an_error() {
        let stream = LmStream::new(vec![1, 2, 3]);
        let err = stream.epoch(1, 3, Order::Sequential).unwrap_err();
        assert!(err.to_string().contains("needs 4 tokens, the stream has 3"), "{err}");
        assert!(stream.epoch(0, 2, Order::Sequential).is_err());
        assert!(stream.random_batch(1, 5, &mut seeded_rng(0)).is_err());
        assert_eq!(stream.epoch(1, 2, Order::Sequential).unwrap().count(), 1);
    }

    #[test]
    fn tiny_shakespeare_char_stream_batches() {
        use crate::corpus::{TINY_SHAKESPEARE_VALID_FRACTION, tiny_shakespeare};
        use crate::tokenize::{CharTokenizer, Tokenizer};
        let text = tiny_shakespeare();
        let tok = CharTokenizer::from_text(text);
        let ids = tok.encode(text).unwrap();
        let (train, valid) = LmStream::split(ids, TINY_SHAKESPEARE_VALID_FRACTION).unwrap();
        assert_eq!(train.len(), 1_003_854); // nanoGPT's split
        let batch = train.epoch(8, 64, shuffled(0, 0)).unwrap().next().unwrap();
        assert_eq!(batch.shape(), [8, 64]);
        assert!(valid.epoch(8, 64, Order::Sequential).unwrap().len() > 0);
    }
}
