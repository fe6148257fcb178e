//! The one error type of the crate: missing data, malformed files and bad configurations are
//! reported here, never by a panic.

use std::fmt;
use std::path::PathBuf;

/// A place where the data directory was looked for, and why it was looked at.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Place {
    /// The directory that was tried.
    pub path: PathBuf,
    /// Where the path came from: `--data-dir`, `SATURN_DATA`, or a default.
    pub origin: String,
}

impl fmt::Display for Place {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} ({})", self.path.display(), self.origin)
    }
}

fn list(places: &[Place]) -> String {
    places.iter().map(Place::to_string).collect::<Vec<_>>().join(", ")
}

/// Errors of saturn-datasets.
#[derive(Debug, thiserror::Error)]
pub enum DatasetError {
    /// No data directory: names every place looked at and how to point at the data.
    #[error(
        "data directory not found; looked in: {}. Pass --data-dir DIR or set SATURN_DATA=DIR \
         to a folder holding multi30k/ and minilm/ (such as ../shared/data)",
        list(.looked)
    )]
    DataDirNotFound { looked: Vec<Place> },

    /// A file a dataset needs is not there.
    #[error("missing file {}: {hint}", .path.display())]
    MissingFile { path: PathBuf, hint: String },

    /// Reading a file failed for another reason.
    #[error("cannot read {}: {source}", .path.display())]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },

    /// A line of a text file is not what it should be (1-based line number).
    #[error("{}:{line}: {reason}", .path.display())]
    MalformedLine { path: PathBuf, line: usize, reason: String },

    /// A structured file (tokenizer.json) has the wrong shape.
    #[error("{}: {reason}", .path.display())]
    MalformedFile { path: PathBuf, reason: String },

    /// A configuration that cannot work (a window longer than the stream, an empty range, …).
    #[error("invalid configuration: {0}")]
    Config(String),

    /// Text holds a symbol the tokenizer has no id for (position in characters).
    #[error("unknown symbol {symbol:?} at character {position}")]
    UnknownSymbol { symbol: char, position: usize },

    /// An id is outside the vocabulary.
    #[error("token id {id} is outside the vocabulary of {vocab_size} tokens")]
    UnknownId { id: usize, vocab_size: usize },
}

/// Result with [`DatasetError`].
pub type Result<T, E = DatasetError> = std::result::Result<T, E>;
