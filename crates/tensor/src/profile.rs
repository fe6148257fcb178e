//! Where a backward pass spends its time: wall time per backward rule, opt-in.
//!
//! When [`enable`]d on a thread, the reverse walks run on that thread ([`crate::grad`],
//! [`crate::Tensor::backward`]) time each backward rule and each sum of gradient contributions,
//! and add the time to the thread's table, keyed by the operation's name (`"matmul"`,
//! `"layer_norm"`, …; sums are `"accumulate"`). [`take`] returns the table and empties it. Off by
//! default: then the walk pays one thread-local load per node.
//!
//! Each rule is timed as a whole, with whatever threads it uses, so the table answers "which
//! operations does the wall clock of a backward pass go to", per thread count — the question a
//! sampling profile of a multi-threaded run does not answer directly.

use std::cell::{Cell, RefCell};
use std::collections::HashMap;
use std::time::{Duration, Instant};

thread_local! {
    static ENABLED: Cell<bool> = const { Cell::new(false) };
    static TABLE: RefCell<HashMap<&'static str, OpTime>> = RefCell::new(HashMap::new());
}

/// The time one operation's backward rules took, summed over every call since the last [`take`].
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct OpTime {
    /// The operation's name.
    pub op: &'static str,
    /// How many times its rule ran.
    pub calls: u64,
    /// The wall time of those calls together.
    pub total: Duration,
}

/// Turns the backward profile on or off for the calling thread (it is off at start).
pub fn enable(on: bool) {
    ENABLED.with(|e| e.set(on));
}

/// Whether [`enable`] turned the profile on for the calling thread.
pub fn is_enabled() -> bool {
    ENABLED.with(Cell::get)
}

/// The calling thread's table gathered since the last call, most time first (ties by name),
/// and an empty table from here on.
pub fn take() -> Vec<OpTime> {
    let table = TABLE.with(|t| std::mem::take(&mut *t.borrow_mut()));
    let mut rows: Vec<OpTime> = table.into_values().collect();
    rows.sort_by(|a, b| b.total.cmp(&a.total).then(a.op.cmp(b.op)));
    rows
}

/// Runs `f`, adding its wall time to `op`'s row when the profile is on.
pub(crate) fn timed<R>(op: &'static str, f: impl FnOnce() -> R) -> R {
    if !is_enabled() {
        return f();
    }
    let start = Instant::now();
    let r = f();
    let elapsed = start.elapsed();
    TABLE.with(|t| {
        let mut table = t.borrow_mut();
        let row = table.entry(op).or_insert(OpTime { op, calls: 0, total: Duration::ZERO });
        row.calls += 1;
        row.total += elapsed;
    });
    r
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Tensor;

    #[test]
    fn a_backward_pass_is_timed_per_rule_only_while_enabled() {
        let run = || {
            let w = Tensor::<f64>::param_from_vec(vec![0.5, -0.3, 0.8, 0.1], &[2, 2]).unwrap();
            let x = Tensor::from_vec(vec![1.0, 2.0], &[2, 1]).unwrap();
            let h = w.matmul(&x).unwrap();
            // h is used twice: its two gradient contributions are summed
            let loss = h.tanh().add(&h).unwrap().sum_all();
            loss.backward().unwrap();
        };
        enable(true);
        take();
        run();
        run();
        let rows = take();
        enable(false);
        let calls = |op: &str| rows.iter().find(|r| r.op == op).map(|r| r.calls);
        assert_eq!(calls("matmul"), Some(2), "{rows:?}");
        assert_eq!(calls("tanh"), Some(2), "{rows:?}");
        assert_eq!(calls("accumulate"), Some(2), "{rows:?}");
        assert!(rows.windows(2).all(|p| p[0].total >= p[1].total), "sorted by time: {rows:?}");
        run();
        assert!(take().is_empty(), "nothing recorded while off");
    }
}
