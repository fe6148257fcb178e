//! BERT WordPiece (Devlin et al. 2019; Wu et al. 2016), id for id the Hugging Face `tokenizers`
//! pipeline of a `BertNormalizer` + `BertPreTokenizer` + `WordPiece` model + `[CLS] A [SEP]`
//! template, as in all-MiniLM-L6-v2's `tokenizer.json`.
//!
//! 1. Added special tokens (`[CLS]`, `[SEP]`, `[PAD]`, `[MASK]`, `[UNK]`) are matched in the raw
//!    text first (leftmost, longest) and kept whole.
//! 2. Normalize each remaining segment ([`BertNormalizer`]): drop NUL, U+FFFD and control/format/
//!    private-use characters (Cc, Cf, Co; tab, LF and CR count as whitespace), map whitespace to
//!    a space, put spaces around CJK ideographs, strip accents (NFD, then drop Mn marks), and
//!    lower-case character by character.
//! 3. Split into words and punctuation ([`split_words_and_punctuation`]).
//! 4. Cut each word greedily into the longest vocabulary pieces from the left, later pieces
//!    prefixed `##`; a word with an unmatched rest, or longer than 100 characters, is `[UNK]`.
//!
//! The Unicode tables are the ones Hugging Face uses (`unicode_categories`, and NFD from
//! `unicode-normalization`); ids match theirs on Multi30k val in both languages (see tests).

use std::path::Path;

use serde_json::Value;
use unicode_categories::UnicodeCategories;
use unicode_normalization::UnicodeNormalization;

use super::{Tokenizer, Vocab, split_words_and_punctuation};
use crate::error::{DatasetError, Result};
use crate::lines::read_lines;

/// BERT's text normalizer (Hugging Face `BertNormalizer`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BertNormalizer {
    /// Drop control characters and map every whitespace character to a space.
    pub clean_text: bool,
    /// Put spaces around CJK ideographs so that each is a word.
    pub handle_chinese_chars: bool,
    /// NFD, then drop non-spacing marks (Mn).
    pub strip_accents: bool,
    /// Lower-case each character.
    pub lowercase: bool,
}

impl BertNormalizer {
    /// The uncased BERT normalizer (all four steps); `strip_accents` follows `lowercase`, as
    /// Hugging Face does when it is unset.
    pub fn uncased() -> Self {
        Self { clean_text: true, handle_chinese_chars: true, strip_accents: true, lowercase: true }
    }

    /// The normalized text.
    pub fn normalize(&self, text: &str) -> String {
        let mut out = String::with_capacity(text.len());
        for c in text.chars() {
            if self.clean_text {
                if c == '\0' || c == '\u{fffd}' || is_control(c) {
                    continue;
                }
                if is_whitespace(c) {
                    out.push(' ');
                    continue;
                }
            }
            if self.handle_chinese_chars && is_chinese_char(c) {
                out.push(' ');
                out.push(c);
                out.push(' ');
            } else {
                out.push(c);
            }
        }
        if self.strip_accents {
            out = out.nfd().filter(|c| !c.is_mark_nonspacing()).collect();
        }
        if self.lowercase {
            out = out.chars().flat_map(char::to_lowercase).collect();
        }
        out
    }
}

fn is_whitespace(c: char) -> bool {
    c == '\t' || c == '\n' || c == '\r' || c.is_whitespace()
}

fn is_control(c: char) -> bool {
    !(c == '\t' || c == '\n' || c == '\r') && c.is_other()
}

/// The CJK Unified Ideographs blocks (and extensions / compatibility ideographs) BERT splits.
fn is_chinese_char(c: char) -> bool {
    matches!(c as u32,
        0x4E00..=0x9FFF
        | 0x3400..=0x4DBF
        | 0x20000..=0x2A6DF
        | 0x2A700..=0x2B73F
        | 0x2B740..=0x2B81F
        | 0x2B920..=0x2CEAF
        | 0xF900..=0xFAFF
        | 0x2F800..=0x2FA1F)
}

