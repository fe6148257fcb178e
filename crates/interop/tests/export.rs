//! End-to-end tests of the `saturn-interop` binary: run an export into a temporary directory and
//! read the files back (no Python needed; the PyTorch comparison is scripts/check_torch.sh).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use saturn_tensor::io::{TensorFile, read_safetensors};
use saturn_tensor::ndarray::{ArrayD, Axis};

fn temp_dir(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("saturn-interop-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    dir
}

fn interop(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_saturn-interop")).args(args).output().expect("runs")
}

fn export(args: &[&str], out: &Path) {
    let mut all = args.to_vec();
    all.extend(["--out", out.to_str().unwrap()]);
    let output = interop(&all);
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
}

fn read(dir: &Path, file: &str) -> TensorFile {
    read_safetensors(&dir.join(file)).unwrap()
}

fn shapes(file: &TensorFile) -> BTreeMap<String, Vec<usize>> {
    file.tensors.iter().map(|(n, a)| (n.clone(), a.shape().to_vec())).collect()
}

fn dtype(path: &Path, name: &str) -> safetensors::Dtype {
    let bytes = std::fs::read(path).unwrap();
    safetensors::SafeTensors::deserialize(&bytes).unwrap().tensor(name).unwrap().dtype()
}

fn all_finite(a: &ArrayD<f64>) -> bool {
    a.iter().all(|v| v.is_finite())
}

/// bench README §7: every parameter of an Admin LM with L layers, d, F, V, S.
fn admin_lm_names(
    l: usize,
    d: usize,
    f: usize,
    v: usize,
    s: usize,
) -> BTreeMap<String, Vec<usize>> {
    let mut m = BTreeMap::new();
    m.insert("embed.weight".to_string(), vec![v, d]);
    m.insert("pos.weight".to_string(), vec![s, d]);
    m.insert("head.weight".to_string(), vec![v, d]);
    for i in 0..l {
        let p = |n: &str| format!("layers.{i}.{n}");
        for x in ["q", "k", "v", "o"] {
            m.insert(p(&format!("attn.{x}.weight")), vec![d, d]);
            m.insert(p(&format!("attn.{x}.bias")), vec![d]);
        }
        for n in ["ln1.gamma", "ln1.beta", "ln2.gamma", "ln2.beta", "omega1", "omega2"] {
            m.insert(p(n), vec![d]);
        }
        m.insert(p("ffn.w1.weight"), vec![f, d]);
        m.insert(p("ffn.w1.bias"), vec![f]);
        m.insert(p("ffn.w2.weight"), vec![d, f]);
        m.insert(p("ffn.w2.bias"), vec![d]);
    }
    m
}

#[test]
fn lm_export_has_torch_io_names_shapes_a_finite_loss_and_every_gradient() {
    let dir = temp_dir("lm-admin");
    let sizes = ["--d-model", "8", "--heads", "2", "--d-ff", "12", "--vocab", "9"];
    let run = ["--model", "lm", "--residual", "admin", "--seed", "7", "--seq-len", "4"];
    export(&[&run[..], &sizes[..], &["--batch", "2", "--act", "gelu"]].concat(), &dir);

    let model = read(&dir, "model.safetensors");
    let params = shapes(&model);
    assert_eq!(params, admin_lm_names(2, 8, 12, 9, 4));
    let config: serde_json::Value = serde_json::from_str(&model.metadata["config"]).unwrap();
    assert_eq!(config["variant"], "admin");
    assert_eq!(config["n_heads"], 2);
    assert_eq!(config["act"], "gelu");
    assert_eq!(config["ln_eps"], 1e-5);
    // non-degenerate: gammas are not all 1, omegas not all 1
    assert!(model.tensors["layers.0.ln1.gamma"].iter().any(|&g| (g - 1.0).abs() > 1e-3));
    assert!(model.tensors["layers.1.omega2"].iter().any(|&w| (w - 1.0).abs() > 1e-3));

    let batch_path = dir.join("batch.safetensors");
    let batch = read(&dir, "batch.safetensors");
    assert_eq!(shapes(&batch).into_keys().collect::<Vec<_>>(), ["inputs", "targets"]);
    assert_eq!(dtype(&batch_path, "inputs"), safetensors::Dtype::I64);
    let (inputs, targets) = (&batch.tensors["inputs"], &batch.tensors["targets"]);
    assert_eq!(inputs.shape(), [2, 4]);
    assert!(inputs.iter().chain(targets).all(|&i| (0.0..9.0).contains(&i) && i.fract() == 0.0));
    // targets are the inputs shifted by one token
    for b in 0..2 {
        for t in 0..3 {
            assert_eq!(targets[[b, t]], inputs[[b, t + 1]]);
        }
    }

    let grads = read(&dir, "grads.safetensors");
    let out = shapes(&grads);
    let loss = grads.tensors["loss"][[0]];
    assert_eq!(out["loss"], [1]);
    assert!(loss.is_finite() && loss > 0.0);
    assert_eq!(out["logits"], [2, 4, 9]);
    assert_eq!(out["token_loss"], [2, 4]);
    let mean = grads.tensors["token_loss"].mean().unwrap();
    assert!((mean - loss).abs() < 1e-12, "mean token loss {mean} vs loss {loss}");
    for i in 0..=2 {
        assert_eq!(out[&format!("hidden.{i}")], [2, 4, 8]);
    }
    let grad_names: BTreeMap<String, Vec<usize>> = out
        .iter()
        .filter_map(|(n, s)| n.strip_prefix("grad.").map(|p| (p.to_string(), s.clone())))
        .collect();
    assert_eq!(grad_names, params);
    assert!(grads.tensors.values().all(all_finite));
    for name in params.keys().filter(|n| !n.ends_with("attn.k.bias")) {
        let g = &grads.tensors[&format!("grad.{name}")];
        assert!(g.iter().any(|&v| v != 0.0), "grad.{name} is zero");
    }

    let description: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dir.join("config.json")).unwrap()).unwrap();
    assert_eq!(description["model"], "lm");
    assert_eq!(description["variant"], "admin");
    assert_eq!(description["score_scale"], 0.5);
    std::fs::remove_dir_all(dir).unwrap();
}

