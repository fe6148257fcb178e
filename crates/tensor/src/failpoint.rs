//! Failpoints: numbered places where a test may kill this process, to show that a run killed
//! anywhere resumes to the same bits.
//!
//! Off unless the environment asks (one atomic load per hit otherwise). Every call to [`hit`]
//! counts, across names, in program order:
//!
//! - `SATURN_FAILPOINT_LOG=FILE` appends `N name` for every hit (a dry run lists the points);
//! - `SATURN_KILL_AT=N` sends this process SIGKILL at the N-th hit, after printing which one
//!   (`failpoint N (name): killing this process`), so a failure is reproducible from its number.
//!
//! A run of the same config, seed and thread count hits the same points in the same order.

use std::io::Write as _;
use std::sync::Mutex;
use std::sync::OnceLock;
use std::sync::atomic::{AtomicU64, Ordering};

struct Plan {
    kill_at: Option<u64>,
    log: Option<Mutex<std::fs::File>>,
    hits: AtomicU64,
}

static PLAN: OnceLock<Option<Plan>> = OnceLock::new();

fn plan() -> Option<&'static Plan> {
    PLAN.get_or_init(|| {
        let kill_at = std::env::var("SATURN_KILL_AT").ok().and_then(|n| n.trim().parse().ok());
        let log = std::env::var_os("SATURN_FAILPOINT_LOG").and_then(|path| {
            std::fs::OpenOptions::new().create(true).append(true).open(path).ok().map(Mutex::new)
        });
        (kill_at.is_some() || log.is_some()).then(|| Plan { kill_at, log, hits: AtomicU64::new(0) })
    })
    .as_ref()
}

/// Marks failpoint `name`: counts it, logs it, and kills the process if it is the chosen one.
pub fn hit(name: &str) {
    let Some(plan) = plan() else { return };
    let n = plan.hits.fetch_add(1, Ordering::SeqCst) + 1;
    if let Some(log) = &plan.log
        && let Ok(mut file) = log.lock()
    {
        let _ = writeln!(file, "{n} {name}");
    }
    if plan.kill_at == Some(n) {
        eprintln!("failpoint {n} ({name}): killing this process");
        let _ = std::process::Command::new("kill")
            .args(["-KILL", &std::process::id().to_string()])
            .status();
        // SIGKILL cannot be caught; if `kill` could not run, die without cleanup all the same
        std::process::abort();
    }
}
