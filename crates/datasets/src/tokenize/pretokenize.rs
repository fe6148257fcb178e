//! Splitting text into words: BERT's pre-tokenizer (Devlin et al. 2019, `BasicTokenizer`).
//!
//! Split on whitespace (dropped), then isolate every punctuation character: ASCII punctuation
//! and the Unicode categories Pc, Pd, Ps, Pe, Pi, Pf, Po. The word-level tokenizer and WordPiece
//! share it.

use unicode_categories::UnicodeCategories;

/// BERT's punctuation: ASCII punctuation (`$`, `+`, `^`… included) or a Unicode P* category.
pub fn is_punctuation(c: char) -> bool {
    c.is_ascii_punctuation() || c.is_punctuation()
}

/// Words and single punctuation characters, in order.
pub fn split_words_and_punctuation(text: &str) -> Vec<&str> {
    let mut out = Vec::new();
    for chunk in text.split(char::is_whitespace).filter(|w| !w.is_empty()) {
        let mut start = 0;
        for (i, c) in chunk.char_indices() {
            if is_punctuation(c) {
                if start < i {
                    out.push(&chunk[start..i]);
                }
                out.push(&chunk[i..i + c.len_utf8()]);
                start = i + c.len_utf8();
            }
        }
        if start < chunk.len() {
            out.push(&chunk[start..]);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn punctuation_is_isolated_and_whitespace_dropped() {
        assert_eq!(
            split_words_and_punctuation("Hey friend!     How are you?!?"),
            ["Hey", "friend", "!", "How", "are", "you", "?", "!", "?"]
        );
        assert_eq!(
            split_words_and_punctuation("don't\t„Ja“—nein"),
            ["don", "'", "t", "„", "Ja", "“", "—", "nein"]
        );
        assert!(split_words_and_punctuation(" \n ").is_empty());
    }
}
