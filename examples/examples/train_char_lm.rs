//! Train a tiny character-level language model on tiny-shakespeare with the library crates
//! (saturn-datasets, saturn-layers, saturn-optim; no lab), and watch two things happen at once:
//! the loss goes down and the parameter norm ‖θ‖ goes up — the norm growth that Merrill et al.
//! (2021) show drives attention towards saturation.
//!
//! ```sh
//! cargo run -p saturn-examples --example train_char_lm -- --steps 300 --seed 0
//! ```
//!
//! The recipe is the lab's char-LM one at toy scale: AdamW at a constant lr 1e-2, no weight
//! decay, no clipping, random windows of the training text.

use std::process::ExitCode;

use saturn_datasets::batch::{LmBatch, LmStream};
use saturn_datasets::rng::seeded_rng;
use saturn_datasets::tokenize::{CharTokenizer, Tokenizer};
use saturn_datasets::{TINY_SHAKESPEARE_VALID_FRACTION, tiny_shakespeare};
use saturn_layers::{DecoderLm, ForwardCtx, LmConfig, Module};
use saturn_optim::{Adam, AdamConfig, Optimizer};
use saturn_saturation::Snapshot;
use saturn_tensor::ndarray::ArrayView2;

type Error = Box<dyn std::error::Error>;

/// Windows per batch and characters per window.
const BATCH: usize = 16;
const SEQ_LEN: usize = 32;

fn main() -> ExitCode {
    match run() {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("train_char_lm: {e}");
            ExitCode::FAILURE
        }
    }
}

fn run() -> Result<(), Error> {
    let (steps, seed) = parse_args()?;
    // glibc keeps freed tensor buffers instead of unmapping them (docs/PERFORMANCE.md#malloc)
    saturn_tensor::alloc::tune_malloc();
    // OpenBLAS's idle workers sleep instead of spinning (docs/PERFORMANCE.md#threads)
    // SAFETY: before any thread of ours and any product.
    unsafe { saturn_tensor::blas::let_idle_workers_sleep() };

    // 1. Data: the embedded text, one id per character, split 90/10 as nanoGPT does.
    let text = tiny_shakespeare();
    let chars = CharTokenizer::from_text(text);
    let (train, valid) = LmStream::split(chars.encode(text)?, TINY_SHAKESPEARE_VALID_FRACTION)?;
    let vocab = chars.vocab_size();

    // 2. Model: a 2-layer Post-LN decoder (d = 32, 2 heads, d_ff = 64), seeded init.
    let model = DecoderLm::<f32>::new(LmConfig::new(vocab, 32, 2, 64, 2, SEQ_LEN), seed)?;
    println!(
        "char LM: vocab {vocab}, {} parameters, {steps} steps of {BATCH}×{SEQ_LEN} characters",
        model.num_parameters()
    );

    // 3. Optimizer over the named parameters: AdamW (β = (0.9, 0.999), ε = 1e-8, λ = 0).
    let mut opt = Adam::adamw(model.named_parameters(), AdamConfig::default())?;
    let lr = 1e-2;

    // Fixed validation windows, drawn once, so the validation loss is comparable across steps.
    let mut valid_rng = seeded_rng(seed ^ 0x5eed);
    let valid_batches: Vec<LmBatch> = (0..4)
        .map(|_| valid.random_batch(BATCH, SEQ_LEN, &mut valid_rng))
        .collect::<Result<_, _>>()?;

    println!("{:>6} {:>11} {:>11} {:>9}", "step", "train loss", "valid loss", "‖θ‖");
    let first = report(0, None, &model, &valid_batches)?;
    let mut last = first;
    let mut rng = seeded_rng(seed);
    let (mut window, mut count) = (0.0, 0);
    for step in 1..=steps {
        // 4. One training step: forward (mean cross-entropy of the next character),
        //    backward (gradients accumulate into every parameter), update.
        let batch = train.random_batch(BATCH, SEQ_LEN, &mut rng)?;
        let (inputs, targets) = arrays(&batch)?;
        // (the context's RNG would draw dropout masks; this model has dropout 0)
        let loss = model.loss(inputs, targets, &mut ForwardCtx::train(step as u64))?;
        window += f64::from(loss.item()?);
        count += 1;
        opt.zero_grad();
        loss.backward()?;
        opt.step(lr)?;
        if step % 50 == 0 || step == steps {
            last = report(step, Some(window / count as f64), &model, &valid_batches)?;
            (window, count) = (0.0, 0);
        }
    }
    println!("(uniform guessing would score ln {vocab} = {:.3})", (vocab as f64).ln());
    if steps > 0 && last >= first {
        return Err(format!("the validation loss did not fall ({first:.4} → {last:.4})").into());
    }
    Ok(())
}

/// Prints the step, the mean training loss since the last line, the validation loss (without
/// recording a graph) and ‖θ‖₂ over every non-scalar parameter; returns the validation loss.
fn report(
    step: usize,
    train: Option<f64>,
    model: &DecoderLm<f32>,
    valid: &[LmBatch],
) -> Result<f64, Error> {
    let valid_loss = saturn_tensor::no_grad(|| -> Result<f64, Error> {
        let mut total = 0.0;
        for batch in valid {
            let (inputs, targets) = arrays(batch)?;
            let loss = model.loss(inputs, targets, &mut ForwardCtx::eval())?;
            total += f64::from(loss.item()?);
        }
        Ok(total / valid.len() as f64)
    })?;
    let norm = Snapshot::of(model).total_norm();
    let train = train.map_or("-".to_string(), |l| format!("{l:.4}"));
    println!("{step:>6} {train:>11} {valid_loss:>11.4} {norm:>9.3}");
    Ok(valid_loss)
}

/// A batch's inputs and targets as `[B, T]` views (what `DecoderLm::loss` takes).
fn arrays(batch: &LmBatch) -> Result<(ArrayView2<'_, usize>, ArrayView2<'_, usize>), Error> {
    let shape = (batch.batch_size, batch.seq_len);
    Ok((
        ArrayView2::from_shape(shape, &batch.inputs)?,
        ArrayView2::from_shape(shape, &batch.targets)?,
    ))
}

/// `--steps N` (default 300) and `--seed N` (default 0).
fn parse_args() -> Result<(usize, u64), Error> {
    let (mut steps, mut seed) = (300, 0);
    let mut args = std::env::args().skip(1);
    while let Some(flag) = args.next() {
        let value = args.next().ok_or_else(|| format!("{flag} needs a value"))?;
        match flag.as_str() {
            "--steps" => steps = value.parse().map_err(|e| format!("--steps {value}: {e}"))?,
            "--seed" => seed = value.parse().map_err(|e| format!("--seed {value}: {e}"))?,
            _ => return Err(format!("unknown flag {flag} (flags: --steps N, --seed N)").into()),
        }
    }
    Ok((steps, seed))
}
