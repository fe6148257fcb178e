//! `--compare-torch`: PyTorch's training step on this machine, next to Saturn's.
//!
//! The reference is `shared/bench/torch_ref.py` (the same decoder LM, configs and FLOP count as
//! [`crate::step`]; `shared/bench/README.md` §4–6). After each Saturn `step` case, main runs
//! torch_ref.py once for the same config, variant and thread count with the same warm-up and
//! timed step counts, so the two measurements alternate (Saturn tiny/post, torch tiny/post,
//! Saturn tiny/pre, …) and see the same machine load. torch_ref.py prints one JSON object
//! (`ms_per_step` = median step time, `fwd_ms`, `bwd_ms`, `opt_ms`, `bg_cores` = CPU used by other
//! processes during its timed steps, …) as the last line of its stdout; [`parse_output`] reads it.
//! The child's peak resident set is sampled from `/proc/<pid>/status` (VmHWM) every
//! [`RSS_POLL`] while it runs.
//!
//! Which Python: [`find_python`] tries `$SATURN_TORCH_PYTHON`, then `$HOME/.venv-torch/bin/python`
//! (the install recipe of `shared/bench/README.md` §1), then `python3`, and takes the first one
//! for which `import torch` succeeds. Where `shared` is: `$SATURN_SHARED`, else the directory
//! `shared` next to the workspace (`/work/main` → `/work/shared`).

use std::ffi::OsString;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use serde_json::Value;

use crate::timing::Plan;

/// How often the child's VmHWM is read while it runs.
pub const RSS_POLL: Duration = Duration::from_millis(50);

/// Where to look for a Python with torch, in order (see [`PythonSearch::from_env`]).
#[derive(Debug, Clone)]
pub struct PythonSearch {
    /// `$SATURN_TORCH_PYTHON`, if set.
    pub explicit: Option<PathBuf>,
    /// `$HOME/.venv-torch/bin/python`, if `$HOME` is set.
    pub venv: Option<PathBuf>,
    /// The last resort, looked up on `PATH` (`python3`).
    pub system: PathBuf,
}

impl PythonSearch {
    /// The search order of this process's environment.
    pub fn from_env() -> PythonSearch {
        let nonempty = |v: OsString| (!v.is_empty()).then(|| PathBuf::from(v));
        PythonSearch {
            explicit: std::env::var_os("SATURN_TORCH_PYTHON").and_then(nonempty),
            venv: std::env::var_os("HOME")
                .and_then(nonempty)
                .map(|h| h.join(".venv-torch").join("bin").join("python")),
            system: PathBuf::from("python3"),
        }
    }

    fn candidates(&self) -> Vec<(&'static str, &Path)> {
        let mut c = Vec::new();
        if let Some(p) = &self.explicit {
            c.push(("$SATURN_TORCH_PYTHON", p.as_path()));
        }
        if let Some(p) = &self.venv {
            c.push(("$HOME/.venv-torch", p.as_path()));
        }
        c.push(("PATH", self.system.as_path()));
        c
    }
}

/// A Python interpreter that imports torch.
#[derive(Debug, Clone)]
pub struct TorchPython {
    pub python: PathBuf,
    /// `torch.__version__`.
    pub torch_version: String,
}

/// Why no Python with torch was found: every candidate and what went wrong with it.
#[derive(Debug, Clone)]
pub struct NoTorch {
    pub tried: Vec<String>,
}

impl std::fmt::Display for NoTorch {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "no Python with torch found (tried {}); set SATURN_TORCH_PYTHON to a python that can \
             `import torch` (install recipe: shared/bench/README.md §1)",
            self.tried.join("; ")
        )
    }
}

impl std::error::Error for NoTorch {}

/// The first candidate of `search` for which `import torch` succeeds.
pub fn find_python(search: &PythonSearch) -> Result<TorchPython, NoTorch> {
    let mut tried = Vec::new();
    for (source, python) in search.candidates() {
        match torch_version(python) {
            Ok(torch_version) => {
                return Ok(TorchPython { python: python.to_path_buf(), torch_version });
            }
            Err(why) => tried.push(format!("{} ({source}): {why}", python.display())),
        }
    }
    Err(NoTorch { tried })
}

