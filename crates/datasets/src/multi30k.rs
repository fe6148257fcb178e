//! Multi30k task 1, German–English image captions (Elliott et al. 2016, VL@ACL).
//!
//! Read in place from `DATA/multi30k/{train,val,test_2016_flickr}.{de,en}` (29,000 / 1,014 /
//! 1,000 pairs, one raw sentence per line, line i of `.de` translating line i of `.en`). Its
//! licence allows non-commercial research and education only: it is never copied into this
//! repository. Find `DATA` with [`crate::data_dir`].

use std::path::{Path, PathBuf};

use crate::error::{DatasetError, Result};
use crate::lines::read_lines;

/// A split of Multi30k.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Multi30kSplit {
    /// 29,000 pairs.
    Train,
    /// 1,014 pairs (`val`).
    Valid,
    /// 1,000 pairs (`test_2016_flickr`).
    Test,
}

impl Multi30kSplit {
    /// Every split, in order.
    pub const ALL: [Multi30kSplit; 3] = [Self::Train, Self::Valid, Self::Test];

    /// The file stem: `train`, `val` or `test_2016_flickr`.
    pub fn stem(self) -> &'static str {
        match self {
            Self::Train => "train",
            Self::Valid => "val",
            Self::Test => "test_2016_flickr",
        }
    }

    /// The number of pairs in the published split.
    pub fn expected_len(self) -> usize {
        match self {
            Self::Train => 29_000,
            Self::Valid => 1_014,
            Self::Test => 1_000,
        }
    }
}

/// A German sentence and its English translation (De→En: `de` is the source).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SentencePair {
    pub de: String,
    pub en: String,
}

/// The folder of Multi30k inside a data directory.
pub fn multi30k_dir(data_dir: &Path) -> PathBuf {
    data_dir.join("multi30k")
}

/// The two files of a split: (`.de`, `.en`).
pub fn multi30k_files(data_dir: &Path, split: Multi30kSplit) -> (PathBuf, PathBuf) {
    let dir = multi30k_dir(data_dir);
    (dir.join(format!("{}.de", split.stem())), dir.join(format!("{}.en", split.stem())))
}

const HINT: &str = "Multi30k is read from DATA/multi30k/{train,val,test_2016_flickr}.{de,en} \
    (raw task-1 text, see ../shared/data/multi30k/SOURCE.md); pass --data-dir DIR or set \
    SATURN_DATA=DIR";

/// Loads a split's sentence pairs. Errors name the file and line: a missing file, invalid
/// UTF-8, an empty line, or `.de` and `.en` of different lengths.
pub fn load_multi30k(data_dir: &Path, split: Multi30kSplit) -> Result<Vec<SentencePair>> {
    let (de_path, en_path) = multi30k_files(data_dir, split);
    let de = read_sentences(&de_path)?;
    let en = read_sentences(&en_path)?;
    if de.len() != en.len() {
        let (short, n) =
            if de.len() < en.len() { (&de_path, de.len()) } else { (&en_path, en.len()) };
        return Err(DatasetError::MalformedLine {
            path: short.clone(),
            line: n + 1,
            reason: format!(
                "ends after {n} lines, but {} has {} and {} has {}: the two sides must align",
                de_path.display(),
                de.len(),
                en_path.display(),
                en.len()
            ),
        });
    }
    Ok(de.into_iter().zip(en).map(|(de, en)| SentencePair { de, en }).collect())
}

fn read_sentences(path: &Path) -> Result<Vec<String>> {
    let lines = read_lines(path, HINT)?;
    if let Some(i) = lines.iter().position(|l| l.trim().is_empty()) {
        return Err(DatasetError::MalformedLine {
            path: path.to_path_buf(),
            line: i + 1,
            reason: "empty sentence".into(),
        });
    }
    Ok(lines)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::data_dir::data_dir;

    fn temp_dir(name: &str) -> PathBuf {
        let dir = std::env::temp_dir()
            .join(format!("saturn-m30k-{name}-{}", std::process::id()))
            .join("multi30k");
        std::fs::create_dir_all(&dir).unwrap();
        dir.parent().unwrap().to_path_buf()
    }

    #[test]
    fn splits_have_the_published_sizes() {
        let dir = match data_dir(None) {
            Ok(dir) if multi30k_dir(&dir).is_dir() => dir,
            Ok(dir) => {
                eprintln!(
                    "SKIP splits_have_the_published_sizes: no {}",
                    multi30k_dir(&dir).display()
                );
                return;
            }
            Err(e) => {
                eprintln!("SKIP splits_have_the_published_sizes: {e}");
                return;
            }
        };
        for split in Multi30kSplit::ALL {
            let pairs = load_multi30k(&dir, split).unwrap();
            assert_eq!(pairs.len(), split.expected_len(), "{split:?}");
        }
        let val = load_multi30k(&dir, Multi30kSplit::Valid).unwrap();
        assert!(val[0].en.starts_with("A group of men"));
        assert!(val.iter().any(|p| p.de.contains('ä')));
    }

    #[test]
    fn missing_split_names_the_file_and_how_to_point_at_the_data() {
        let dir = temp_dir("missing");
        let msg = load_multi30k(&dir, Multi30kSplit::Test).unwrap_err().to_string();
        std::fs::remove_dir_all(&dir).ok();
        assert!(msg.contains("test_2016_flickr.de"), "{msg}");
        assert!(msg.contains("--data-dir") && msg.contains("SATURN_DATA"), "{msg}");
    }

    #[test]
    fn misaligned_or_empty_lines_are_errors() {
        let dir = temp_dir("bad");
        let (de, en) = multi30k_files(&dir, Multi30kSplit::Valid);
        std::fs::write(&de, "Ein Hund.\nZwei Hunde.\n").unwrap();
        std::fs::write(&en, "A dog.\n").unwrap();
        let misaligned = load_multi30k(&dir, Multi30kSplit::Valid).unwrap_err();
        std::fs::write(&en, "A dog.\n\n").unwrap();
        let empty = load_multi30k(&dir, Multi30kSplit::Valid).unwrap_err();
        std::fs::remove_dir_all(&dir).ok();
        assert!(misaligned.to_string().contains("val.en:2"), "{misaligned}");
        assert!(matches!(empty, DatasetError::MalformedLine { line: 2, .. }), "{empty}");
    }
}
