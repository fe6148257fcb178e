//! BLAS: Saturn's thread count, the OpenBLAS build (through OpenBLAS's own C API), and the
//! choice of GEMM backend.
//!
//! **Threads.** One thread count ([`num_threads`]) drives the GEMMs and Saturn's own parallel
//! kernels ([`crate::parallel`]). It starts as OpenBLAS's (which OpenBLAS reads from
//! `OPENBLAS_NUM_THREADS` when the library loads, before `main`); a program that takes a
//! `--threads` flag calls [`set_num_threads`]. On OpenBLAS the count is OpenBLAS's own; with MKL
//! selected, MKL gets it and OpenBLAS is set to one thread, so that its idle worker threads do not
//! spin next to MKL's (they did: `sched_yield` loops, ≈ 11 % of a 2-thread step). Bits of GEMM
//! results depend on the thread count and on the CPU kernel ([`corename`]): log both with every
//! run (DEPENDENCIES.md, trap 6), and the backend ([`describe`]).
//!
//! Backends: OpenBLAS, linked, serves everything (LAPACK, the thread count) and runs the matrix
//! products unless Intel oneMKL does ([`gemm`]). MKL is loaded at run time ([`mkl`]) and chosen
//! by `SATURN_BLAS`:
//!
//! - unset, empty or `auto` (the default): **MKL on Intel CPUs when the library is found, else
//!   OpenBLAS**. On this project's Xeons MKL runs the transformer's GEMM shapes 10–25 % faster
//!   than Debian's OpenBLAS 0.3.21, which put Saturn's medium step ahead of PyTorch's only on MKL
//!   (docs/perf/HISTORY.md#round-10); on an AMD EPYC, MKL made the 2-thread step slower (issue
//!   24), so other CPUs stay on OpenBLAS. The rule depends only on the CPU's vendor and on what
//!   is installed, so one machine always gets the same backend and the same bits.
//! - `openblas` or `mkl`: that backend; `mkl` fails with a clear error when it cannot load.
//!
//! The choice is made once, on the first product or by [`select_backend`], which a program
//! calls at start to turn a bad setting into an error. [`describe`] names it for run metadata.

mod gemm;
pub mod mkl;
mod openblas_workers;

pub use gemm::gemm;
pub(crate) use gemm::{
    MACS_PER_ELEMENT_OF_WORK, gemm_batched_into, gemm_batched2_into, gemm_into, product_into_block,
};
pub(crate) use openblas_workers::OpenBlasOnOneThread;
pub use openblas_workers::{
    WORKER_SPIN_LOG2_CYCLES, let_idle_workers_sleep, worker_spin_log2_cycles,
};

use std::ffi::{CStr, c_char, c_int};
use std::path::PathBuf;
use std::sync::OnceLock;
use std::sync::atomic::{AtomicUsize, Ordering};

/// Why the requested BLAS backend cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum BlasError {
    /// `SATURN_BLAS` names no backend.
    #[error("SATURN_BLAS={0:?} is not a BLAS backend (use `openblas` or `mkl`)")]
    UnknownBackend(String),
    /// MKL was asked for but could not be opened or set up.
    #[error("MKL backend ({}): {reason}", path.display())]
    Mkl { path: PathBuf, reason: String },
}

/// Where the matrix products run.
pub enum Backend {
    /// The linked OpenBLAS (through ndarray's `general_mat_mul`).
    OpenBlas,
    /// Intel oneMKL's cblas_?gemm, opened at run time.
    Mkl(mkl::Mkl),
}

static BACKEND: OnceLock<Result<Backend, BlasError>> = OnceLock::new();

/// Why the default choice on an Intel CPU fell back to OpenBLAS (MKL could not be loaded).
static MKL_NOT_LOADED: OnceLock<String> = OnceLock::new();

fn load_backend() -> Result<Backend, BlasError> {
    match std::env::var("SATURN_BLAS").ok().as_deref().map(str::trim) {
        None | Some("") | Some("auto") => {
            if !cpu_is_intel() {
                return Ok(Backend::OpenBlas);
            }
            // an Intel CPU without a loadable MKL runs on OpenBLAS; `describe` says why
            Ok(load_mkl().unwrap_or_else(|e| {
                let _ = MKL_NOT_LOADED.set(e.to_string());
                Backend::OpenBlas
            }))
        }
        Some("openblas") => Ok(Backend::OpenBlas),
        Some("mkl") => load_mkl(),
        Some(other) => Err(BlasError::UnknownBackend(other.to_string())),
    }
}