/// A BERT WordPiece tokenizer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WordPiece {
    vocab: Vocab,
    normalizer: BertNormalizer,
    unk: usize,
    prefix: String,
    max_chars: usize,
    /// Special tokens matched whole in the raw text, longest first.
    added: Vec<(String, usize)>,
    /// Ids put before and after a sentence by [`Tokenizer::encode`] (`[CLS]`, `[SEP]`).
    before: Vec<usize>,
    after: Vec<usize>,
}

const BERT_SPECIALS: [&str; 5] = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"];

impl WordPiece {
    /// From the tokens of a `vocab.txt` (id = line number), with Hugging Face's
    /// `BertWordPieceTokenizer` defaults: `[UNK]`, `##`, 100 characters per word, the BERT
    /// normalizer (`lowercase` and accent stripping together) and `[CLS] A [SEP]`.
    pub fn from_vocab_tokens<I, S>(tokens: I, lowercase: bool) -> Result<Self>
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        let vocab = Vocab::from_tokens(tokens)?;
        let unk = vocab
            .id("[UNK]")
            .ok_or_else(|| DatasetError::Config("WordPiece vocabulary has no [UNK]".into()))?;
        let added: Vec<(String, usize)> =
            BERT_SPECIALS.iter().filter_map(|t| Some((t.to_string(), vocab.id(t)?))).collect();
        let normalizer =
            BertNormalizer { strip_accents: lowercase, lowercase, ..BertNormalizer::uncased() };
        let before = vocab.id("[CLS]").into_iter().collect();
        let after = vocab.id("[SEP]").into_iter().collect();
        Ok(Self::assemble(vocab, normalizer, unk, "##".into(), 100, added, before, after))
    }

    /// From a BERT `vocab.txt` (see [`WordPiece::from_vocab_tokens`]).
    pub fn from_vocab_txt(path: &Path, lowercase: bool) -> Result<Self> {
        let lines = read_lines(path, "a BERT vocab.txt: one token per line, id = line number")?;
        let mut seen = std::collections::HashSet::new();
        if let Some(i) = lines.iter().position(|l| !seen.insert(l.as_str())) {
            return Err(DatasetError::MalformedLine {
                path: path.to_path_buf(),
                line: i + 1,
                reason: format!("token {:?} appears twice", lines[i]),
            });
        }
        if !lines.iter().any(|l| l == "[UNK]") {
            return Err(DatasetError::MalformedFile {
                path: path.to_path_buf(),
                reason:
                    "no [UNK] token: a WordPiece vocabulary needs one for words it cannot split"
                        .into(),
            });
        }
        Self::from_vocab_tokens(lines, lowercase)
    }

    /// From a Hugging Face `tokenizer.json` with a WordPiece model, a `BertNormalizer` (or none)
    /// and a `BertPreTokenizer`. Its padding and truncation settings are ignored: sentences keep
    /// their length. Any other pipeline is an error that names the part.
    pub fn from_tokenizer_json(path: &Path) -> Result<Self> {
        let malformed = |reason: String| DatasetError::MalformedFile { path: path.into(), reason };
        let text = std::fs::read_to_string(path).map_err(|source| match source.kind() {
            std::io::ErrorKind::NotFound => DatasetError::MissingFile {
                path: path.into(),
                hint: "a Hugging Face tokenizer.json (e.g. DATA/minilm/tokenizer.json)".into(),
            },
            _ => DatasetError::Io { path: path.into(), source },
        })?;
        let json: Value = serde_json::from_str(&text).map_err(|e| malformed(e.to_string()))?;

        let model = &json["model"];
        if model["type"] != "WordPiece" {
            return Err(malformed(format!("model type {} is not WordPiece", model["type"])));
        }
        let map = model["vocab"].as_object().ok_or_else(|| malformed("no model.vocab".into()))?;
        let mut tokens = vec![None; map.len()];
        for (token, id) in map {
            let id = id.as_u64().map(|i| i as usize).filter(|&i| i < map.len());
            match id.map(|i| &mut tokens[i]) {
                Some(slot @ None) => *slot = Some(token.clone()),
                _ => return Err(malformed(format!("ids of model.vocab are not 0..{}", map.len()))),
            }
        }
        let vocab = Vocab::from_tokens(tokens.into_iter().flatten())?;
        let str_field = |v: &Value, key: &str, default: &str| -> Result<String> {
            match &v[key] {
                Value::Null => Ok(default.to_string()),
                Value::String(s) => Ok(s.clone()),
                other => Err(malformed(format!("{key} is {other}, not a string"))),
            }
        };
        let unk_token = str_field(model, "unk_token", "[UNK]")?;
        let unk = vocab
            .id(&unk_token)
            .ok_or_else(|| malformed(format!("unk_token {unk_token} is not in the vocabulary")))?;
        let prefix = str_field(model, "continuing_subword_prefix", "##")?;
        let max_chars = model["max_input_chars_per_word"].as_u64().unwrap_or(100) as usize;

        let normalizer = match &json["normalizer"] {
            Value::Null => BertNormalizer {
                clean_text: false,
                handle_chinese_chars: false,
                strip_accents: false,
                lowercase: false,
            },
            n if n["type"] == "BertNormalizer" => {
                let flag = |key: &str| n[key].as_bool();
                let lowercase = flag("lowercase").unwrap_or(true);
                BertNormalizer {
                    clean_text: flag("clean_text").unwrap_or(true),
                    handle_chinese_chars: flag("handle_chinese_chars").unwrap_or(true),
                    strip_accents: flag("strip_accents").unwrap_or(lowercase),
                    lowercase,
                }
            }
            n => return Err(malformed(format!("normalizer {} is not supported", n["type"]))),
        };
        let pre = &json["pre_tokenizer"]["type"];
        if pre != "BertPreTokenizer" {
            return Err(malformed(format!("pre_tokenizer {pre} is not supported")));
        }

        let mut added = Vec::new();
        for t in json["added_tokens"].as_array().into_iter().flatten() {
            if let (Some(content), Some(id)) = (t["content"].as_str(), t["id"].as_u64())
                && t["special"].as_bool().unwrap_or(false)
            {
                added.push((content.to_string(), id as usize));
            }
        }

        let (before, after) = template(&json["post_processor"]).map_err(malformed)?;
        Ok(Self::assemble(vocab, normalizer, unk, prefix, max_chars, added, before, after))
    }

    #[allow(clippy::too_many_arguments)]
    fn assemble(
        vocab: Vocab,
        normalizer: BertNormalizer,
        unk: usize,
        prefix: String,
        max_chars: usize,
        mut added: Vec<(String, usize)>,
        before: Vec<usize>,
        after: Vec<usize>,
    ) -> Self {
        added.retain(|(t, _)| !t.is_empty());
        added.sort_by(|a, b| b.0.len().cmp(&a.0.len()).then_with(|| a.0.cmp(&b.0)));
        Self { vocab, normalizer, unk, prefix, max_chars, added, before, after }
    }

    /// The ids of a text without the `[CLS]` / `[SEP]` template.
    pub fn encode_without_specials(&self, text: &str) -> Vec<usize> {
        let mut ids = Vec::new();
        let mut rest = text;
        while !rest.is_empty() {
            let (plain, special) = self.next_special(rest);
            let normalized = self.normalizer.normalize(&rest[..plain]);
            for word in split_words_and_punctuation(&normalized) {
                self.push_pieces(word, &mut ids);
            }
            match special {
                Some((len, id)) => {
                    ids.push(id);
                    rest = &rest[plain + len..];
                }
                None => break,
            }
        }
        ids
    }

    /// The word pieces of a text, without the template (for inspection).
    pub fn tokenize(&self, text: &str) -> Vec<String> {
        let ids = self.encode_without_specials(text);
        ids.iter().filter_map(|&id| self.vocab.token(id).ok().map(str::to_string)).collect()
    }

    /// The first added special token in `text`: (bytes before it, Some((its length, its id))).
    fn next_special(&self, text: &str) -> (usize, Option<(usize, usize)>) {
        if self.added.is_empty() {
            return (text.len(), None);
        }
        for (i, _) in text.char_indices() {
            // `added` is sorted longest first, so the first hit is the longest match here.
            if let Some((t, id)) = self.added.iter().find(|(t, _)| text[i..].starts_with(t)) {
                return (i, Some((t.len(), *id)));
            }
        }
        (text.len(), None)
    }

    /// Greedy longest-match-first pieces of one word, or `[UNK]` for the whole word.
    fn push_pieces(&self, word: &str, ids: &mut Vec<usize>) {
        if word.chars().count() > self.max_chars {
            ids.push(self.unk);
            return;
        }
        let first = ids.len();
        let mut piece = String::with_capacity(word.len() + self.prefix.len());
        let mut start = 0;
        while start < word.len() {
            let mut end = word.len();
            let mut found = None;
            while start < end {
                piece.clear();
                if start > 0 {
                    piece.push_str(&self.prefix);
                }
                piece.push_str(&word[start..end]);
                if let Some(id) = self.vocab.id(&piece) {
                    found = Some(id);
                    break;
                }
                // Step back one character.
                end = word[start..end].char_indices().last().map_or(start, |(i, _)| start + i);
            }
            match found {
                Some(id) => {
                    ids.push(id);
                    start = end;
                }
                None => {
                    ids.truncate(first);
                    ids.push(self.unk);
                    return;
                }
            }
        }
    }

    /// The vocabulary.
    pub fn vocab(&self) -> &Vocab {
        &self.vocab
    }

    /// The normalizer.
    pub fn normalizer(&self) -> &BertNormalizer {
        &self.normalizer
    }

    /// The id of `[UNK]`.
    pub fn unk_id(&self) -> usize {
        self.unk
    }

    /// The id of a token such as `[PAD]`, `[CLS]`, `[SEP]`, `[MASK]`.
    pub fn token_id(&self, token: &str) -> Option<usize> {
        self.vocab.id(token)
    }
}

