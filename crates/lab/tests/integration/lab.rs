//! The lab's guarantees: bit-identical resume, determinism, the summary schema, refused config
//! keys, and divergence recorded without aborting.

use std::path::PathBuf;

use saturn_lab::config::Preset;
use saturn_lab::experiments::find;
use saturn_lab::run_dir::RunDir;
use saturn_lab::tasks::char_corpus::CharCorpus;
use saturn_lab::train::{LmTask, Task, TrainConfig, train};
use saturn_lab::{LabError, RunOptions, run_experiment};
use saturn_layers::{DecoderLm, LmConfig, Module, ResidualScheme};
use saturn_optim::{AdamConfig, OptimizerConfig, Schedule};
use saturn_tensor::Tensor;

fn tmp(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("saturn-lab-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    dir
}

fn tiny_model(corpus: &CharCorpus, seed: u64) -> DecoderLm<f32> {
    let cfg = LmConfig {
        residual: ResidualScheme::PreLn,
        dropout: 0.1,
        ..LmConfig::new(corpus.vocab, 16, 2, 32, 1, 16)
    };
    DecoderLm::new(cfg, seed).unwrap()
}

fn tiny_train(steps: usize) -> TrainConfig {
    TrainConfig {
        steps,
        optimizer: OptimizerConfig::AdamW(AdamConfig {
            weight_decay: 0.01,
            ..AdamConfig::default()
        }),
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
        batch_size: 4,
        seq_len: 16,
        eval_batches: 2,
        seed: 7,
    }
}

fn params(model: &DecoderLm<f32>) -> Vec<Vec<f32>> {
    model.parameters().iter().map(Tensor::to_vec).collect()
}

#[test]
fn a_resumed_run_is_bit_identical_to_an_uninterrupted_one() {
    let corpus = CharCorpus::tiny_shakespeare().unwrap();
    let task = task(&corpus);
    let cfg = tiny_train(20);

    let whole = tiny_model(&corpus, 1);
    let dir_a = RunDir::create(&tmp("resume-a"), "run").unwrap();
    let a = train(&whole, &task, &cfg, &dir_a, false, "a", &mut |_, _| Ok(vec![])).unwrap();

    // interrupted at step 12, after the checkpoint at step 10
    let dir_b = RunDir::create(&tmp("resume-b"), "run").unwrap();
    let first = tiny_model(&corpus, 1);
    let stop = |step: usize, _: &DecoderLm<f32>| {
        if step == 12 { Err(LabError::Run("interrupted".into())) } else { Ok(vec![]) }
    };
    assert!(train(&first, &task, &cfg, &dir_b, false, "b", &mut { stop }).is_err());
    // a fresh process: another init, restored from the checkpoint
    let resumed = tiny_model(&corpus, 99);
    let b = train(&resumed, &task, &cfg, &dir_b, true, "b", &mut |_, _| Ok(vec![])).unwrap();

    assert_eq!(a.metrics, b.metrics);
    assert_eq!(params(&whole), params(&resumed));
    assert_eq!(
        std::fs::read_to_string(dir_a.file("metrics.csv")).unwrap(),
        std::fs::read_to_string(dir_b.file("metrics.csv")).unwrap()
    );
}

#[test]
fn an_unreadable_latest_checkpoint_falls_back_to_the_previous_one_and_never_starts_over() {
    let corpus = CharCorpus::tiny_shakespeare().unwrap();
    let task = task(&corpus);
    let cfg = tiny_train(20);
    let whole = tiny_model(&corpus, 1);
    let dir_a = RunDir::create(&tmp("fallback-a"), "run").unwrap();
    let a = train(&whole, &task, &cfg, &dir_a, false, "a", &mut |_, _| Ok(vec![])).unwrap();

    // interrupted at step 12: checkpoints at 5 (the previous) and 10 (the latest)
    let dir_b = RunDir::create(&tmp("fallback-b"), "run").unwrap();
    let stop = |step: usize, _: &DecoderLm<f32>| {
        if step == 12 { Err(LabError::Run("interrupted".into())) } else { Ok(vec![]) }
    };
    assert!(
        train(&tiny_model(&corpus, 1), &task, &cfg, &dir_b, false, "b", &mut { stop }).is_err()
    );
    let checkpoints = dir_b.file("checkpoints");
    let truncate = |step: &str| {
        let file = checkpoints.join(step).join("model.safetensors");
        let bytes = std::fs::read(&file).unwrap();
        std::fs::write(&file, &bytes[..bytes.len() / 2]).unwrap();
    };
    truncate("step-00000010");
    let resumed = tiny_model(&corpus, 99);
    let b = train(&resumed, &task, &cfg, &dir_b, true, "b", &mut |_, _| Ok(vec![])).unwrap();
    assert_eq!(a.metrics, b.metrics, "resumed from step 5, the same run");
    assert_eq!(params(&whole), params(&resumed));

    // every checkpoint unreadable: an error, not a silent fresh start
    let dir_c = RunDir::create(&tmp("fallback-c"), "run").unwrap();
    let stop = |step: usize, _: &DecoderLm<f32>| {
        if step == 12 { Err(LabError::Run("interrupted".into())) } else { Ok(vec![]) }
    };
    assert!(
        train(&tiny_model(&corpus, 1), &task, &cfg, &dir_c, false, "c", &mut { stop }).is_err()
    );
    let checkpoints = dir_c.file("checkpoints");
    for step in ["step-00000005", "step-00000010"] {
        let file = checkpoints.join(step).join("model.safetensors");
        std::fs::write(&file, b"not a checkpoint").unwrap();
    }
    let err =
        train(&tiny_model(&corpus, 1), &task, &cfg, &dir_c, true, "c", &mut |_, _| Ok(vec![]))
            .unwrap_err()
            .to_string();
    assert!(err.contains("no checkpoint is readable") && err.contains("step-00000005"), "{err}");
}

#[test]
fn the_same_seed_gives_the_same_metrics() {
    let corpus = CharCorpus::tiny_shakespeare().unwrap();
    let task = task(&corpus);
    let run = |name: &str| {
        let model = tiny_model(&corpus, 3);
        train(
            &model,
            &task,
            &tiny_train(6),
            &RunDir::create(&tmp(name), "run").unwrap(),
            false,
            name,
            &mut |_, _| Ok(vec![]),
        )
        .unwrap()
        .metrics
    };
    assert_eq!(run("det-a"), run("det-b"));
}

/// A task whose loss becomes NaN at step 3.
struct Poisoned<'a>(LmTask<'a>);

