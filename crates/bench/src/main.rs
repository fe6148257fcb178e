//! `saturn-bench`: speed of saturn-tensor on the CPU, as JSON lines.
//!
//! Five benchmarks, each a list of named cases (`bench/config/case/dtype`, e.g.
//! `matmul/medium/ffn_up/f32`; `--list` prints them, `--filter` picks by substring):
//! - [`matmul`]: GEMM through `Tensor::matmul` at the shapes of the decoder-LM configs of
//!   `shared/bench/README.md` (tiny, small, medium), against raw `ndarray` GEMM on the same data;
//! - [`mlp`]: forward, backward and forward+backward of a 2-layer MLP with a cross-entropy loss;
//! - [`hvp`]: one gradient against one exact Hessian-vector product of that MLP, f64 and f32;
//! - [`step`]: a training step (forward, backward, Adam) of the decoder LM of
//!   `shared/bench/torch_ref.py`, every config × residual variant, to compare with PyTorch, and
//!   one exact HVP against one gradient of that LM's loss;
//! - [`elementwise`]: single non-GEMM operations (add, tanh, gelu, softmax, …) against plain
//!   loops, and the fixed cost of one operation with and without graph recording.
//!
//! Output: one JSON object per line on stdout and nothing else there; progress and diagnostics
//! go to stderr. Every line carries `bench`, `dtype`, `threads` (OpenBLAS threads, see [`blas`]),
//! `ms` (median of `runs` timed runs after warm-up), `min_ms`, `max_ms`, `runs`, and
//! `git_commit` when `git rev-parse --short HEAD` works, `blas_core` (OpenBLAS kernel), `blas`
//! (the GEMM backend: `openblas`, or `mkl` with `SATURN_BLAS=mkl`, see `saturn_tensor::blas`) and
//! `cpu`;
//! `malloc_tuned` (whether `saturn_tensor::alloc::tune_malloc` was applied; `--no-tune-malloc`
//! turns it off), `huge_pages` (whether the heap is on transparent huge pages,
//! `saturn_tensor::alloc::use_huge_page_heap`; `SATURN_NO_HUGE_PAGES=1` turns it off; PyTorch's
//! processes get the user's own `GLIBC_TUNABLES`), `openblas_thread_timeout` (x: OpenBLAS's idle workers spin 2^x cycles; 20 unless
//! `OPENBLAS_THREAD_TIMEOUT` says otherwise, see `saturn_tensor::blas::let_idle_workers_sleep`;
//! 28 is OpenBLAS's own default); lines with `gflops` also carry `peak_gflops`, this machine's FMA peak for the line's dtype
//! at its thread count ([`peak`], measured at startup; `--peak-gflops` overrides), and
//! `peak_fraction` = gflops / peak_gflops. Inputs come from a PCG64 generator with
//! a fixed seed, so every run sees the same numbers.
//!
//! `--compare-torch` ([`torch_ref`]) runs `shared/bench/torch_ref.py` after each `step` case for the
//! same config, variant and threads, and prints a `step_vs_torch` line: `saturn_ms`, `torch_ms`
//! (medians of the whole step), `ratio` = saturn_ms / torch_ms, the per-phase medians of both,
//! both peak RSS, `torch_bg_cores` and `loadavg_1m`; then the same step under `torch.compile`
//! (Inductor, default mode; `--no-torch-compile` skips it): `torch_compiled_ms`,
//! `ratio_compiled`, `torch_compile_s` (or `torch_compile_error`). After each `step/*/hvp` case it
//! runs `crates/bench/scripts/torch_hvp.py` (PyTorch's gradient and double-backward HVP of the
//! same LM) and prints an `hvp_vs_torch` line: both gradient and HVP medians, `ratio` =
//! saturn_hvp_ms / torch_hvp_ms, and each side's hvp_over_grad. `--repeats N` runs the cases N
//! times over, Saturn and PyTorch alternating, marks each line with its `repeat` and ends with
//! a `step_vs_torch_median` / `hvp_vs_torch_median` line per comparison ([`repeats`]).

