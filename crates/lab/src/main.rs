//! `saturn`: run experiments and build the report. Reached through `cargo xtask experiment …`
//! and `cargo xtask report`, which install the system dependencies first.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Args, Parser, Subcommand};
use saturn_lab::config::Preset;
use saturn_lab::experiments::{EXPERIMENTS, find};
use saturn_lab::sweep::{Emit, SlurmOptions, SweepSpec};
use saturn_lab::{
    LabError, RunOptions, plan_cells, print_summary, report, run_cell, run_experiment,
};

/// Reproduce the findings on norm growth and saturation, Post-LN / Pre-LN / Admin, and
/// layer-norm placement.
#[derive(Parser)]
#[command(name = "saturn", version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run an experiment: `list`, a NAME, or `all` (then the report).
    Experiment(ExperimentArgs),
    /// List an experiment's cells (index, label, seed, estimated core-minutes): the
    /// independent units `--cell I` runs.
    Cells {
        #[command(flatten)]
        run: RunArgs,
        /// One JSON array instead of one line a cell.
        #[arg(long)]
        json: bool,
    },
    /// Write the scripts that run an experiment's cells as a Slurm job array (then a merge
    /// job), or as lines for GNU parallel; `--out` holds the scripts and the run.
    Sweep {
        #[command(flatten)]
        run: RunArgs,
        /// `slurm`: NAME.cells.sbatch, NAME.merge.sbatch, submit.sh; `parallel`:
        /// NAME.cells.txt (`parallel -j2 < NAME.cells.txt`) and NAME.merge.sh.
        #[arg(long, value_enum)]
        emit: Emit,
        #[arg(long)]
        partition: Option<String>,
        /// Time limit of one cell (`2:00:00`).
        #[arg(long)]
        time: Option<String>,
        #[arg(long)]
        account: Option<String>,
        /// CPUs per task, also each cell's `--threads`.
        #[arg(long, default_value_t = 1)]
        cpus_per_task: usize,
        /// Memory per task (`4G`).
        #[arg(long)]
        mem: Option<String>,
        /// Run submit.sh (calls `sbatch`) after writing it.
        #[arg(long, requires = "emit")]
        submit: bool,
    },
    /// Fold the runs into the committed record (docs/results/, docs/figures/) and render
    /// docs/RESULTS.md from it.
    Report {
        /// Where the runs are.
        #[arg(long, default_value = "runs")]
        results: PathBuf,
        /// Where RESULTS.md, results/ and figures/ are.
        #[arg(long, default_value = "docs")]
        docs: PathBuf,
        /// Fold in `--full` runs with fewer seeds than their preset asks for, marked partial
        /// (without it they are refused).
        #[arg(long)]
        allow_partial: bool,
    },
}

/// What picks a run: the experiment, its preset, seeds, config and output directory.
#[derive(Args, Clone)]
struct RunArgs {
    /// `list`, `all`, or an experiment name.
    name: String,
    /// The quick preset (the default): minutes on 2 cores.
    #[arg(long, conflicts_with = "full")]
    quick: bool,
    /// The full preset: paper-scale settings.
    #[arg(long)]
    full: bool,
    /// The first seed (default 0): the preset's seed count is run from it (N, N+1, …).
    #[arg(long, conflicts_with = "seeds")]
    seed: Option<u64>,
    /// Exactly these seeds, comma-separated; every one is run and counted (a `--full` run
    /// with fewer than its preset asks for is folded into the record only as partial).
    #[arg(long, value_delimiter = ',')]
    seeds: Option<Vec<u64>>,
    /// A TOML file overriding any fields of the preset's config.
    #[arg(long)]
    config: Option<PathBuf>,
    /// Where run directories are written.
    #[arg(long, default_value = "runs")]
    out: PathBuf,
    /// Finished cells of earlier runs (`docs/results/cells`, see docs/SWEEPS.md): a stored
    /// cell computed under the same config is copied in and not recomputed.
    #[arg(long, value_name = "DIR")]
    cell_store: Option<PathBuf>,
}

