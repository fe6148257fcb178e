//! A training run's TensorBoard event file: it holds every metrics row at its step, a resumed run
//! neither loses nor doubles a step, and TensorBoard's own reader (PyPI `tensorboard`, installed
//! by `cargo xtask setup --tensorboard` into `target/py-tensorboard`) reads the same scalars.

use std::path::{Path, PathBuf};
use std::process::Command;

use saturn_lab::LabError;
use saturn_lab::metrics::Metrics;
use saturn_lab::run_dir::RunDir;
use saturn_lab::tasks::char_corpus::CharCorpus;
use saturn_lab::tensorboard::{Event, EventKind, FILE_VERSION, event_files, read_event_file};
use saturn_lab::train::{LmTask, TrainConfig, TrainOutcome, train};
use saturn_layers::{DecoderLm, LmConfig, ResidualScheme};
use saturn_optim::{AdamConfig, OptimizerConfig, Schedule};

fn tmp(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("saturn-tb-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    dir
}

fn tiny_model(corpus: &CharCorpus) -> DecoderLm<f32> {
    let cfg =
        LmConfig { residual: ResidualScheme::PreLn, ..LmConfig::new(corpus.vocab, 8, 1, 16, 1, 8) };
    DecoderLm::new(cfg, 1).unwrap()
}

fn tiny_train() -> TrainConfig {
    TrainConfig {
        steps: 20,
        optimizer: OptimizerConfig::AdamW(AdamConfig::default()),
        schedule: Schedule::constant(3e-3).unwrap(),
        clip: Some(1.0),
        eval_every: 5,
        log_every: 2,
        checkpoint_every: 5,
    }
}

fn task(corpus: &CharCorpus) -> LmTask<'_> {
    LmTask {
        train: &corpus.train,
        valid: &corpus.valid,
        vocab: corpus.vocab,
        batch_size: 2,
        seq_len: 8,
        eval_batches: 1,
        seed: 7,
    }
}

/// The one event file of `dir`, read and checked (framing, CRCs, protocol buffers).
/// An uninterrupted tiny run in `dir` whose observer adds `measured` at every evaluation.
fn train_from_scratch(
    corpus: &CharCorpus,
    dir: &RunDir,
    label: &str,
    measured: &[(&str, f64)],
) -> TrainOutcome {
    let mut observe = |_: usize, _: &DecoderLm<f32>| {
        Ok(measured.iter().map(|(name, v)| (name.to_string(), *v)).collect())
    };
    train(&tiny_model(corpus), &task(corpus), &tiny_train(), dir, false, label, &mut observe)
        .unwrap()
}

fn the_events(dir: &Path) -> Vec<Event> {
    let files = event_files(dir).unwrap();
    assert_eq!(files.len(), 1, "one event file per run directory: {files:?}");
    let events = read_event_file(&files[0]).unwrap();
    assert_eq!(events[0].kind, EventKind::FileVersion(FILE_VERSION.into()));
    events[1..].to_vec()
}

/// (step, tag, value as f32) of every metric, in row order.
fn expected(metrics: &Metrics) -> Vec<(i64, String, f32)> {
    metrics
        .rows
        .iter()
        .flat_map(|r| r.values.iter().map(|(k, &v)| (r.step as i64, k.clone(), v as f32)))
        .collect()
}

fn scalars(events: &[Event]) -> Vec<(i64, String, f32)> {
    events
        .iter()
        .flat_map(|e| match &e.kind {
            EventKind::Scalars(values) => {
                values.iter().map(|(tag, x)| (e.step, tag.clone(), *x)).collect::<Vec<_>>()
            }
            other => panic!("a metrics event holds scalars, not {other:?}"),
        })
        .collect()
}

#[test]
fn the_event_file_holds_every_metrics_row_at_its_step() {
    let corpus = CharCorpus::tiny_shakespeare().unwrap();
    let dir = RunDir::create(&tmp("whole"), "run").unwrap();
    let out = train_from_scratch(&corpus, &dir, "tb", &[("norm", 1.5)]);
    let got = scalars(&the_events(&dir.path));
    assert_eq!(got, expected(&out.metrics));
    for tag in ["train_loss", "valid_loss", "lr", "grad_norm", "norm"] {
        assert!(got.iter().any(|(_, t, _)| t == tag), "no {tag}");
    }
    let _ = std::fs::remove_dir_all(tmp("whole"));
}