mod blas;
mod elementwise;
mod hvp;
mod matmul;
mod mlp;
mod peak;
mod repeats;
mod step;
mod timing;
mod torch_ref;

use std::error::Error;
use std::io::Write;
use std::process::ExitCode;

use clap::{Parser, ValueEnum};
use rand::SeedableRng;
use serde_json::Value;

use timing::{Plan, Stats};

/// Any error of a benchmark (tensor errors, failed sanity checks).
pub type BenchResult<T> = Result<T, Box<dyn Error>>;

/// The seed of every input: each case starts its own generator from it, so a case sees the same
/// inputs whatever `--filter` selects.
pub const SEED: u64 = 0x5a7_0e41;

/// A fresh generator seeded with [`SEED`].
pub fn rng() -> rand_pcg::Pcg64 {
    rand_pcg::Pcg64::seed_from_u64(SEED)
}

/// The peak of `threads` threads: measured on this machine ([`peak::measure`]), unless
/// `--peak-gflops` gives one core's FP32 peak (FP64 then has half the SIMD lanes).
fn peak_of(given_fp32_per_core: Option<f64>, threads: usize) -> peak::Peak {
    match given_fp32_per_core {
        Some(g) => peak::Peak {
            isa: peak::Isa::detect(),
            threads,
            f32_gflops: g * threads as f64,
            f64_gflops: g / 2.0 * threads as f64,
        },
        None => peak::measure(threads),
    }
}

fn positive_f64(s: &str) -> Result<f64, String> {
    match s.parse::<f64>() {
        Ok(x) if x.is_finite() && x > 0.0 => Ok(x),
        _ => Err(format!("`{s}` is not a positive number")),
    }
}

/// The CPU model from /proc/cpuinfo (Linux), e.g. "AMD EPYC 9R14" or "Intel(R) Xeon(R) ...".
fn cpu_model() -> String {
    std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("model name"))
                .and_then(|l| l.split_once(':'))
                .map(|(_, v)| v.trim().to_string())
        })
        .unwrap_or_else(|| "unknown".to_string())
}

/// Times saturn-tensor on the CPU: GEMM at transformer shapes, MLP forward/backward, exact HVP.
///
/// Prints one JSON object per line on stdout (progress on stderr). The OpenBLAS thread count is
/// read by OpenBLAS from OPENBLAS_NUM_THREADS when the library loads, so set it in the
/// environment (`OPENBLAS_NUM_THREADS=2 cargo xtask bench`); when unset, one thread is used.
#[derive(Debug, Parser)]
#[command(name = "saturn-bench", version)]
struct Cli {
    /// Timed runs per case (the median is reported).
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u32).range(1..=10_000))]
    runs: Option<u32>,

    /// Untimed warm-up runs per case.
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u32).range(0..=1_000))]
    warmup: Option<u32>,

    /// Fewer runs (5, 1 warm-up) and fewer shapes: finishes in well under 30 s.
    #[arg(long)]
    quick: bool,

    /// Only the cases whose name (bench/config/case, e.g. `matmul/medium/ffn_up`) contains this.
    #[arg(long, value_name = "SUBSTRING")]
    filter: Option<String>,

    /// Element type of the matmul and mlp cases (hvp always runs both f64 and f32).
    #[arg(long, value_enum, default_value_t = DTypeArg::F32)]
    dtype: DTypeArg,

    /// FP32 peak GFLOP/s of one core, the denominator of `peak_fraction` (f64 uses half).
    /// By default the peak is measured at startup on this machine (module `peak`: an FMA loop
    /// in the widest SIMD the CPU has, on as many threads as the bench uses).
    #[arg(long, value_name = "GFLOPS", value_parser = positive_f64)]
    peak_gflops: Option<f64>,

    /// Measure and print this machine's FMA peak (one JSON line at 1 thread and one at the
    /// BLAS thread count), then exit: to compare with shared/bench/fma_peak.c.
    #[arg(long)]
    peak: bool,

    /// With --compare-torch, skip the `torch.compile` run of each step case (eager only).
    #[arg(long)]
    no_torch_compile: bool,

    /// Print the names of the selected cases (one per line) instead of running them.
    #[arg(long)]
    list: bool,

    /// Leave glibc's malloc thresholds at their defaults instead of calling
    /// `saturn_tensor::alloc::tune_malloc` at startup (to measure what the tuning buys).
    #[arg(long)]
    no_tune_malloc: bool,

    /// After each `step` case, run PyTorch's reference (shared/bench/torch_ref.py, same config,
    /// variant, threads, warm-up and timed steps) and print a `step_vs_torch` line with both
    /// medians and their ratio. Needs a Python with torch ($SATURN_TORCH_PYTHON,
    /// $HOME/.venv-torch/bin/python or python3); fails if there is none.
    #[arg(long)]
    compare_torch: bool,

    /// Run the selected cases N times over (Saturn and PyTorch alternating, with
    /// --compare-torch) and end with one `step_vs_torch_median` / `hvp_vs_torch_median` line
    /// per comparison: the median over the repeats (module `repeats`).
    #[arg(long, value_name = "N", default_value_t = 1, value_parser = clap::value_parser!(u32).range(1..=1_000))]
    repeats: u32,

    /// In each `step` case, also time every backward rule (`saturn_tensor::profile`) over the
    /// timed steps and print one `backward_op` line per operation: its wall time and calls per
    /// step. The rules' timers cost little, but the step lines of such a run are not the
    /// reference numbers.
    #[arg(long)]
    profile_backward: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum DTypeArg {
    F32,
    F64,
    /// f32 then f64.
    All,
}

