//! Where larger or restricted data lives: `--data-dir`, else `SATURN_DATA`, else `../shared/data`.
//!
//! Multi30k (non-commercial research licence) and the all-MiniLM-L6-v2 files are read in place
//! from this directory and never copied into the repository. The default `../shared/data` is
//! tried relative to the current directory and relative to the workspace root this crate was
//! built in (so `cargo test` finds it from any crate directory).

use std::ffi::OsString;
use std::path::{Path, PathBuf};

use crate::error::{DatasetError, Place, Result};

/// The environment variable naming the data directory.
pub const DATA_DIR_ENV: &str = "SATURN_DATA";

/// The data directory: `explicit` (a `--data-dir` flag) if given, else `$SATURN_DATA` if set and
/// non-empty, else the first existing default `../shared/data`.
///
/// An explicit path or `SATURN_DATA` that is not a directory is an error (no silent fallback).
/// The error names every place looked at and says how to point at the data.
pub fn data_dir(explicit: Option<&Path>) -> Result<PathBuf> {
    let env = std::env::var_os(DATA_DIR_ENV);
    resolve_data_dir(explicit, env, &default_data_dirs())
}

/// The default places, in order: `../shared/data` from the current directory, then from the
/// workspace root (`crates/datasets/../..`).
pub fn default_data_dirs() -> Vec<PathBuf> {
    let mut dirs = Vec::new();
    if let Ok(cwd) = std::env::current_dir()
        && let Some(parent) = cwd.parent()
    {
        dirs.push(parent.join("shared").join("data"));
    }
    let manifest = Path::new(env!("CARGO_MANIFEST_DIR"));
    if let Some(outside) = manifest.parent().and_then(Path::parent).and_then(Path::parent) {
        let dir = outside.join("shared").join("data");
        if !dirs.contains(&dir) {
            dirs.push(dir);
        }
    }
    dirs
}

/// [`data_dir`] with its inputs made explicit (testable without touching the environment).
pub fn resolve_data_dir(
    explicit: Option<&Path>,
    env: Option<OsString>,
    defaults: &[PathBuf],
) -> Result<PathBuf> {
    let chosen = |path: PathBuf, origin: &str| {
        if path.is_dir() {
            Ok(path)
        } else {
            Err(DatasetError::DataDirNotFound {
                looked: vec![Place { path, origin: format!("{origin}: not a directory") }],
            })
        }
    };
    if let Some(path) = explicit {
        return chosen(path.to_path_buf(), "from --data-dir");
    }
    if let Some(value) = env.filter(|v| !v.is_empty()) {
        return chosen(PathBuf::from(value), &format!("from {DATA_DIR_ENV}"));
    }
    if let Some(found) = defaults.iter().find(|d| d.is_dir()) {
        return Ok(found.clone());
    }
    let mut looked: Vec<Place> = defaults
        .iter()
        .map(|path| Place { path: path.clone(), origin: "default ../shared/data".into() })
        .collect();
    looked.insert(0, Place { path: PathBuf::from("--data-dir"), origin: "not given".into() });
    looked.insert(1, Place { path: PathBuf::from(DATA_DIR_ENV), origin: "not set".into() });
    Err(DatasetError::DataDirNotFound { looked })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn here() -> PathBuf {
        PathBuf::from(env!("CARGO_MANIFEST_DIR"))
    }

    #[test]
    fn explicit_path_wins_over_env_and_defaults() {
        let dir = resolve_data_dir(Some(&here()), Some("/nonexistent".into()), &[]).unwrap();
        assert_eq!(dir, here());
    }

    #[test]
    fn env_wins_over_defaults() {
        let src = here().join("src");
        let dir = resolve_data_dir(None, Some(src.clone().into()), &[here()]).unwrap();
        assert_eq!(dir, src);
    }

    #[test]
    fn first_existing_default_is_used() {
        let defaults = [PathBuf::from("/nonexistent/saturn"), here()];
        assert_eq!(resolve_data_dir(None, None, &defaults).unwrap(), here());
        assert_eq!(resolve_data_dir(None, Some("".into()), &defaults).unwrap(), here());
    }

    #[test]
    fn missing_data_dir_error_names_every_place_and_the_fix() {
        let defaults = [PathBuf::from("/nonexistent/a/shared/data"), "/nonexistent/b".into()];
        let msg = resolve_data_dir(None, None, &defaults).unwrap_err().to_string();
        for needle in ["/nonexistent/a/shared/data", "/nonexistent/b", "--data-dir", "SATURN_DATA"]
        {
            assert!(msg.contains(needle), "{needle} not in: {msg}");
        }
        let msg = resolve_data_dir(Some(Path::new("/nonexistent/x")), None, &[here()])
            .unwrap_err()
            .to_string();
        assert!(msg.contains("/nonexistent/x (from --data-dir"), "{msg}");
        let msg = resolve_data_dir(None, Some("/nonexistent/y".into()), &[here()])
            .unwrap_err()
            .to_string();
        assert!(msg.contains("/nonexistent/y (from SATURN_DATA"), "{msg}");
    }
}
