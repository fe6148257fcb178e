//! Intel oneMKL as a GEMM backend, loaded at run time from `libmkl_rt`: the default on Intel
//! CPUs when it is installed, or asked for with `SATURN_BLAS=mkl` (see [`super`]).
//!
//! Nothing links against MKL: the library is opened with `dlopen` (libloading), and only its
//! `cblas_sgemm`, `cblas_dgemm` and service functions are used. Everything else (LAPACK for
//! ndarray-linalg, the OpenBLAS thread count as the one source of truth) stays on OpenBLAS.
//!
//! Where the library comes from ([`directory`]): `SATURN_MKL_DIR` (a directory holding
//! `libmkl_rt.so.*`, e.g. the `lib` directory of PyPI's `mkl` wheel, which `cargo xtask setup`
//! unpacks into `target/mkl/lib` on Intel CPUs, and `setup --mkl` on any), else the `mkl/lib`
//! beside the running program's build directory (`target/mkl/lib` for `target/release/saturn`
//! or a test binary in `target/debug/deps`), else the dynamic linker's search path
//! (`LD_LIBRARY_PATH`, ld.so.cache).
//!
//! Threads: MKL runs sequentially when Saturn's thread count ([`super::num_threads`]) is one at
//! load time (the `MKL_THREADING_SEQUENTIAL` layer, no OpenMP), else on libgomp
//! (`MKL_THREADING_GNU`) with that count. The layer cannot change afterwards:
//! [`super::set_num_threads`] forwards later counts, which only a GNU-layer MKL can use, so set
//! the count before the first product (the lab and the bench do).
//!
//! Determinism: conditional bitwise reproducibility is set to `AUTO | STRICT` unless the
//! environment sets `MKL_CBWR`: in strict mode MKL's GEMM gives the same bits for the same thread
//! count whatever the operands' alignment (oneMKL developer reference, "Obtaining Numerically
//! Reproducible Results"), which is what Saturn's same-seed-same-bits rule needs.

use std::ffi::{c_char, c_int};
use std::path::{Path, PathBuf};

use libloading::Library;

use super::BlasError;

/// `MKL_THREADING_SEQUENTIAL` and `MKL_THREADING_GNU` (mkl_service.h).
const THREADING_SEQUENTIAL: c_int = 1;
const THREADING_GNU: c_int = 3;
/// `MKL_CBWR_AUTO | MKL_CBWR_STRICT` and `MKL_CBWR_SUCCESS` (mkl_types.h).
const CBWR_AUTO_STRICT: c_int = 2 | 0x10000;
const CBWR_SUCCESS: c_int = 0;

/// The file names `libmkl_rt` has had (oneMKL 2025+: `.so.3`; 2021–2024: `.so.2`).
const RT_NAMES: [&str; 3] = ["libmkl_rt.so.3", "libmkl_rt.so.2", "libmkl_rt.so"];

/// `cblas_?gemm(layout, transa, transb, m, n, k, α, a, lda, b, ldb, β, c, ldc)`.
pub(super) type GemmFn<T> = unsafe extern "C" fn(
    c_int,
    c_int,
    c_int,
    c_int,
    c_int,
    c_int,
    T,
    *const T,
    c_int,
    *const T,
    c_int,
    T,
    *mut T,
    c_int,
);

/// An opened `libmkl_rt` and the entry points Saturn calls.
pub struct Mkl {
    pub(super) sgemm: GemmFn<f32>,
    pub(super) dgemm: GemmFn<f64>,
    set_num_threads: unsafe extern "C" fn(c_int),
    /// `MKL_Set_Num_Threads_Local`: this thread's count (0 = the global one); returns the old.
    set_num_threads_local: unsafe extern "C" fn(c_int) -> c_int,
    version: String,
    path: PathBuf,
    /// Kept open for the life of the process: the function pointers above point into it.
    _library: Library,
}

