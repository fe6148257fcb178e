//! `saturn-interop`: exports what Saturn computes so that other frameworks can check it.
//!
//! - `--model lm|seq2seq`: a model in f64 with non-degenerate random weights, a random batch, and
//!   Saturn's loss, logits, hidden states and every gradient, under the names of
//!   `bench/torch_io.py` (bench README §7, §8.3), so that
//!   `torch_io.py compute` + `torch_io.py compare` check them against PyTorch in f64.
//! - `--model bert`: a Hugging Face BERT checkpoint run on each line of a text file: token ids,
//!   last hidden states, sentence embeddings and attention probabilities, for
//!   `scripts/check_bert.py` to compare with `transformers`.
//!
//! See docs/INTEROP.md for the file formats and the verification commands.

mod batch_io;
mod bert;
mod export;
mod lm;
mod seq2seq;
mod weights;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, ValueEnum};
use saturn_layers::{Activation, ResidualScheme};

use crate::export::ExportSpec;

/// Errors end the program with one line on stderr.
pub type Result<T, E = Box<dyn std::error::Error>> = std::result::Result<T, E>;

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum Model {
    /// Decoder-only causal LM (bench README §6, §8.1).
    Lm,
    /// Encoder–decoder with padded source and target (bench README §8.2).
    Seq2seq,
    /// A Hugging Face BERT checkpoint (needs --from and --text).
    Bert,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum Residual {
    Post,
    Pre,
    Admin,
    Deepnorm,
    /// branch-LN, x + LN(f(x)) (LM only).
    Branch,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum Act {
    #[value(name = "gelu_tanh")]
    GeluTanh,
    Gelu,
    Relu,
}

/// Export a Saturn model, a batch, its loss and f64 gradients (lm, seq2seq), or a BERT
/// checkpoint's outputs (bert), as safetensors for checking against PyTorch / Hugging Face.
#[derive(Debug, Parser)]
#[command(name = "saturn-interop", version)]
struct Cli {
    #[arg(long, value_enum)]
    model: Model,
    /// Residual scheme (lm, seq2seq).
    #[arg(long, value_enum, required_if_eq_any([("model", "lm"), ("model", "seq2seq")]))]
    residual: Option<Residual>,
    /// Layers (seq2seq: decoder layers).
    #[arg(long, default_value_t = 2)]
    layers: usize,
    /// seq2seq: encoder layers [default: --layers].
    #[arg(long)]
    enc_layers: Option<usize>,
    #[arg(long, default_value_t = 8)]
    d_model: usize,
    #[arg(long, default_value_t = 2)]
    heads: usize,
    #[arg(long, default_value_t = 16)]
    d_ff: usize,
    /// Vocabulary size (seq2seq: target vocabulary).
    #[arg(long, default_value_t = 11)]
    vocab: usize,
    /// seq2seq: source vocabulary size [default: --vocab].
    #[arg(long)]
    src_vocab: Option<usize>,
    /// Sequence length T, also the number of learned positions (seq2seq: target length).
    #[arg(long, default_value_t = 5)]
    seq_len: usize,
    /// seq2seq: source length S [default: --seq-len].
    #[arg(long)]
    src_len: Option<usize>,
    #[arg(long, default_value_t = 3)]
    batch: usize,
    #[arg(long, value_enum, default_value = "gelu_tanh")]
    act: Act,
    /// Seed of the weights and the batch (lm, seq2seq).
    #[arg(long, required_if_eq_any([("model", "lm"), ("model", "seq2seq")]))]
    seed: Option<u64>,
    /// bert: a Hugging Face model directory (config.json, model.safetensors, vocab.txt).
    #[arg(long, required_if_eq("model", "bert"))]
    from: Option<PathBuf>,
    /// bert: a text file, one input per line.
    #[arg(long, required_if_eq("model", "bert"))]
    text: Option<PathBuf>,
    /// Output directory (created if needed).
    #[arg(long)]
    out: PathBuf,
}

impl Cli {
    fn spec(&self) -> Result<ExportSpec> {
        let (Some(residual), Some(seed)) = (self.residual, self.seed) else {
            return Err("--residual and --seed are required for lm and seq2seq".into());
        };
        if self.batch == 0 || self.seq_len == 0 || self.src_len == Some(0) {
            return Err("--batch, --seq-len and --src-len must be positive".into());
        }
        Ok(ExportSpec {
            residual: match residual {
                Residual::Post => ResidualScheme::PostLn,
                Residual::Pre => ResidualScheme::PreLn,
                Residual::Admin => ResidualScheme::Admin,
                Residual::Deepnorm => ResidualScheme::DeepNorm,
                Residual::Branch => ResidualScheme::BranchLn,
            },
            act: match self.act {
                Act::GeluTanh => Activation::GeluTanh,
                Act::Gelu => Activation::Gelu,
                Act::Relu => Activation::Relu,
            },
            layers: self.layers,
            enc_layers: self.enc_layers.unwrap_or(self.layers),
            d_model: self.d_model,
            heads: self.heads,
            d_ff: self.d_ff,
            vocab: self.vocab,
            src_vocab: self.src_vocab.unwrap_or(self.vocab),
            seq_len: self.seq_len,
            src_len: self.src_len.unwrap_or(self.seq_len),
            batch: self.batch,
            seed,
        })
    }
}

fn run(cli: &Cli) -> Result<serde_json::Value> {
    let export = match cli.model {
        Model::Lm => lm::export(&cli.spec()?)?,
        Model::Seq2seq => seq2seq::export(&cli.spec()?)?,
        Model::Bert => {
            let (Some(from), Some(text)) = (&cli.from, &cli.text) else {
                return Err("--from and --text are required for bert".into());
            };
            return bert::export(from, text, &cli.out);
        }
    };
    export.write(&cli.out)?;
    Ok(export.summary(&cli.out))
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match run(&cli) {
        Ok(summary) => {
            println!("{summary}");
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("saturn-interop: error: {}", e.to_string().replace('\n', " "));
            ExitCode::FAILURE
        }
    }
}
