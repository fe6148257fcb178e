//! The embedded default corpus: tiny-shakespeare (public domain).
//!
//! 1,115,394 ASCII characters of Shakespeare (Karpathy's char-rnn `input.txt`), shipped in the
//! repository's `data/tinyshakespeare/` with its SOURCE.md and compiled into the crate, so every
//! experiment that needs text works with no flag and no data directory.

/// The full text of tiny-shakespeare.
pub const TINY_SHAKESPEARE: &str = include_str!("../../../data/tinyshakespeare/input.txt");

/// The conventional validation fraction (nanoGPT `shakespeare_char`: the last 10% of characters).
pub const TINY_SHAKESPEARE_VALID_FRACTION: f64 = 0.1;

/// The full text of tiny-shakespeare.
pub fn tiny_shakespeare() -> &'static str {
    TINY_SHAKESPEARE
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn embedded_corpus_is_the_documented_file() {
        let text = tiny_shakespeare();
        assert_eq!(text.len(), 1_115_394);
        assert_eq!(text.lines().count(), 40_000);
        assert!(text.is_ascii());
        let mut chars: Vec<char> = text.chars().collect();
        chars.sort_unstable();
        chars.dedup();
        assert_eq!(chars.len(), 65);
        assert!(text.starts_with("First Citizen:\nBefore we proceed any further, hear me speak."));
    }
}
