//! Detection and installation of the system OpenBLAS (with LAPACK).

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

/// Standard directories searched for `libopenblas.so`.
const STANDARD_DIRS: &[&str] = &[
    "/usr/lib/x86_64-linux-gnu",
    "/usr/lib/x86_64-linux-gnu/openblas-pthread",
    "/usr/lib",
    "/usr/local/lib",
    "/usr/lib64",
];

/// A LAPACK symbol that must be present in the library (Debian's OpenBLAS includes LAPACK).
const LAPACK_SYMBOL: &[u8] = b"dsyev_";

/// Hidden override for tests of the detection path: a `:`-separated list of directories that
/// replaces the standard search list (pkg-config is then not consulted either).
const SEARCH_PATH_ENV: &str = "SATURN_XTASK_OPENBLAS_DIRS";

const APT_PACKAGES: &[&str] = &["libopenblas-dev", "pkg-config"];

/// What the search found.
enum Found {
    /// `libopenblas.so` with a LAPACK symbol.
    WithLapack(PathBuf),
    /// `libopenblas.so` present, but no LAPACK symbol in any candidate.
    WithoutLapack(PathBuf),
    Missing,
}

fn search_dirs() -> Vec<PathBuf> {
    if let Ok(list) = std::env::var(SEARCH_PATH_ENV) {
        return list.split(':').filter(|s| !s.is_empty()).map(PathBuf::from).collect();
    }
    let mut dirs: Vec<PathBuf> = Vec::new();
    if let Ok(out) = Command::new("pkg-config")
        .args(["--variable=libdir", "openblas"])
        .stderr(Stdio::null())
        .output()
        && out.status.success()
    {
        let dir = String::from_utf8_lossy(&out.stdout).trim().to_string();
        if !dir.is_empty() {
            dirs.push(PathBuf::from(dir));
        }
    }
    for d in STANDARD_DIRS {
        let p = PathBuf::from(d);
        if !dirs.contains(&p) {
            dirs.push(p);
        }
    }
    dirs
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle)
}

/// True when the file (symlinks followed) contains the LAPACK symbol name.
fn has_lapack(lib: &Path) -> bool {
    match fs::read(lib) {
        Ok(bytes) => contains(&bytes, LAPACK_SYMBOL),
        Err(_) => false,
    }
}

fn detect() -> Found {
    let mut without_lapack = None;
    for dir in search_dirs() {
        let lib = dir.join("libopenblas.so");
        // `metadata` follows symlinks: a dangling link counts as missing.
        if fs::metadata(&lib).map(|m| m.is_file()).unwrap_or(false) {
            if has_lapack(&lib) {
                return Found::WithLapack(lib);
            }
            without_lapack.get_or_insert(lib);
        }
    }
    match without_lapack {
        Some(lib) => Found::WithoutLapack(lib),
        None => Found::Missing,
    }
}

fn is_root() -> bool {
    if let Ok(out) = Command::new("id").arg("-u").output()
        && out.status.success()
    {
        return String::from_utf8_lossy(&out.stdout).trim() == "0";
    }
    // Fallback: real uid from /proc/self/status ("Uid:\treal\teffective\t...").
    fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("Uid:"))
                .and_then(|l| l.split_whitespace().nth(1).map(|u| u == "0"))
        })
        .unwrap_or(false)
}

fn sudo_available() -> bool {
    Command::new("sudo")
        .args(["-n", "true"])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .map(|s| s.success())
        .unwrap_or(false)
}

fn manual_command() -> String {
    format!(
        "sudo apt-get update && sudo DEBIAN_FRONTEND=noninteractive apt-get install -y {}",
        APT_PACKAGES.join(" ")
    )
}

/// Runs `[sudo -n] <args>` with `DEBIAN_FRONTEND=noninteractive`; output goes to the terminal.
fn run_privileged(sudo: bool, args: &[&str]) -> Result<(), String> {
    let mut cmd = if sudo {
        let mut c = Command::new("sudo");
        c.arg("-n").arg("env").arg("DEBIAN_FRONTEND=noninteractive").args(args);
        c
    } else {
        let mut c = Command::new(args[0]);
        c.args(&args[1..]).env("DEBIAN_FRONTEND", "noninteractive");
        c
    };
    let shown = format!("{}{}", if sudo { "sudo -n " } else { "" }, args.join(" "));
    eprintln!("setup: running `{shown}`");
    let status = cmd.status().map_err(|e| format!("could not run `{shown}`: {e}"))?;
    if status.success() { Ok(()) } else { Err(format!("`{shown}` failed ({status})")) }
}

fn install() -> Result<(), String> {
    if !Path::new("/usr/bin/apt-get").exists()
        && Command::new("apt-get").arg("-v").output().is_err()
    {
        return Err(format!(
            "apt-get not found; install OpenBLAS with LAPACK (libopenblas.so) with your system's \
             package manager (searched: {})",
            dirs_display()
        ));
    }
    let sudo = if is_root() {
        false
    } else if sudo_available() {
        true
    } else {
        return Err(format!("not root and `sudo -n` is unavailable; run: {}", manual_command()));
    };
    run_privileged(sudo, &["apt-get", "update"])?;
    let mut args = vec!["apt-get", "install", "-y"];
    args.extend_from_slice(APT_PACKAGES);
    run_privileged(sudo, &args)
}

fn dirs_display() -> String {
    search_dirs().iter().map(|d| d.display().to_string()).collect::<Vec<_>>().join(", ")
}

/// Ensures OpenBLAS with LAPACK is present, installing `libopenblas-dev` if needed.
/// Returns the library path, or a one-line error.
pub fn ensure(quiet: bool) -> Result<PathBuf, String> {
    match detect() {
        Found::WithLapack(lib) => {
            if !quiet {
                println!("setup: OpenBLAS with LAPACK found at {}", lib.display());
            }
            return Ok(lib);
        }
        Found::WithoutLapack(lib) => eprintln!(
            "setup: {} has no LAPACK symbol ({}); installing libopenblas-dev",
            lib.display(),
            String::from_utf8_lossy(LAPACK_SYMBOL)
        ),
        Found::Missing => eprintln!(
            "setup: system OpenBLAS (libopenblas.so) not found in {}; installing libopenblas-dev",
            dirs_display()
        ),
    }
    install()?;
    match detect() {
        Found::WithLapack(lib) => {
            println!("setup: OpenBLAS with LAPACK found at {}", lib.display());
            Ok(lib)
        }
        Found::WithoutLapack(lib) => Err(format!(
            "installed libopenblas-dev, but {} still has no LAPACK symbol ({})",
            lib.display(),
            String::from_utf8_lossy(LAPACK_SYMBOL)
        )),
        Found::Missing => Err(format!(
            "installed libopenblas-dev, but libopenblas.so is still not found in {}",
            dirs_display()
        )),
    }
}
