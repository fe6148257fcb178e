//! The last step of `cargo xtask test`: run the examples of `examples/` (package
//! `saturn-examples`) at their quick settings, so that a change that breaks them fails the tests.
//!
//! The binaries are the ones `cargo test --workspace` has just built (it builds every example
//! to check that it compiles): asked of cargo with `--no-run --message-format=json`, which builds
//! nothing new, and run directly — no `cargo run`, which would build the dev profile's copy of
//! every dependency a second time. `minilm_heads` needs all-MiniLM-L6-v2 from the data
//! directory and is skipped, saying so, when it is not there.

use std::path::PathBuf;
use std::process::{Command, ExitCode, Stdio};
use std::time::Instant;

use crate::{cargo, coretype, run, workspace_root};

/// The examples and the arguments of their quick settings (a few seconds each).
const EXAMPLES: [(&str, &[&str]); 2] =
    [("train_char_lm", &["--steps", "100", "--seed", "0"]), ("minilm_heads", &[])];

/// Runs every example that the test run built; the first failure ends the run with its exit
/// code.
pub(crate) fn run_all(extra: &[&String]) -> Result<ExitCode, String> {
    let binaries = example_binaries(extra)?;
    for (name, args) in EXAMPLES {
        // cargo flags such as `--lib` or `--tests` build no examples: nothing to run then
        let Some(binary) = binaries.iter().find(|(n, _)| n == name).map(|(_, p)| p) else {
            eprintln!("xtask: example {name} skipped: these cargo flags build no example binary");
            continue;
        };
        if name == "minilm_heads"
            && let Err(reason) = minilm_dir()
        {
            eprintln!("xtask: example {name} skipped: {reason}");
            continue;
        }
        let mut cmd = Command::new(binary);
        cmd.args(args).current_dir(workspace_root());
        if let Some(core) = coretype::for_this_machine() {
            cmd.env("OPENBLAS_CORETYPE", core);
        }
        // what .cargo/config.toml gives cargo's own processes: one OpenBLAS thread unless set
        if std::env::var_os("OPENBLAS_NUM_THREADS").is_none() {
            cmd.env("OPENBLAS_NUM_THREADS", "1");
        }
        eprintln!("xtask: example {name} {}", args.join(" "));
        let start = Instant::now();
        let code = run(cmd, &format!("the example {name}"))?;
        eprintln!("xtask: example {name} took {:.1} s", start.elapsed().as_secs_f64());
        if code != ExitCode::SUCCESS {
            return Ok(code);
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// The example binaries the workspace test run built, by name (asked of cargo with the same
/// cargo flags, e.g. a profile, so that it names the same build).
fn example_binaries(extra: &[&String]) -> Result<Vec<(String, PathBuf)>, String> {
    let out = cargo()
        .args(["test", "--workspace", "--no-run", "--message-format=json"])
        .args(extra.iter().take_while(|a| a.as_str() != "--").filter(|a| a.starts_with("--")))
        .stderr(Stdio::null())
        .output()
        .map_err(|e| format!("could not ask cargo for the example binaries: {e}"))?;
    let text = String::from_utf8_lossy(&out.stdout);
    Ok(text
        .lines()
        .filter(|l| l.contains("\"kind\":[\"example\"]"))
        .filter_map(|l| {
            Some((field(l, "\"name\":\"")?, PathBuf::from(field(l, "\"executable\":\"")?)))
        })
        .collect())
}

/// The string value that follows `key` in one line of cargo's JSON (no escapes in our names).
fn field(line: &str, key: &str) -> Option<String> {
    let start = line.find(key)? + key.len();
    let end = start + line[start..].find('"')?;
    Some(line[start..end].to_string())
}

/// The directory of all-MiniLM-L6-v2 as the example looks for it (`SATURN_DATA`, else
/// `../shared/data` beside the workspace, then `minilm/`), or why it is not there.
fn minilm_dir() -> Result<PathBuf, String> {
    let data = match std::env::var_os("SATURN_DATA").filter(|v| !v.is_empty()) {
        Some(dir) => PathBuf::from(dir),
        None => workspace_root().join("..").join("shared").join("data"),
    };
    let dir = data.join("minilm");
    for file in ["config.json", "model.safetensors", "tokenizer.json"] {
        if !dir.join(file).is_file() {
            return Err(format!("{} is missing (set SATURN_DATA)", dir.join(file).display()));
        }
    }
    Ok(dir)
}