/// The ids around a single sentence from a `post_processor`: TemplateProcessing,
/// BertProcessing, or none.
fn template(post: &Value) -> std::result::Result<(Vec<usize>, Vec<usize>), String> {
    match post["type"].as_str() {
        None => Ok((vec![], vec![])),
        Some("BertProcessing") => {
            let id = |key: &str| post[key][1].as_u64().map(|i| i as usize);
            match (id("cls"), id("sep")) {
                (Some(cls), Some(sep)) => Ok((vec![cls], vec![sep])),
                _ => Err("BertProcessing without cls/sep ids".into()),
            }
        }
        Some("TemplateProcessing") => {
            let (mut before, mut after, mut seen_sequence) = (vec![], vec![], false);
            for item in post["single"].as_array().into_iter().flatten() {
                if item.get("Sequence").is_some() {
                    seen_sequence = true;
                } else if let Some(name) = item["SpecialToken"]["id"].as_str() {
                    let ids = post["special_tokens"][name]["ids"]
                        .as_array()
                        .ok_or(format!("template token {name} has no ids"))?;
                    let ids = ids.iter().filter_map(Value::as_u64).map(|i| i as usize);
                    if seen_sequence { after.extend(ids) } else { before.extend(ids) }
                } else {
                    return Err(format!("template item {item} is not understood"));
                }
            }
            Ok((before, after))
        }
        Some(other) => Err(format!("post_processor {other} is not supported")),
    }
}

