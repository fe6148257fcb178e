//! # saturn-datasets
//!
//! Text, translation pairs and synthetic languages for studying how transformers train, with
//! every order decided by an explicit seed.
//!
//! - **Corpora.** [`tiny_shakespeare`] is embedded (public domain, `data/tinyshakespeare/`):
//!   experiments that need text work with no flag. [`load_multi30k`] reads Multi30k De→En
//!   (train 29,000 / val 1,014 / test 1,000 pairs) in place from the data directory
//!   ([`data_dir`]: `--data-dir`, else `SATURN_DATA`, else `../shared/data`); its
//!   non-commercial licence keeps it out of the repository.
//! - **Tokenizers** ([`tokenize`]): characters, words with a frequency-limited vocabulary and
//!   `<unk>`, BERT WordPiece with Hugging Face's ids (from `vocab.txt` or `tokenizer.json`), and
//!   a deterministic BPE learner with joint or per-language vocabularies.
//! - **Batching** ([`batch`]): language-model epochs of contiguous `[B, T]` windows with shifted
//!   targets, and translation batches with padding, key-padding masks and length bucketing.
//!   Batches are plain index buffers with their shapes, ready for `index_select`.
//! - **Formal languages** ([`formal`]): MAJORITY, aⁿbⁿ, Dyck-1/2, PARITY, copy, reverse and a
//!   running count, where the roles of hard and averaging heads are known.
//! - **Randomness** ([`rng`]): PCG-64 from a seed, with uniform draws and shuffles written on
//!   `next_u64`, so results do not move when `rand` changes.
//!
//! Errors are [`DatasetError`] values (missing files, malformed lines, impossible
//! configurations); nothing here panics on bad input.
//!
//! ```
//! use saturn_datasets::batch::LmStream;
//! use saturn_datasets::rng::Order;
//! use saturn_datasets::tokenize::{CharTokenizer, Tokenizer};
//!
//! let text = saturn_datasets::tiny_shakespeare();
//! let chars = CharTokenizer::from_text(text);
//! let (train, _valid) = LmStream::split(chars.encode(text)?, 0.1)?;
//! let batch = train.epoch(4, 32, Order::Shuffled { seed: 0, epoch: 0 })?.next().unwrap();
//! assert_eq!(batch.shape(), [4, 32]);
//! # Ok::<(), saturn_datasets::DatasetError>(())
//! ```

pub mod batch;
mod corpus;
mod data_dir;
mod error;
pub mod formal;
mod lines;
mod multi30k;
pub mod rng;
pub mod tokenize;

pub use corpus::{TINY_SHAKESPEARE, TINY_SHAKESPEARE_VALID_FRACTION, tiny_shakespeare};
pub use data_dir::{DATA_DIR_ENV, data_dir, default_data_dirs, resolve_data_dir};
pub use error::{DatasetError, Place, Result};
pub use multi30k::{Multi30kSplit, SentencePair, load_multi30k, multi30k_dir, multi30k_files};