#[test]
fn seq2seq_export_pads_both_sides_and_averages_over_real_target_tokens() {
    let dir = temp_dir("s2s-deepnorm");
    export(
        &[
            "--model",
            "seq2seq",
            "--residual",
            "deepnorm",
            "--seed",
            "3",
            "--layers",
            "2",
            "--enc-layers",
            "3",
            "--vocab",
            "11",
            "--src-vocab",
            "13",
            "--seq-len",
            "5",
            "--src-len",
            "7",
            "--batch",
            "4",
        ],
        &dir,
    );
    let model = read(&dir, "model.safetensors");
    let config: serde_json::Value = serde_json::from_str(&model.metadata["config"]).unwrap();
    assert_eq!(config["model"], "seq2seq");
    // DeepNet's constants for N = 3, M = 2 (bench README §8.2)
    assert!((config["deepnorm_alpha_enc"].as_f64().unwrap() - 1.1132).abs() < 1e-4);
    assert!((config["deepnorm_alpha_dec"].as_f64().unwrap() - 1.5651).abs() < 1e-4);
    assert_eq!(model.tensors["src_embed.weight"].shape(), [13, 8]);
    assert_eq!(model.tensors["tgt_pos.weight"].shape(), [5, 8]);
    assert!(model.tensors.contains_key("enc.layers.2.ffn.w2.bias"));
    assert!(model.tensors.contains_key("dec.layers.1.cross_attn.k.weight"));

    let batch = read(&dir, "batch.safetensors");
    let keys: Vec<String> = batch.tensors.keys().cloned().collect();
    assert_eq!(keys, ["src", "src_mask", "tgt_in", "tgt_mask", "tgt_out"]);
    let (src_mask, tgt_mask) = (&batch.tensors["src_mask"], &batch.tensors["tgt_mask"]);
    assert_eq!(src_mask.shape(), [4, 7]);
    assert!(src_mask.index_axis(Axis(1), 0).iter().all(|&m| m == 1.0), "position 0 is real");
    assert!(tgt_mask.index_axis(Axis(1), 0).iter().all(|&m| m == 1.0));
    assert!(src_mask.iter().any(|&m| m == 0.0) && tgt_mask.iter().any(|&m| m == 0.0));
    for mask in [src_mask, tgt_mask] {
        for row in mask.rows() {
            assert!(row.windows(2).into_iter().all(|w| w[0] >= w[1]), "right padding");
        }
    }

    let grads = read(&dir, "grads.safetensors");
    let token_loss = &grads.tensors["token_loss"];
    let loss = grads.tensors["loss"][[0]];
    assert!(loss.is_finite());
    assert!((token_loss.sum() / tgt_mask.sum() - loss).abs() < 1e-12);
    assert!(token_loss.iter().zip(tgt_mask).all(|(&l, &m)| m == 1.0 || l == 0.0));
    assert_eq!(grads.tensors["enc_hidden.3"].shape(), [4, 7, 8]);
    assert_eq!(grads.tensors["dec_hidden.2"].shape(), [4, 5, 8]);
    let grad_names: Vec<&str> =
        grads.tensors.keys().filter_map(|n| n.strip_prefix("grad.")).collect();
    assert_eq!(grad_names, model.tensors.keys().map(String::as_str).collect::<Vec<_>>());
    assert!(grads.tensors.values().all(all_finite));
    std::fs::remove_dir_all(dir).unwrap();
}

