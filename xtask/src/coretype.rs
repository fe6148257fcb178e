//! Which OpenBLAS kernels to use, from the CPU's feature flags.
//!
//! Debian 12's OpenBLAS (0.3.21, built with DYNAMIC_ARCH) picks its kernels from the CPU's
//! family and model number. A model it does not know falls back to the generic `Prescott`
//! (SSE3) kernels: on an Emerald Rapids Xeon (family 6, model 207) sgemm then runs at ≈ 30
//! GFLOP/s instead of ≈ 126 with the AVX-512 kernels — every experiment and benchmark 2–4×
//! slower, and its bits different. OpenBLAS reads `OPENBLAS_CORETYPE` when it loads, so xtask
//! sets it on every command it starts, from the flags in /proc/cpuinfo: AVX-512 (F, BW, DQ, VL)
//! → `SkylakeX`, or `Cooperlake` with AVX-512 BF16; AVX2 with FMA → `Haswell`; otherwise
//! nothing (OpenBLAS's own choice). A value already in the environment wins. Pinning the kernel
//! this way also keeps bits the same across machines with the same features.

/// The OpenBLAS core type for a CPU with these feature flags (the `flags` line of
/// /proc/cpuinfo), or `None` to leave the choice to OpenBLAS.
pub fn for_flags(flags: &str) -> Option<&'static str> {
    let has = |f: &str| flags.split_whitespace().any(|x| x == f);
    if ["avx512f", "avx512bw", "avx512dq", "avx512vl"].iter().all(|f| has(f)) {
        Some(if has("avx512_bf16") { "Cooperlake" } else { "SkylakeX" })
    } else if has("avx2") && has("fma") {
        Some("Haswell")
    } else {
        None
    }
}

/// The core type to set for this machine: `None` when `OPENBLAS_CORETYPE` is already set, when
/// /proc/cpuinfo cannot be read, or when the flags call for no override.
pub fn for_this_machine() -> Option<&'static str> {
    if std::env::var_os("OPENBLAS_CORETYPE").is_some() {
        return None;
    }
    let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").ok()?;
    let flags = cpuinfo.lines().find(|l| l.starts_with("flags"))?;
    for_flags(flags.split_once(':').map_or("", |(_, f)| f))
}

#[cfg(test)]
mod tests {
    use super::for_flags;

    #[test]
    fn avx512_machines_get_the_skylakex_kernels() {
        let spr = "fpu sse2 avx2 fma avx512f avx512dq avx512bw avx512vl avx512_bf16";
        assert_eq!(for_flags(spr), Some("Cooperlake"));
        assert_eq!(for_flags("avx2 fma avx512f avx512dq avx512bw avx512vl"), Some("SkylakeX"));
    }

    #[test]
    fn avx2_machines_get_haswell_and_older_ones_nothing() {
        assert_eq!(for_flags("sse2 avx avx2 fma"), Some("Haswell"));
        // AVX-512F alone (Knights Landing) is not SkylakeX
        assert_eq!(for_flags("avx2 fma avx512f"), Some("Haswell"));
        assert_eq!(for_flags("sse2 sse3 avx"), None);
        assert_eq!(for_flags(""), None);
    }
}