#[test]
fn a_resumed_run_neither_loses_nor_doubles_a_step() {
    let corpus = CharCorpus::tiny_shakespeare().unwrap();
    let (task, cfg) = (task(&corpus), tiny_train());
    let dir = RunDir::create(&tmp("resume"), "run").unwrap();
    // interrupted at step 14: rows up to step 12 are in the event file, the checkpoint is at 10
    let stop = |step: usize, _: &DecoderLm<f32>| {
        if step == 14 { Err(LabError::Run("interrupted".into())) } else { Ok(vec![]) }
    };
    assert!(train(&tiny_model(&corpus), &task, &cfg, &dir, false, "a", &mut { stop }).is_err());
    let before = the_events(&dir.path);
    assert_eq!(before.last().unwrap().step, 12);

    let out =
        train(&tiny_model(&corpus), &task, &cfg, &dir, true, "b", &mut |_, _| Ok(vec![])).unwrap();
    let after = the_events(&dir.path);
    assert_eq!(scalars(&after), expected(&out.metrics), "every row once, in order");
    let steps: Vec<i64> = after.iter().map(|e| e.step).collect();
    assert_eq!(steps, [0, 2, 4, 5, 6, 8, 10, 12, 14, 15, 16, 18, 20]);
    // the rows restored from the checkpoint keep the wall times they were first written with
    for (old, new) in before.iter().zip(&after).take_while(|(o, _)| o.step <= 10) {
        assert_eq!((old.step, old.wall_time), (new.step, new.wall_time));
    }

    // a fresh start in the same directory replaces the old events
    let fresh =
        train(&tiny_model(&corpus), &task, &cfg, &dir, false, "c", &mut |_, _| Ok(vec![])).unwrap();
    assert_eq!(scalars(&the_events(&dir.path)), expected(&fresh.metrics));
    let _ = std::fs::remove_dir_all(tmp("resume"));
}

/// `target/py-tensorboard` of the workspace.
fn py_tensorboard() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../target/py-tensorboard")
}

/// Prints `tag step value` for every scalar TensorBoard's `EventAccumulator` reads from the run
/// directory `sys.argv[1]`.
const READER: &str = "\
import sys
from tensorboard.backend.event_processing import event_accumulator as ea
acc = ea.EventAccumulator(sys.argv[1], size_guidance={ea.SCALARS: 0})
acc.Reload()
for tag in acc.Tags()['scalars']:
    for s in acc.Scalars(tag):
        print(tag, s.step, repr(s.value))
";

#[test]
fn tensorboard_reads_the_same_scalars() {
    let site = py_tensorboard();
    if !site.join("tensorboard").is_dir() {
        eprintln!(
            "note: skipped, PyPI's tensorboard is not in {} (run `cargo xtask setup --tensorboard`)",
            site.display()
        );
        return;
    }
    let corpus = CharCorpus::tiny_shakespeare().unwrap();
    let dir = RunDir::create(&tmp("python"), "run").unwrap();
    let out = train_from_scratch(&corpus, &dir, "py", &[]);
    let python = match Command::new("python3")
        .env("PYTHONPATH", &site)
        .args(["-c", READER])
        .arg(&dir.path)
        .output()
    {
        Ok(output) => output,
        Err(e) => {
            eprintln!("note: skipped, python3 does not run: {e}");
            return;
        }
    };
    assert!(
        python.status.success(),
        "TensorBoard's reader failed: {}",
        String::from_utf8_lossy(&python.stderr)
    );
    let mut got: Vec<(i64, String, f32)> = String::from_utf8(python.stdout)
        .unwrap()
        .lines()
        .map(|line| {
            let f: Vec<&str> = line.split(' ').collect();
            let value: f64 = f[2].parse().unwrap();
            (f[1].parse().unwrap(), f[0].to_string(), value as f32)
        })
        .collect();
    let mut want = expected(&out.metrics);
    // TensorBoard lists by tag, then step
    got.sort_by(|a, b| (&a.1, a.0).cmp(&(&b.1, b.0)));
    want.sort_by(|a, b| (&a.1, a.0).cmp(&(&b.1, b.0)));
    assert_eq!(got, want);
    let _ = std::fs::remove_dir_all(tmp("python"));
}