impl RunArgs {
    fn options(&self) -> RunOptions {
        let preset = if self.full { Preset::Full } else { Preset::Quick };
        let seeds = self.seeds.clone().unwrap_or_else(|| vec![self.seed.unwrap_or(0)]);
        RunOptions {
            extend_seeds: self.seeds.is_none(),
            config_file: self.config.clone(),
            cell_store: self.cell_store.clone(),
            ..RunOptions::new(preset, seeds, self.out.clone())
        }
    }
}

#[derive(Args)]
struct ExperimentArgs {
    #[command(flatten)]
    run: RunArgs,
    /// OpenBLAS threads (default: OPENBLAS_NUM_THREADS, else 1).
    #[arg(long)]
    threads: Option<usize>,
    /// Continue each run from its last checkpoint (a finished cell is kept as it is).
    #[arg(long)]
    resume: bool,
    /// Run only cell I (see `saturn cells`) and write only its files, not the summary.
    #[arg(long, value_name = "I", conflicts_with = "merge_only")]
    cell: Option<usize>,
    /// Make the claims, figures and summary from the finished cells, computing none; missing
    /// cells are an error that lists them.
    #[arg(long)]
    merge_only: bool,
    /// With --merge-only: merge the seeds whose cells are all there, marked partial.
    #[arg(long, requires = "merge_only")]
    allow_partial: bool,
    /// Take over a lock held by a process on another host (see docs/SWEEPS.md); a lock of a
    /// dead process on this host, or of the same Slurm job requeued, is taken over anyway.
    #[arg(long)]
    break_lock: bool,
    /// Where `all` writes the report (docs/RESULTS.md).
    #[arg(long, default_value = "docs")]
    docs: PathBuf,
}

fn main() -> ExitCode {
    // The heap on transparent huge pages (re-executes once with glibc's tunable; same bits), then
    // freed activation buffers kept in it across training steps (see saturn_tensor::alloc).
    let huge_pages = saturn_tensor::alloc::use_huge_page_heap();
    if let saturn_tensor::alloc::HugePageHeap::Failed(e) = &huge_pages {
        eprintln!("saturn: note: the heap stays on 4 KiB pages (re-executing failed: {e})");
    }
    saturn_tensor::alloc::tune_malloc();
    // SAFETY: first thing in main: no thread of ours exists yet, and BLAS has computed nothing.
    unsafe { saturn_tensor::blas::let_idle_workers_sleep() };
    match run(Cli::parse()) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("saturn: error: {e}");
            ExitCode::FAILURE
        }
    }
}

