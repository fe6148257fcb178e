//! Checkpoints: bit-exact round trips and typed errors for bad files.

use std::collections::HashMap;
use std::path::PathBuf;

use saturn_layers::checkpoint::{LoadOptions, load, save};
use saturn_layers::{DecoderLm, ForwardCtx, LayerError, LmConfig, Module, ResidualScheme};
use saturn_tensor::ndarray::array;

fn tmp(name: &str) -> PathBuf {
    std::env::temp_dir().join(format!("saturn-ckpt-{}-{name}", std::process::id()))
}

fn config() -> LmConfig {
    LmConfig { residual: ResidualScheme::Admin, ..LmConfig::new(7, 8, 2, 16, 2, 6) }
}

#[test]
fn save_then_load_is_bit_exact() {
    let a = DecoderLm::<f32>::new(config(), 1).unwrap();
    let b = DecoderLm::<f32>::new(config(), 2).unwrap();
    let path = tmp("roundtrip.safetensors");
    let meta = HashMap::from([("config".to_string(), serde_json::to_string(&a.config).unwrap())]);
    save(&path, &a, &meta).unwrap();
    let read_meta = load(&path, &b, &LoadOptions::default()).unwrap();
    assert_eq!(serde_json::from_str::<LmConfig>(&read_meta["config"]).unwrap(), a.config);
    for ((n, x), (_, y)) in a.named_parameters().iter().zip(b.named_parameters()) {
        assert_eq!(x.to_vec(), y.to_vec(), "{n}");
    }
    let ids = array![[1, 2, 3]];
    let la = a.forward(ids.view(), &mut ForwardCtx::eval()).unwrap().to_vec();
    let lb = b.forward(ids.view(), &mut ForwardCtx::eval()).unwrap().to_vec();
    assert_eq!(la, lb);
    std::fs::remove_file(path).unwrap();
}

#[test]
fn bad_checkpoints_give_typed_errors_naming_the_tensor() {
    let model = DecoderLm::<f32>::new(config(), 1).unwrap();
    let path = tmp("bad.safetensors");
    save(&path, &model, &HashMap::new()).unwrap();
    let bytes = std::fs::read(&path).unwrap();

    // truncated
    std::fs::write(&path, &bytes[..bytes.len() / 2]).unwrap();
    assert!(matches!(
        load(&path, &model, &LoadOptions::default()),
        Err(LayerError::Checkpoint { .. })
    ));
    // corrupted header
    let mut garbled = bytes.clone();
    garbled[12] = 0xff;
    std::fs::write(&path, &garbled).unwrap();
    assert!(matches!(
        load(&path, &model, &LoadOptions::default()),
        Err(LayerError::Checkpoint { .. })
    ));
    // a model with one more layer misses tensors
    std::fs::write(&path, &bytes).unwrap();
    let deeper = DecoderLm::<f32>::new(LmConfig { n_layers: 3, ..config() }, 0).unwrap();
    match load(&path, &deeper, &LoadOptions::default()) {
        Err(LayerError::MissingTensor { name, .. }) => {
            assert!(name.starts_with("layers.2."), "{name}")
        }
        other => panic!("expected MissingTensor, got {other:?}"),
    }
    // a wider model finds wrong shapes
    let wider = DecoderLm::<f32>::new(LmConfig { d_ff: 32, ..config() }, 0).unwrap();
    match load(&path, &wider, &LoadOptions::default()) {
        Err(LayerError::WrongShape { name, expected, found, .. }) => {
            assert!(name.contains("ffn.w1"), "{name}");
            assert_eq!((expected[0], found[0]), (32, 16));
        }
        other => panic!("expected WrongShape, got {other:?}"),
    }
    // a shallower model sees unexpected tensors unless allowed
    let shallow = DecoderLm::<f32>::new(LmConfig { n_layers: 1, ..config() }, 0).unwrap();
    assert!(matches!(
        load(&path, &shallow, &LoadOptions::default()),
        Err(LayerError::UnexpectedTensors { .. })
    ));
    assert!(load(&path, &shallow, &LoadOptions { allow_extra: true, file_name: None }).is_ok());
    assert!(matches!(
        load(&tmp("nope"), &model, &LoadOptions::default()),
        Err(LayerError::Io { .. })
    ));
    std::fs::remove_file(path).unwrap();
}
