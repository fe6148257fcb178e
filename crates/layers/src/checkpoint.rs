//! Model checkpoints: the named parameters in a safetensors file, with the model config as JSON
//! in the metadata (`"config"`), readable by PyTorch (`safetensors.torch.load_file`).
//!
//! Loading checks every tensor the model needs: a missing name, a wrong shape, an unexpected
//! name (unless allowed) or an unreadable file is a typed error naming the tensor or the file.

use std::collections::HashMap;
use std::path::Path;

use saturn_tensor::io::{FileError, TensorFile, read_safetensors, write_safetensors};
use saturn_tensor::{Float, Tensor};

use crate::error::{LayerError, Result};
use crate::module::Module;

fn file_error(path: &Path, e: FileError) -> LayerError {
    match e {
        FileError::Io { source, .. } => LayerError::Io { path: path.display().to_string(), source },
        other => {
            LayerError::Checkpoint { path: path.display().to_string(), reason: other.to_string() }
        }
    }
}

/// Writes every parameter of `model` and `metadata` to `path` (atomically).
pub fn save<T: Float>(
    path: &Path,
    model: &impl Module<T>,
    metadata: &HashMap<String, String>,
) -> Result<()> {
    write_safetensors(path, &model.named_parameters(), metadata).map_err(|e| file_error(path, e))
}

/// Reads a safetensors file.
pub fn read(path: &Path) -> Result<TensorFile> {
    read_safetensors(path).map_err(|e| file_error(path, e))
}

/// How to match file names to parameter names.
#[derive(Default)]
pub struct LoadOptions<'a> {
    /// Ignore tensors the model does not have (e.g. Hugging Face's `position_ids` buffer).
    pub allow_extra: bool,
    /// The file's name for a parameter name (identity when `None`).
    pub file_name: Option<&'a dyn Fn(&str) -> String>,
}

/// Sets every parameter of `model` from `file` (which was read from `path`).
pub fn load_into<T: Float>(
    model: &impl Module<T>,
    file: &TensorFile,
    path: &Path,
    opts: &LoadOptions<'_>,
) -> Result<()> {
    let path_s = path.display().to_string();
    let params = model.named_parameters();
    let mut used = std::collections::HashSet::new();
    for (name, param) in &params {
        let key = opts.file_name.map_or_else(|| name.clone(), |f| f(name));
        let Some(values) = file.tensors.get(&key) else {
            return Err(LayerError::MissingTensor { path: path_s, name: key });
        };
        if let Some(dtype) = file.dtypes.get(&key)
            && !matches!(dtype.as_str(), "F16" | "BF16" | "F32" | "F64")
        {
            return Err(LayerError::WrongDtype { path: path_s, name: key, found: dtype.clone() });
        }
        if values.shape() != param.shape().as_slice() {
            return Err(LayerError::WrongShape {
                path: path_s,
                name: key,
                expected: param.shape(),
                found: values.shape().to_vec(),
            });
        }
        param.set_data(Tensor::<T>::constant(values.mapv(T::cast)).data())?;
        used.insert(key);
    }
    if !opts.allow_extra {
        let extra: Vec<String> =
            file.tensors.keys().filter(|k| !used.contains(*k)).cloned().collect();
        if !extra.is_empty() {
            return Err(LayerError::UnexpectedTensors { path: path_s, names: extra });
        }
    }
    Ok(())
}

/// Reads `path` and sets every parameter of `model` from it; returns the file's metadata.
pub fn load<T: Float>(
    path: &Path,
    model: &impl Module<T>,
    opts: &LoadOptions<'_>,
) -> Result<HashMap<String, String>> {
    let file = read(path)?;
    load_into(model, &file, path, opts)?;
    Ok(file.metadata)
}
