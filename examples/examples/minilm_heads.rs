//! Load the pretrained all-MiniLM-L6-v2 (a 6-layer, 12-head Post-LN BERT), tokenize one
//! sentence, and classify every attention head under saturation — the network at 1000θ, where
//! softmax(c·s) has become (almost) hard — as saturn-saturation does for Merrill et al. (2021,
//! §5): hard (argmax), averaging (a mean over the prefix), sink (parked on the first token) or
//! mixed.
//!
//! ```sh
//! cargo run -p saturn-examples --example minilm_heads              # DATA/minilm
//! cargo run -p saturn-examples --example minilm_heads -- MODEL_DIR "A sentence."
//! ```
//!
//! DATA is `SATURN_DATA`, else `../shared/data`; MODEL_DIR holds Hugging Face's `config.json`,
//! `model.safetensors` and `tokenizer.json`.

use std::path::PathBuf;
use std::process::ExitCode;

use saturn_datasets::data_dir;
use saturn_datasets::tokenize::{Tokenizer, WordPiece};
use saturn_layers::Bert;
use saturn_saturation::{
    HEAD_THRESHOLDS, HeadClass, SATURATION_SCALE, TokenBatch, analyze_heads, class_counts,
};
use saturn_tensor::ndarray::Array2;

type Error = Box<dyn std::error::Error>;

const SENTENCE: &str = "Two young men are playing football on a sunny field near the river.";

fn main() -> ExitCode {
    match run() {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("minilm_heads: {e}");
            ExitCode::FAILURE
        }
    }
}

fn run() -> Result<(), Error> {
    // 1. Where the model is: the first argument, else DATA/minilm. Say what is missing.
    let mut args = std::env::args().skip(1);
    let dir = match args.next() {
        Some(dir) => PathBuf::from(dir),
        None => data_dir(None)?.join("minilm"),
    };
    for file in ["config.json", "model.safetensors", "tokenizer.json"] {
        if !dir.join(file).is_file() {
            let path = dir.join(file);
            return Err(format!("{} is missing (give the model directory as the first argument, or set SATURN_DATA)", path.display()).into());
        }
    }
    let sentence = args.next().unwrap_or_else(|| SENTENCE.to_string());

    // 2. The tokenizer (BERT WordPiece, Hugging Face's ids) and the model, in f64: the scaling
    //    limit multiplies every weight by 1000, which f32 would not carry cleanly.
    let tok = WordPiece::from_tokenizer_json(&dir.join("tokenizer.json"))?;
    let model = Bert::<f64>::from_pretrained(&dir)?;

    // 3. One batch of one sentence: [CLS] pieces [SEP], every token real.
    let ids = tok.encode(&sentence)?;
    let pieces: Vec<&str> = ids.iter().map(|&i| tok.vocab().token(i)).collect::<Result<_, _>>()?;
    println!("{sentence}\n{} tokens: {}", ids.len(), pieces.join(" "));
    let batch = TokenBatch::new(Array2::from_shape_vec((1, ids.len()), ids)?);

    // 4. Per-head statistics of the attention at c·θ (c = 1000), with the unsaturated
    //    attention at θ for the entropy, and each head's class from the fixed thresholds
    //    (e.g. hard: on average at most two keys get weight > 1e-5). The parameters are scaled
    //    for the probe and restored bit for bit.
    let stats = analyze_heads(&model, &[batch], SATURATION_SCALE, &HEAD_THRESHOLDS)?;

    // 5. A table layer × head: one letter per class, and the mean number of keys attended.
    let heads = stats.iter().map(|h| h.head + 1).max().unwrap_or(0);
    let mut layers: Vec<&str> = Vec::new();
    for h in &stats {
        if !layers.contains(&h.layer.as_str()) {
            layers.push(&h.layer);
        }
    }
    println!("\nhead classes at {SATURATION_SCALE}θ (H hard, A averaging, S sink, M mixed):");
    print!("{:<22}", "layer \\ head");
    (0..heads).for_each(|h| print!("{h:>3}"));
    println!("   keys attended (mean)");
    for layer in layers {
        let row: Vec<_> = stats.iter().filter(|h| h.layer == layer).collect();
        print!("{layer:<22}");
        row.iter().for_each(|h| print!("{:>3}", letter(h.class)));
        let keys = row.iter().map(|h| h.mean_count).sum::<f64>() / row.len() as f64;
        println!("   {keys:.2}");
    }
    let counts: Vec<String> =
        class_counts(&stats).iter().map(|(c, n)| format!("{n} {}", c.name())).collect();
    println!("{} heads: {}", stats.len(), counts.join(", "));
    Ok(())
}

/// The table's letter of a class.
fn letter(class: HeadClass) -> char {
    match class {
        HeadClass::Hard => 'H',
        HeadClass::Averaging => 'A',
        HeadClass::Sink => 'S',
        HeadClass::Mixed => 'M',
    }
}
