//! `cargo xtask <command>`: project tasks for Saturn (std only, builds in seconds).

mod coretype;
mod examples;
mod fuzz;
mod lint;
mod mkl;
mod setup;
mod tensorboard;

use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode};
use std::time::Instant;

const USAGE: &str = "\
usage: cargo xtask <command> [args...]

commands:
  setup [--mkl] [--tensorboard]
                          detect system OpenBLAS with LAPACK; install libopenblas-dev with
                          apt-get if missing (as root, or with `sudo -n`); on an Intel CPU
                          install Intel oneMKL (PyPI wheel, ≈ 230 MB download) into
                          target/mkl/lib, where the matrix products run by default there
                          (SATURN_BLAS=openblas keeps them on OpenBLAS); every command below
                          runs this setup and sets OPENBLAS_CORETYPE from the CPU's flags
                          unless set. --mkl installs MKL on any CPU;
                          --tensorboard installs PyPI's tensorboard into target/py-tensorboard
                          (viewing runs; the lab's test reads its event files back with it)
  test [--full] [args]    setup, then `cargo test --workspace [args]` (on the default GEMM
                          backend); when MKL is installed, saturn-tensor's tests again on the
                          other backend (OpenBLAS or MKL); then the examples/ binaries;
                          --full sets SATURN_FULL_TESTS=1 (long statistical tests)
  experiment [--mkl] [args]
                          setup, then run `saturn experiment [args]` from the lab (release),
                          e.g. `cargo xtask experiment all --quick`; --mkl runs the matrix
                          products on MKL on any CPU (installing it first); a --full run takes the
                          finished cells kept in docs/results/cells (same config only)
  cells NAME [args]       list an experiment's cells (index, label, seed, estimated
                          core-minutes): `saturn cells NAME [--full] [--seeds …] [--json]`
  sweep NAME [args]       write the scripts that run its cells: `--emit slurm` (a job array,
                          then a merge job; see `saturn sweep --help`) or `--emit parallel`
                          (one command a line for GNU parallel); `--out DIR` holds both the
                          scripts and the run; --full sweeps skip the cells docs/results/cells
                          keeps (`cargo xtask report` stores every finished full cell there)
  fuzz [--seconds N] [TARGET...]
                          coverage-guided fuzzing of the loaders (cargo-fuzz, libFuzzer,
                          stable toolchain with `--sanitizer none`; installs cargo-fuzz if
                          missing): N seconds per target (default 90), every target unless
                          named; seeds from fuzz/seeds/ and the shared data; findings land in
                          fuzz/artifacts/TARGET/ (copy each into fuzz/regressions/TARGET/)
  lint [CHECK...]         the hygiene checks CI runs besides the tests: fmt (cargo fmt
                          --check), clippy (-D warnings, all targets), doc (cargo doc -D
                          warnings), tidy (docs/ARCHITECTURE.md lists every source file
                          and no missing one; the docs' relative links resolve);
                          all four unless some are named
  bench [--mkl] [args]    setup, then run the saturn-bench benchmarks (release); --mkl as above
  interop-export [args]   setup, then run `saturn-interop [args]` (release): export a model, a
                          batch and f64 gradients (or BERT outputs) for checking against
                          PyTorch, e.g. `cargo xtask interop-export --model lm --residual pre
                          --seed 0 --out /tmp/lm`; see docs/INTEROP.md
  report                  summarize recorded runs with `saturn report`
  help, --help, -h        show this text
";

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let Some((cmd, rest)) = args.split_first() else {
        print!("{USAGE}");
        return ExitCode::SUCCESS;
    };
    let result = match cmd.as_str() {
        "help" | "--help" | "-h" => {
            print!("{USAGE}");
            Ok(ExitCode::SUCCESS)
        }
        "setup" => setup::ensure(false)
            .and_then(|found| {
                mkl::ensure_default();
                if rest.iter().any(|a| a == "--mkl") {
                    mkl::ensure()?;
                }
                if rest.iter().any(|a| a == "--tensorboard") {
                    tensorboard::ensure()?;
                }
                Ok(found)
            })
            .map(|_| {
                match coretype::for_this_machine() {
                    Some(core) => println!(
                        "setup: OpenBLAS kernels: OPENBLAS_CORETYPE={core} (from the CPU's flags)"
                    ),
                    None => {
                        println!(
                            "setup: OpenBLAS kernels: OpenBLAS's own choice or OPENBLAS_CORETYPE"
                        )
                    }
                }
                ExitCode::SUCCESS
            }),
        "test" => test(rest),
        "experiment" => experiment(rest),
        "cells" | "sweep" => lab_command(cmd, rest),
        "fuzz" => fuzz::run(rest),
        "lint" => lint::run_all(rest),
        "bench" => bench(rest),
        "interop-export" => interop_export(rest),
        "report" => report(rest),
        other => {
            eprintln!("xtask: unknown command `{other}` (try `cargo xtask --help`)");
            return ExitCode::from(2);
        }
    };
    match result {
        Ok(code) => code,
        Err(msg) => {
            eprintln!("xtask: error: {msg}");
            ExitCode::FAILURE
        }
    }
}