/// `torch.__version__` as printed by `python`, or why it could not be had.
fn torch_version(python: &Path) -> Result<String, String> {
    let out = Command::new(python)
        .args(["-c", "import torch; print(torch.__version__)"])
        .stdin(Stdio::null())
        .output()
        .map_err(|e| format!("cannot run it: {e}"))?;
    if !out.status.success() {
        let stderr = String::from_utf8_lossy(&out.stderr);
        let last = stderr.lines().rev().find(|l| !l.trim().is_empty()).unwrap_or("no message");
        return Err(format!("`import torch` failed ({}: {})", out.status, last.trim()));
    }
    let version = String::from_utf8_lossy(&out.stdout).trim().to_string();
    if version.is_empty() {
        return Err("`import torch` printed no version".into());
    }
    Ok(version)
}

/// The `shared` directory: `$SATURN_SHARED` if set, else `shared` beside the workspace root.
pub fn shared_dir() -> Result<PathBuf, String> {
    match std::env::var_os("SATURN_SHARED").filter(|v| !v.is_empty()) {
        Some(dir) => Ok(PathBuf::from(dir)),
        None => {
            // crates/bench → crates → workspace root
            let root = Path::new(env!("CARGO_MANIFEST_DIR")).ancestors().nth(2).ok_or(
                "cannot locate the workspace root from CARGO_MANIFEST_DIR; set SATURN_SHARED",
            )?;
            Ok(root.parent().unwrap_or(root).join("shared"))
        }
    }
}

/// `shared/bench/torch_ref.py` (see [`shared_dir`]).
pub fn script_path() -> Result<PathBuf, String> {
    let script = shared_dir()?.join("bench").join("torch_ref.py");
    if script.is_file() {
        Ok(script)
    } else {
        Err(format!(
            "the PyTorch reference {} does not exist; set SATURN_SHARED to the directory that \
             holds bench/torch_ref.py",
            script.display()
        ))
    }
}

/// `crates/bench/scripts/torch_hvp.py`: PyTorch's HVP by double backward of torch_ref.py's LM.
pub fn hvp_script_path() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("scripts").join("torch_hvp.py")
}

/// What torch_ref.py reports for one cell (all times in ms, medians over its timed steps).
#[derive(Debug, Clone, PartialEq)]
pub struct TorchStep {
    pub config: String,
    pub variant: String,
    pub threads: u64,
    pub ms_per_step: f64,
    pub forward_ms: f64,
    pub backward_ms: f64,
    pub optimizer_ms: f64,
    pub tokens_per_s: f64,
    pub steps: u64,
    /// Cores used by other processes during torch's timed steps (torch_ref's `BgMeter`).
    pub bg_cores: Option<f64>,
    pub torch_version: Option<String>,
    /// Seconds of the first (compiling) step under `--compile`.
    pub compile_s: Option<f64>,
}

/// The last line of `script`'s stdout that is a JSON object, parsed, and the line itself.
fn last_json_line<'a>(stdout: &'a str, script: &str) -> Result<(Value, &'a str), String> {
    let line = stdout
        .lines()
        .rev()
        .map(str::trim)
        .find(|l| l.starts_with('{'))
        .ok_or_else(|| format!("no JSON line in {script}'s output {:?}", tail(stdout)))?;
    let v = serde_json::from_str(line)
        .map_err(|e| format!("{script}'s output line is not JSON ({e}): {line}"))?;
    Ok((v, line))
}

