//! `cargo xtask fuzz`: runs the fuzz targets of `fuzz/` (their code is `saturn_lab::fuzz`) with
//! cargo-fuzz on the stable toolchain (`--sanitizer none`: libFuzzer's coverage guidance without
//! a sanitizer; Rust's own checks — bounds, overflow in debug assertions, `unwrap` — still turn
//! a bad input into a crash).
//!
//! Each target's corpus is `target/fuzz-corpus/TARGET/`, filled from the committed seeds
//! (`fuzz/seeds/TARGET/`), the committed findings (`fuzz/regressions/TARGET/`) and real files
//! where they are (the MiniLM files, the first Multi30k validation lines — read from the data
//! directory, never committed). Findings are written by libFuzzer to `fuzz/artifacts/TARGET/`.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

const TARGETS: [&str; 7] = [
    "safetensors",
    "checkpoint_state",
    "config_toml",
    "bert_config",
    "wordpiece",
    "bpe_word",
    "multi30k",
];

pub fn run(args: &[String]) -> Result<ExitCode, String> {
    let mut seconds = 90u64;
    let mut chosen = Vec::new();
    let mut it = args.iter();
    while let Some(a) = it.next() {
        match a.as_str() {
            "--seconds" => {
                seconds = it
                    .next()
                    .and_then(|n| n.parse().ok())
                    .ok_or("--seconds needs a whole number")?
            }
            t if TARGETS.contains(&t) => chosen.push(t),
            other => {
                return Err(format!(
                    "unknown fuzz target `{other}` (targets: {})",
                    TARGETS.join(", ")
                ));
            }
        }
    }
    if chosen.is_empty() {
        chosen = TARGETS.to_vec();
    }
    crate::setup::ensure(true)?;
    ensure_cargo_fuzz()?;
    let root = crate::workspace_root();
    let mut failed = Vec::new();
    for target in chosen {
        let corpus = prepare_corpus(&root, target)?;
        println!("fuzz: {target} for {seconds} s (corpus {})", corpus.display());
        let mut cmd = crate::cargo();
        cmd.args(["fuzz", "run", "--sanitizer", "none", "--release", target])
            .arg(&corpus)
            .arg("--")
            .arg(format!("-max_total_time={seconds}"))
            .args(["-timeout=10", "-rss_limit_mb=4096", "-max_len=65536", "-print_final_stats=1"]);
        let status = cmd.status().map_err(|e| format!("could not run cargo fuzz: {e}"))?;
        if !status.success() {
            failed.push(target);
        }
    }
    if failed.is_empty() {
        println!("fuzz: no findings");
        Ok(ExitCode::SUCCESS)
    } else {
        eprintln!(
            "fuzz: findings in {}: see fuzz/artifacts/TARGET/; reproduce with `cargo fuzz run -s none TARGET FILE`, \
             fix, then copy the input into fuzz/regressions/TARGET/ (replayed by `cargo xtask test`)",
            failed.join(", ")
        );
        Ok(ExitCode::FAILURE)
    }
}

fn ensure_cargo_fuzz() -> Result<(), String> {
    let found =
        crate::cargo().args(["fuzz", "--version"]).output().is_ok_and(|o| o.status.success());
    if found {
        return Ok(());
    }
    println!("fuzz: installing cargo-fuzz from crates.io (cargo install cargo-fuzz --locked)");
    let status = crate::cargo()
        .args(["install", "cargo-fuzz", "--locked"])
        .status()
        .map_err(|e| format!("could not run cargo install: {e}"))?;
    if status.success() { Ok(()) } else { Err("cargo install cargo-fuzz failed".into()) }
}

/// `target/fuzz-corpus/TARGET/` with the committed seeds and findings and the real files.
fn prepare_corpus(root: &Path, target: &str) -> Result<PathBuf, String> {
    let corpus = root.join("target/fuzz-corpus").join(target);
    std::fs::create_dir_all(&corpus).map_err(|e| format!("{}: {e}", corpus.display()))?;
    for kind in ["seeds", "regressions"] {
        let Ok(entries) = std::fs::read_dir(root.join("fuzz").join(kind).join(target)) else {
            continue;
        };
        for entry in entries.flatten() {
            let to = corpus.join(format!("{kind}-{}", entry.file_name().to_string_lossy()));
            std::fs::copy(entry.path(), &to).map_err(|e| format!("{}: {e}", to.display()))?;
        }
    }
    let data = std::env::var_os("SATURN_DATA")
        .map(PathBuf::from)
        .unwrap_or_else(|| root.join("../shared/data"));
    let head = |path: PathBuf, bytes: usize| -> Option<Vec<u8>> {
        std::fs::read(path).ok().map(|mut b| {
            b.truncate(bytes);
            b
        })
    };
    let lines = |path: PathBuf, n: usize| -> Option<Vec<u8>> {
        std::fs::read_to_string(path)
            .ok()
            .map(|t| t.lines().take(n).collect::<Vec<_>>().join("\n").into_bytes())
    };
    let real: Vec<(&str, Option<Vec<u8>>)> = match target {
        // the header and first tensors of all-MiniLM-L6-v2
        "safetensors" => vec![("minilm-head", head(data.join("minilm/model.safetensors"), 65536))],
        "bert_config" => vec![("minilm-config", head(data.join("minilm/config.json"), 65536))],
        "wordpiece" => vec![(
            "minilm-vocab",
            head(data.join("minilm/vocab.txt"), 32768).map(|mut v| {
                v.extend(b"\0A man in a blue shirt, unaffable!");
                v
            }),
        )],
        "multi30k" => vec![(
            "multi30k-val",
            lines(data.join("multi30k/val.de"), 20)
                .zip(lines(data.join("multi30k/val.en"), 20))
                .map(|(mut de, en)| {
                    de.push(0);
                    de.extend(en);
                    de
                }),
        )],
        "config_toml" => std::fs::read_dir(root.join("crates/lab/tests/tiny"))
            .map(|entries| {
                entries.flatten().map(|e| ("tiny", std::fs::read(e.path()).ok())).collect()
            })
            .unwrap_or_default(),
        _ => Vec::new(),
    };
    for (i, (name, bytes)) in real.into_iter().enumerate() {
        if let Some(bytes) = bytes {
            std::fs::write(corpus.join(format!("real-{name}-{i}")), bytes)
                .map_err(|e| format!("{}: {e}", corpus.display()))?;
        }
    }
    Ok(corpus)
}

#[cfg(test)]
mod tests {
    #[test]
    fn every_target_has_a_file() {
        let root = crate::workspace_root();
        for t in super::TARGETS {
            assert!(root.join("fuzz/fuzz_targets").join(format!("{t}.rs")).is_file(), "{t}");
        }
    }
}
