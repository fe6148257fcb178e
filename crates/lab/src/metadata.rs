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
    /// OpenBLAS's `OPENBLAS_THREAD_TIMEOUT` (idle workers spin 2^x cycles), `None` for its
    /// built-in 2^28 (`saturn_tensor::blas::worker_spin_log2_cycles`); absent in older records.
    #[serde(default)]
    pub openblas_worker_spin: Option<u32>,
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
            openblas_worker_spin: saturn_tensor::blas::worker_spin_log2_cycles(),
            saturn_version: env!("CARGO_PKG_VERSION").to_string(),
            started_unix: std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.as_secs())
                .unwrap_or(0),
        }
    }
}

/// The commit of the tree the binary was built in (its directory is inside the repository's
/// `target/`), else of the working directory: a merge job may run anywhere.
fn git_commit() -> String {
    let exe_dir = std::env::current_exe().ok().and_then(|e| e.parent().map(|d| d.to_path_buf()));
    let run = |dir: Option<&std::path::Path>, args: &[&str]| {
        let mut cmd = std::process::Command::new("git");
        if let Some(dir) = dir {
            cmd.arg("-C").arg(dir);
        }
        cmd.args(args)
            .output()
            .ok()
            .filter(|o| o.status.success())
            .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
    };
    for dir in [exe_dir.as_deref(), None] {
        if let Some(commit) = run(dir, &["rev-parse", "--short", "HEAD"]) {
            let dirty = run(dir, &["status", "--porcelain", "--untracked-files=no"])
                .is_some_and(|s| !s.is_empty());
            return if dirty { format!("{commit}-dirty") } else { commit };
        }
    }
    "unknown".to_string()
}