/// Reads torch_ref.py's stdout: the last line that is a JSON object.
pub fn parse_output(stdout: &str) -> Result<TorchStep, String> {
    let (v, line) = last_json_line(stdout, "torch_ref.py")?;
    let num = |key: &str| {
        v.get(key)
            .and_then(Value::as_f64)
            .ok_or_else(|| format!("torch_ref.py's output has no number `{key}`: {line}"))
    };
    let text = |key: &str| {
        v.get(key)
            .and_then(Value::as_str)
            .map(str::to_string)
            .ok_or_else(|| format!("torch_ref.py's output has no string `{key}`: {line}"))
    };
    let ms_per_step = num("ms_per_step")?;
    if !(ms_per_step.is_finite() && ms_per_step > 0.0) {
        return Err(format!("torch_ref.py reported ms_per_step = {ms_per_step}"));
    }
    Ok(TorchStep {
        config: text("config")?,
        variant: text("variant")?,
        threads: num("threads")? as u64,
        ms_per_step,
        forward_ms: num("fwd_ms")?,
        backward_ms: num("bwd_ms")?,
        optimizer_ms: num("opt_ms")?,
        tokens_per_s: num("tokens_per_s")?,
        steps: num("steps")? as u64,
        bg_cores: v.get("bg_cores").and_then(Value::as_f64),
        torch_version: v.get("torch").and_then(Value::as_str).map(str::to_string),
        compile_s: v.get("compile_s").and_then(Value::as_f64),
    })
}

fn tail(s: &str) -> &str {
    let start = s.char_indices().rev().nth(300).map_or(0, |(i, _)| i);
    &s[start..]
}

/// One torch_ref.py run and the peak resident set of its process.
#[derive(Debug, Clone)]
pub struct TorchRun {
    pub step: TorchStep,
    /// VmHWM of the child, last sample before it exited; `None` if /proc was unreadable.
    pub peak_rss_mb: Option<f64>,
}

/// Runs torch_ref.py for one cell with `plan`'s warm-up and timed step counts (torch_ref.py
/// treats a warm-up of 0 as "its default", so at least 1 is passed), eager or under
/// `torch.compile` (Inductor, default mode; the first step, which compiles, is untimed). Its
/// stderr goes to ours.
pub fn run(
    python: &TorchPython,
    script: &Path,
    config: &str,
    variant: &str,
    threads: usize,
    plan: Plan,
    compile: bool,
) -> Result<TorchRun, String> {
    let mut cmd = Command::new(&python.python);
    // PyTorch runs with the user's own glibc tunables, not the huge-page heap Saturn re-executed
    // itself with
    saturn_tensor::alloc::restore_tunables(&mut cmd);
    cmd.arg(script)
        .args(["--config", config, "--variant", variant, "--act", "gelu_tanh"])
        .args(["--threads", &threads.to_string()])
        .args(["--steps", &plan.runs.to_string(), "--warmup", &plan.warmup.max(1).to_string()]);
    if compile {
        cmd.arg("--compile");
    }
    let what = format!(
        "torch_ref.py --config {config} --variant {variant} --threads {threads}{}",
        if compile { " --compile" } else { "" }
    );
    let (stdout, peak_rss_mb) = run_child(cmd, threads, &what)?;
    let step = parse_output(&stdout)?;
    Ok(TorchRun { step, peak_rss_mb })
}

/// PyTorch's gradient and exact HVP of one cell (scripts/torch_hvp.py), medians in ms.
#[derive(Debug, Clone, PartialEq)]
pub struct TorchHvp {
    pub grad_ms: f64,
    pub hvp_ms: f64,
    pub steps: u64,
}

/// Runs scripts/torch_hvp.py for one cell with `plan`'s warm-up and timed counts.
pub fn run_hvp(
    python: &TorchPython,
    config: &str,
    variant: &str,
    threads: usize,
    plan: Plan,
) -> Result<TorchHvp, String> {
    let mut cmd = Command::new(&python.python);
    // PyTorch runs with the user's own glibc tunables, not the huge-page heap Saturn re-executed
    // itself with
    saturn_tensor::alloc::restore_tunables(&mut cmd);
    cmd.arg(hvp_script_path())
        .arg("--shared")
        .arg(shared_dir()?)
        .args(["--config", config, "--variant", variant])
        .args(["--threads", &threads.to_string()])
        .args(["--steps", &plan.runs.to_string(), "--warmup", &plan.warmup.to_string()]);
    let what = format!("torch_hvp.py --config {config} --variant {variant} --threads {threads}");
    let (stdout, _) = run_child(cmd, threads, &what)?;
    parse_hvp_output(&stdout)
}

