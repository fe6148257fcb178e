//! `setup --tensorboard`: installs PyPI's `tensorboard` (and its dependencies) into
//! `target/py-tensorboard`, for viewing runs (`PYTHONPATH=target/py-tensorboard python3 -m
//! tensorboard.main --logdir runs`) and for the test that reads the lab's event files back with
//! TensorBoard's own reader (`crates/lab/tests/integration/tensorboard.rs`). Downloaded on request, never
//! committed.

use std::path::PathBuf;
use std::process::Command;

/// The package installed (its dependencies come with it).
const PACKAGE: &str = "tensorboard";

/// `target/py-tensorboard` of the workspace: what `PYTHONPATH` points at.
pub fn dir() -> PathBuf {
    super::workspace_root().join("target").join("py-tensorboard")
}

/// True when `setup --tensorboard` has run (the reader the test imports is there).
pub fn installed() -> bool {
    dir().join("tensorboard").join("backend").join("event_processing").is_dir()
}

/// Installs the package with pip into a temporary directory renamed into place (a cut-short
/// install never counts as installed), unless it is already there.
pub fn ensure() -> Result<PathBuf, String> {
    let dir = dir();
    if installed() {
        eprintln!("setup: {PACKAGE} found in {}", dir.display());
        return Ok(dir);
    }
    let partial = dir.with_extension("partial");
    let _ = std::fs::remove_dir_all(&partial);
    eprintln!("setup: installing {PACKAGE} from PyPI into {}", dir.display());
    let status = Command::new("python3")
        .args(["-m", "pip", "install", "--quiet", "--disable-pip-version-check", "--target"])
        .arg(&partial)
        .arg(PACKAGE)
        .status()
        .map_err(|e| format!("could not run `python3 -m pip` to install {PACKAGE}: {e}"))?;
    if !status.success() {
        return Err(format!("`pip install {PACKAGE}` failed ({status})"));
    }
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::rename(&partial, &dir)
        .map_err(|e| format!("moving {PACKAGE} into {}: {e}", dir.display()))?;
    if !installed() {
        return Err(format!("{PACKAGE} is not in {} after pip install", dir.display()));
    }
    eprintln!("setup: {PACKAGE} installed in {}", dir.display());
    Ok(dir)
}
