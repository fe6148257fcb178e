//! The entry points of the fuzz targets (`fuzz/`, run by `cargo xtask fuzz`): one function per
//! loader that reads a file a user supplies. Each must return — a value or an error — for any
//! bytes; a panic, an abort or a hang is a finding. They live here, not in `fuzz/`, so that the
//! seeds and every input a fuzzer found (`fuzz/seeds/`, `fuzz/regressions/`) replay through the
//! same code in `cargo xtask test` (tests/integration/fuzz_regressions.rs).

use std::path::Path;

use crate::config::{Preset, resolve_text};
use crate::experiments::*;

/// A fuzz target: its name (a directory of `fuzz/seeds/` and `fuzz/regressions/`) and function.
pub type Target = (&'static str, fn(&[u8]));

/// Every target.
pub const TARGETS: &[Target] = &[
    ("safetensors", safetensors),
    ("checkpoint_state", checkpoint_state),
    ("config_toml", config_toml),
    ("bert_config", bert_config),
    ("wordpiece", wordpiece),
    ("bpe_word", bpe_word),
    ("multi30k", multi30k),
];

/// A safetensors file (a tensor file, a checkpoint, an interop batch): parsed, then loaded into
/// a small model, which checks names, shapes and dtypes.
pub fn safetensors(data: &[u8]) {
    use saturn_layers::checkpoint::{LoadOptions, load_into};
    use saturn_layers::{InitScheme, Initializer, Linear};
    let path = Path::new("fuzz.safetensors");
    if let Ok(file) = saturn_tensor::io::parse_safetensors(path, data) {
        let _ = file.get::<f32>("weight");
        let mut init = Initializer::new(InitScheme::XavierUniform, 0);
        let model = Linear::<f32>::new(&mut init, 2, 3, true, 1.0);
        let _ = load_into(&model, &file, path, &LoadOptions::default());
    }
}

/// A checkpoint's `state.json`.
pub fn checkpoint_state(data: &[u8]) {
    if let Ok(text) = std::str::from_utf8(data) {
        let _ = crate::train::LoopState::from_json(Path::new("state.json"), text);
    }
}

/// An experiment's TOML config, laid over every experiment's quick preset.
pub fn config_toml(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else { return };
    let (q, o) = (Preset::Quick, "fuzz.toml");
    let _ = resolve_text(lm_baseline::LmBaselineConfig::preset(q), text, o);
    let _ = resolve_text(norm_growth::NormGrowthConfig::preset(q), text, o);
    let _ = resolve_text(homogeneity::HomogeneityConfig::preset(q), text, o);
    let _ = resolve_text(saturation_training::SaturationTrainingConfig::preset(q), text, o);
    let _ = resolve_text(heads::HeadsConfig::preset(q), text, o);
    let _ = resolve_text(heads_minilm::HeadsMinilmConfig::preset(q), text, o);
    let _ = resolve_text(counting::CountingConfig::preset(q), text, o);
    let _ = resolve_text(amplification::AmplificationConfig::preset(q), text, o);
    let _ = resolve_text(dependency::DependencyConfig::preset(q), text, o);
    let _ = resolve_text(admin_profile::AdminProfileConfig::preset(q), text, o);
    let _ = resolve_text(grad_norms::GradNormsConfig::preset(q), text, o);
    let _ = resolve_text(hessian::HessianConfig::preset(q), text, o);
    let _ = resolve_text(warmup::WarmupConfig::preset(q), text, o);
    let _ = resolve_text(depth_stability::DepthStabilityConfig::preset(q), text, o);
}

/// A Hugging Face BERT `config.json`; a small enough config is also built into a model.
pub fn bert_config(data: &[u8]) {
    use saturn_layers::{Bert, BertConfig};
    let Ok(config) = serde_json::from_slice::<BertConfig>(data) else { return };
    let size = config
        .vocab_size
        .saturating_add(config.max_position_embeddings)
        .saturating_add(config.type_vocab_size)
        .saturating_add(config.intermediate_size)
        .saturating_mul(config.hidden_size.max(1))
        .saturating_mul(config.num_hidden_layers.max(1));
    if size < 1 << 16 {
        let _ = Bert::<f32>::new(config, 0);
    }
}

/// `data` split at its first NUL byte.
fn two_parts(data: &[u8]) -> (&[u8], &[u8]) {
    match data.iter().position(|&b| b == 0) {
        Some(i) => (&data[..i], &data[i + 1..]),
        None => (data, &[]),
    }
}

/// A file of this process's own in the temp dir, holding `bytes`.
fn temp_file(name: &str, bytes: &[u8]) -> Option<std::path::PathBuf> {
    let path = std::env::temp_dir().join(format!("saturn-fuzz-{}-{name}", std::process::id()));
    std::fs::write(&path, bytes).ok().map(|_| path)
}

/// A WordPiece `vocab.txt` and a text to tokenize (split at the first NUL byte); the vocab is
/// read from a file, as MiniLM's is.
pub fn wordpiece(data: &[u8]) {
    use saturn_datasets::tokenize::WordPiece;
    let (vocab, text) = two_parts(data);
    let Some(path) = temp_file("vocab.txt", vocab) else { return };
    let text = String::from_utf8_lossy(text);
    for lowercase in [true, false] {
        if let Ok(wp) = WordPiece::from_vocab_txt(&path, lowercase) {
            let _ = wp.tokenize(&text);
            let _ = wp.encode_without_specials(&text);
        }
    }
}

/// BPE and word tokenizers learned on the input's lines (the first byte picks the vocabulary
/// size), then applied to the whole input.
pub fn bpe_word(data: &[u8]) {
    use saturn_datasets::tokenize::{Bpe, WordTokenizer, WordVocabConfig};
    let Some((&size, rest)) = data.split_first() else { return };
    let text = String::from_utf8_lossy(rest);
    let lines: Vec<&str> = text.lines().collect();
    if let Ok(bpe) = Bpe::learn(lines.iter().copied(), size as usize) {
        let _ = bpe.tokenize(&text);
    }
    let config =
        WordVocabConfig { max_size: Some(size as usize), min_freq: 1, lowercase: size % 2 == 0 };
    if let Ok(words) = WordTokenizer::learn(lines.iter().copied(), &config) {
        let _ = words.words(&text);
    }
}

/// A Multi30k split: `val.de` and `val.en` (split at the first NUL byte), written to a data
/// directory and loaded as the experiments load it.
pub fn multi30k(data: &[u8]) {
    use saturn_datasets::{Multi30kSplit, load_multi30k, multi30k_files};
    let (de, en) = two_parts(data);
    let dir = std::env::temp_dir().join(format!("saturn-fuzz-m30k-{}", std::process::id()));
    let (de_path, en_path) = multi30k_files(&dir, Multi30kSplit::Valid);
    let Some(parent) = de_path.parent() else { return };
    if std::fs::create_dir_all(parent).is_ok()
        && std::fs::write(&de_path, de).is_ok()
        && std::fs::write(&en_path, en).is_ok()
    {
        let _ = load_multi30k(&dir, Multi30kSplit::Valid);
    }
}