fn load_mkl() -> Result<Backend, BlasError> {
    let threads = num_threads();
    let mkl = mkl::Mkl::load(threads)?;
    // OpenBLAS stays linked (LAPACK) but runs no products: one thread, no idle workers
    // SAFETY: a plain C call with a positive count.
    unsafe { openblas_set_num_threads(1) };
    Ok(Backend::Mkl(mkl))
}

/// True on a CPU whose vendor string (CPUID leaf 0) is `GenuineIntel`: the CPUs on which the
/// default backend is MKL.
pub fn cpu_is_intel() -> bool {
    #[cfg(target_arch = "x86_64")]
    {
        // SAFETY: CPUID leaf 0 exists on every x86-64 CPU.
        #[allow(unused_unsafe)]
        let leaf = unsafe { std::arch::x86_64::__cpuid(0) };
        let mut vendor = [0u8; 12];
        for (i, reg) in [leaf.ebx, leaf.edx, leaf.ecx].into_iter().enumerate() {
            vendor[4 * i..4 * i + 4].copy_from_slice(&reg.to_le_bytes());
        }
        &vendor == b"GenuineIntel"
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        false
    }
}

/// Chooses the backend from `SATURN_BLAS` and the CPU (once per process; later calls return the
/// same answer). Programs call this at start so that a misconfigured backend stops them with a clear
/// message instead of silently running on OpenBLAS.
pub fn select_backend() -> Result<&'static Backend, &'static BlasError> {
    BACKEND.get_or_init(load_backend).as_ref()
}

/// The backend in use. A library caller that never called [`select_backend`] gets OpenBLAS when
/// the requested backend failed to load, with the reason printed once to stderr.
pub fn backend() -> &'static Backend {
    static WARNED: OnceLock<()> = OnceLock::new();
    select_backend().unwrap_or_else(|e| {
        WARNED.get_or_init(|| eprintln!("warning: {e}; using OpenBLAS"));
        &Backend::OpenBlas
    })
}

/// One line naming the GEMM backend and its build, for run metadata (and, when an Intel CPU
/// runs on OpenBLAS by default, why MKL was not used).
pub fn describe() -> String {
    match backend() {
        Backend::OpenBlas => match MKL_NOT_LOADED.get() {
            Some(why) => {
                format!("OpenBLAS ({}, {}); default MKL not used: {why}", corename(), config())
            }
            None => format!("OpenBLAS ({}, {})", corename(), config()),
        },
        Backend::Mkl(mkl) => mkl.version().to_string(),
    }
}

// Provided by libopenblas, which this crate links through blas-src / openblas-src.
unsafe extern "C" {
    fn openblas_set_num_threads(num_threads: c_int);
    fn openblas_get_num_threads() -> c_int;
    fn openblas_get_corename() -> *const c_char;
    fn openblas_get_config() -> *const c_char;
}

/// The thread count; 0 until first read or set.
static THREADS: AtomicUsize = AtomicUsize::new(0);

/// Sets the number of threads the products and kernels use from now on (at least 1): OpenBLAS's,
/// or MKL's when it is selected. Call it before the first product: an MKL loaded on one thread
/// keeps its sequential layer (see [`mkl`]).
pub fn set_num_threads(n: usize) {
    let n = n.max(1);
    THREADS.store(n, Ordering::Relaxed);
    match BACKEND.get() {
        Some(Ok(Backend::Mkl(mkl))) => mkl.set_num_threads(n),
        // SAFETY: a plain C call with a positive count.
        _ => unsafe { openblas_set_num_threads(n.min(c_int::MAX as usize) as c_int) },
    }
}

/// The number of threads the products and kernels use: the last [`set_num_threads`], else
/// OpenBLAS's count when first asked (from `OPENBLAS_NUM_THREADS`, or every core).
pub fn num_threads() -> usize {
    let n = THREADS.load(Ordering::Relaxed);
    if n > 0 {
        return n;
    }
    // SAFETY: a getter without arguments.
    let first = (unsafe { openblas_get_num_threads() }).max(1) as usize;
    let _ = THREADS.compare_exchange(0, first, Ordering::Relaxed, Ordering::Relaxed);
    THREADS.load(Ordering::Relaxed)
}

