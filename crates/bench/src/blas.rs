//! The OpenBLAS thread count this benchmark runs with (through `saturn_tensor::blas`).
//!
//! OpenBLAS reads `OPENBLAS_NUM_THREADS` once, when the library is loaded (before `main`), so the
//! variable has to be in the environment of the process: `cargo xtask bench` gets `1` from
//! `.cargo/config.toml` unless the caller exports another value. When the variable is absent
//! (the binary run by hand), OpenBLAS would use every core; this program then sets one thread
//! with `openblas_set_num_threads(1)`, so the default is one thread either way. The count
//! reported on every JSON line is what `openblas_get_num_threads()` says, not what was asked.

pub use saturn_tensor::blas::{corename, kernel_warning};

/// Makes one thread the default when `OPENBLAS_NUM_THREADS` is unset, and returns the number of
/// threads OpenBLAS will use.
pub fn configure_threads() -> usize {
    match std::env::var("OPENBLAS_NUM_THREADS") {
        Err(std::env::VarError::NotPresent) => saturn_tensor::blas::set_num_threads(1),
        Ok(v) if v.trim().parse::<usize>().is_ok_and(|n| n >= 1) => {}
        Ok(v) => eprintln!(
            "saturn-bench: warning: OPENBLAS_NUM_THREADS={v:?} is not a positive integer; \
             OpenBLAS chose its own count"
        ),
        Err(e) => eprintln!("saturn-bench: warning: OPENBLAS_NUM_THREADS: {e}"),
    }
    saturn_tensor::blas::num_threads()
}