impl Task for Poisoned<'_> {
    type Model = DecoderLm<f32>;
    fn train_loss(&self, model: &DecoderLm<f32>, step: usize) -> saturn_lab::Result<Tensor<f32>> {
        let loss = self.0.train_loss(model, step)?;
        Ok(if step == 3 { loss.mul_scalar(f64::NAN) } else { loss })
    }
    fn valid_loss(&self, model: &DecoderLm<f32>) -> saturn_lab::Result<f64> {
        self.0.valid_loss(model)
    }
    fn uniform_loss(&self) -> f64 {
        self.0.uniform_loss()
    }
}

#[test]
fn a_nan_loss_is_recorded_as_divergence_and_the_sweep_goes_on() {
    let corpus = CharCorpus::tiny_shakespeare().unwrap();
    let model = tiny_model(&corpus, 0);
    let out = train(
        &model,
        &Poisoned(task(&corpus)),
        &tiny_train(10),
        &RunDir::create(&tmp("nan"), "run").unwrap(),
        false,
        "nan",
        &mut |_, _| Ok(vec![]),
    )
    .unwrap();
    assert_eq!(out.diverged_at_step, Some(3));
    assert_eq!(out.steps, 3);
}

#[test]
fn the_summary_follows_the_schema() {
    let out = tmp("summary");
    std::fs::create_dir_all(&out).unwrap();
    let overrides = out.join("tiny.toml");
    std::fs::write(&overrides, "batch_size = 4\nseq_len = 16\neval_batches = 1\n[model]\nd_model = 16\nd_ff = 32\nn_layers = 1\n[train]\nsteps = 4\neval_every = 2\nlog_every = 2\ncheckpoint_every = 2\n").unwrap();
    let opts = RunOptions {
        config_file: Some(overrides),
        ..RunOptions::new(Preset::Quick, vec![0, 1], out.clone())
    };
    run_experiment(find("lm-baseline").unwrap(), &opts).unwrap();
    let text = std::fs::read_to_string(out.join("lm-baseline/summary.json")).unwrap();
    let v: serde_json::Value = serde_json::from_str(&text).unwrap();
    assert_eq!(v["experiment"], "lm-baseline");
    assert_eq!(v["preset"], "quick");
    assert_eq!(v["seeds"], serde_json::json!([0, 1]));
    assert!(v["wall_seconds"].as_f64().unwrap() > 0.0);
    let claim = &v["claims"][0];
    for key in ["id", "statement", "source", "expected", "measured", "holds"] {
        assert!(!claim[key].is_null(), "claim field {key} missing");
    }
    assert!(claim["holds"].is_boolean() && claim["measured"].is_object());
    assert_eq!(
        claim["measured"]["runs"].as_object().unwrap().len(),
        4,
        "every scheme × seed is counted"
    );
    assert!(
        out.join("lm-baseline/config.toml").exists()
            && out.join("lm-baseline/valid_loss.svg").exists()
            && out.join("lm-baseline/valid_loss.png").exists()
    );

    let report_dir = out.join("docs");
    assert_eq!(saturn_lab::report(&out, &report_dir, false).unwrap(), 1);
    let md = std::fs::read_to_string(report_dir.join("RESULTS.md")).unwrap();
    assert!(md.contains("## lm-baseline") && md.contains("figures/lm-baseline/valid_loss.png"));
    assert!(report_dir.join("results/lm-baseline.json").exists());
    assert!(report_dir.join("figures/lm-baseline/valid_loss.png").exists());

    // The record outlives the run directory: reporting again without it keeps the section.
    std::fs::remove_dir_all(out.join("lm-baseline")).unwrap();
    assert_eq!(saturn_lab::report(&out, &report_dir, false).unwrap(), 1);
    let again = std::fs::read_to_string(report_dir.join("RESULTS.md")).unwrap();
    assert_eq!(md, again);
}

