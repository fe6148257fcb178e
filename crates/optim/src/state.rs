//! Optimizer state and its safetensors file, so that a training run resumes bit for bit.
//!
//! The state of an optimizer is its number of steps and, per parameter that has been stepped,
//! that parameter's step count `t` and buffers (Adam's `exp_avg` m and `exp_avg_sq` v, SGD's
//! `momentum_buffer`), named as in PyTorch's `optimizer.state_dict()`. Hyper-parameters are not
//! state: they come from the optimizer's config (as in fairseq, where a checkpoint's optimizer
//! args can be overridden on resume).
//!
//! File layout (safetensors, readable by `safetensors.torch.load_file`):
//!
//! | entry | content |
//! |---|---|
//! | metadata `format` | `saturn-optim-state` |
//! | metadata `version` | `1` |
//! | metadata `kind` | `sgd`, `norm_sgd`, `adam`, `adamw` or `radam` |
//! | metadata `dtype` | `f32` or `f64` (the element type of the buffers) |
//! | metadata `steps` | number of `step` calls, decimal |
//! | metadata `params` | JSON array of every parameter name, in the optimizer's order |
//! | tensor `NAME.step` | I64, shape `[]`: the step count of parameter NAME |
//! | tensor `NAME.BUFFER` | F32/F64, the parameter's shape: buffer BUFFER of parameter NAME |
//!
//! Buffer names contain no dot, so `NAME.BUFFER` splits at its last dot. Values are stored
//! exactly (little-endian IEEE bits), which is what makes a resumed run bit-identical.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::fs;
use std::path::Path;

use ndarray::{ArrayD, IxDyn};
use safetensors::{Dtype, SafeTensors};
use saturn_tensor::Float;
use saturn_tensor::io::{TensorBytes, serialize_tensor_bytes};

use crate::error::{OptimError, Result};
use crate::optimizer::OptimizerKind;

/// The `format` metadata value of a state file.
pub const STATE_FORMAT: &str = "saturn-optim-state";
/// The `version` metadata value this crate writes and reads.
pub const STATE_VERSION: u32 = 1;

/// A snapshot of an optimizer's state (see the module docs).
#[derive(Clone, Debug, PartialEq)]
pub struct OptimizerState<T: Float> {
    /// The optimizer that wrote it.
    pub kind: OptimizerKind,
    /// Number of `step` calls.
    pub steps: u64,
    /// Every parameter name of the optimizer, in its order (stepped or not).
    pub names: Vec<String>,
    /// Per-parameter state, for the parameters that have been stepped at least once.
    pub params: BTreeMap<String, ParamState<T>>,
}

/// The state of one parameter.
#[derive(Clone, Debug, PartialEq)]
pub struct ParamState<T: Float> {
    /// How many times this parameter was updated (PyTorch's `state[p]["step"]`).
    pub step: u64,
    /// Buffers by name (`exp_avg`, `exp_avg_sq`, `momentum_buffer`), each of the parameter's
    /// shape.
    pub buffers: BTreeMap<String, ArrayD<T>>,
}

/// Writes `state` to `path` atomically: the bytes go to a temporary file in the same directory,
/// which is flushed to disk and then renamed over `path`.
pub fn save_state<T: Float>(state: &OptimizerState<T>, path: &Path) -> Result<()> {
    let bytes = state_to_bytes(state)?;
    write_atomically(path, &bytes)
}

/// Reads a state file written by [`save_state`]; errors say what does not fit (not a state
/// file, another version, another element type) together with the path.
pub fn load_state<T: Float>(path: &Path) -> Result<OptimizerState<T>> {
    let bytes = fs::read(path).map_err(|source| OptimError::Io { path: path.into(), source })?;
    state_from_bytes(&bytes).map_err(|e| e.in_file(path))
}