/// The OpenBLAS kernel in use, e.g. `"Cooperlake"`.
pub fn corename() -> String {
    // SAFETY: OpenBLAS returns a pointer to a static NUL-terminated string (or null).
    unsafe { c_string(openblas_get_corename()) }
}

/// The OpenBLAS build configuration, e.g. `"OpenBLAS 0.3.21 DYNAMIC_ARCH NO_AFFINITY …"`.
pub fn config() -> String {
    // SAFETY: as for `corename`.
    unsafe { c_string(openblas_get_config()) }
}

/// OpenBLAS kernels older than AVX2 (its generic fallbacks among them).
const PRE_AVX2_CORES: [&str; 10] = [
    "Prescott",
    "Core2",
    "Penryn",
    "Dunnington",
    "Nehalem",
    "Sandybridge",
    "Atom",
    "Katmai",
    "Northwood",
    "Barcelona",
];

/// A one-line warning when OpenBLAS runs pre-AVX2 kernels on a CPU with AVX2 and FMA: what
/// OpenBLAS 0.3.21 does on CPU models it does not know (e.g. Emerald Rapids falls back to
/// `Prescott`, 4× slower GEMM). The fix is `OPENBLAS_CORETYPE` in the environment before the
/// program starts (`cargo xtask` sets it from the CPU's flags). `None` when the kernels fit.
pub fn kernel_warning() -> Option<String> {
    #[cfg(target_arch = "x86_64")]
    {
        let core = corename();
        let modern = std::arch::is_x86_feature_detected!("avx2")
            && std::arch::is_x86_feature_detected!("fma");
        if modern && PRE_AVX2_CORES.iter().any(|c| core.eq_ignore_ascii_case(c)) {
            let suggestion =
                if std::arch::is_x86_feature_detected!("avx512f") { "SkylakeX" } else { "Haswell" };
            return Some(format!(
                "OpenBLAS chose its {core} kernels on a CPU with AVX2/FMA (it does not know this \
                 CPU model): matrix products run several times slower; set \
                 OPENBLAS_CORETYPE={suggestion} before starting (cargo xtask does this)"
            ));
        }
    }
    None
}

/// # Safety
/// `p` is null or points to a NUL-terminated string that outlives the call.
unsafe fn c_string(p: *const c_char) -> String {
    if p.is_null() {
        return "unknown".to_string();
    }
    // SAFETY: guaranteed by the caller.
    unsafe { CStr::from_ptr(p) }.to_string_lossy().trim().to_string()
}

#[cfg(test)]
mod tests {
    #[test]
    fn openblas_reports_its_kernel_and_threads() {
        assert!(super::num_threads() >= 1);
        assert!(super::config().contains("OpenBLAS"), "{}", super::config());
        assert!(!super::corename().is_empty());
    }

    /// `SATURN_BLAS=mkl cargo test` must really run on MKL, not fall back silently; by default
    /// an Intel CPU runs on MKL exactly when the library can be found, any other on OpenBLAS.
    #[test]
    fn the_selected_backend_is_the_requested_one() {
        let chosen = super::select_backend();
        let on_mkl = matches!(chosen, Ok(super::Backend::Mkl(_)));
        match std::env::var("SATURN_BLAS").as_deref().map(str::trim) {
            Ok("mkl") => {
                assert!(on_mkl, "{:?}", chosen.err());
                assert!(super::describe().contains("Math Kernel Library"), "{}", super::describe());
            }
            Ok("openblas") => assert!(!on_mkl),
            _ => {
                let loadable = super::mkl::loadable();
                assert_eq!(on_mkl, super::cpu_is_intel() && loadable, "{}", super::describe());
            }
        }
    }

    #[test]
    fn the_cpu_vendor_is_read() {
        // on Linux the kernel's view must agree with CPUID's
        let info = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
        if let Some(line) = info.lines().find(|l| l.starts_with("vendor_id")) {
            assert_eq!(super::cpu_is_intel(), line.contains("GenuineIntel"), "{line}");
        }
    }

    #[test]
    fn the_kernel_warning_names_the_core_and_the_fix() {
        // whichever kernels this machine runs, a warning (if any) says what to set
        if let Some(w) = super::kernel_warning() {
            assert!(w.contains(&super::corename()) && w.contains("OPENBLAS_CORETYPE="), "{w}");
        }
    }
}
