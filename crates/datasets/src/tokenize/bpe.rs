//! Byte-pair encoding (Sennrich, Haddow & Birch 2016, "Neural Machine Translation of Rare Words
//! with Subword Units"): learn merges of the most frequent adjacent symbol pair until the
//! vocabulary has the chosen size, then encode words by replaying the merges in order.
//!
//! Words are whitespace-separated (punctuation stays attached and is learned like letters).
//! A symbol that starts a word carries a leading space (`" the"`, as GPT-2's `Ġ`); words never
//! contain whitespace, so the marker cannot collide with text, and decoding is concatenation.
//! The base alphabet is every (position-marked) character of the training text.
//!
//! Determinism: the most frequent pair wins and ties go to the pair of smaller ids (ids are
//! assigned in a fixed order: specials, sorted alphabet, merges in order), so the same text and
//! size always give the same vocabulary. Only pairs seen at least twice are merged, so a small
//! corpus may stop below the requested size.

use std::collections::{BinaryHeap, HashMap, HashSet};

use super::{SPECIAL_TOKENS, SPECIALS, Specials, Tokenizer, Vocab};
use crate::error::{DatasetError, Result};

/// A learned byte-pair encoding.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Bpe {
    vocab: Vocab,
    /// Merges in learned order: (left id, right id) → merged id.
    merges: Vec<(usize, usize, usize)>,
    /// (left id, right id) → rank in `merges`.
    ranks: HashMap<(usize, usize), usize>,
}

/// Merges of a pair appearing fewer times than this are not learned.
const MIN_PAIR_COUNT: i64 = 2;

type Pair = (usize, usize);

impl Bpe {
    /// Learns a vocabulary of (at most) `vocab_size` ids from `texts`: the 4 special tokens, the
    /// base alphabet, then one id per merge. An error when `vocab_size` cannot hold the specials
    /// and the alphabet.
    pub fn learn<'a, I>(texts: I, vocab_size: usize) -> Result<Self>
    where
        I: IntoIterator<Item = &'a str>,
    {
        let mut word_counts: HashMap<&str, i64> = HashMap::new();
        for text in texts {
            for word in text.split_whitespace() {
                *word_counts.entry(word).or_insert(0) += 1;
            }
        }
        let mut words: Vec<(&str, i64)> = word_counts.into_iter().collect();
        words.sort_unstable();

        let mut alphabet: Vec<String> = words
            .iter()
            .flat_map(|(w, _)| base_symbols(w))
            .collect::<HashSet<_>>()
            .into_iter()
            .collect();
        alphabet.sort_unstable();
        let base = SPECIAL_TOKENS.len() + alphabet.len();
        if vocab_size < base {
            return Err(DatasetError::Config(format!(
                "BPE vocab_size {vocab_size} is smaller than the {} special tokens + {} base symbols",
                SPECIAL_TOKENS.len(),
                alphabet.len()
            )));
        }
        let mut vocab =
            Vocab::from_tokens(SPECIAL_TOKENS.iter().map(|s| s.to_string()).chain(alphabet))?;

        // Each distinct word as a symbol sequence, with its count.
        let mut seqs: Vec<(Vec<usize>, i64)> = words
            .iter()
            .map(|(w, c)| {
                (base_symbols(w).map(|s| vocab.id(&s).unwrap_or(SPECIALS.unk)).collect(), *c)
            })
            .collect();
        let mut counts: HashMap<Pair, i64> = HashMap::new();
        let mut where_: HashMap<Pair, HashSet<usize>> = HashMap::new();
        for (i, (seq, c)) in seqs.iter().enumerate() {
            for p in seq.windows(2) {
                *counts.entry((p[0], p[1])).or_insert(0) += c;
                where_.entry((p[0], p[1])).or_default().insert(i);
            }
        }
        // Max-heap on (count, smaller ids first); stale entries are skipped when popped.
        let mut heap: BinaryHeap<(i64, std::cmp::Reverse<Pair>)> =
            counts.iter().map(|(&p, &c)| (c, std::cmp::Reverse(p))).collect();

        let mut merges = Vec::new();
        // Pairs whose concatenation spells a special token ("x<pad>"): never merged, so text
        // cannot turn into `<pad>` or `<eos>`.
        let mut banned: HashSet<Pair> = HashSet::new();
        while vocab.len() < vocab_size {
            let Some((count, std::cmp::Reverse(pair))) = heap.pop() else { break };
            if counts.get(&pair).copied().unwrap_or(0) != count || banned.contains(&pair) {
                continue;
            }
            if count < MIN_PAIR_COUNT {
                break;
            }
            let merged = format!("{}{}", vocab.token(pair.0)?, vocab.token(pair.1)?);
            if SPECIAL_TOKENS.contains(&merged.as_str()) {
                banned.insert(pair);
                continue;
            }
            // The concatenation may already be a token (reached through another split, as
            // " l"+"ow" after " lo"+"w"): then the merge reuses its id.
            let new_id = vocab.push(merged);
            merges.push((pair.0, pair.1, new_id));
            let mut changed: HashSet<Pair> = HashSet::new();
            let mut touched: Vec<usize> =
                where_.remove(&pair).unwrap_or_default().into_iter().collect();
            touched.sort_unstable();
            for i in touched {
                let (seq, c) = &mut seqs[i];
                for p in seq.windows(2) {
                    let p = (p[0], p[1]);
                    *counts.entry(p).or_insert(0) -= *c;
                    changed.insert(p);
                }
                *seq = merge_pair(seq, pair, new_id);
                for p in seq.windows(2) {
                    let p = (p[0], p[1]);
                    *counts.entry(p).or_insert(0) += *c;
                    where_.entry(p).or_default().insert(i);
                    changed.insert(p);
                }
            }
            for p in changed {
                match counts.get(&p).copied() {
                    Some(c) if c > 0 => heap.push((c, std::cmp::Reverse(p))),
                    _ => {
                        counts.remove(&p);
                    }
                }
            }
        }
        // A pair merged twice (its id reused) keeps its first, lowest rank.
        let mut ranks = HashMap::new();
        for (rank, &(a, b, _)) in merges.iter().enumerate() {
            ranks.entry((a, b)).or_insert(rank);
        }
        Ok(Self { vocab, merges, ranks })
    }

