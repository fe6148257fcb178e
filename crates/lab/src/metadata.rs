//! The facts a result depends on: git commit, BLAS backend, OpenBLAS kernel and threads, seeds,
//! wall time.

use serde::{Deserialize, Serialize};

/// Where and how a run was made.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Metadata {
    /// `git rev-parse --short HEAD` (with `-dirty` if the tree had changes), or "unknown".
    pub git_commit: String,
    pub openblas_core: String,
    pub openblas_config: String,
    /// The GEMM backend and its build (`saturn_tensor::blas::describe`); absent in records made
    /// before backends could be chosen (they ran on OpenBLAS).
    #[serde(default)]
    pub blas: String,
    pub threads: usize,
    pub saturn_version: String,
    /// UTC start time, seconds since the Unix epoch.
    pub started_unix: u64,
}

impl Metadata {
    /// Reads the current process's facts.
    pub fn collect() -> Self {
        Metadata {
            git_commit: git_commit(),
            openblas_core: saturn_tensor::blas::corename(),
            openblas_config: saturn_tensor::blas::config(),
            blas: saturn_tensor::blas::describe(),
            threads: saturn_tensor::blas::num_threads(),
            saturn_version: env!("CARGO_PKG_VERSION").to_string(),
            started_unix: std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.as_secs())
                .unwrap_or(0),
        }
    }
}

fn git_commit() -> String {
    let run = |args: &[&str]| {
        std::process::Command::new("git")
            .args(args)
            .output()
            .ok()
            .filter(|o| o.status.success())
            .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
    };
    match run(&["rev-parse", "--short", "HEAD"]) {
        Some(commit) => {
            let dirty = run(&["status", "--porcelain", "--untracked-files=no"])
                .is_some_and(|s| !s.is_empty());
            if dirty { format!("{commit}-dirty") } else { commit }
        }
        None => "unknown".to_string(),
    }
}
