//! Data parallelism for the element-wise and row kernels, on as many threads as BLAS uses
//! ([`crate::blas::num_threads`]: one by default).
//!
//! An output is split into at most that many contiguous parts of whole units (elements, or rows
//! of a row kernel), each of at least `MIN_PART` elements; the calling thread computes the
//! first part and a rayon pool of `threads − 1` workers the others. Every unit is computed by the
//! same code whichever part holds it, and no value is combined across parts, so results are
//! bitwise the same for every thread count (tested in `simd_math`). A reduction is never split
//! across parts: a sum over rows is split by columns (each part sums its columns over every row,
//! in row order), or taken over fixed blocks of rows whose sums are added in block order (the
//! blocks do not depend on the thread count: layer norm's backward), or not split at all.
//!
//! [`map_items`] is the one entry point for other crates: an optimizer's update of a large
//! parameter in fixed blocks.

use std::sync::{Arc, Mutex, PoisonError};

use rayon::ThreadPool;

/// The smallest part worth handing to another thread: 64 Ki elements (256 KiB of f32) take tens
/// of microseconds even for the cheapest kernel, against a few for waking a worker.
pub(crate) const MIN_PART: usize = 1 << 16;

/// The pool of `workers` threads, built on first use and rebuilt when the count changes.
fn pool(workers: usize) -> Option<Arc<ThreadPool>> {
    static POOL: Mutex<Option<(usize, Arc<ThreadPool>)>> = Mutex::new(None);
    let mut cached = POOL.lock().unwrap_or_else(PoisonError::into_inner);
    if let Some((n, pool)) = cached.as_ref()
        && *n == workers
    {
        return Some(Arc::clone(pool));
    }
    let pool = rayon::ThreadPoolBuilder::new()
        .num_threads(workers)
        .thread_name(|i| format!("saturn-worker-{i}"))
        .build()
        .ok()?;
    let pool = Arc::new(pool);
    *cached = Some((workers, Arc::clone(&pool)));
    Some(pool)
}

#[cfg(test)]
thread_local! {
    static THREADS_IN_TEST: std::cell::Cell<Option<usize>> = const { std::cell::Cell::new(None) };
}

/// Runs `f` with `threads` as the thread count of this thread's kernels (tests compare thread
/// counts without changing the process-wide BLAS setting that other tests share).
#[cfg(test)]
pub(crate) fn with_threads<R>(threads: usize, f: impl FnOnce() -> R) -> R {
    THREADS_IN_TEST.with(|t| t.set(Some(threads)));
    let r = f();
    THREADS_IN_TEST.with(|t| t.set(None));
    r
}

pub(crate) fn threads() -> usize {
    #[cfg(test)]
    if let Some(n) = THREADS_IN_TEST.with(std::cell::Cell::get) {
        return n;
    }
    crate::blas::num_threads()
}

/// How many parts `len` elements in units of `unit`, each element standing for `work` elements
/// of input, are split into on `threads` threads.
pub(crate) fn parts(len: usize, unit: usize, work: usize, threads: usize) -> usize {
    let units = len / unit.max(1);
    threads.min(len.saturating_mul(work) / MIN_PART).min(units).max(1)
}

/// Calls `f(first_unit, part)` for contiguous parts of `out` made of whole `unit`s (`unit`
/// divides `out.len()`), in parallel when the BLAS thread count is above one and `out` is large.
pub(crate) fn for_each_part<T: Send>(
    out: &mut [T],
    unit: usize,
    f: impl Fn(usize, &mut [T]) + Sync,
) {
    for_each_part_of_work(out, unit, 1, f)
}

/// [`for_each_part`] for outputs whose every element costs `work` input elements (one loss per
/// row of C logits: `work` = C), so that the split follows the work, not the output's size.
pub(crate) fn for_each_part_of_work<T: Send>(
    out: &mut [T],
    unit: usize,
    work: usize,
    f: impl Fn(usize, &mut [T]) + Sync,
) {
    let threads = threads();
    let n = parts(out.len(), unit, work, threads);
    // one pool per thread count (not per part count), so that it is not rebuilt call to call
    let pool = if n > 1 { pool(threads - 1) } else { None };
    let Some(pool) = pool else {
        f(0, out);
        return;
    };
    let per_part = (out.len() / unit).div_ceil(n);
    let mut chunks = out.chunks_mut(per_part * unit).enumerate();
    let (_, first) = chunks.next().expect("at least one part");
    let f = &f;
    pool.in_place_scope(|scope| {
        for (i, chunk) in chunks {
            scope.spawn(move |_| f(i * per_part, chunk));
        }
        f(0, first);
    });
}