    /// The ids of one word: base symbols, then the merges replayed by rank.
    fn encode_word(&self, word: &str, ids: &mut Vec<usize>) {
        let mut seq: Vec<usize> =
            base_symbols(word).map(|s| self.vocab.id(&s).unwrap_or(SPECIALS.unk)).collect();
        loop {
            let best = seq.windows(2).filter_map(|p| self.ranks.get(&(p[0], p[1])).copied()).min();
            let Some(rank) = best else { break };
            let (a, b, merged) = self.merges[rank];
            seq = merge_pair(&seq, (a, b), merged);
        }
        ids.extend(seq);
    }

    /// The tokens of a text (for inspection); a leading space marks a word start.
    pub fn tokenize(&self, text: &str) -> Vec<String> {
        let ids = self.encode_ids(text);
        ids.iter().filter_map(|&id| self.vocab.token(id).ok().map(str::to_string)).collect()
    }

    fn encode_ids(&self, text: &str) -> Vec<usize> {
        let mut ids = Vec::new();
        for word in text.split_whitespace() {
            self.encode_word(word, &mut ids);
        }
        ids
    }

    /// The number of merges learned.
    pub fn num_merges(&self) -> usize {
        self.merges.len()
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

/// The base symbols of a word: its characters, the first with the word-start space.
fn base_symbols(word: &str) -> impl Iterator<Item = String> + '_ {
    word.chars().enumerate().map(|(i, c)| if i == 0 { format!(" {c}") } else { c.to_string() })
}

/// Replaces every non-overlapping occurrence of `pair` (left to right) by `merged`.
fn merge_pair(seq: &[usize], pair: Pair, merged: usize) -> Vec<usize> {
    let mut out = Vec::with_capacity(seq.len());
    let mut i = 0;
    while i < seq.len() {
        if i + 1 < seq.len() && (seq[i], seq[i + 1]) == pair {
            out.push(merged);
            i += 2;
        } else {
            out.push(seq[i]);
            i += 1;
        }
    }
    out
}

impl Tokenizer for Bpe {
    /// Never fails: characters outside the alphabet become `<unk>`.
    fn encode(&self, text: &str) -> Result<Vec<usize>> {
        Ok(self.encode_ids(text))
    }

    /// Concatenation without the first word's leading space; `<pad>`, `<bos>` and `<eos>` are
    /// skipped, `<unk>` is written `<unk>`. Round trip: the words of the text joined by single
    /// spaces, when every character was in the training text.
    fn decode(&self, ids: &[usize]) -> Result<String> {
        let mut out = String::new();
        for &id in ids {
            let token = self.vocab.token(id)?;
            if id == SPECIALS.pad || id == SPECIALS.bos || id == SPECIALS.eos {
                continue;
            }
            out.push_str(token);
        }
        Ok(out.strip_prefix(' ').map(str::to_string).unwrap_or(out))
    }

    fn vocab_size(&self) -> usize {
        self.vocab.len()
    }
}

/// Whether source and target share one BPE vocabulary.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum VocabSharing {
    /// One vocabulary learned on both sides (shared embeddings are possible).
    Joint,
    /// One vocabulary per language, each of the chosen size.
    PerLanguage,
}

