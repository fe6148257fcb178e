//! Keeping freed memory in the process: glibc `malloc` tuning for training loops.
//!
//! A training step allocates and frees the same large buffers (activations, gradients) every
//! step. glibc serves blocks above `M_MMAP_THRESHOLD` (dynamic, 128 KiB to 32 MiB) with `mmap`
//! and gives them back with `munmap` when freed, and trims the heap top above
//! `M_TRIM_THRESHOLD`; the next step then page-faults the same memory in again (measured: ~25 %
//! of a medium MLP step). [`tune_malloc`] raises both thresholds so that freed blocks stay in
//! the heap and are reused. Peak RSS grows by at most the largest live set; nothing else
//! changes. Binaries (the lab, the benchmarks) call it once at startup; the library never does.
//!
//! [`use_huge_page_heap`] is the other half: it has glibc back the heap with 2 MiB transparent
//! huge pages (its `glibc.malloc.hugetlb=1` tunable: `madvise(MADV_HUGEPAGE)` on the heap as it
//! grows), by re-executing the binary once with the tunable set, since glibc reads tunables only
//! at startup. A training step streams through hundreds of MiB of activations; with 4 KiB pages
//! that is a TLB miss every few KiB, and in a virtual machine each miss walks two page tables.
//! Measured on the 2-vCPU VM of docs/PERFORMANCE.md (round 12, perf/HISTORY.md §17): medium's
//! training step 1,047 → 657 ms (5 interleaved pairs, 0.54–0.71×), a quick depth-stability cell
//! 7.7–8.8 → 5.6 s. Marking only the large blocks from a global allocator gained nothing there:
//! most of medium's tensors are 2 MiB, and a block holds a whole aligned huge page only when it
//! is larger. The arithmetic is unchanged, so the bits are too.

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

/// glibc's tunable for transparent huge pages on the heap (glibc ≥ 2.35; older ones ignore it).
pub const HUGE_PAGE_TUNABLE: &str = "glibc.malloc.hugetlb=1";

/// Set in the re-executed process: the user's own `GLIBC_TUNABLES` before ours was added (empty
/// when there was none), for child processes that should run as the user launched us
/// ([`restore_tunables`]).
pub const ORIGINAL_TUNABLES_VAR: &str = "SATURN_GLIBC_TUNABLES_ORIGINAL";

/// Set (to anything) to keep glibc's default 4 KiB pages: [`use_huge_page_heap`] does nothing.
pub const NO_HUGE_PAGES_VAR: &str = "SATURN_NO_HUGE_PAGES";

/// What [`use_huge_page_heap`] found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HugePageHeap {
    /// `GLIBC_TUNABLES` already sets `glibc.malloc.hugetlb` (by us or by the user): the value.
    Set(String),
    /// Off: [`NO_HUGE_PAGES_VAR`] is set, or the target has no glibc.
    Off,
    /// The re-execution failed (the error); the process goes on with 4 KiB pages.
    Failed(String),
}

impl HugePageHeap {
    /// Whether the heap is on huge pages (`glibc.malloc.hugetlb` set to 1 or 2).
    pub fn on(&self) -> bool {
        matches!(self, HugePageHeap::Set(v) if v != "0")
    }
}

/// The value of `glibc.malloc.hugetlb` in a `GLIBC_TUNABLES` string, if it sets it.
fn hugetlb_setting(tunables: &str) -> Option<&str> {
    tunables.split(':').find_map(|t| t.strip_prefix("glibc.malloc.hugetlb="))
}

/// Has glibc back the heap with transparent huge pages: when `GLIBC_TUNABLES` does not already
/// set `glibc.malloc.hugetlb`, re-executes this binary (`/proc/self/exe`, the same arguments and
/// process id) with [`HUGE_PAGE_TUNABLE`] added, and does not return; otherwise returns what it
/// found. Call it first thing in `main`, before any thread starts and before anything is
/// printed. [`NO_HUGE_PAGES_VAR`] turns it off. Where the kernel has THP set to `never` the
/// tunable does nothing; the results are the same bits either way.
pub fn use_huge_page_heap() -> HugePageHeap {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    {
        use std::os::unix::process::CommandExt;
        if std::env::var_os(NO_HUGE_PAGES_VAR).is_some() {
            return HugePageHeap::Off;
        }
        let current = std::env::var("GLIBC_TUNABLES").unwrap_or_default();
        if let Some(value) = hugetlb_setting(&current) {
            return HugePageHeap::Set(value.to_string());
        }
        if std::env::var_os(ORIGINAL_TUNABLES_VAR).is_some() {
            // we re-executed once already and the tunable is gone: do not loop
            return HugePageHeap::Failed("GLIBC_TUNABLES lost its setting across exec".into());
        }
        let tunables = if current.is_empty() {
            HUGE_PAGE_TUNABLE.to_string()
        } else {
            format!("{current}:{HUGE_PAGE_TUNABLE}")
        };
        let mut args = std::env::args_os();
        let mut cmd = std::process::Command::new("/proc/self/exe");
        if let Some(arg0) = args.next() {
            cmd.arg0(arg0);
        }
        let err = cmd
            .args(args)
            .env("GLIBC_TUNABLES", tunables)
            .env(ORIGINAL_TUNABLES_VAR, &current)
            .exec();
        HugePageHeap::Failed(err.to_string())
    }
    #[cfg(not(all(target_os = "linux", target_env = "gnu")))]
    {
        HugePageHeap::Off
    }
}

/// Gives a child process the `GLIBC_TUNABLES` the user launched us with (undoing
/// [`use_huge_page_heap`]'s addition), e.g. a reference implementation that should run with its
/// own defaults.
pub fn restore_tunables(cmd: &mut std::process::Command) {
    if let Some(original) = std::env::var_os(ORIGINAL_TUNABLES_VAR) {
        if original.is_empty() {
            cmd.env_remove("GLIBC_TUNABLES");
        } else {
            cmd.env("GLIBC_TUNABLES", original);
        }
        cmd.env_remove(ORIGINAL_TUNABLES_VAR);
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_hugetlb_setting_is_read_from_the_tunables() {
        use super::{HugePageHeap, hugetlb_setting};
        assert_eq!(hugetlb_setting("glibc.malloc.hugetlb=1"), Some("1"));
        assert_eq!(hugetlb_setting("glibc.malloc.check=3:glibc.malloc.hugetlb=0"), Some("0"));
        assert_eq!(hugetlb_setting("glibc.malloc.check=3"), None);
        assert_eq!(hugetlb_setting(""), None);
        assert!(HugePageHeap::Set("1".into()).on() && HugePageHeap::Set("2".into()).on());
        assert!(!HugePageHeap::Set("0".into()).on() && !HugePageHeap::Off.on());
    }

    /// A child gets the user's tunables back: none (removed) or their own value.
    #[test]
    fn children_get_the_users_tunables() {
        // a process that re-executed itself would have these; this one only reads them
        let mut cmd = std::process::Command::new("true");
        super::restore_tunables(&mut cmd);
        let set_here = std::env::var_os(super::ORIGINAL_TUNABLES_VAR).is_some();
        let touched = cmd.get_envs().any(|(k, _)| k == "GLIBC_TUNABLES");
        assert_eq!(touched, set_here, "only a re-executed process changes the child's tunables");
    }

    #[test]
    fn glibc_accepts_the_thresholds() {
        assert_eq!(super::tune_malloc(), cfg!(all(target_os = "linux", target_env = "gnu")));
    }
}