/// Serializes `state` to the bytes of a safetensors file.
pub fn state_to_bytes<T: Float>(state: &OptimizerState<T>) -> Result<Vec<u8>> {
    let mut tensors: Vec<(String, TensorBytes)> = Vec::new();
    for (name, ps) in &state.params {
        let step = i64::try_from(ps.step)
            .map_err(|_| OptimError::state(format!("step count of {name:?} exceeds i64")))?;
        tensors.push((
            format!("{name}.step"),
            TensorBytes::i64(ndarray::arr0(step).into_dyn().view()),
        ));
        for (key, buffer) in &ps.buffers {
            if key.is_empty() || key.contains('.') {
                return Err(OptimError::state(format!(
                    "buffer name {key:?} must be a dot-free word"
                )));
            }
            tensors.push((format!("{name}.{key}"), TensorBytes::of_array(buffer.view())));
        }
    }
    let metadata = HashMap::from([
        ("format".to_string(), STATE_FORMAT.to_string()),
        ("version".to_string(), STATE_VERSION.to_string()),
        ("kind".to_string(), state.kind.as_str().to_string()),
        ("dtype".to_string(), T::NAME.to_string()),
        ("steps".to_string(), state.steps.to_string()),
        ("params".to_string(), serde_json::to_string(&state.names).expect("strings serialize")),
    ]);
    // sorted header keys: the same state gives the same bytes in every process
    serialize_tensor_bytes(&tensors, Some(metadata))
        .map_err(|e| OptimError::state(format!("cannot serialize: {e}")))
}

/// Parses the bytes of a state file.
pub fn state_from_bytes<T: Float>(bytes: &[u8]) -> Result<OptimizerState<T>> {
    let not_state =
        |why: String| OptimError::state(format!("not a saturn-optim state file: {why}"));
    let (_, header) = SafeTensors::read_metadata(bytes).map_err(|e| not_state(e.to_string()))?;
    let empty = HashMap::new();
    let meta = header.metadata().as_ref().unwrap_or(&empty);
    let field = |key: &str| {
        meta.get(key).ok_or_else(|| not_state(format!("metadata has no {key:?} entry")))
    };
    if field("format")? != STATE_FORMAT {
        return Err(not_state(format!("format is {:?}", field("format")?)));
    }
    if field("version")? != &STATE_VERSION.to_string() {
        return Err(OptimError::state(format!(
            "state format version {} (this build reads version {STATE_VERSION})",
            field("version")?
        )));
    }
    let kind: OptimizerKind = field("kind")?.parse()?;
    let dtype = field("dtype")?;
    if dtype != T::NAME {
        return Err(OptimError::state(format!(
            "the state holds {dtype} values but the optimizer's parameters are {}",
            T::NAME
        )));
    }
    let steps: u64 =
        field("steps")?.parse().map_err(|_| not_state(format!("steps {:?}", field("steps"))))?;
    let names: Vec<String> = serde_json::from_str(field("params")?)
        .map_err(|e| not_state(format!("params is not a JSON list of names: {e}")))?;
    let known: BTreeSet<&str> = names.iter().map(String::as_str).collect();
    if known.len() != names.len() {
        return Err(not_state("a parameter name appears twice".into()));
    }

    let file = SafeTensors::deserialize(bytes).map_err(|e| not_state(e.to_string()))?;
    let mut steps_of: BTreeMap<String, u64> = BTreeMap::new();
    let mut buffers_of: BTreeMap<String, BTreeMap<String, ArrayD<T>>> = BTreeMap::new();
    for (tensor_name, view) in file.iter() {
        let (name, key) = tensor_name
            .rsplit_once('.')
            .filter(|(name, _)| known.contains(name))
            .ok_or_else(|| {
                OptimError::state(format!("tensor {tensor_name:?} belongs to no listed parameter"))
            })?;
        if key == "step" {
            let step = match (view.dtype(), view.shape(), view.data()) {
                (Dtype::I64, [], data) if data.len() == 8 => {
                    i64::from_le_bytes(data.try_into().expect("8 bytes"))
                }
                (dtype, shape, _) => {
                    return Err(OptimError::state(format!(
                        "{tensor_name:?} must be an I64 scalar, found {dtype} of shape {shape:?}"
                    )));
                }
            };
            let step = u64::try_from(step)
                .map_err(|_| OptimError::state(format!("{tensor_name:?} is negative ({step})")))?;
            steps_of.insert(name.to_string(), step);
        } else {
            let array = array_from_view::<T>(tensor_name, view.dtype(), view.shape(), view.data())?;
            buffers_of.entry(name.to_string()).or_default().insert(key.to_string(), array);
        }
    }
    let mut params = BTreeMap::new();
    for (name, step) in steps_of {
        let buffers = buffers_of.remove(&name).unwrap_or_default();
        params.insert(name, ParamState { step, buffers });
    }
    if let Some(name) = buffers_of.keys().next() {
        return Err(OptimError::state(format!("{name:?} has buffers but no {name}.step")));
    }
    Ok(OptimizerState { kind, steps, names, params })
}

