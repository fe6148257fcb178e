//! `saturn`: run experiments and build the report. Reached through `cargo xtask experiment …`
//! and `cargo xtask report`, which install the system dependencies first.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Args, Parser, Subcommand};
use saturn_lab::config::Preset;
use saturn_lab::experiments::{EXPERIMENTS, find};
use saturn_lab::{LabError, RunOptions, print_summary, report, run_experiment};

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

#[derive(Args)]
struct ExperimentArgs {
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
    /// OpenBLAS threads (default: OPENBLAS_NUM_THREADS, else 1).
    #[arg(long)]
    threads: Option<usize>,
    /// Continue each run from its last checkpoint.
    #[arg(long)]
    resume: bool,
    /// Where `all` writes the report (docs/RESULTS.md).
    #[arg(long, default_value = "docs")]
    docs: PathBuf,
}

fn main() -> ExitCode {
    // Keep freed activation buffers in the heap across training steps (see saturn_tensor::alloc).
    saturn_tensor::alloc::tune_malloc();
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
        Command::Experiment(args) => {
            if args.name == "list" {
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
                preset: if args.full { Preset::Full } else { Preset::Quick },
                seeds: args.seeds.clone().unwrap_or_else(|| vec![args.seed.unwrap_or(0)]),
                extend_seeds: args.seeds.is_none(),
                config_file: args.config.clone(),
                out: args.out.clone(),
                resume: args.resume,
            };
            let selected: Vec<_> = if args.name == "all" {
                EXPERIMENTS.iter().collect()
            } else {
                vec![find(&args.name)?]
            };
            let mut all_hold = true;
            for exp in &selected {
                let summary = run_experiment(exp, &opts)?;
                print_summary(&summary);
                all_hold &= summary.claims.iter().all(|c| c.holds);
            }
            if args.name == "all" {
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
