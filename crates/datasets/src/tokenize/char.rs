//! Character-level tokenization: one id per distinct character (Karpathy's char-rnn).

use std::collections::HashMap;

use super::Tokenizer;
use crate::error::{DatasetError, Result};

/// Ids are the ranks of the characters in sorted order (tiny-shakespeare: 65 ids, `\n` = 0).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CharTokenizer {
    chars: Vec<char>,
    ids: HashMap<char, usize>,
}

impl CharTokenizer {
    /// The alphabet of a text, sorted by code point.
    pub fn from_text(text: &str) -> Self {
        let mut chars: Vec<char> = text.chars().collect();
        chars.sort_unstable();
        chars.dedup();
        let ids = chars.iter().enumerate().map(|(i, &c)| (c, i)).collect();
        Self { chars, ids }
    }

    /// The alphabet, id order.
    pub fn alphabet(&self) -> &[char] {
        &self.chars
    }
}

impl Tokenizer for CharTokenizer {
    /// A character outside the alphabet is an [`DatasetError::UnknownSymbol`].
    fn encode(&self, text: &str) -> Result<Vec<usize>> {
        text.chars()
            .enumerate()
            .map(|(position, symbol)| {
                self.ids
                    .get(&symbol)
                    .copied()
                    .ok_or(DatasetError::UnknownSymbol { symbol, position })
            })
            .collect()
    }

    fn decode(&self, ids: &[usize]) -> Result<String> {
        ids.iter()
            .map(|&id| {
                self.chars
                    .get(id)
                    .copied()
                    .ok_or(DatasetError::UnknownId { id, vocab_size: self.chars.len() })
            })
            .collect()
    }

    fn vocab_size(&self) -> usize {
        self.chars.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::corpus::tiny_shakespeare;

    #[test]
    fn tiny_shakespeare_round_trips_through_65_ids() {
        let text = tiny_shakespeare();
        let tok = CharTokenizer::from_text(text);
        assert_eq!(tok.vocab_size(), 65);
        assert_eq!(tok.alphabet()[0], '\n');
        let ids = tok.encode(text).unwrap();
        assert_eq!(ids.len(), text.len());
        assert_eq!(tok.decode(&ids).unwrap(), text);
    }

    #[test]
    fn unknown_characters_and_ids_are_errors() {
        let tok = CharTokenizer::from_text("abc");
        let err = tok.encode("abz").unwrap_err();
        assert!(matches!(err, DatasetError::UnknownSymbol { symbol: 'z', position: 2 }));
        assert!(tok.decode(&[0, 3]).is_err());
        assert_eq!(tok.decode(&tok.encode("cab").unwrap()).unwrap(), "cab");
    }
}