fn array_from_view<T: Float>(
    tensor_name: &str,
    dtype: Dtype,
    shape: &[usize],
    data: &[u8],
) -> Result<ArrayD<T>> {
    let values: Vec<T> = match (dtype, T::NAME) {
        (Dtype::F32, "f32") => data
            .chunks_exact(4)
            .map(|c| T::cast(f32::from_le_bytes(c.try_into().expect("4 bytes")) as f64))
            .collect(),
        (Dtype::F64, "f64") => data
            .chunks_exact(8)
            .map(|c| T::cast(f64::from_le_bytes(c.try_into().expect("8 bytes"))))
            .collect(),
        (dtype, _) => {
            return Err(OptimError::state(format!(
                "{tensor_name:?} holds {dtype} values, the optimizer's parameters are {}",
                T::NAME
            )));
        }
    };
    ArrayD::from_shape_vec(IxDyn(shape), values)
        .map_err(|e| OptimError::state(format!("{tensor_name:?}: {e}")))
}

/// Writes `bytes` atomically (`saturn_tensor::io::write_atomically`: temporary file, fsync,
/// rename), so a crash leaves either the old file or the new one, never a torn one.
pub(crate) fn write_atomically(path: &Path, bytes: &[u8]) -> Result<()> {
    saturn_tensor::io::write_atomically(path, bytes).map_err(|e| match e {
        saturn_tensor::io::FileError::Io { path, source } => OptimError::Io { path, source },
        other => OptimError::state(other.to_string()),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> OptimizerState<f32> {
        let m = ArrayD::from_shape_vec(IxDyn(&[2, 2]), vec![1.0f32, -0.0, f32::MIN_POSITIVE, 3e38])
            .unwrap();
        let v = ArrayD::from_shape_vec(IxDyn(&[2, 2]), vec![0.25f32, 1e-30, 7.0, 0.1]).unwrap();
        let mut params = BTreeMap::new();
        params.insert(
            "layers.0.attn.q.weight".to_string(),
            ParamState {
                step: 7,
                buffers: BTreeMap::from([("exp_avg".into(), m), ("exp_avg_sq".into(), v)]),
            },
        );
        OptimizerState {
            kind: OptimizerKind::Adam,
            steps: 9,
            names: vec!["layers.0.attn.q.weight".into(), "never.stepped".into()],
            params,
        }
    }

    #[test]
    fn state_round_trips_through_bytes_exactly() {
        let state = sample();
        let back: OptimizerState<f32> = state_from_bytes(&state_to_bytes(&state).unwrap()).unwrap();
        assert_eq!(back, state);
        let m = &back.params["layers.0.attn.q.weight"].buffers["exp_avg"];
        assert!(m[[0, 1]].is_sign_negative(), "−0 must keep its sign bit");
    }

    #[test]
    fn file_is_written_atomically_and_read_back() {
        let dir = std::env::temp_dir().join(format!("saturn-optim-state-{}", std::process::id()));
        fs::create_dir_all(&dir).unwrap();
        let path = dir.join("optim.safetensors");
        save_state(&sample(), &path).unwrap();
        save_state(&sample(), &path).unwrap(); // overwriting works
        let leftovers: Vec<_> = fs::read_dir(&dir).unwrap().collect();
        assert_eq!(leftovers.len(), 1, "no temporary file may remain");
        assert_eq!(load_state::<f32>(&path).unwrap(), sample());
        fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn loading_with_the_wrong_element_type_is_a_clear_error() {
        let bytes = state_to_bytes(&sample()).unwrap();
        let err = state_from_bytes::<f64>(&bytes).unwrap_err().to_string();
        assert!(err.contains("f32") && err.contains("f64"), "{err}");
    }

    #[test]
    fn a_file_that_is_not_a_state_file_is_a_clear_error() {
        let err = state_from_bytes::<f32>(b"hello world").unwrap_err().to_string();
        assert!(err.contains("not a saturn-optim state file"), "{err}");
        // A valid safetensors file (e.g. a model checkpoint) without our metadata.
        let t = TensorBytes::of_array(ArrayD::<f32>::zeros(IxDyn(&[1])).view());
        let bytes = serialize_tensor_bytes(&[("w".to_string(), t)], None).unwrap();
        let err = state_from_bytes::<f32>(&bytes).unwrap_err().to_string();
        assert!(err.contains("no \"format\" entry"), "{err}");
    }

    #[test]
    fn a_missing_file_names_its_path() {
        let err = load_state::<f32>(Path::new("/nonexistent/optim.safetensors")).unwrap_err();
        assert!(err.to_string().contains("/nonexistent/optim.safetensors"), "{err}");
    }
}