/// The workspace root (parent of this crate's manifest directory).
pub(crate) fn workspace_root() -> PathBuf {
    let manifest = Path::new(env!("CARGO_MANIFEST_DIR"));
    manifest.parent().unwrap_or(manifest).to_path_buf()
}

/// The setup every command runs first: the system OpenBLAS (see `setup`), then MKL on an Intel
/// CPU (see `mkl::ensure_default`).
fn prepare() -> Result<PathBuf, String> {
    let openblas = setup::ensure(true)?;
    mkl::ensure_default();
    Ok(openblas)
}

/// A cargo command in the workspace root, with `OPENBLAS_CORETYPE` set from the CPU's flags
/// (see `coretype`) and `SATURN_MKL_DIR` pointing at the installed MKL, each unless the
/// environment already sets it.
pub(crate) fn cargo() -> Command {
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let mut cmd = Command::new(cargo);
    cmd.current_dir(workspace_root());
    if let Some(core) = coretype::for_this_machine() {
        cmd.env("OPENBLAS_CORETYPE", core);
    }
    if mkl::installed() && std::env::var_os("SATURN_MKL_DIR").is_none() {
        cmd.env("SATURN_MKL_DIR", mkl::lib_dir());
    }
    cmd
}

/// Runs a command, mapping its exit status to ours.
fn run(mut cmd: Command, what: &str) -> Result<ExitCode, String> {
    let status = cmd.status().map_err(|e| format!("could not run {what}: {e}"))?;
    Ok(match status.code() {
        Some(0) => ExitCode::SUCCESS,
        Some(c) => ExitCode::from(u8::try_from(c).unwrap_or(1)),
        None => {
            eprintln!("xtask: {what} was terminated by a signal ({status})");
            ExitCode::FAILURE
        }
    })
}

fn crate_exists(dir: &str) -> bool {
    workspace_root().join(dir).join("Cargo.toml").is_file()
}

fn test(args: &[String]) -> Result<ExitCode, String> {
    let start = Instant::now();
    prepare()?;
    let full = args.iter().any(|a| a == "--full");
    let extra: Vec<&String> = args.iter().filter(|a| *a != "--full").collect();
    let mut cmd = cargo();
    cmd.args(["test", "--workspace"]).args(&extra);
    if full {
        cmd.env("SATURN_FULL_TESTS", "1");
    }
    let mut code = run(cmd, "cargo test")?;
    if code == ExitCode::SUCCESS && mkl::installed() {
        // saturn-tensor's unit tests again with every product on the backend the workspace run
        // did not use (OpenBLAS on an Intel CPU, where MKL is the default; MKL elsewhere), the
        // backends' own checks among them: the test binary the workspace run built, so nothing
        // is rebuilt (`cargo test -p saturn-tensor` alone would unify features differently)
        let other = match std::env::var("SATURN_BLAS").as_deref().map(str::trim) {
            Ok("mkl") => "openblas",
            Ok("openblas") => "mkl",
            _ if mkl::cpu_is_intel() => "openblas",
            _ => "mkl",
        };
        let binary = tensor_test_binary(&extra)?;
        let mut cmd = Command::new(&binary);
        cmd.current_dir(workspace_root().join("crates").join("tensor"));
        if let Some(core) = coretype::for_this_machine() {
            cmd.env("OPENBLAS_CORETYPE", core);
        }
        cmd.env("SATURN_BLAS", other).env("SATURN_MKL_DIR", mkl::lib_dir());
        eprintln!("xtask: saturn-tensor's unit tests on {other} ({})", binary.display());
        code = run(cmd, &format!("saturn-tensor's tests on {other}"))?;
    }
    if code == ExitCode::SUCCESS {
        code = examples::run_all(&extra)?; // the examples/ binaries the test run built
    }
    eprintln!(
        "xtask: test{} finished in {:.1} s",
        if full { " --full" } else { "" },
        start.elapsed().as_secs_f64()
    );
    Ok(code)
}

