//! Killed anywhere, resumed identically: a cell of each kind of long run — a char-LM training
//! run (`lm-baseline`), a translation training run (`warmup`), and a Hessian measurement
//! (`hessian`, its phases) — is SIGKILLed at seeded failpoints (`saturn_tensor::failpoint`:
//! every training step, and the start, middle and end of every atomic write: checkpoints,
//! metrics, measurements, cell records) and at a timed moment, then resumed with `--resume`;
//! the cell's output, its metrics and its last checkpoint must equal an uninterrupted run's bit
//! for bit, and a resume after a checkpoint must not start over.
//!
//! The kill points are drawn from a seed printed at the start (`SATURN_KILL_SEED=N` replays
//! them); each kill prints its failpoint number and name. Each kind's tiny config is its
//! `tests/tiny/NAME.toml`, seed 0, cell 0, one thread. The default run kills each kind at 2
//! drawn failpoints and once timed (9 kills, ≈ 30 s); `cargo xtask test --full`
//! (`SATURN_FULL_TESTS=1`) at 6 and once timed (21 kills).

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::Duration;

/// Kill points per kind drawn from the failpoints (plus one timed kill each): 2 in the default
/// run, 6 with `SATURN_FULL_TESTS=1`.
fn points_per_kind() -> usize {
    if std::env::var_os("SATURN_FULL_TESTS").is_some_and(|v| v == "1") { 6 } else { 2 }
}

const KINDS: [&str; 3] = ["lm-baseline", "warmup", "hessian"];

fn tiny(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/tiny").join(format!("{name}.toml"))
}

fn cell(name: &str, out: &Path, resume: bool) -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_saturn"));
    cmd.args([
        "experiment",
        name,
        "--quick",
        "--seeds",
        "0",
        "--threads",
        "1",
        "--cell",
        "0",
        "--config",
    ])
    .arg(tiny(name))
    .arg("--out")
    .arg(out)
    .env_remove("SATURN_KILL_AT")
    .env_remove("SATURN_FAILPOINT_LOG");
    if resume {
        cmd.arg("--resume");
    }
    cmd
}

fn succeed(cmd: &mut Command, what: &str) -> Output {
    let out = cmd.output().unwrap();
    assert!(
        out.status.success(),
        "{what} failed ({}): {}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

/// The failpoint names of a run, in order, from its log.
fn failpoints(log: &Path) -> Vec<String> {
    std::fs::read_to_string(log)
        .unwrap_or_default()
        .lines()
        .map(|l| l.split_once(' ').map_or(l, |(_, name)| name).to_string())
        .collect()
}

/// What must be equal after a resume: the cell's record (without wall time and process), its
/// metrics, and the files of its latest checkpoint, by relative path.
fn fingerprint(run: &Path, name: &str) -> Vec<(String, Vec<u8>)> {
    let cells = run.join(name).join("cells");
    let mut files = Vec::new();
    let mut stack = vec![cells.clone()];
    while let Some(dir) = stack.pop() {
        for entry in std::fs::read_dir(&dir).unwrap() {
            let path = entry.unwrap().path();
            let rel = path.strip_prefix(&cells).unwrap().to_string_lossy().into_owned();
            if path.is_dir() {
                stack.push(path);
            } else if rel.ends_with("cell.ron") {
                let text = std::fs::read_to_string(&path).unwrap();
                files.push((rel, saturn_lab::cells::without_provenance(&text).into_bytes()));
            } else if rel.ends_with(".csv")
                || rel.ends_with(".safetensors")
                || rel.ends_with("state.json")
                || rel.ends_with("latest")
                || rel.ends_with("measurement.json")
            {
                files.push((rel, std::fs::read(&path).unwrap()));
            }
        }
    }
    files.sort();
    files
}

/// A small deterministic generator for the kill points (splitmix64).
fn next(state: &mut u64) -> u64 {
    *state = state.wrapping_add(0x9E37_79B9_7F4A_7C15);
    let mut z = *state;
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

#[test]
fn a_cell_killed_anywhere_resumes_to_the_same_bits() {
    let seed: u64 =
        std::env::var("SATURN_KILL_SEED").ok().and_then(|s| s.parse().ok()).unwrap_or(20261207);
    eprintln!("kill points drawn with SATURN_KILL_SEED={seed}");
    let mut rng = seed;
    let root = std::env::temp_dir().join(format!("saturn-kill-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&root);
    let mut kills = 0;
    let points_per_kind = points_per_kind();
    for name in KINDS {
        // the uninterrupted run, listing its failpoints
        let reference = root.join(format!("{name}-reference"));
        let log = root.join(format!("{name}.failpoints"));
        std::fs::create_dir_all(&root).unwrap();
        succeed(cell(name, &reference, false).env("SATURN_FAILPOINT_LOG", &log), name);
        let points = failpoints(&log);
        let steps = points.iter().filter(|p| *p == "train:step").count();
        assert!(points.len() > points_per_kind, "{name}: only {} failpoints", points.len());
        let expected = fingerprint(&reference, name);

        let mut chosen: Vec<u64> = Vec::new();
        while chosen.len() < points_per_kind {
            let n = 1 + next(&mut rng) % points.len() as u64;
            if !chosen.contains(&n) {
                chosen.push(n);
            }
        }
        chosen.sort_unstable();
        for &n in &chosen {
            let what = format!("{name} killed at failpoint {n} ({})", points[n as usize - 1]);
            let out = root.join(format!("{name}-kill{n}"));
            let killed =
                cell(name, &out, false).env("SATURN_KILL_AT", n.to_string()).output().unwrap();
            assert!(!killed.status.success(), "{what}: the process was not killed");
            let resume_log = root.join(format!("{name}-kill{n}.failpoints"));
            let had_checkpoint = checkpoint_exists(&out.join(name));
            succeed(cell(name, &out, true).env("SATURN_FAILPOINT_LOG", &resume_log), &what);
            assert!(fingerprint(&out, name) == expected, "{what}: the resumed cell differs");
            if had_checkpoint {
                let resumed_steps =
                    failpoints(&resume_log).iter().filter(|p| *p == "train:step").count();
                assert!(resumed_steps < steps, "{what}: the resume started over");
            }
            eprintln!("{what}: resumed to the same bits");
            kills += 1;
            let _ = std::fs::remove_dir_all(&out);
        }

        // a timed kill, somewhere in the middle of the run
        let out = root.join(format!("{name}-timed"));
        let mut child = cell(name, &out, false)
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap();
        std::thread::sleep(Duration::from_millis(300 + next(&mut rng) % 700));
        let _ = child.kill(); // SIGKILL (it may have finished already: then the resume is a no-op)
        let _ = child.wait();
        succeed(&mut cell(name, &out, true), &format!("{name} after a timed kill"));
        assert!(
            fingerprint(&out, name) == expected,
            "{name}: the cell resumed after a timed kill differs"
        );
        kills += 1;
    }
    eprintln!("{kills} kills, every one resumed to the same bits");
    let _ = std::fs::remove_dir_all(&root);
}

fn checkpoint_exists(run: &Path) -> bool {
    let cells = run.join("cells");
    std::fs::read_dir(&cells).is_ok_and(|entries| {
        entries.flatten().any(|e| e.path().join("checkpoints").join("latest").exists())
    })
}