impl Mkl {
    /// Opens MKL (from [`directory`]) and prepares it to run on `threads` threads.
    pub(super) fn load(threads: usize) -> Result<Mkl, BlasError> {
        let (library, path) = open(directory().as_deref())?;
        // SAFETY: the symbol types are those of mkl_service.h / mkl_cblas.h; the pointers stay
        // valid while `library` is open, and `Mkl` owns it.
        unsafe {
            let symbol_error = |name: &str, e: libloading::Error| BlasError::Mkl {
                path: path.clone(),
                reason: format!("no symbol {name}: {e}"),
            };
            let sgemm = *library
                .get::<GemmFn<f32>>(b"cblas_sgemm\0")
                .map_err(|e| symbol_error("cblas_sgemm", e))?;
            let dgemm = *library
                .get::<GemmFn<f64>>(b"cblas_dgemm\0")
                .map_err(|e| symbol_error("cblas_dgemm", e))?;
            let set_layer = *library
                .get::<unsafe extern "C" fn(c_int) -> c_int>(b"MKL_Set_Threading_Layer\0")
                .map_err(|e| symbol_error("MKL_Set_Threading_Layer", e))?;
            let set_num_threads = *library
                .get::<unsafe extern "C" fn(c_int)>(b"MKL_Set_Num_Threads\0")
                .map_err(|e| symbol_error("MKL_Set_Num_Threads", e))?;
            let set_num_threads_local = *library
                .get::<unsafe extern "C" fn(c_int) -> c_int>(b"MKL_Set_Num_Threads_Local\0")
                .map_err(|e| symbol_error("MKL_Set_Num_Threads_Local", e))?;
            let cbwr_set = *library
                .get::<unsafe extern "C" fn(c_int) -> c_int>(b"MKL_CBWR_Set\0")
                .map_err(|e| symbol_error("MKL_CBWR_Set", e))?;
            let version_string = *library
                .get::<unsafe extern "C" fn(*mut c_char, c_int)>(b"MKL_Get_Version_String\0")
                .map_err(|e| symbol_error("MKL_Get_Version_String", e))?;

            // the threading layer must be chosen before MKL computes anything
            set_layer(if threads <= 1 { THREADING_SEQUENTIAL } else { THREADING_GNU });
            set_num_threads(threads.clamp(1, c_int::MAX as usize) as c_int);
            if std::env::var_os("MKL_CBWR").is_none() && cbwr_set(CBWR_AUTO_STRICT) != CBWR_SUCCESS
            {
                return Err(BlasError::Mkl {
                    path,
                    reason: "MKL_CBWR_Set(AUTO | STRICT) was refused: results would not be \
                             reproducible"
                        .into(),
                });
            }
            let mut buffer = [0 as c_char; 256];
            version_string(buffer.as_mut_ptr(), buffer.len() as c_int);
            let version = super::c_string(buffer.as_ptr());
            Ok(Mkl {
                sgemm,
                dgemm,
                set_num_threads,
                set_num_threads_local,
                version,
                path,
                _library: library,
            })
        }
    }

    /// MKL's version line, e.g. `"Intel(R) oneAPI Math Kernel Library Version 2026.2-Product …"`.
    pub fn version(&self) -> &str {
        &self.version
    }

    /// The file that was opened.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Runs `f` with MKL on one thread in the calling thread (small products, where waking
    /// OpenMP threads costs more than the product; products inside Saturn's own parallel parts).
    pub(super) fn on_one_thread<R>(&self, f: impl FnOnce() -> R) -> R {
        // SAFETY: plain C calls; the previous local count (0 = none) is restored
        let previous = unsafe { (self.set_num_threads_local)(1) };
        let r = f();
        // SAFETY: the same plain C call, restoring the count read above
        unsafe { (self.set_num_threads_local)(previous) };
        r
    }

    pub(super) fn set_num_threads(&self, n: usize) {
        // SAFETY: a plain C call with a positive count.
        unsafe { (self.set_num_threads)(n.clamp(1, c_int::MAX as usize) as c_int) }
    }
}

/// How many directories above the running program's own to look for `mkl/lib`: three reach
/// `target/` from `target/debug/deps/`.
const BUILD_DIR_LEVELS: usize = 3;

/// The directory to open `libmkl_rt` from: `SATURN_MKL_DIR` when set; else the first `mkl/lib`
/// holding it in the running program's directory or up to three directories above (where
/// `cargo xtask setup` installs it: `target/mkl/lib`); else `None`, the linker's search path.
pub fn directory() -> Option<PathBuf> {
    if let Some(dir) = std::env::var_os("SATURN_MKL_DIR") {
        return Some(PathBuf::from(dir));
    }
    let exe = std::env::current_exe().ok()?;
    exe.ancestors()
        .skip(1)
        .take(BUILD_DIR_LEVELS + 1)
        .map(|d| d.join("mkl").join("lib"))
        .find(|lib| RT_NAMES.iter().any(|name| lib.join(name).is_file()))
}

/// True when a `libmkl_rt` can be opened from [`directory`] (it is opened and closed again;
/// MKL is not set up).
pub fn loadable() -> bool {
    open(directory().as_deref()).is_ok()
}

/// Opens the first `libmkl_rt` found in `dir` (or on the linker's path when `dir` is `None`).
fn open(dir: Option<&Path>) -> Result<(Library, PathBuf), BlasError> {
    let mut tried = Vec::new();
    for name in RT_NAMES {
        let candidate = match dir {
            Some(d) => d.join(name),
            None => PathBuf::from(name),
        };
        if dir.is_some() && !candidate.exists() {
            tried.push(format!("{} (missing)", candidate.display()));
            continue;
        }
        // SAFETY: loading libmkl_rt runs its initializers, which only set up MKL's own state.
        match unsafe { Library::new(&candidate) } {
            Ok(library) => return Ok((library, candidate)),
            Err(e) => tried.push(format!("{}: {e}", candidate.display())),
        }
    }
    let place = match dir {
        Some(d) => format!("SATURN_MKL_DIR={}", d.display()),
        None => "the linker's search path (set SATURN_MKL_DIR)".to_string(),
    };
    Err(BlasError::Mkl {
        path: dir.map(Path::to_path_buf).unwrap_or_default(),
        reason: format!(
            "no loadable libmkl_rt in {place}; tried {}. `cargo xtask setup --mkl` installs it",
            tried.join(", ")
        ),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_directory_without_mkl_is_a_clear_error() {
        let dir = std::env::temp_dir().join("saturn-no-mkl-here");
        let Err(err) = open(Some(&dir)) else { panic!("no MKL in an empty place") };
        let text = err.to_string();
        assert!(text.contains("libmkl_rt") && text.contains("SATURN_MKL_DIR"), "{text}");
    }
}