/// Reads torch_hvp.py's stdout: the last line that is a JSON object.
pub fn parse_hvp_output(stdout: &str) -> Result<TorchHvp, String> {
    let (v, line) = last_json_line(stdout, "torch_hvp.py")?;
    let num = |key: &str| {
        v.get(key)
            .and_then(Value::as_f64)
            .filter(|x| x.is_finite() && *x > 0.0)
            .ok_or_else(|| format!("torch_hvp.py's output has no positive number `{key}`: {line}"))
    };
    Ok(TorchHvp { grad_ms: num("grad_ms")?, hvp_ms: num("hvp_ms")?, steps: num("steps")? as u64 })
}

/// Runs a child Python with `threads` OpenMP/MKL threads, its stdout captured and its stderr
/// passed through, sampling its peak resident set; its stdout and VmHWM in MB.
fn run_child(
    mut cmd: Command,
    threads: usize,
    what: &str,
) -> Result<(String, Option<f64>), String> {
    cmd.stdin(Stdio::null()).stdout(Stdio::piped()).stderr(Stdio::inherit());
    // torch's OpenMP pool is sized by set_num_threads; keep MKL/OpenMP from spinning up more.
    cmd.env("OMP_NUM_THREADS", threads.to_string()).env("MKL_NUM_THREADS", threads.to_string());
    let mut child = cmd.spawn().map_err(|e| format!("cannot start {what}: {e}"))?;
    let mut stdout_pipe = child.stdout.take().ok_or("the child's stdout was not captured")?;
    let reader = std::thread::spawn(move || {
        let mut s = String::new();
        stdout_pipe.read_to_string(&mut s).map(|_| s)
    });
    let status_file = PathBuf::from(format!("/proc/{}/status", child.id()));
    let mut peak_kb: Option<f64> = None;
    let status = loop {
        if let Some(kb) = vm_hwm_kb(&status_file) {
            peak_kb = Some(peak_kb.map_or(kb, |p| p.max(kb)));
        }
        match child.try_wait() {
            Ok(Some(status)) => break status,
            Ok(None) => std::thread::sleep(RSS_POLL),
            Err(e) => return Err(format!("waiting for {what}: {e}")),
        }
    };
    let stdout = reader
        .join()
        .map_err(|_| format!("the thread reading {what}'s output panicked"))?
        .map_err(|e| format!("reading {what}'s output: {e}"))?;
    if !status.success() {
        return Err(format!("{what} failed ({status}); its stderr is above"));
    }
    Ok((stdout, peak_kb.map(|kb| kb / 1024.0)))
}

