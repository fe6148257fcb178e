//! Word-level tokenization with a frequency-limited vocabulary and `<unk>`.
//!
//! Words are BERT's pre-tokens ([`split_words_and_punctuation`]: whitespace-separated, each
//! punctuation character its own word), optionally lower-cased. The vocabulary holds the
//! [`SPECIAL_TOKENS`], then the words seen at least `min_freq` times, most frequent first (ties in
//! code-point order, so it is deterministic), up to `max_size` entries in all. Other words map
//! to `<unk>`.

use std::collections::HashMap;

use super::{SPECIAL_TOKENS, SPECIALS, Specials, Tokenizer, Vocab, split_words_and_punctuation};
use crate::error::{DatasetError, Result};

/// How large the word vocabulary may grow.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WordVocabConfig {
    /// At most this many ids, the 4 special tokens included (`None`: no limit).
    pub max_size: Option<usize>,
    /// Keep only words seen at least this often.
    pub min_freq: usize,
    /// Lower-case text before splitting.
    pub lowercase: bool,
}

impl Default for WordVocabConfig {
    fn default() -> Self {
        Self { max_size: None, min_freq: 1, lowercase: false }
    }
}

/// A word-level tokenizer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WordTokenizer {
    vocab: Vocab,
    lowercase: bool,
}

impl WordTokenizer {
    /// Counts the words of `texts` and keeps the most frequent (see the module docs).
    pub fn learn<'a, I>(texts: I, config: &WordVocabConfig) -> Result<Self>
    where
        I: IntoIterator<Item = &'a str>,
    {
        if let Some(max) = config.max_size
            && max < SPECIAL_TOKENS.len()
        {
            return Err(DatasetError::Config(format!(
                "word vocabulary max_size {max} is smaller than the {} special tokens",
                SPECIAL_TOKENS.len()
            )));
        }
        let mut counts: HashMap<String, usize> = HashMap::new();
        for text in texts {
            let text = if config.lowercase { text.to_lowercase() } else { text.to_string() };
            for word in split_words_and_punctuation(&text) {
                *counts.entry(word.to_string()).or_insert(0) += 1;
            }
        }
        let mut ranked: Vec<(String, usize)> = counts
            .into_iter()
            .filter(|(w, c)| *c >= config.min_freq.max(1) && !SPECIAL_TOKENS.contains(&w.as_str()))
            .collect();
        ranked.sort_unstable_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
        let room = config.max_size.map_or(usize::MAX, |m| m - SPECIAL_TOKENS.len());
        let words = ranked.into_iter().take(room).map(|(w, _)| w);
        let vocab = Vocab::from_tokens(SPECIAL_TOKENS.iter().map(|s| s.to_string()).chain(words))?;
        Ok(Self { vocab, lowercase: config.lowercase })
    }

    /// The words of a text as this tokenizer sees them (before the vocabulary lookup).
    pub fn words(&self, text: &str) -> Vec<String> {
        let text = if self.lowercase { text.to_lowercase() } else { text.to_string() };
        split_words_and_punctuation(&text).into_iter().map(str::to_string).collect()
    }

    /// The vocabulary.
    pub fn vocab(&self) -> &Vocab {
        &self.vocab
    }

    /// The special ids ([`SPECIALS`]).
    pub fn specials(&self) -> Specials {
        SPECIALS
    }
}

impl Tokenizer for WordTokenizer {
    /// Never fails: out-of-vocabulary words become `<unk>`.
    fn encode(&self, text: &str) -> Result<Vec<usize>> {
        Ok(self.words(text).iter().map(|w| self.vocab.id(w).unwrap_or(SPECIALS.unk)).collect())
    }

    /// Words joined by single spaces.
    fn decode(&self, ids: &[usize]) -> Result<String> {
        let words = ids.iter().map(|&id| self.vocab.token(id)).collect::<Result<Vec<_>>>()?;
        Ok(words.join(" "))
    }

    fn vocab_size(&self) -> usize {
        self.vocab.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::corpus::tiny_shakespeare;

    #[test]
    fn in_vocabulary_text_round_trips_as_its_words() {
        let text = &tiny_shakespeare()[..20_000];
        let tok = WordTokenizer::learn([text], &WordVocabConfig::default()).unwrap();
        let ids = tok.encode(text).unwrap();
        assert!(!ids.contains(&SPECIALS.unk));
        assert_eq!(tok.decode(&ids).unwrap(), tok.words(text).join(" "));
    }

    #[test]
    fn vocabulary_keeps_the_most_frequent_words_and_maps_the_rest_to_unk() {
        let texts = ["the cat and the dog", "the cat, the end."];
        let cfg = WordVocabConfig { max_size: Some(6), min_freq: 1, lowercase: true };
        let tok = WordTokenizer::learn(texts, &cfg).unwrap();
        assert_eq!(tok.vocab_size(), 6);
        // "the" (4) then "cat" (2); ties among the once-seen words go to none at size 6.
        assert_eq!(&tok.vocab().tokens()[4..], ["the", "cat"]);
        assert_eq!(tok.encode("The dog").unwrap(), [4, SPECIALS.unk]);
        let cfg = WordVocabConfig { max_size: None, min_freq: 2, lowercase: false };
        assert_eq!(WordTokenizer::learn(texts, &cfg).unwrap().vocab_size(), 6);
    }

    #[test]
    fn a_vocabulary_smaller_than_the_specials_is_an_error() {
        let cfg = WordVocabConfig { max_size: Some(3), ..Default::default() };
        assert!(matches!(WordTokenizer::learn(["a"], &cfg), Err(DatasetError::Config(_))));
    }
}
