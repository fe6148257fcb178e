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