#[test]
fn the_same_seed_gives_the_same_files_and_another_seed_does_not() {
    let (a, b, c) = (temp_dir("seed-a"), temp_dir("seed-b"), temp_dir("seed-c"));
    let args = ["--model", "lm", "--residual", "pre", "--seed"];
    export(&[&args[..], &["5"]].concat(), &a);
    export(&[&args[..], &["5"]].concat(), &b);
    export(&[&args[..], &["6"]].concat(), &c);
    for file in ["model.safetensors", "batch.safetensors", "config.json"] {
        let bytes = |d: &Path| std::fs::read(d.join(file)).unwrap();
        assert_eq!(bytes(&a), bytes(&b), "{file}");
        assert_ne!(bytes(&a), bytes(&c), "{file}");
    }
    for d in [a, b, c] {
        std::fs::remove_dir_all(d).unwrap();
    }
}

#[test]
fn errors_are_one_line_and_a_nonzero_exit() {
    let out = temp_dir("bad");
    let out = out.to_str().unwrap();
    let bad = interop(&["--model", "seq2seq", "--residual", "branch", "--seed", "0", "--out", out]);
    let stderr = String::from_utf8_lossy(&bad.stderr);
    assert!(!bad.status.success());
    assert_eq!(stderr.lines().count(), 1, "{stderr}");
    assert!(stderr.starts_with("saturn-interop: error:") && stderr.contains("branch"), "{stderr}");
    // a missing flag is explained by clap (exit code 2)
    let missing = interop(&["--model", "lm", "--out", out]);
    assert_eq!(missing.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&missing.stderr).contains("--residual"));
}

/// The WordPiece ids of the reference sentences of all-MiniLM-L6-v2 (`reference_numpy.json`),
/// when the data directory is available.
#[test]
fn bert_export_reproduces_the_reference_token_ids() {
    let data = std::env::var_os("SATURN_DATA")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("../../../shared/data"));
    let minilm = data.join("minilm");
    if !minilm.join("model.safetensors").is_file() {
        eprintln!("skipped: no all-MiniLM-L6-v2 at {} (set SATURN_DATA)", minilm.display());
        return;
    }
    let reference: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(minilm.join("reference_numpy.json")).unwrap(),
    )
    .unwrap();
    let sentences = reference["sentences"].as_array().unwrap();
    let dir = temp_dir("bert");
    std::fs::create_dir_all(&dir).unwrap();
    let texts: Vec<&str> = sentences.iter().map(|s| s["text"].as_str().unwrap()).collect();
    std::fs::write(dir.join("text.txt"), texts.join("\n")).unwrap();
    let text = dir.join("text.txt");
    let args = ["--model", "bert", "--from", minilm.to_str().unwrap()];
    export(&[&args[..], &["--text", text.to_str().unwrap()]].concat(), &dir);

    let out = read(&dir, "outputs.safetensors");
    for (n, sentence) in sentences.iter().enumerate() {
        let ids: Vec<f64> = out.tensors[&format!("input_ids.{n}")].iter().copied().collect();
        let expected: Vec<f64> =
            sentence["ids"].as_array().unwrap().iter().map(|v| v.as_f64().unwrap()).collect();
        assert_eq!(ids, expected, "line {n}");
        let t = ids.len();
        assert_eq!(out.tensors[&format!("last_hidden_state.{n}")].shape(), [t, 384]);
        assert_eq!(out.tensors[&format!("attentions.{n}.5")].shape(), [12, t, t]);
        // the sentence embedding agrees with the numpy reference (printed to 7 decimals)
        let embedding = &out.tensors[&format!("sentence_embedding.{n}")];
        let expected = sentence["embedding"].as_array().unwrap();
        let err = embedding
            .iter()
            .zip(expected)
            .map(|(a, b)| (a - b.as_f64().unwrap()).abs())
            .fold(0.0, f64::max);
        assert!(err < 1e-6, "line {n}: embedding error {err}");
    }
    std::fs::remove_dir_all(dir).unwrap();
}
