//! Safetensors files that mix integer and float tensors (token batches, BERT outputs).
//!
//! Token ids must be I64 for PyTorch (`torch_io.py` rejects float ids): an [`Array`] is an I64
//! or F64 array, written by `saturn_tensor::io::write_tensor_bytes` (the writer of every
//! safetensors file in the workspace: canonical header, temporary file, then rename).

use std::collections::HashMap;
use std::path::Path;

use saturn_tensor::io::{TensorBytes, write_tensor_bytes};
use saturn_tensor::ndarray::{ArrayD, Dimension};

use crate::Result;

/// A tensor to write: token ids (I64) or values (F64), row-major.
pub enum Array {
    I64(ArrayD<i64>),
    F64(ArrayD<f64>),
}

impl<D: Dimension> From<saturn_tensor::ndarray::Array<i64, D>> for Array {
    fn from(a: saturn_tensor::ndarray::Array<i64, D>) -> Self {
        Array::I64(a.into_dyn())
    }
}

impl<D: Dimension> From<saturn_tensor::ndarray::Array<f64, D>> for Array {
    fn from(a: saturn_tensor::ndarray::Array<f64, D>) -> Self {
        Array::F64(a.into_dyn())
    }
}

impl From<&Array> for TensorBytes {
    fn from(a: &Array) -> Self {
        match a {
            Array::I64(a) => TensorBytes::i64(a.view()),
            Array::F64(a) => TensorBytes::f64(a.view()),
        }
    }
}

/// Writes `tensors` and `metadata` to `path` atomically (sorted header keys: the same tensors
/// give the same bytes in every process).
pub fn write_tensors(
    path: &Path,
    tensors: &[(String, Array)],
    metadata: &HashMap<String, String>,
) -> Result<()> {
    let bytes: Vec<(String, TensorBytes)> =
        tensors.iter().map(|(n, a)| (n.clone(), a.into())).collect();
    Ok(write_tensor_bytes(path, &bytes, metadata)?)
}

#[cfg(test)]
mod tests {
    use safetensors::tensor::Dtype;
    use saturn_tensor::io::read_safetensors;
    use saturn_tensor::ndarray::array;

    use super::*;

    #[test]
    fn integer_and_float_tensors_round_trip() {
        let path = std::env::temp_dir().join(format!("saturn-interop-{}.st", std::process::id()));
        let tensors = [
            ("ids".to_string(), array![[3i64, -1], [0, 1 << 40]].into()),
            ("x".to_string(), array![0.1f64, -2.5].into()),
        ];
        let meta = HashMap::from([("format".to_string(), "1".to_string())]);
        write_tensors(&path, &tensors, &meta).unwrap();
        let bytes = std::fs::read(&path).unwrap();
        let raw = safetensors::SafeTensors::deserialize(&bytes).unwrap();
        assert_eq!(raw.tensor("ids").unwrap().dtype(), Dtype::I64);
        assert_eq!(raw.tensor("x").unwrap().dtype(), Dtype::F64);
        let file = read_safetensors(&path).unwrap();
        let ids = &file.tensors["ids"];
        assert_eq!(ids.shape(), [2, 2]);
        assert_eq!(ids.iter().copied().collect::<Vec<_>>(), [3.0, -1.0, 0.0, (1u64 << 40) as f64]);
        assert_eq!(file.tensors["x"].iter().copied().collect::<Vec<_>>(), [0.1, -2.5]);
        assert_eq!(file.metadata["format"], "1");
        std::fs::remove_file(path).unwrap();
    }
}
