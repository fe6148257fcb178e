//! Data shared by experiments: the character-level tiny-shakespeare streams.

use saturn_datasets::batch::LmStream;
use saturn_datasets::tokenize::{CharTokenizer, Tokenizer};
use saturn_datasets::{TINY_SHAKESPEARE_VALID_FRACTION, tiny_shakespeare};

use crate::error::Result;

/// Train and validation streams of character ids, and the vocabulary size.
pub struct CharCorpus {
    pub train: LmStream,
    pub valid: LmStream,
    pub vocab: usize,
    /// Relative frequency of each id in the training stream.
    pub unigram: Vec<f64>,
}

impl CharCorpus {
    /// tiny-shakespeare, split 90 / 10 contiguously (nanoGPT's split).
    pub fn tiny_shakespeare() -> Result<Self> {
        let text = tiny_shakespeare();
        let tok = CharTokenizer::from_text(text);
        let ids = tok.encode(text)?;
        let vocab = tok.vocab_size();
        let (train, valid) = LmStream::split(ids, TINY_SHAKESPEARE_VALID_FRACTION)?;
        let mut counts = vec![0usize; vocab];
        for &t in train.tokens() {
            counts[t] += 1;
        }
        let n = train.len() as f64;
        Ok(CharCorpus {
            unigram: counts.iter().map(|&c| c as f64 / n).collect(),
            train,
            valid,
            vocab,
        })
    }

    /// The entropy of the unigram distribution in nats: the loss of the best model that ignores
    /// context.
    pub fn unigram_entropy(&self) -> f64 {
        -self.unigram.iter().filter(|&&p| p > 0.0).map(|p| p * p.ln()).sum::<f64>()
    }
}