/// The VmHWM line of a `/proc/<pid>/status` file, in kB.
pub fn vm_hwm_kb(status_file: &Path) -> Option<f64> {
    let status = std::fs::read_to_string(status_file).ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

/// The 1-minute load average (/proc/loadavg), a record of how busy the machine was.
pub fn loadavg_1m() -> Option<f64> {
    std::fs::read_to_string("/proc/loadavg").ok()?.split_whitespace().next()?.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A line torch_ref.py printed on this machine (`--config tiny --variant post --steps 20
    /// --warmup 5 --threads 1`, torch 2.15.0, 2026-11-22).
    const SAMPLE: &str = r#"{"config": "tiny", "variant": "post", "threads": 1, "mode": "eager", "attn": "sdpa", "adam": "default", "act": "gelu_tanh", "ms_per_step": 8.869, "tokens_per_s": 57727.0, "ms_min": 8.549, "ms_mean": 8.932, "fwd_ms": 3.089, "bwd_ms": 4.209, "opt_ms": 1.515, "steps": 20, "warmup": 5, "gflops_per_step": 0.3397, "achieved_gflops": 38.3, "params": 110208, "final_loss": 3.9517, "bg_cores": 1.005, "torch": "2.15.0+cu132"}"#;

    #[test]
    fn torch_hvp_output_line_is_parsed_and_checked() {
        let line = r#"{"config": "tiny", "variant": "post", "threads": 1, "grad_ms": 4.5, "hvp_ms": 13.2, "hvp_over_grad": 2.933, "steps": 5, "torch": "2.15.0"}"#;
        let h = parse_hvp_output(&format!("warning\n{line}\n")).unwrap();
        assert_eq!(h, TorchHvp { grad_ms: 4.5, hvp_ms: 13.2, steps: 5 });
        let bad = line.replace("\"hvp_ms\": 13.2", "\"hvp_ms\": 0");
        assert!(parse_hvp_output(&bad).unwrap_err().contains("hvp_ms"));
        assert!(parse_hvp_output("no json").is_err());
    }

    #[test]
    fn torch_ref_output_line_is_parsed() {
        let out = format!("some warning\n{SAMPLE}\n\n");
        let t = parse_output(&out).unwrap();
        assert_eq!((t.config.as_str(), t.variant.as_str(), t.threads), ("tiny", "post", 1));
        assert_eq!(
            (t.ms_per_step, t.forward_ms, t.backward_ms, t.optimizer_ms),
            (8.869, 3.089, 4.209, 1.515)
        );
        assert_eq!((t.tokens_per_s, t.steps, t.bg_cores), (57727.0, 20, Some(1.005)));
        assert_eq!(t.torch_version.as_deref(), Some("2.15.0+cu132"));
    }

    #[test]
    fn torch_ref_output_without_json_or_fields_is_an_error() {
        let e = parse_output("Traceback (most recent call last):\nImportError\n").unwrap_err();
        assert!(e.contains("no JSON line"), "{e}");
        let e = parse_output(&SAMPLE.replace("\"fwd_ms\"", "\"forward\"")).unwrap_err();
        assert!(e.contains("`fwd_ms`"), "{e}");
        let e = parse_output(&SAMPLE.replace("8.869", "0.0")).unwrap_err();
        assert!(e.contains("ms_per_step"), "{e}");
    }

    /// A scratch directory of this test process.
    fn scratch(name: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!("saturn-bench-{}-{name}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        dir
    }

    /// An executable shell script standing in for a Python: `import torch` works iff `torch`.
    #[cfg(unix)]
    fn fake_python(dir: &Path, name: &str, torch: bool) -> PathBuf {
        use std::os::unix::fs::PermissionsExt;
        let path = dir.join(name);
        let body = if torch {
            "#!/bin/sh\necho 9.9.9+fake\n"
        } else {
            "#!/bin/sh\necho \"ModuleNotFoundError: No module named 'torch'\" >&2\nexit 1\n"
        };
        std::fs::write(&path, body).unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).unwrap();
        path
    }

    #[test]
    fn no_python_with_torch_is_a_clear_error() {
        let dir = scratch("none");
        let search = PythonSearch {
            explicit: Some(dir.join("missing-python")),
            venv: Some(dir.join(".venv-torch/bin/python")),
            system: dir.join("python3-missing"),
        };
        let e = find_python(&search).unwrap_err();
        assert_eq!(e.tried.len(), 3);
        let msg = e.to_string();
        assert!(msg.starts_with("no Python with torch found"), "{msg}");
        assert!(msg.contains("SATURN_TORCH_PYTHON") && msg.contains("missing-python"), "{msg}");
        assert!(msg.contains("cannot run it"), "{msg}");
    }

    #[cfg(unix)]
    #[test]
    fn python_search_falls_back_to_the_first_one_with_torch() {
        let dir = scratch("fallback");
        let without = fake_python(&dir, "python-without-torch", false);
        let with = fake_python(&dir, "python-with-torch", true);
        let search = PythonSearch {
            explicit: Some(without.clone()),
            venv: Some(dir.join("missing")),
            system: with.clone(),
        };
        let found = find_python(&search).unwrap();
        assert_eq!((found.python, found.torch_version.as_str()), (with, "9.9.9+fake"));

        let search = PythonSearch { explicit: None, venv: None, system: without };
        let e = find_python(&search).unwrap_err().to_string();
        assert!(e.contains("No module named 'torch'"), "{e}");
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
