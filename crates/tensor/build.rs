//! Fails fast, with an actionable message, when the system OpenBLAS is missing.
//!
//! Linking is done by `openblas-src` (feature `system`); this script only probes, so that a missing
//! library stops the build in seconds instead of ending in a late `unable to find library
//! -lopenblas` link error. It never installs anything.

use std::path::Path;

const STANDARD_DIRS: &[&str] = &[
    "/usr/lib/x86_64-linux-gnu",
    "/usr/lib/x86_64-linux-gnu/openblas-pthread",
    "/usr/lib",
    "/usr/local/lib",
    "/usr/lib64",
];

fn main() {
    println!("cargo:rerun-if-changed=build.rs");

    // Only probe: openblas-src emits the link flags.
    if let Ok(lib) = pkg_config::Config::new().cargo_metadata(false).probe("openblas")
        && lib.link_paths.iter().any(|d| d.join("libopenblas.so").exists())
    {
        return;
    }
    if STANDARD_DIRS.iter().any(|d| Path::new(d).join("libopenblas.so").exists()) {
        return;
    }
    eprintln!(
        "error: system OpenBLAS (libopenblas-dev) not found. Run `cargo xtask setup` (installs it \
         with apt-get as root) or `sudo apt-get install libopenblas-dev`."
    );
    std::process::exit(1);
}
