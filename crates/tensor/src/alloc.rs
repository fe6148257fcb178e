//! Keeping freed memory in the process: glibc `malloc` tuning for training loops.
//!
//! A training step allocates and frees the same large buffers (activations, gradients) every
//! step. glibc serves blocks above `M_MMAP_THRESHOLD` (dynamic, 128 KiB to 32 MiB) with `mmap`
//! and gives them back with `munmap` when freed, and trims the heap top above
//! `M_TRIM_THRESHOLD`; the next step then page-faults the same memory in again (measured: ~25 %
//! of a medium MLP step). [`tune_malloc`] raises both thresholds so that freed blocks stay in
//! the heap and are reused. Peak RSS grows by at most the largest live set; nothing else
//! changes. Binaries (the lab, the benchmarks) call it once at startup; the library never does.

/// glibc's `mallopt` parameter numbers (malloc.h).
#[cfg(all(target_os = "linux", target_env = "gnu"))]
mod glibc {
    use std::ffi::c_int;

    pub const M_TRIM_THRESHOLD: c_int = -1;
    pub const M_MMAP_THRESHOLD: c_int = -3;

    unsafe extern "C" {
        pub fn mallopt(param: c_int, value: c_int) -> c_int;
    }
}

/// The `M_MMAP_THRESHOLD` set by [`tune_malloc`]: 32 MiB, glibc's largest allowed value on
/// 64-bit targets (blocks above it are still `mmap`ed).
pub const MMAP_THRESHOLD: usize = 32 << 20;

/// The `M_TRIM_THRESHOLD` set by [`tune_malloc`]: 1 GiB of free heap top before trimming.
pub const TRIM_THRESHOLD: usize = 1 << 30;

/// Raises glibc's mmap and trim thresholds ([`MMAP_THRESHOLD`], [`TRIM_THRESHOLD`]) so that
/// freed tensor buffers are reused instead of being unmapped and faulted in again. Returns
/// whether the allocator accepted the settings; a no-op returning `false` on targets without
/// glibc. Call it once, at the start of `main`, before the first large allocation.
pub fn tune_malloc() -> bool {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    {
        // SAFETY: mallopt only changes allocator parameters; it is thread-safe and takes plain
        // integers.
        unsafe {
            let mmap = glibc::mallopt(glibc::M_MMAP_THRESHOLD, MMAP_THRESHOLD as std::ffi::c_int);
            let trim = glibc::mallopt(glibc::M_TRIM_THRESHOLD, TRIM_THRESHOLD as std::ffi::c_int);
            mmap == 1 && trim == 1
        }
    }
    #[cfg(not(all(target_os = "linux", target_env = "gnu")))]
    {
        false
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn glibc_accepts_the_thresholds() {
        assert_eq!(super::tune_malloc(), cfg!(all(target_os = "linux", target_env = "gnu")));
    }
}