/// Source and target tokenizers for translation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TranslationBpe {
    pub src: Bpe,
    pub tgt: Bpe,
    pub sharing: VocabSharing,
}

impl TranslationBpe {
    /// Learns BPE on (source, target) sentence pairs: one joint vocabulary of `vocab_size`, or
    /// one of `vocab_size` per language.
    pub fn learn<'a, I>(pairs: I, vocab_size: usize, sharing: VocabSharing) -> Result<Self>
    where
        I: IntoIterator<Item = (&'a str, &'a str)>,
    {
        let (src, tgt): (Vec<&str>, Vec<&str>) = pairs.into_iter().unzip();
        match sharing {
            VocabSharing::Joint => {
                let bpe = Bpe::learn(src.iter().chain(&tgt).copied(), vocab_size)?;
                Ok(Self { src: bpe.clone(), tgt: bpe, sharing })
            }
            VocabSharing::PerLanguage => Ok(Self {
                src: Bpe::learn(src, vocab_size)?,
                tgt: Bpe::learn(tgt, vocab_size)?,
                sharing,
            }),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::corpus::tiny_shakespeare;

    #[test]
    fn merges_follow_pair_frequency() {
        // Sennrich et al.'s example: "low lower newest widest".
        let text = "low low low low low lower lower newest newest newest newest newest newest \
                    widest widest widest";
        let bpe = Bpe::learn([text], 100).unwrap();
        let tokens: Vec<&str> =
            bpe.merges.iter().map(|&(_, _, m)| bpe.vocab.token(m).unwrap()).collect();
        // "es" / "st" / "est" (9 times) and " l"+"o" / "low" (7 times) come first.
        assert_eq!(tokens[0], "es");
        assert_eq!(tokens[1], "est");
        assert!(tokens.contains(&" low"));
        assert_eq!(bpe.tokenize("lowest"), [" low", "est"]);
        assert_eq!(bpe.tokenize("newest"), [" newest"]);
    }

    #[test]
    fn text_round_trips_as_its_words() {
        let text = &tiny_shakespeare()[..50_000];
        let bpe = Bpe::learn([text], 600).unwrap();
        assert_eq!(bpe.vocab_size(), 600);
        let ids = bpe.encode(text).unwrap();
        assert!(!ids.contains(&SPECIALS.unk));
        assert!(ids.len() < text.len() / 2, "BPE should compress: {} ids", ids.len());
        let words: Vec<&str> = text.split_whitespace().collect();
        assert_eq!(bpe.decode(&ids).unwrap(), words.join(" "));
        // Unseen characters become <unk> and never panic.
        assert_eq!(bpe.encode("the€").unwrap().iter().filter(|&&i| i == SPECIALS.unk).count(), 1);
    }

    #[test]
    fn learning_is_deterministic() {
        let text = &tiny_shakespeare()[..30_000];
        let a = Bpe::learn([text], 400).unwrap();
        let b = Bpe::learn([text], 400).unwrap();
        assert_eq!(a, b);
        assert_eq!(a.vocab().tokens(), b.vocab().tokens());
    }

    #[test]
    fn text_spelling_a_special_token_stays_text() {
        let text = "x<pad> y<eos> x<pad> y<eos> x<pad> y<eos>";
        let bpe = Bpe::learn([text], 200).unwrap();
        let ids = bpe.encode(text).unwrap();
        assert!(ids.iter().all(|&i| i >= SPECIAL_TOKENS.len()), "{:?}", bpe.tokenize(text));
        assert_eq!(bpe.decode(&ids).unwrap(), text);
    }

    #[test]
    fn too_small_a_vocabulary_is_an_error() {
        assert!(matches!(Bpe::learn(["abc def"], 8), Err(DatasetError::Config(_))));
    }

    #[test]
    fn joint_vocabulary_is_shared_and_per_language_ones_differ() {
        let pairs = [("ein Hund läuft", "a dog runs"), ("zwei Hunde laufen", "two dogs run")];
        let joint = TranslationBpe::learn(pairs, 60, VocabSharing::Joint).unwrap();
        assert_eq!(joint.src, joint.tgt);
        let per = TranslationBpe::learn(pairs, 40, VocabSharing::PerLanguage).unwrap();
        assert_ne!(per.src.vocab(), per.tgt.vocab());
        assert!(per.src.vocab().id("ä").is_some() && per.tgt.vocab().id("ä").is_none());
        for (de, en) in pairs {
            assert_eq!(per.src.decode(&per.src.encode(de).unwrap()).unwrap(), de);
            assert_eq!(joint.tgt.decode(&joint.tgt.encode(en).unwrap()).unwrap(), en);
        }
    }
}
