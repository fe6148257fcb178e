//! OpenBLAS's worker threads next to Saturn's own: who runs on the second core.
//!
//! A 2-thread Saturn process has three busy-able threads: the caller, OpenBLAS's worker (its
//! products are split over the caller and the worker) and Saturn's rayon worker
//! ([`crate::parallel`]: element-wise and row kernels, per-head products). Two things keep them
//! from fighting over the cores:
//!
//! - **Idle OpenBLAS workers sleep soon** ([`let_idle_workers_sleep`]). OpenBLAS 0.3.21's
//!   pthread workers spin on `sched_yield` for 2^28 cycles (≈ 0.1 s) after each product before
//!   they sleep, so between two products they take the core Saturn's kernels run on: a profile
//!   of medium's 2-thread step put ≈ 16 % of its samples in `sched_yield`. OpenBLAS's
//!   `OPENBLAS_THREAD_TIMEOUT` = x sets the spin to 2^x cycles (x in 4…30), read when its thread
//!   server starts. Measured on a 2-core Xeon at 2 threads, with the batched products below
//!   (docs/PERFORMANCE.md): medium Post-LN 407–438 ms a step at x = 20 against 437–454 at
//!   x = 4 and 543–557 at 28; tiny 5.8–6.4 ms at 20 and at 28, 7.3–7.4 at 4 (waking a sleeping
//!   worker for each of its small products costs more than the products save).
//! - **Batched products run one per thread** ([`OpenBlasOnOneThread`]). OpenBLAS 0.3.21 has no
//!   per-call thread count (`openblas_set_num_threads_local` came in a later release), so while Saturn
//!   splits a batch of small products over its own threads, OpenBLAS's process-wide count is
//!   set to one and restored after. Changing it is cheap: the workers stay.

use std::ffi::c_int;

use super::{Backend, backend, num_threads};

// Provided by libopenblas (exported by every build with a thread server: its fork handler
// shuts the server down and starts it again with these two).
unsafe extern "C" {
    fn openblas_set_num_threads(num_threads: c_int);
    fn openblas_read_env();
    fn openblas_thread_timeout() -> c_int;
    fn blas_thread_shutdown_() -> c_int;
    fn blas_thread_init() -> c_int;
}

/// The spin [`let_idle_workers_sleep`] sets, as OpenBLAS's `OPENBLAS_THREAD_TIMEOUT`: 2^20
/// cycles (≈ 0.4 ms at 2.5 GHz), long enough to bridge the gap between the products of one
/// layer, short enough to leave the core to Saturn's own kernels between layers (see above).
pub const WORKER_SPIN_LOG2_CYCLES: u32 = 20;

/// Makes OpenBLAS's idle worker threads sleep after a short spin instead of a long one, unless the environment
/// already sets `OPENBLAS_THREAD_TIMEOUT` (then that is kept): sets it to
/// [`WORKER_SPIN_LOG2_CYCLES`], has OpenBLAS read its environment again, and restarts OpenBLAS's
/// thread server, which takes the spin from it when it starts. Returns the spin in force
/// afterwards ([`worker_spin_log2_cycles`]). The bits of every product are unchanged.
///
/// # Safety
/// Call it at the start of `main`, before the program starts threads of its own or computes
/// anything with BLAS: it writes the process environment (`std::env::set_var`), and it stops
/// and restarts OpenBLAS's workers, which must be idle.
pub unsafe fn let_idle_workers_sleep() -> Option<u32> {
    if std::env::var_os("OPENBLAS_THREAD_TIMEOUT").is_none() {
        // SAFETY: the caller guarantees that no other thread reads or writes the environment
        // (OpenBLAS's workers do not), and that the workers are idle while they are restarted.
        unsafe {
            std::env::set_var("OPENBLAS_THREAD_TIMEOUT", WORKER_SPIN_LOG2_CYCLES.to_string());
            openblas_read_env();
            blas_thread_shutdown_();
            blas_thread_init();
        }
    }
    worker_spin_log2_cycles()
}

/// The `OPENBLAS_THREAD_TIMEOUT` OpenBLAS has read (x: its idle workers spin 2^x cycles before
/// they sleep), or `None` when it has read none (its built-in 2^28 cycles), for run metadata.
pub fn worker_spin_log2_cycles() -> Option<u32> {
    // SAFETY: a getter without arguments.
    let x = unsafe { openblas_thread_timeout() };
    (x > 0).then(|| x.clamp(4, 30) as u32)
}

/// While alive, OpenBLAS runs every product on one thread, in the thread that calls it; dropping
/// it gives OpenBLAS back Saturn's thread count ([`num_threads`]). For parallel parts of Saturn's
/// own whose products run one per thread (batched per-head products, [`super::gemm`]). The
/// products' bits do not change: OpenBLAS splits a product over m and n, never over k. With MKL,
/// which takes a thread-local count per call instead, or on one thread, it does nothing.
pub(crate) struct OpenBlasOnOneThread(bool);

impl OpenBlasOnOneThread {
    pub(crate) fn new() -> Self {
        let change = matches!(backend(), Backend::OpenBlas) && num_threads() > 1;
        if change {
            // SAFETY: a plain C call with a positive count.
            unsafe { openblas_set_num_threads(1) };
        }
        OpenBlasOnOneThread(change)
    }
}

impl Drop for OpenBlasOnOneThread {
    fn drop(&mut self) {
        if self.0 {
            let n = num_threads().min(c_int::MAX as usize) as c_int;
            // SAFETY: a plain C call with a positive count.
            unsafe { openblas_set_num_threads(n) };
        }
    }
}
