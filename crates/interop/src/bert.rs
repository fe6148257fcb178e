//! The BERT export: a Hugging Face checkpoint (e.g. all-MiniLM-L6-v2) run by Saturn's [`Bert`]
//! in f64 on each line of a text file, one sequence at a time (no padding), for comparison with
//! `transformers` (`scripts/check_bert.py`).
//!
//! `outputs.safetensors` holds, for line n (0-based, every line of the file):
//! `input_ids.{n}` I64 `[T]`, `last_hidden_state.{n}` `[T, d]`, `sentence_embedding.{n}` `[d]`
//! (mean over tokens, ℓ2-normalized) and `attentions.{n}.{layer}` [heads, T, T]. The metadata
//! holds the texts (`"texts"`, a JSON list) and the model directory.

use std::collections::HashMap;
use std::path::Path;

use saturn_layers::{Bert, ForwardCtx};
use saturn_tensor::ndarray::{Array2, ArrayD, Axis};
use saturn_tensor::{Tensor, no_grad};
use serde_json::json;

use crate::Result;
use crate::batch_io::{Array, write_tensors};
use saturn_datasets::tokenize::{Tokenizer, WordPiece};

/// Runs the model in `model_dir` on every line of `text_file`; writes `out/outputs.safetensors`
/// and returns a one-line summary.
pub fn export(model_dir: &Path, text_file: &Path, out: &Path) -> Result<serde_json::Value> {
    let tokenizer = WordPiece::from_tokenizer_json(&model_dir.join("tokenizer.json"))
        .or_else(|_| WordPiece::from_vocab_txt(&model_dir.join("vocab.txt"), true))
        .map_err(|e| e.to_string())?;
    let model = Bert::<f64>::from_pretrained(model_dir)?;
    let text = std::fs::read_to_string(text_file)
        .map_err(|e| format!("cannot read {}: {e}", text_file.display()))?;
    let lines: Vec<&str> = text.lines().collect();
    let mut tensors: Vec<(String, Array)> = Vec::new();
    for (n, line) in lines.iter().enumerate() {
        let ids = tokenizer.encode(line).map_err(|e| format!("line {n}: {e}"))?;
        let max = model.config.max_position_embeddings;
        if ids.len() > max {
            return Err(format!("line {n} has {} tokens, the model takes {max}", ids.len()).into());
        }
        let ids = Array2::from_shape_vec((1, ids.len()), ids).expect("one row");
        let mut ctx = ForwardCtx::eval().with_trace();
        let (hidden, embedding) = no_grad(|| -> saturn_layers::Result<_> {
            let hidden = model.forward(ids.view(), None, None, &mut ctx)?;
            Ok((hidden, model.sentence_embeddings(ids.view(), None, &mut ForwardCtx::eval())?))
        })?;
        tensors.push((format!("input_ids.{n}"), ids.row(0).mapv(|v| v as i64).into()));
        tensors.push((format!("last_hidden_state.{n}"), first(&hidden)));
        tensors.push((format!("sentence_embedding.{n}"), first(&embedding)));
        let trace = ctx.trace.take().expect("tracing was on");
        for (layer, attention) in trace.attention.iter().enumerate() {
            tensors.push((format!("attentions.{n}.{layer}"), first(&attention.probs)));
        }
    }
    std::fs::create_dir_all(out)
        .map_err(|e| format!("cannot create output directory {}: {e}", out.display()))?;
    let path = out.join("outputs.safetensors");
    let metadata = HashMap::from([
        ("format".to_string(), "1".to_string()),
        ("model_dir".to_string(), model_dir.display().to_string()),
        ("texts".to_string(), serde_json::to_string(&lines)?),
        ("dtype".to_string(), "f64".to_string()),
        (
            "tokenizer".to_string(),
            "saturn-datasets WordPiece (Hugging Face compatible)".to_string(),
        ),
    ]);
    write_tensors(&path, &tensors, &metadata)?;
    Ok(json!({
        "out": path.display().to_string(),
        "model": "bert",
        "lines": lines.len(),
        "layers": model.layers.len(),
        "tensors": tensors.len(),
    }))
}

/// The first item along the batch axis (every sequence runs alone, B = 1).
fn first(t: &Tensor<f64>) -> Array {
    let a: ArrayD<f64> = t.to_array();
    Array::F64(a.index_axis(Axis(0), 0).to_owned())
}
