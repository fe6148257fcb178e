//! A run's directory: `OUT/NAME/` with `config.toml`, `metrics.csv`, `summary.json`, figures
//! and `checkpoints/`. Every write is atomic (a temporary file, then a rename), so an
//! interrupted run never leaves a half-written result.

use std::path::{Path, PathBuf};

use serde::Serialize;

use crate::error::{LabError, Result, io_err};
use crate::metrics::Metrics;

/// Where one experiment writes its results.
#[derive(Debug, Clone)]
pub struct RunDir {
    pub path: PathBuf,
}

impl RunDir {
    /// Creates (or reuses) `root/name`.
    pub fn create(root: &Path, name: &str) -> Result<Self> {
        let path = root.join(name);
        std::fs::create_dir_all(&path).map_err(io_err(&path))?;
        Ok(RunDir { path })
    }

    /// A subdirectory (e.g. one training run of a sweep), created.
    pub fn sub(&self, name: &str) -> Result<RunDir> {
        RunDir::create(&self.path, name)
    }

    /// `path/name`.
    pub fn file(&self, name: &str) -> PathBuf {
        self.path.join(name)
    }

    /// Writes text atomically.
    pub fn write_text(&self, name: &str, text: &str) -> Result<()> {
        Ok(saturn_tensor::io::write_atomically(&self.file(name), text.as_bytes())?)
    }

    /// Writes a value as pretty JSON, atomically.
    pub fn write_json(&self, name: &str, value: &impl Serialize) -> Result<()> {
        let text = serde_json::to_string_pretty(value)
            .map_err(|e| LabError::Run(format!("{name}: {e}")))?;
        self.write_text(name, &(text + "\n"))
    }

    /// Writes a value as TOML, atomically.
    pub fn write_toml(&self, name: &str, value: &impl Serialize) -> Result<()> {
        let text =
            toml::to_string_pretty(value).map_err(|e| LabError::Config(format!("{name}: {e}")))?;
        self.write_text(name, &text)
    }

    /// Writes a table as CSV, atomically: the header, then one line per row (a field holding a
    /// comma, a quote or a line break is quoted).
    pub fn write_csv(&self, name: &str, header: &[&str], rows: &[Vec<String>]) -> Result<()> {
        let field = |f: &str| {
            if f.contains([',', '"', '\n']) {
                format!("\"{}\"", f.replace('"', "\"\""))
            } else {
                f.to_string()
            }
        };
        let mut text = header.iter().map(|h| field(h)).collect::<Vec<_>>().join(",") + "\n";
        for row in rows {
            text += &(row.iter().map(|f| field(f)).collect::<Vec<_>>().join(",") + "\n");
        }
        self.write_text(name, &text)
    }

    /// Writes a metrics table as CSV, atomically.
    pub fn write_metrics(&self, name: &str, metrics: &Metrics) -> Result<()> {
        self.write_text(name, &metrics.to_csv())
    }
}
