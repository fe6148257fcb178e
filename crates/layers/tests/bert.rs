//! all-MiniLM-L6-v2 through our BERT encoder gives the reference sentence embeddings
//! (../shared/data/minilm/reference_numpy.json, a float64 NumPy forward) within 1e-4.

use std::path::PathBuf;

use saturn_layers::{Bert, ForwardCtx, Module};
use saturn_tensor::ndarray::Array2;

/// `SATURN_DATA`, else `../shared/data` beside the workspace.
fn data_dir() -> Option<PathBuf> {
    let dir = std::env::var_os("SATURN_DATA")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../../shared/data"));
    dir.join("minilm/model.safetensors").exists().then_some(dir)
}

#[test]
fn minilm_sentence_embeddings_match_the_reference() {
    let Some(dir) = data_dir() else {
        eprintln!(
            "SKIPPED: all-MiniLM-L6-v2 not found (set SATURN_DATA or put ../shared/data beside the workspace)"
        );
        return;
    };
    let model = Bert::<f32>::from_pretrained(&dir.join("minilm")).unwrap();
    // 22,713,216 in the file, less the pooler (384·384 + 384), which mean pooling does not use
    assert_eq!(model.num_parameters(), 22_713_216 - 147_840);
    let reference: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(dir.join("minilm/reference_numpy.json")).unwrap(),
    )
    .unwrap();
    let sentences = reference["sentences"].as_array().unwrap();
    assert!(sentences.len() >= 4);
    for s in sentences {
        let ids: Vec<usize> =
            s["ids"].as_array().unwrap().iter().map(|v| v.as_u64().unwrap() as usize).collect();
        let expected: Vec<f64> =
            s["embedding"].as_array().unwrap().iter().map(|v| v.as_f64().unwrap()).collect();
        let ids = Array2::from_shape_vec((1, ids.len()), ids).unwrap();
        let got =
            model.sentence_embeddings(ids.view(), None, &mut ForwardCtx::eval()).unwrap().to_vec();
        assert_eq!(got.len(), expected.len());
        let worst =
            got.iter().zip(&expected).map(|(a, b)| (*a as f64 - b).abs()).fold(0.0, f64::max);
        assert!(worst < 1e-4, "{}: max |Δ| = {worst:e}", s["text"]);
    }
}

#[test]
fn padding_a_sentence_does_not_change_its_embedding() {
    let Some(dir) = data_dir() else {
        eprintln!("SKIPPED: all-MiniLM-L6-v2 not found");
        return;
    };
    let model = Bert::<f32>::from_pretrained(&dir.join("minilm")).unwrap();
    let ids =
        Array2::from_shape_vec((2, 5), vec![101, 1037, 2158, 102, 0, 101, 2003, 5983, 2833, 102])
            .unwrap();
    let mask = Array2::from_shape_fn((2, 5), |(b, t)| b == 1 || t < 4);
    let both = model
        .sentence_embeddings(ids.view(), Some(mask.view()), &mut ForwardCtx::eval())
        .unwrap()
        .to_array();
    let alone = model
        .sentence_embeddings(
            Array2::from_shape_vec((1, 4), vec![101, 1037, 2158, 102]).unwrap().view(),
            None,
            &mut ForwardCtx::eval(),
        )
        .unwrap()
        .to_vec();
    for (j, v) in alone.iter().enumerate() {
        assert!((both[[0, j]] - v).abs() < 1e-5);
    }
}

/// A MiniLM-shaped directory with a tiny model, for the bad-directory cases.
fn tiny_model_dir(name: &str) -> (PathBuf, Bert<f32>) {
    let dir = std::env::temp_dir().join(format!("saturn-bad-bert-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let config = r#"{"vocab_size": 11, "hidden_size": 8, "num_hidden_layers": 1,
        "num_attention_heads": 2, "intermediate_size": 16, "max_position_embeddings": 12}"#;
    std::fs::write(dir.join("config.json"), config).unwrap();
    let model: Bert<f32> = Bert::new(serde_json::from_str(config).unwrap(), 0).unwrap();
    saturn_layers::checkpoint::save(&dir.join("model.safetensors"), &model, &Default::default())
        .unwrap();
    (dir, model)
}

/// The model's tensors as a file, with `name`'s replaced by `with`.
fn write_with(
    dir: &std::path::Path,
    model: &Bert<f32>,
    name: &str,
    with: saturn_tensor::Tensor<f64>,
) {
    use saturn_tensor::Tensor;
    let mut tensors: Vec<(String, Tensor<f64>)> = model
        .named_parameters()
        .into_iter()
        .map(|(n, p)| {
            (
                n,
                Tensor::from_vec(p.to_vec().iter().map(|&v| v as f64).collect(), &p.shape())
                    .unwrap(),
            )
        })
        .collect();
    for t in &mut tensors {
        if t.0 == name {
            t.1 = with.clone();
        }
    }
    saturn_tensor::io::write_safetensors(
        &dir.join("model.safetensors"),
        &tensors,
        &Default::default(),
    )
    .unwrap();
}

#[test]
fn a_bad_model_directory_is_a_clear_error_naming_the_file() {
    let (dir, model) = tiny_model_dir("ok");
    Bert::<f32>::from_pretrained(&dir).expect("the tiny directory loads");
    let err = |dir: &std::path::Path| Bert::<f32>::from_pretrained(dir).unwrap_err().to_string();

    std::fs::remove_file(dir.join("model.safetensors")).unwrap();
    let missing = err(&dir);
    assert!(missing.contains("model.safetensors"), "{missing}");

    let key =
        model.named_parameters().into_iter().map(|(n, _)| n).find(|n| n.contains("word")).unwrap();
    // a tensor of the wrong shape
    write_with(&dir, &model, &key, saturn_tensor::Tensor::from_vec(vec![0.0; 6], &[2, 3]).unwrap());
    let shape = err(&dir);
    assert!(
        shape.contains("model.safetensors") && shape.contains(&key) && shape.contains("[2, 3]"),
        "{shape}"
    );

    // a tensor of an integer dtype: written as f64, then its dtype field rewritten to I64
    let good = model.named_parameters().into_iter().find(|(n, _)| *n == key).unwrap().1;
    write_with(
        &dir,
        &model,
        &key,
        saturn_tensor::Tensor::from_vec(vec![0.0; good.len()], &good.shape()).unwrap(),
    );
    let path = dir.join("model.safetensors");
    let bytes = std::fs::read(&path).unwrap();
    let n = u64::from_le_bytes(bytes[..8].try_into().unwrap()) as usize;
    let header = String::from_utf8(bytes[8..8 + n].to_vec()).unwrap();
    // every tensor is F64 here; make the one under test I64 (same width, so offsets still hold)
    let at = header.find(&format!("\"{key}\"")).unwrap();
    let dtype_at = at + header[at..].find("\"F64\"").unwrap();
    let mut patched = bytes.clone();
    patched[8 + dtype_at..8 + dtype_at + 5].copy_from_slice(b"\"I64\"");
    std::fs::write(&path, patched).unwrap();
    let dtype = err(&dir);
    assert!(dtype.contains(&key) && dtype.contains("I64") && dtype.contains("float"), "{dtype}");

    std::fs::remove_file(dir.join("config.json")).unwrap();
    let no_config = err(&dir);
    assert!(no_config.contains("config.json"), "{no_config}");
    let _ = std::fs::remove_dir_all(&dir);
}
