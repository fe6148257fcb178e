//! Installs Intel oneMKL, the GEMM backend Saturn uses by default on Intel CPUs (see
//! `saturn_tensor::blas`), into `target/mkl/lib` from PyPI's `mkl` wheel (Intel Simplified
//! Software License; downloaded by setup, never committed). Every command's setup installs it on
//! an Intel CPU ([`ensure_default`]); `setup --mkl` installs it on any CPU.
//!
//! Only the shared libraries a CBLAS GEMM needs are unpacked: the runtime dispatcher `mkl_rt`, the
//! LP64 interface, the core, the sequential and GNU-OpenMP threading layers and the CPU-specific
//! kernel libraries (about 0.5 GB).

use std::path::{Path, PathBuf};
use std::process::Command;

/// The wheel that was measured (docs/PERFORMANCE.md#mkl; measured in docs/perf/HISTORY.md#round-4).
const WHEEL: &str = "mkl==2026.2.1";

/// The runtime library whose presence means "installed".
const RT: &str = "libmkl_rt.so.3";

/// The libraries unpacked from the wheel's `*.data/data/lib/`.
const LIBRARIES: &[&str] = &[
    "libmkl_rt.so.3",
    "libmkl_core.so.3",
    "libmkl_intel_lp64.so.3",
    "libmkl_gf_lp64.so.3",
    "libmkl_sequential.so.3",
    "libmkl_gnu_thread.so.3",
    "libmkl_def.so.3",
    "libmkl_mc3.so.3",
    "libmkl_avx2.so.3",
    "libmkl_avx512.so.3",
    "libmkl_avx10.so.3",
];

/// `target/mkl/lib` of the workspace: what `SATURN_MKL_DIR` points at.
pub fn lib_dir() -> PathBuf {
    super::workspace_root().join("target").join("mkl").join("lib")
}

/// True when `setup --mkl` has run.
pub fn installed() -> bool {
    lib_dir().join(RT).is_file()
}

/// True when /proc/cpuinfo names the vendor `GenuineIntel` (the rule saturn-tensor applies with
/// CPUID when it picks the default backend).
pub fn cpu_is_intel() -> bool {
    std::fs::read_to_string("/proc/cpuinfo").is_ok_and(|info| {
        info.lines()
            .find(|l| l.starts_with("vendor_id"))
            .is_some_and(|l| l.contains("GenuineIntel"))
    })
}

/// What every command's setup does: on an Intel CPU, unless `SATURN_BLAS` asks for OpenBLAS,
/// install MKL (once: ≈ 230 MB from PyPI, seconds on a fast link). A failed install is a warning,
/// not an error: the products then run on OpenBLAS, and the run's metadata says so. The failure
/// is remembered (`target/mkl/install-failed`), so that an offline machine does not wait for
/// pip on every command; `setup --mkl` tries again.
pub fn ensure_default() {
    let wants_openblas =
        std::env::var("SATURN_BLAS").is_ok_and(|b| b.trim().eq_ignore_ascii_case("openblas"));
    if installed() || wants_openblas || !cpu_is_intel() {
        return;
    }
    let marker = failure_marker();
    if marker.is_file() {
        eprintln!(
            "setup: MKL is not installed (an earlier download failed: {}); the matrix products \
             run on OpenBLAS; `cargo xtask setup --mkl` tries again",
            marker.display()
        );
        return;
    }
    if let Err(e) = ensure() {
        eprintln!(
            "setup: warning: MKL, the default GEMM backend on Intel CPUs, was not installed \
             ({e}); the matrix products run on OpenBLAS"
        );
        if let Some(dir) = marker.parent() {
            let _ = std::fs::create_dir_all(dir);
        }
        let _ = std::fs::write(&marker, format!("{e}\n"));
    }
}

/// Written when the automatic install failed; removed by a successful install.
fn failure_marker() -> PathBuf {
    lib_dir().parent().expect("target/mkl").join("install-failed")
}

/// Downloads the wheel with pip and unpacks the libraries, unless they are already there.
pub fn ensure() -> Result<PathBuf, String> {
    let lib = lib_dir();
    if installed() {
        return Ok(lib);
    }
    let root = lib.parent().expect("target/mkl").to_path_buf();
    let wheels = root.join("wheel");
    std::fs::create_dir_all(&wheels).map_err(|e| format!("creating {}: {e}", wheels.display()))?;
    eprintln!("setup: downloading {WHEEL} from PyPI (≈ 230 MB) into {}", wheels.display());
    let status = Command::new("python3")
        .args(["-m", "pip", "download", "--no-deps", "--quiet", "--dest"])
        .arg(&wheels)
        .arg(WHEEL)
        .status()
        .map_err(|e| format!("could not run `python3 -m pip` to download MKL: {e}"))?;
    if !status.success() {
        return Err(format!("`pip download {WHEEL}` failed ({status})"));
    }
    let wheel = find_wheel(&wheels)?;
    unpack(&wheel, &lib)?;
    std::fs::remove_file(&wheel).map_err(|e| format!("removing {}: {e}", wheel.display()))?;
    if !installed() {
        return Err(format!("{RT} is not in {} after unpacking", lib.display()));
    }
    let _ = std::fs::remove_file(failure_marker());
    eprintln!("setup: MKL installed in {}", lib.display());
    Ok(lib)
}

fn find_wheel(dir: &Path) -> Result<PathBuf, String> {
    let entries = std::fs::read_dir(dir).map_err(|e| format!("reading {}: {e}", dir.display()))?;
    entries
        .filter_map(|e| e.ok().map(|e| e.path()))
        .find(|p| {
            p.file_name()
                .and_then(|n| n.to_str())
                .is_some_and(|n| n.starts_with("mkl-") && n.ends_with(".whl"))
        })
        .ok_or_else(|| format!("no mkl-*.whl in {} after pip download", dir.display()))
}

/// Unpacks the wanted libraries (a wheel is a zip; Python's zipfile reads it) into `lib`,
/// through a temporary directory renamed into place, so that a half-unpacked install never
/// counts as installed.
fn unpack(wheel: &Path, lib: &Path) -> Result<(), String> {
    let partial = lib.with_extension("partial");
    let _ = std::fs::remove_dir_all(&partial);
    let script = "import sys, zipfile, os\n\
                  wheel, out, names = sys.argv[1], sys.argv[2], set(sys.argv[3:])\n\
                  os.makedirs(out, exist_ok=True)\n\
                  with zipfile.ZipFile(wheel) as z:\n\
                  \x20   for info in z.infolist():\n\
                  \x20       base = info.filename.rsplit('/', 1)[-1]\n\
                  \x20       if '/data/lib/' in info.filename and base in names:\n\
                  \x20           with z.open(info) as src, open(os.path.join(out, base), 'wb') as dst:\n\
                  \x20               dst.write(src.read())\n\
                  \x20           names.discard(base)\n\
                  if names: sys.exit('missing from the wheel: ' + ', '.join(sorted(names)))\n";
    let status = Command::new("python3")
        .arg("-c")
        .arg(script)
        .arg(wheel)
        .arg(&partial)
        .args(LIBRARIES)
        .status()
        .map_err(|e| format!("could not run python3 to unpack the MKL wheel: {e}"))?;
    if !status.success() {
        return Err(format!("unpacking {} failed ({status})", wheel.display()));
    }
    let _ = std::fs::remove_dir_all(lib);
    std::fs::rename(&partial, lib).map_err(|e| format!("moving MKL into {}: {e}", lib.display()))
}