impl Tokenizer for WordPiece {
    /// `[CLS]` + pieces + `[SEP]`, as Hugging Face's `encode(text)` (special tokens added).
    fn encode(&self, text: &str) -> Result<Vec<usize>> {
        let mut ids = self.before.clone();
        ids.extend(self.encode_without_specials(text));
        ids.extend(&self.after);
        Ok(ids)
    }

    /// Pieces glued (`##` continues a word), words joined by spaces, special tokens skipped.
    /// No clean-up of spaces before punctuation: `decode(encode(t))` is the normalized words
    /// of `t` joined by single spaces (when no word is `[UNK]`).
    fn decode(&self, ids: &[usize]) -> Result<String> {
        let mut out = String::new();
        for &id in ids {
            let token = self.vocab.token(id)?;
            if self.added.iter().any(|(_, a)| *a == id) {
                continue;
            }
            match token.strip_prefix(self.prefix.as_str()) {
                Some(rest) if !self.prefix.is_empty() => out.push_str(rest),
                _ => {
                    if !out.is_empty() {
                        out.push(' ');
                    }
                    out.push_str(token);
                }
            }
        }
        Ok(out)
    }

    fn vocab_size(&self) -> usize {
        self.vocab.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tiny() -> WordPiece {
        let tokens = [
            "[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", "un", "##aff", "##able", "a", "##b",
            "cafe", ",", "!", "hello", "##s", "野",
        ];
        WordPiece::from_vocab_tokens(tokens, true).unwrap()
    }

    #[test]
    fn greedy_longest_match_with_unk_for_unmatched_words() {
        let wp = tiny();
        assert_eq!(wp.tokenize("unaffable"), ["un", "##aff", "##able"]);
        assert_eq!(wp.tokenize("ab abb"), ["a", "##b", "a", "##b", "##b"]);
        // "unaffablex": the rest "x" has no piece, so the whole word is [UNK].
        assert_eq!(wp.tokenize("unaffablex, Hellos!"), ["[UNK]", ",", "hello", "##s", "!"]);
        assert_eq!(wp.encode("Café").unwrap(), [2, 10, 3]);
        assert_eq!(wp.tokenize("野野"), ["野", "野"]);
        assert_eq!(wp.tokenize(&"a".repeat(101)), ["[UNK]"]);
    }

    #[test]
    fn special_tokens_in_text_are_kept_whole() {
        let wp = tiny();
        assert_eq!(wp.encode("a[SEP]cafe [MASK]").unwrap(), [2, 8, 3, 10, 4, 3]);
    }

    #[test]
    fn decode_glues_pieces_and_skips_specials() {
        let wp = tiny();
        let ids = wp.encode("Unaffable café, hellos!").unwrap();
        assert_eq!(wp.decode(&ids).unwrap(), "unaffable cafe , hellos !");
        assert!(wp.decode(&[99]).is_err());
    }

    /// all-MiniLM-L6-v2's tokenizer, from tokenizer.json and from vocab.txt; `None` (and a SKIP
    /// line on stderr) when the data directory is missing.
    fn minilm(test: &str) -> Option<(std::path::PathBuf, [WordPiece; 2])> {
        let dir = match crate::data_dir(None) {
            Ok(dir) if dir.join("minilm/tokenizer.json").is_file() => dir,
            Ok(dir) => {
                eprintln!("SKIP {test}: no {}", dir.join("minilm/tokenizer.json").display());
                return None;
            }
            Err(e) => {
                eprintln!("SKIP {test}: {e}");
                return None;
            }
        };
        let json = WordPiece::from_tokenizer_json(&dir.join("minilm/tokenizer.json")).unwrap();
        let txt = WordPiece::from_vocab_txt(&dir.join("minilm/vocab.txt"), true).unwrap();
        Some((dir, [json, txt]))
    }

    fn fixture(name: &str) -> Value {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures").join(name);
        serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
    }

    /// FNV-1a 64 of the ids written in decimal and joined by "," (as make_fixture.py).
    fn ids_hash(ids: &[usize]) -> String {
        let text = ids.iter().map(usize::to_string).collect::<Vec<_>>().join(",");
        let hash = text.bytes().fold(0xcbf2_9ce4_8422_2325u64, |h, b| {
            (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
        });
        format!("{hash:016x}")
    }

    #[test]
    fn ids_equal_hugging_face_on_handwritten_sentences() {
        let Some((_, tokenizers)) = minilm("ids_equal_hugging_face_on_handwritten_sentences")
        else {
            return;
        };
        let expected = fixture("wordpiece_handwritten.json");
        let sentences = expected["sentences"].as_array().unwrap();
        assert_eq!(sentences.len(), 20);
        for wp in &tokenizers {
            for s in sentences {
                let text = s["text"].as_str().unwrap();
                let want: Vec<usize> = s["ids"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .map(|i| i.as_u64().unwrap() as usize)
                    .collect();
                assert_eq!(wp.encode(text).unwrap(), want, "{text:?}: {:?}", wp.tokenize(text));
            }
        }
    }

    #[test]
    fn ids_equal_hugging_face_on_multi30k_val_in_both_languages() {
        let test = "ids_equal_hugging_face_on_multi30k_val_in_both_languages";
        let Some((dir, tokenizers)) = minilm(test) else { return };
        if !dir.join("multi30k/val.en").is_file() {
            eprintln!("SKIP {test}: no {}", dir.join("multi30k/val.en").display());
            return;
        }
        let expected = fixture("wordpiece_multi30k_val.json");
        for file in ["val.en", "val.de"] {
            let lines = read_lines(&dir.join("multi30k").join(file), "Multi30k val").unwrap();
            let want = expected["files"][file]["lines"].as_array().unwrap();
            assert_eq!(lines.len(), want.len(), "{file}");
            assert_eq!(lines.len(), 1014);
            for wp in &tokenizers {
                for (i, (line, w)) in lines.iter().zip(want).enumerate() {
                    let ids = wp.encode(line).unwrap();
                    assert_eq!(
                        (ids.len() as u64, ids_hash(&ids).as_str()),
                        (w[0].as_u64().unwrap(), w[1].as_str().unwrap()),
                        "{file}:{}: {:?}",
                        i + 1,
                        wp.tokenize(line)
                    );
                }
            }
        }
    }

    #[test]
    fn tokenizer_json_and_vocab_txt_agree_on_tiny_shakespeare() {
        let Some((_, [json, txt])) = minilm("tokenizer_json_and_vocab_txt_agree") else { return };
        assert_eq!(json.vocab_size(), 30_522);
        assert_eq!(
            (json.unk_id(), json.token_id("[CLS]"), json.token_id("[SEP]")),
            (100, Some(101), Some(102))
        );
        let mut round_trips = 0;
        for line in crate::tiny_shakespeare().lines().take(800) {
            let ids = json.encode(line).unwrap();
            assert_eq!(ids, txt.encode(line).unwrap(), "{line:?}");
            if !ids.contains(&json.unk_id()) {
                let normalized = json.normalizer().normalize(line);
                let words = split_words_and_punctuation(&normalized).join(" ");
                assert_eq!(json.decode(&ids).unwrap(), words);
                round_trips += 1;
            }
        }
        assert!(round_trips > 700, "{round_trips}");
    }

    #[test]
    fn unsupported_tokenizer_json_is_a_clear_error() {
        let path = std::env::temp_dir().join(format!("saturn-bpe-tok-{}.json", std::process::id()));
        std::fs::write(&path, r#"{"model": {"type": "BPE", "vocab": {}}}"#).unwrap();
        let err = WordPiece::from_tokenizer_json(&path).unwrap_err().to_string();
        std::fs::write(&path, "{not json").unwrap();
        let bad = WordPiece::from_tokenizer_json(&path).unwrap_err();
        std::fs::remove_file(&path).ok();
        assert!(err.contains("is not WordPiece"), "{err}");
        assert!(matches!(bad, DatasetError::MalformedFile { .. }), "{bad}");
        let missing = WordPiece::from_tokenizer_json(Path::new("/nonexistent/tokenizer.json"));
        assert!(matches!(missing, Err(DatasetError::MissingFile { .. })));
    }

    #[test]
    fn normalizer_cleans_strips_accents_and_lowercases() {
        let n = BertNormalizer::uncased();
        assert_eq!(n.normalize("Ça\u{0}\u{200b}\tVA\u{fffd}"), "ca va");
        assert_eq!(n.normalize("İSTANBUL \u{212a}"), "istanbul k");
        assert_eq!(n.normalize("東京"), " 東  京 ");
        assert_eq!(n.normalize("Straße ÄÖÜ"), "straße aou");
    }

    #[test]
    fn a_vocab_txt_without_unk_names_the_file() {
        let path = std::env::temp_dir().join(format!("saturn-vocab-{}.txt", std::process::id()));
        std::fs::write(&path, "[PAD]\n[CLS]\n[SEP]\nhello\n").unwrap();
        let err = WordPiece::from_vocab_txt(&path, true).unwrap_err();
        std::fs::remove_file(&path).ok();
        let msg = err.to_string();
        assert!(msg.contains("saturn-vocab-") && msg.contains("[UNK]"), "{msg}");
    }
}