/// An element type, as a runtime value (cases dispatch to the generic code on it).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DType {
    F32,
    F64,
}

impl DType {
    pub fn name(self) -> &'static str {
        match self {
            DType::F32 => "f32",
            DType::F64 => "f64",
        }
    }
}

/// What every case needs to know about the run.
pub struct Ctx {
    pub plan: Plan,
    pub quick: bool,
    pub dtypes: Vec<DType>,
    /// `--profile-backward`: the step cases add `backward_op` lines.
    pub profile_backward: bool,
}

/// One JSON output line, keys in insertion order.
#[derive(Debug, Clone)]
pub struct Record(Vec<(&'static str, Value)>);

impl Record {
    /// A line of benchmark `bench`.
    pub fn new(bench: &'static str) -> Record {
        Record(vec![("bench", Value::from(bench))])
    }

    /// Adds (or replaces) a field.
    pub fn with(mut self, key: &'static str, value: impl Into<Value>) -> Record {
        let value = value.into();
        match self.0.iter_mut().find(|(k, _)| *k == key) {
            Some(slot) => slot.1 = value,
            None => self.0.push((key, value)),
        }
        self
    }

    /// Adds a number rounded to 5 significant digits (keeps the lines short).
    pub fn num(self, key: &'static str, x: f64) -> Record {
        self.with(key, round_sig(x, 5))
    }

    /// Adds the timing fields: `ms` (median), `min_ms`, `max_ms`, `runs`.
    pub fn stats(self, s: &Stats) -> Record {
        self.num("ms", s.median_ms)
            .num("min_ms", s.min_ms)
            .num("max_ms", s.max_ms)
            .with("runs", s.runs)
    }

    /// The value of a field, if set.
    pub fn get(&self, key: &str) -> Option<&Value> {
        self.0.iter().find(|(k, _)| *k == key).map(|(_, v)| v)
    }

    fn to_json(&self) -> String {
        let fields: Vec<String> =
            self.0.iter().map(|(k, v)| format!("{}:{}", Value::from(*k), v)).collect();
        format!("{{{}}}", fields.join(","))
    }
}

/// The code of a case: runs it and gives its output lines.
pub type CaseFn = Box<dyn Fn(&Ctx) -> BenchResult<Vec<Record>>>;

/// A named case and the code that runs it.
pub struct Case {
    pub name: String,
    pub run: CaseFn,
    /// What PyTorch measures the same thing with, for `--compare-torch`.
    pub torch_cell: Option<TorchCell>,
}

/// A PyTorch anchor of a case: torch_ref.py's training step (eager and compiled) or
/// torch_hvp.py's gradient and HVP, for one config and variant.
#[derive(Debug, Clone, Copy)]
pub struct TorchCell {
    pub config: &'static str,
    pub variant: &'static str,
    pub hvp: bool,
}

impl Case {
    pub fn new(
        name: impl Into<String>,
        run: impl Fn(&Ctx) -> BenchResult<Vec<Record>> + 'static,
    ) -> Case {
        Case { name: name.into(), run: Box::new(run), torch_cell: None }
    }

    /// Marks the case as comparable with torch_ref.py's `--config config --variant variant`.
    pub fn with_torch_cell(mut self, config: &'static str, variant: &'static str) -> Case {
        self.torch_cell = Some(TorchCell { config, variant, hvp: false });
        self
    }

    /// Marks the case as comparable with torch_hvp.py's gradient and HVP of the same cell.
    pub fn with_torch_hvp(mut self, config: &'static str, variant: &'static str) -> Case {
        self.torch_cell = Some(TorchCell { config, variant, hvp: true });
        self
    }
}

/// `x` rounded to `digits` significant digits (decimal), printed without binary noise.
fn round_sig(x: f64, digits: i32) -> f64 {
    if x == 0.0 || !x.is_finite() {
        return x;
    }
    let exp = digits - 1 - x.abs().log10().floor() as i32;
    if exp >= 0 {
        let scale = 10f64.powi(exp);
        (x * scale).round() / scale
    } else {
        let unit = 10f64.powi(-exp);
        (x / unit).round() * unit
    }
}

fn git_commit() -> Option<String> {
    let out = std::process::Command::new("git")
        .args(["rev-parse", "--short", "HEAD"])
        .stderr(std::process::Stdio::null())
        .output()
        .ok()?;
    let s = String::from_utf8(out.stdout).ok()?.trim().to_string();
    (out.status.success() && !s.is_empty()).then_some(s)
}

fn run(cli: Cli, huge_pages: saturn_tensor::alloc::HugePageHeap) -> BenchResult<()> {
    let runs = cli.runs.map_or(if cli.quick { 5 } else { 10 }, |n| n as usize);
    let warmup = cli.warmup.map_or(if cli.quick { 1 } else { 2 }, |n| n as usize);
    let dtypes = match cli.dtype {
        DTypeArg::F32 => vec![DType::F32],
        DTypeArg::F64 => vec![DType::F64],
        DTypeArg::All => vec![DType::F32, DType::F64],
    };
    let ctx = Ctx {
        plan: Plan { warmup, runs },
        quick: cli.quick,
        dtypes,
        profile_backward: cli.profile_backward,
    };

    let mut cases = matmul::cases(&ctx);
    cases.extend(mlp::cases(&ctx));
    cases.extend(hvp::cases(&ctx));
    cases.extend(elementwise::cases(&ctx));
    cases.extend(step::cases(&ctx));
    if let Some(f) = &cli.filter {
        cases.retain(|c| c.name.contains(f.as_str()));
        if cases.is_empty() {
            return Err(format!(
                "no benchmark case matches --filter {f:?} (see `saturn-bench --list`)"
            )
            .into());
        }
    }
    let mut stdout = std::io::stdout().lock();
    if cli.list {
        for c in &cases {
            writeln!(stdout, "{}", c.name)?;
        }
        return Ok(());
    }

    // find torch before measuring anything, so a missing one fails fast
    let torch = if cli.compare_torch {
        let python = torch_ref::find_python(&torch_ref::PythonSearch::from_env())?;
        let script = torch_ref::script_path()?;
        eprintln!(
            "saturn-bench: comparing with {} (torch {}) run by {}",
            script.display(),
            python.torch_version,
            python.python.display()
        );
        if !cases.iter().any(|c| c.torch_cell.is_some()) {
            eprintln!(
                "saturn-bench: warning: --compare-torch, but no selected case has a PyTorch anchor (`step` cases)"
            );
        }
        Some((python, script))
    } else {
        None
    };

    let malloc_tuned = !cli.no_tune_malloc && saturn_tensor::alloc::tune_malloc();
    let huge_pages = huge_pages.on();
    // SAFETY: no thread of ours exists yet (the peak probe and the cases start theirs later),
    // and BLAS has computed nothing.
    let worker_spin = unsafe { saturn_tensor::blas::let_idle_workers_sleep() };
    let threads = blas::configure_threads();
    // after the thread count: MKL takes its threading layer from it when it loads
    let backend = match saturn_tensor::blas::select_backend() {
        Ok(saturn_tensor::blas::Backend::OpenBlas) => "openblas",
        Ok(saturn_tensor::blas::Backend::Mkl(_)) => "mkl",
        Err(e) => return Err(e.to_string().into()),
    };
    let commit = git_commit();
    let core = blas::corename();
    if let Some(warning) = blas::kernel_warning() {
        eprintln!("saturn-bench: warning: {warning}");
    }
    let cpu = cpu_model();
    if cli.peak {
        for t in if threads > 1 { vec![1, threads] } else { vec![1] } {
            let p = peak::measure(t);
            let line = Record::new("peak")
                .with("threads", t)
                .with("isa", p.isa.name())
                .num("f32_gflops", p.f32_gflops)
                .num("f64_gflops", p.f64_gflops)
                .with("cpu", cpu.as_str());
            writeln!(stdout, "{}", line.to_json())?;
        }
        return Ok(());
    }
    let peak = peak_of(cli.peak_gflops, threads);
    eprintln!(
        "saturn-bench: {} cases, {runs} runs + {warmup} warm-up each; CPU {cpu} (peak {} at \
         {} threads: {:.1} GFLOP/s f32, {:.1} f64, {}); BLAS threads {threads}; GEMM on {}; \
         commit {}",
        cases.len(),
        peak.isa.name(),
        peak.threads,
        peak.f32_gflops,
        peak.f64_gflops,
        if cli.peak_gflops.is_some() { "given by --peak-gflops" } else { "measured" },
        saturn_tensor::blas::describe(),
        commit.as_deref().unwrap_or("unknown"),
    );
    let start = std::time::Instant::now();
    // the backend and the process settings every output line carries (28: OpenBLAS's own spin)
    let machine_fields = |r: Record| {
        r.with("blas", backend)
            .with("cpu", cpu.as_str())
            .with("malloc_tuned", malloc_tuned)
            .with("huge_pages", huge_pages)
            .with("openblas_thread_timeout", worker_spin.map_or(28, |x| x as u64))
    };
    let mut repeats = repeats::Repeats::default();
    let runs_of_cases =
        (1..=cli.repeats).flat_map(|r| cases.iter().enumerate().map(move |c| (r, c)));
    for (repeat, (i, case)) in runs_of_cases {
        if cli.repeats > 1 {
            eprintln!(
                "[{:>3}/{}] {} (repeat {repeat}/{})",
                i + 1,
                cases.len(),
                case.name,
                cli.repeats
            );
        } else {
            eprintln!("[{:>3}/{}] {}", i + 1, cases.len(), case.name);
        }
        let records =
            (case.run)(&ctx).map_err(|e| format!("benchmark case {} failed: {e}", case.name))?;
        let saturn_lines: Vec<Record> = records.clone();
        for r in records {
            let mut r = r.with("threads", threads);
            if cli.repeats > 1 {
                r = r.with("repeat", repeat);
            }
            if let Some(g) = r.get("gflops").and_then(Value::as_f64) {
                let dtype = r.get("dtype").and_then(Value::as_str).unwrap_or("f32");
                let peak_gflops = peak.for_dtype(dtype);
                r = r.num("peak_gflops", peak_gflops).num("peak_fraction", g / peak_gflops);
            }
            if let Some(c) = &commit {
                r = r.with("git_commit", c.as_str());
            }
            r = machine_fields(r.with("blas_core", core.as_str()));
            writeln!(stdout, "{}", r.to_json())?;
        }
        stdout.flush()?;
        if let (Some((python, script)), Some(cell)) = (&torch, case.torch_cell) {
            let (config, variant) = (cell.config, cell.variant);
            let mut r = if cell.hvp {
                eprintln!("[{:>3}/{}] torch_hvp.py {config}/{variant}", i + 1, cases.len());
                let t = torch_ref::run_hvp(python, config, variant, threads, ctx.plan)
                    .map_err(|e| format!("--compare-torch, {config}/{variant} hvp: {e}"))?;
                hvp_compare_record(&saturn_lines, config, variant, &t)?
            } else {
                eprintln!("[{:>3}/{}] torch_ref.py {config}/{variant}", i + 1, cases.len());
                let eager =
                    torch_ref::run(python, script, config, variant, threads, ctx.plan, false)
                        .map_err(|e| format!("--compare-torch, {config}/{variant}: {e}"))?;
                let mut r = compare_record(&saturn_lines, &eager)?;
                if !cli.no_torch_compile {
                    eprintln!(
                        "[{:>3}/{}] torch_ref.py --compile {config}/{variant}",
                        i + 1,
                        cases.len()
                    );
                    // Inductor needs a C++ toolchain and may fail where eager works: the line
                    // then says why instead of stopping the bench
                    match torch_ref::run(python, script, config, variant, threads, ctx.plan, true) {
                        Ok(c) => {
                            let saturn_ms =
                                r.get("saturn_ms").and_then(Value::as_f64).unwrap_or(f64::NAN);
                            r = r
                                .num("torch_compiled_ms", c.step.ms_per_step)
                                .num("ratio_compiled", saturn_ms / c.step.ms_per_step);
                            if let Some(s) = c.step.compile_s {
                                r = r.num("torch_compile_s", s);
                            }
                        }
                        Err(e) => {
                            eprintln!("saturn-bench: warning: torch.compile failed: {e}");
                            r = r.with("torch_compile_error", e);
                        }
                    }
                }
                r
            };
            r = r.with("threads", threads);
            if let Some(c) = &commit {
                r = r.with("git_commit", c.as_str());
            }
            r = machine_fields(r);
            if cli.repeats > 1 {
                r = r.with("repeat", repeat);
                repeats.push(&r);
            }
            writeln!(stdout, "{}", r.to_json())?;
            stdout.flush()?;
        }
    }
    for r in repeats.summaries() {
        writeln!(stdout, "{}", r.to_json())?;
    }
    eprintln!("saturn-bench: done in {:.1} s", start.elapsed().as_secs_f64());
    Ok(())
}

/// The `hvp_vs_torch` line: Saturn's gradient and HVP medians (the case's `grad` and `hvp`
/// lines) next to torch_hvp.py's; ratio = saturn_hvp_ms / torch_hvp_ms.
fn hvp_compare_record(
    saturn: &[Record],
    config: &str,
    variant: &str,
    torch: &torch_ref::TorchHvp,
) -> BenchResult<Record> {
    let phase_ms = |phase: &str| {
        saturn
            .iter()
            .find(|r| r.get("phase").and_then(Value::as_str) == Some(phase))
            .and_then(|r| r.get("ms_per_step").and_then(Value::as_f64))
            .ok_or_else(|| format!("the Saturn hvp case gave no `{phase}` line to compare"))
    };
    let (grad_ms, hvp_ms) = (phase_ms("grad")?, phase_ms("hvp")?);
    Ok(Record::new("hvp_vs_torch")
        .with("config", config)
        .with("variant", variant)
        .num("saturn_grad_ms", grad_ms)
        .num("saturn_hvp_ms", hvp_ms)
        .num("torch_grad_ms", torch.grad_ms)
        .num("torch_hvp_ms", torch.hvp_ms)
        .num("ratio", hvp_ms / torch.hvp_ms)
        .num("ratio_grad", grad_ms / torch.grad_ms)
        .num("saturn_hvp_over_grad", hvp_ms / grad_ms)
        .num("torch_hvp_over_grad", torch.hvp_ms / torch.grad_ms)
        .with("torch_steps", torch.steps))
}

/// The `step_vs_torch` line: Saturn's phase medians (from the case's `step` lines) next to
/// torch_ref.py's, with ratio = saturn_ms / torch_ms of the whole step.
fn compare_record(saturn: &[Record], torch: &torch_ref::TorchRun) -> BenchResult<Record> {
    let phase_ms = |phase: &str| {
        saturn
            .iter()
            .filter(|r| r.get("bench").and_then(Value::as_str) == Some("step"))
            .find(|r| r.get("phase").and_then(Value::as_str) == Some(phase))
            .and_then(|r| r.get("ms_per_step").and_then(Value::as_f64))
            .ok_or_else(|| format!("the Saturn case gave no `{phase}` line to compare"))
    };
    let t = &torch.step;
    let saturn_ms = phase_ms("step")?;
    let mut r = Record::new("step_vs_torch")
        .with("config", t.config.as_str())
        .with("variant", t.variant.as_str())
        .with("phase", "step")
        .num("saturn_ms", saturn_ms)
        .num("torch_ms", t.ms_per_step)
        .num("ratio", saturn_ms / t.ms_per_step)
        .num("saturn_forward_ms", phase_ms("forward")?)
        .num("torch_forward_ms", t.forward_ms)
        .num("saturn_backward_ms", phase_ms("backward")?)
        .num("torch_backward_ms", t.backward_ms)
        .num("saturn_optimizer_ms", phase_ms("optimizer")?)
        .num("torch_optimizer_ms", t.optimizer_ms)
        .with("torch_steps", t.steps)
        .with("torch_threads", t.threads);
    let saturn_rss = saturn.iter().find_map(|r| r.get("peak_rss_mb").and_then(Value::as_f64));
    if let Some(mb) = saturn_rss {
        r = r.num("saturn_peak_rss_mb", mb);
    }
    if let Some(mb) = torch.peak_rss_mb {
        r = r.num("torch_peak_rss_mb", mb);
    }
    if let Some(bg) = t.bg_cores {
        r = r.num("torch_bg_cores", bg);
    }
    if let Some(load) = torch_ref::loadavg_1m() {
        r = r.num("loadavg_1m", load);
    }
    if let Some(v) = &t.torch_version {
        r = r.with("torch", v.as_str());
    }
    Ok(r)
}

fn main() -> ExitCode {
    // first: this may re-execute the binary with the heap on huge pages (saturn_tensor::alloc)
    let huge_pages = saturn_tensor::alloc::use_huge_page_heap();
    if let saturn_tensor::alloc::HugePageHeap::Failed(e) = &huge_pages {
        eprintln!("saturn-bench: note: the heap stays on 4 KiB pages (re-executing failed: {e})");
    }
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => {
            use clap::error::ErrorKind;
            if matches!(e.kind(), ErrorKind::DisplayHelp | ErrorKind::DisplayVersion) {
                let _ = e.print();
                return ExitCode::SUCCESS;
            }
            // clap's message is several lines (error, possible values, usage, hint): keep its
            // first paragraph on one line.
            let msg = e.to_string();
            let first: Vec<&str> =
                msg.lines().map(str::trim).take_while(|l| !l.is_empty()).collect();
            eprintln!("saturn-bench: {} (see --help)", first.join(" "));
            return ExitCode::from(2);
        }
    };
    match run(cli, huge_pages) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("saturn-bench: error: {e}");
            ExitCode::FAILURE
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_keep_five_significant_digits() {
        assert_eq!(round_sig(0.000322391, 5), 0.00032239);
        assert_eq!(round_sig(947818.4, 5), 947820.0);
        assert_eq!(round_sig(-17.44444, 5), -17.444);
        assert_eq!(round_sig(0.0, 5), 0.0);
    }

    #[test]
    fn records_print_as_one_json_object_in_insertion_order() {
        let r = Record::new("matmul").with("shape", "2x3x4").num("ms", 1.234567).with("runs", 3);
        let line = r.with("shape", "4x3x2").to_json();
        assert_eq!(line, r#"{"bench":"matmul","shape":"4x3x2","ms":1.2346,"runs":3}"#);
        let v: serde_json::Value = serde_json::from_str(&line).unwrap();
        assert_eq!(v["runs"], 3);
    }
}
