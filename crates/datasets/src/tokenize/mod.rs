//! Tokenizers: text ⇄ ids.
//!
//! - [`CharTokenizer`]: one id per character (the alphabet of a corpus).
//! - [`WordTokenizer`]: words and punctuation, a frequency-limited vocabulary and `<unk>`.
//! - [`WordPiece`]: BERT's uncased WordPiece from a `vocab.txt` or `tokenizer.json`, giving the
//!   same ids as Hugging Face `tokenizers`.
//! - [`Bpe`]: a deterministic byte-pair-encoding learner and encoder (Sennrich et al. 2016) with
//!   a joint or per-language vocabulary for translation ([`TranslationBpe`]).
//!
//! Our own vocabularies (word, BPE) start with the four [`SPECIAL_TOKENS`] at fixed ids
//! [`SPECIALS`]: `<pad>` 0, `<unk>` 1, `<bos>` 2, `<eos>` 3.

mod bpe;
mod char;
mod pretokenize;
mod vocab;
mod word;
mod wordpiece;

pub use self::bpe::{Bpe, TranslationBpe, VocabSharing};
pub use self::char::CharTokenizer;
pub use self::pretokenize::{is_punctuation, split_words_and_punctuation};
pub use self::vocab::Vocab;
pub use self::word::{WordTokenizer, WordVocabConfig};
pub use self::wordpiece::{BertNormalizer, WordPiece};

use crate::error::Result;

/// Text to ids and back.
pub trait Tokenizer {
    /// The ids of a text.
    fn encode(&self, text: &str) -> Result<Vec<usize>>;
    /// The text of ids (an error for an id outside the vocabulary).
    fn decode(&self, ids: &[usize]) -> Result<String>;
    /// The number of ids.
    fn vocab_size(&self) -> usize;
}

/// The ids of the special tokens a model needs around and between sentences.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Specials {
    /// Padding (masked out of attention and loss).
    pub pad: usize,
    /// Unknown word or symbol.
    pub unk: usize,
    /// Beginning of sequence (the decoder's first input).
    pub bos: usize,
    /// End of sequence (the decoder's last target).
    pub eos: usize,
}

/// The special tokens that open our own vocabularies, in id order.
pub const SPECIAL_TOKENS: [&str; 4] = ["<pad>", "<unk>", "<bos>", "<eos>"];

/// Their ids.
pub const SPECIALS: Specials = Specials { pad: 0, unk: 1, bos: 2, eos: 3 };