#[test]
fn a_config_with_an_unknown_key_is_refused_naming_the_key() {
    let out = tmp("badkey");
    std::fs::create_dir_all(&out).unwrap();
    let overrides = out.join("bad.toml");
    std::fs::write(&overrides, "[train]\nstepz = 4\n").unwrap();
    let opts =
        RunOptions { config_file: Some(overrides), ..RunOptions::new(Preset::Quick, vec![0], out) };
    let err = run_experiment(find("lm-baseline").unwrap(), &opts).unwrap_err().to_string();
    assert!(err.contains("stepz"), "{err}");
    assert!(!err.contains('\n'), "one line: {err}");
}

#[test]
fn a_resumed_hessian_run_finishes_the_missing_phases_with_the_same_numbers() {
    let out = tmp("hessian-resume");
    std::fs::create_dir_all(&out).unwrap();
    let tiny = out.join("tiny.toml");
    let config = "layers = 1\npairs = 6\nbatch_size = 3\npower_iterations = 4\ntrace_probes = 3\n\
                  lanczos_steps = 5\nvocab = 300\nmax_len = 16\n\
                  [model]\nd_model = 8\nn_heads = 2\nd_ff = 16\n[scale]\nwidths = []\n";
    std::fs::write(&tiny, config).unwrap();
    let opts = RunOptions {
        config_file: Some(tiny.clone()),
        ..RunOptions::new(Preset::Quick, vec![0], out.clone())
    };
    let hessian = find("hessian").unwrap();
    let whole = run_experiment(hessian, &opts).unwrap();
    // a cell's phases are saved in its own directory; an unfinished cell has no `cell.ron`
    let cell = |label: &str| out.join("hessian/cells").join(label);
    // interrupted after the SLQ phase of Pre-LN: power iteration and trace are missing
    let saved = cell("pre-seed0").join("measurement.json");
    let mut m: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&saved).unwrap()).unwrap();
    m["power"] = serde_json::Value::Null;
    m["trace"] = serde_json::Value::Null;
    std::fs::write(&saved, m.to_string()).unwrap();
    std::fs::remove_file(cell("pre-seed0").join("cell.ron")).unwrap();
    let resumed = run_experiment(hessian, &RunOptions { resume: true, ..opts.clone() }).unwrap();
    assert_eq!(
        serde_json::to_value(&resumed.claims).unwrap(),
        serde_json::to_value(&whole.claims).unwrap()
    );
    // finished phases are read, not measured again
    let saved = cell("post-seed0").join("measurement.json");
    let mut m: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&saved).unwrap()).unwrap();
    m["trace"]["mean"] = serde_json::json!(1e6);
    // a record from before the runner chose the seeds (its key has `seeds = 1`) is still read
    m["config"]["seeds"] = serde_json::json!(1);
    std::fs::write(&saved, m.to_string()).unwrap();
    std::fs::remove_file(cell("post-seed0").join("cell.ron")).unwrap();
    let read = run_experiment(hessian, &RunOptions { resume: true, ..opts.clone() }).unwrap();
    let trace = read.claims.iter().find(|c| c.id == "post-ln-larger-total-curvature").unwrap();
    let measured = trace.measured["trace_hutchinson"].clone();
    assert_eq!(measured[0]["post_ln"], serde_json::json!(1e6), "{measured}");
    // more seeds reuse the finished ones: only the new seed's models are measured
    let more =
        run_experiment(hessian, &RunOptions { resume: true, seeds: vec![0, 1], ..opts.clone() })
            .unwrap();
    assert_eq!(more.seeds, vec![0, 1]);
    assert_eq!(trace_evidence_seeds(&more), vec![0, 1]);
    let trace = more.claims.iter().find(|c| c.id == "post-ln-larger-total-curvature").unwrap();
    assert_eq!(
        trace.measured["trace_hutchinson"][0]["post_ln"],
        serde_json::json!(1e6),
        "seed 0 was read"
    );
    assert!(cell("pre-seed1").join("measurement.json").exists());
    // a measurement of another config is not mixed in
    std::fs::write(&tiny, config.replace("lanczos_steps = 5", "lanczos_steps = 6")).unwrap();
    let err = run_experiment(hessian, &RunOptions { resume: true, ..opts }).unwrap_err();
    assert!(err.to_string().contains("another config"), "{err}");
}