fn run(cli: Cli) -> saturn_lab::Result<ExitCode> {
    match cli.command {
        Command::Report { results, docs, allow_partial } => {
            let n = report(&results, &docs, allow_partial)?;
            println!("report: {n} experiment(s) → {}", docs.join("RESULTS.md").display());
            Ok(ExitCode::SUCCESS)
        }
        Command::Cells { run, json } => {
            let cells = plan_cells(find(&run.name)?, &run.options())?;
            if json {
                let text = serde_json::to_string_pretty(&cells)
                    .map_err(|e| LabError::Run(e.to_string()))?;
                println!("{text}");
            } else {
                for c in &cells {
                    let cost =
                        if c.minutes > 0.0 { format!("{:.2}", c.minutes) } else { "?".into() };
                    println!(
                        "{:>4}  {:<40} seed {:<6} ≈ {cost} core-min",
                        c.index, c.label, c.seed
                    );
                }
            }
            Ok(ExitCode::SUCCESS)
        }
        Command::Sweep { run, emit, partition, time, account, cpus_per_task, mem, submit } => {
            let exp = find(&run.name)?;
            let opts = run.options();
            let cells = plan_cells(exp, &opts)?;
            let absolute = |p: &PathBuf| {
                std::path::absolute(p).map_err(|e| LabError::Run(format!("{}: {e}", p.display())))
            };
            let mut run_args =
                vec![if run.full { "--full" } else { "--quick" }.to_string(), "--seeds".into()];
            run_args
                .push(opts.seeds_for(exp).iter().map(u64::to_string).collect::<Vec<_>>().join(","));
            if let Some(config) = &run.config {
                run_args.extend(["--config".into(), absolute(config)?.display().to_string()]);
            }
            if let Some(store) = &run.cell_store {
                run_args.extend(["--cell-store".into(), absolute(store)?.display().to_string()]);
            }
            let spec = SweepSpec {
                name: exp.name.to_string(),
                saturn: std::env::current_exe().map_err(|e| LabError::Run(e.to_string()))?,
                run_args,
                out: absolute(&run.out)?,
                cells: cells.len(),
            };
            let slurm = SlurmOptions { partition, time, account, cpus_per_task, mem };
            for file in saturn_lab::sweep::write(&spec, emit, &slurm)? {
                println!("wrote {}", file.display());
            }
            println!("{}: {} cell(s)", exp.name, cells.len());
            if submit {
                if emit != Emit::Slurm {
                    return Err(LabError::Config("--submit needs --emit slurm".into()));
                }
                let status = std::process::Command::new("bash")
                    .arg(spec.out.join("submit.sh"))
                    .status()
                    .map_err(|e| LabError::Run(format!("submit.sh: {e}")))?;
                if !status.success() {
                    return Err(LabError::Run(format!("submit.sh failed ({status})")));
                }
            }
            Ok(ExitCode::SUCCESS)
        }
        Command::Experiment(args) => {
            if args.run.name == "list" {
                for e in EXPERIMENTS {
                    println!("{:<20} {}", e.name, e.about);
                }
                return Ok(ExitCode::SUCCESS);
            }
            if let Some(warning) = saturn_tensor::blas::kernel_warning() {
                eprintln!("saturn: warning: {warning}");
            }
            match args.threads {
                Some(n) => saturn_tensor::blas::set_num_threads(n),
                // OpenBLAS would otherwise take every core, and its idle threads spin
                None if std::env::var_os("OPENBLAS_NUM_THREADS").is_none() => {
                    saturn_tensor::blas::set_num_threads(1)
                }
                None => {}
            }
            // after the thread count: MKL takes its threading layer from it when it loads
            saturn_tensor::blas::select_backend().map_err(|e| LabError::Config(e.to_string()))?;
            let opts = RunOptions {
                resume: args.resume,
                merge_only: args.merge_only,
                allow_partial: args.allow_partial,
                break_lock: args.break_lock,
                ..args.run.options()
            };
            if let Some(index) = args.cell {
                let exp = find(&args.run.name)?;
                let (label, already) = run_cell(exp, &opts, index)?;
                let what = if already { "was finished already" } else { "finished" };
                println!("{}: cell {index} ({label}) {what}", exp.name);
                return Ok(ExitCode::SUCCESS);
            }
            let selected: Vec<_> = if args.run.name == "all" {
                EXPERIMENTS.iter().collect()
            } else {
                vec![find(&args.run.name)?]
            };
            let mut all_hold = true;
            for exp in &selected {
                let summary = run_experiment(exp, &opts)?;
                print_summary(&summary);
                all_hold &= summary.claims.iter().all(|c| c.holds);
            }
            if args.run.name == "all" {
                let n = report(&opts.out, &args.docs, false)?;
                println!("report: {n} experiment(s) → {}", args.docs.join("RESULTS.md").display());
            }
            if !all_hold {
                println!(
                    "note: some claims fail or are inconclusive; see summary.json in each run directory"
                );
            }
            Ok(ExitCode::SUCCESS)
        }
    }
}