/// The path of saturn-tensor's unit-test binary as the workspace test run built it (asked of
/// cargo with `--no-run --message-format=json`, which builds nothing new).
fn tensor_test_binary(extra: &[&String]) -> Result<PathBuf, String> {
    let out = cargo()
        .args(["test", "--workspace", "--no-run", "--message-format=json"])
        // cargo's own flags (a profile, features), not the test filter or the harness's flags
        .args(extra.iter().take_while(|a| a.as_str() != "--").filter(|a| a.starts_with("--")))
        .stderr(std::process::Stdio::null())
        .output()
        .map_err(|e| format!("could not ask cargo for the test binaries: {e}"))?;
    let text = String::from_utf8_lossy(&out.stdout);
    text.lines()
        .filter(|l| l.contains("\"name\":\"saturn_tensor\"") && l.contains("\"kind\":[\"lib\"]"))
        .filter(|l| l.contains("\"test\":true"))
        .find_map(|l| {
            let start = l.find("\"executable\":\"")? + "\"executable\":\"".len();
            let end = start + l[start..].find('"')?;
            Some(PathBuf::from(&l[start..end]))
        })
        .ok_or_else(|| "cargo reported no saturn-tensor unit-test binary".to_string())
}

/// Runs the command's matrix products on the MKL in `lib` (see saturn_tensor::blas).
fn with_mkl(cmd: &mut Command, lib: PathBuf) {
    cmd.env("SATURN_BLAS", "mkl").env("SATURN_MKL_DIR", lib);
}

/// Splits off `--mkl`; when present, installs MKL and returns its directory.
fn take_mkl_flag(args: &[String]) -> Result<(Vec<String>, Option<PathBuf>), String> {
    let rest: Vec<String> = args.iter().filter(|a| *a != "--mkl").cloned().collect();
    let lib = if rest.len() < args.len() { Some(mkl::ensure()?) } else { None };
    Ok((rest, lib))
}

fn experiment(args: &[String]) -> Result<ExitCode, String> {
    prepare()?;
    if !crate_exists("crates/lab") {
        println!("no experiments yet: the lab (crates/lab) has not landed");
        return Ok(ExitCode::SUCCESS);
    }
    let (args, mkl_lib) = take_mkl_flag(args)?;
    let mut cmd = cargo();
    cmd.args(["run", "--release", "--package", "saturn-lab", "--bin", "saturn", "--"])
        .arg("experiment")
        .args(with_cell_store(&args));
    if let Some(lib) = mkl_lib {
        with_mkl(&mut cmd, lib);
    }
    run(cmd, "saturn experiment")
}

/// `saturn cells …` or `saturn sweep …` from the lab (release: the sweep's scripts call this
/// binary).
fn lab_command(command: &str, args: &[String]) -> Result<ExitCode, String> {
    prepare()?;
    let mut cmd = cargo();
    cmd.args(["run", "--release", "--package", "saturn-lab", "--bin", "saturn", "--"])
        .arg(command)
        .args(if command == "sweep" { with_cell_store(args) } else { args.to_vec() });
    run(cmd, &format!("saturn {command}"))
}

/// A `--full` run takes the finished cells the record keeps (`--cell-store
/// docs/results/cells`, see docs/SWEEPS.md) unless the arguments name a store already.
fn with_cell_store(args: &[String]) -> Vec<String> {
    let mut args = args.to_vec();
    if args.iter().any(|a| a == "--full") && !args.iter().any(|a| a.starts_with("--cell-store")) {
        let store = workspace_root().join("docs").join("results").join("cells");
        args.extend(["--cell-store".into(), store.display().to_string()]);
    }
    args
}

fn bench(args: &[String]) -> Result<ExitCode, String> {
    prepare()?;
    if !crate_exists("crates/bench") {
        return Err("no benchmarks yet: the bench crate (crates/bench) has not landed".into());
    }
    let (args, mkl_lib) = take_mkl_flag(args)?;
    let mut cmd = cargo();
    cmd.args(["run", "--release", "--package", "saturn-bench", "--"]).args(args);
    if let Some(lib) = mkl_lib {
        with_mkl(&mut cmd, lib);
    }
    run(cmd, "saturn-bench")
}

fn interop_export(args: &[String]) -> Result<ExitCode, String> {
    prepare()?;
    if !crate_exists("crates/interop") {
        return Err("no interop export yet: crates/interop has not landed".into());
    }
    let mut cmd = cargo();
    cmd.args(["run", "--release", "-p", "saturn-interop", "--"]).args(args);
    run(cmd, "saturn-interop")
}

fn report(args: &[String]) -> Result<ExitCode, String> {
    if !crate_exists("crates/lab") {
        println!("no runs to report yet");
        return Ok(ExitCode::SUCCESS);
    }
    let mut cmd = cargo();
    cmd.args(["run", "--release", "-p", "saturn-lab", "--bin", "saturn", "--", "report"])
        .args(args);
    run(cmd, "saturn report")
}