/// [`for_each_part_of_work`] with each part's loops compiled for the widest vectors the CPU has
/// ([`crate::simd_math::widest`]): the row kernels' entry point. Mark `f` `#[inline(always)]` so
/// that its body is compiled inside the wide build.
pub(crate) fn for_each_wide_part<T: Send>(
    out: &mut [T],
    unit: usize,
    work: usize,
    f: impl Fn(usize, &mut [T]) + Sync,
) {
    for_each_part_of_work(out, unit, work, |first, part| {
        crate::simd_math::widest(
            #[inline(always)]
            || f(first, part),
        )
    })
}

/// `f(item)` for every item, results in the items' order. The items are split into at most as
/// many contiguous groups as there are threads ([`crate::blas::num_threads`]), run in parallel
/// (the calling thread runs the first group). A result depends only on its item, so the results
/// are the same on any thread count; the caller chooses items large enough to be worth a thread
/// (the optimizers update a parameter in fixed blocks of elements).
pub fn map_items<I: Send, R: Send>(items: Vec<I>, f: impl Fn(I) -> R + Sync) -> Vec<R> {
    let threads = threads();
    let groups = threads.min(items.len());
    let pool = if groups > 1 { pool(threads - 1) } else { None };
    let Some(pool) = pool else { return items.into_iter().map(f).collect() };
    let per_group = items.len().div_ceil(groups);
    let mut results: Vec<Option<R>> = std::iter::repeat_with(|| None).take(items.len()).collect();
    let mut items = items.into_iter();
    let mut work: Vec<(Vec<I>, &mut [Option<R>])> = results
        .chunks_mut(per_group)
        .map(|slots| (items.by_ref().take(slots.len()).collect(), slots))
        .collect();
    let f = &f;
    let run = move |(group, slots): (Vec<I>, &mut [Option<R>])| {
        for (slot, item) in slots.iter_mut().zip(group) {
            *slot = Some(f(item));
        }
    };
    let first = work.remove(0);
    pool.in_place_scope(|scope| {
        for part in work {
            scope.spawn(move |_| run(part));
        }
        run(first);
    });
    results.into_iter().map(|r| r.expect("every item was run")).collect()
}

/// [`map_items`] when the items together read `work` elements, enough for more than one part
/// of at least [`MIN_PART`]; otherwise one item after another on the calling thread (waking a
/// worker would cost more than it saves). The results are the same either way.
pub(crate) fn map_items_of_work<I: Send, R: Send>(
    items: Vec<I>,
    work: usize,
    f: impl Fn(I) -> R + Sync,
) -> Vec<R> {
    if parts(work, 1, 1, threads()) > 1 {
        map_items(items, f)
    } else {
        items.into_iter().map(f).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn small_outputs_stay_on_one_thread_and_large_ones_split_into_whole_units() {
        assert_eq!(parts(1000, 1, 1, 2), 1);
        assert_eq!(parts(MIN_PART * 2, 1, 1, 2), 2);
        assert_eq!(parts(MIN_PART * 8, 1, 1, 4), 4);
        assert_eq!(parts(MIN_PART * 2, MIN_PART * 2, 1, 2), 1, "one row cannot be split");
        assert_eq!(parts(MIN_PART * 8, 1, 1, 1), 1);
        assert_eq!(parts(2048, 1, 1024, 2), 2, "2048 row losses of 1024 logits each");
    }

    #[test]
    fn every_unit_is_visited_once_with_its_index() {
        let unit = 3;
        let mut out = vec![0usize; MIN_PART * 3 * unit];
        for_each_part(&mut out, unit, |first, part| {
            for (i, row) in part.chunks_mut(unit).enumerate() {
                row.fill(first + i);
            }
        });
        assert!(out.chunks(unit).enumerate().all(|(i, row)| row.iter().all(|&v| v == i)));
    }

    #[test]
    fn map_items_keeps_the_order_on_any_thread_count() {
        let expected: Vec<usize> = (0..7).map(|i| i * i).collect();
        for threads in [1, 2, 3, 8] {
            let got = with_threads(threads, || map_items((0..7).collect(), |i: usize| i * i));
            assert_eq!(got, expected, "{threads} threads");
        }
        assert!(map_items(Vec::<usize>::new(), |i| i).is_empty());
    }
}
