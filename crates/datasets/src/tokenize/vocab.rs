//! A vocabulary: tokens by id and ids by token.

use std::collections::HashMap;

use crate::error::{DatasetError, Result};

/// Tokens numbered 0..n in insertion order.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Vocab {
    tokens: Vec<String>,
    ids: HashMap<String, usize>,
}

impl Vocab {
    /// An empty vocabulary.
    pub fn new() -> Self {
        Self::default()
    }

    /// A vocabulary from tokens in id order; a repeated token is an error.
    pub fn from_tokens<I, S>(tokens: I) -> Result<Self>
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        let mut vocab = Self::new();
        for token in tokens {
            let token = token.into();
            if vocab.id(&token).is_some() {
                return Err(DatasetError::Config(format!("token {token:?} appears twice")));
            }
            vocab.push(token);
        }
        Ok(vocab)
    }

    /// Adds a token (if new) and returns its id.
    pub fn push(&mut self, token: impl Into<String>) -> usize {
        let token = token.into();
        if let Some(&id) = self.ids.get(&token) {
            return id;
        }
        let id = self.tokens.len();
        self.ids.insert(token.clone(), id);
        self.tokens.push(token);
        id
    }

    /// The id of a token.
    pub fn id(&self, token: &str) -> Option<usize> {
        self.ids.get(token).copied()
    }

    /// The token of an id.
    pub fn token(&self, id: usize) -> Result<&str> {
        self.tokens
            .get(id)
            .map(String::as_str)
            .ok_or(DatasetError::UnknownId { id, vocab_size: self.tokens.len() })
    }

    /// All tokens in id order.
    pub fn tokens(&self) -> &[String] {
        &self.tokens
    }

    /// The number of tokens.
    pub fn len(&self) -> usize {
        self.tokens.len()
    }

    /// Whether there are no tokens.
    pub fn is_empty(&self) -> bool {
        self.tokens.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_and_tokens_are_inverse() {
        let v = Vocab::from_tokens(["a", "b", "c"]).unwrap();
        for (i, t) in v.tokens().iter().enumerate() {
            assert_eq!(v.id(t), Some(i));
            assert_eq!(v.token(i).unwrap(), t);
        }
        assert!(v.token(3).is_err());
        assert!(Vocab::from_tokens(["a", "a"]).is_err());
    }
}