fn trace_evidence_seeds(s: &saturn_lab::summary::Summary) -> Vec<u64> {
    let trace = s.claims.iter().find(|c| c.id == "post-ln-larger-total-curvature").unwrap();
    trace.evidence.as_ref().unwrap().seeds.clone()
}

#[test]
fn a_summary_lists_the_seeds_the_runner_extends_the_command_to() {
    let out = tmp("ds-seeds");
    std::fs::create_dir_all(&out).unwrap();
    let tiny = out.join("tiny.toml");
    let config = "schemes = [\"pre\"]\nshallow = 1\ndeep = 2\nbatch_size = 2\nvalid_pairs = 2\n\
                  vocab = 300\nmax_len = 16\n[model]\nd_model = 8\nn_heads = 2\nd_ff = 16\n\
                  [train]\nsteps = 1\neval_every = 1\nlog_every = 1\ncheckpoint_every = 0\n";
    std::fs::write(&tiny, config).unwrap();
    // the full preset of a trained experiment asks for 3 seeds
    let opts = RunOptions {
        extend_seeds: true,
        config_file: Some(tiny.clone()),
        ..RunOptions::new(Preset::Full, vec![5], out.clone())
    };
    let summary = run_experiment(find("depth-stability").unwrap(), &opts).unwrap();
    assert_eq!(summary.seeds, vec![5, 6, 7], "the command's seed and the two the runner adds");
    assert_eq!(summary.preset_seeds, 3);
    // the seed count is the runner's alone: the config no longer has a say
    std::fs::write(&tiny, format!("seeds = 2\n{config}")).unwrap();
    let err = run_experiment(find("depth-stability").unwrap(), &opts).unwrap_err();
    assert!(err.to_string().contains("seeds"), "{err}");
}
