//! Named tensors to and from safetensors files (the format PyTorch and Hugging Face read),
//! shared by model checkpoints, optimizer state and interop exports.
//!
//! Writes are atomic: the bytes go to `<path>.tmp` first, which is then renamed over `path`, so
//! a crash never leaves a half-written file. Reading accepts F64, F32, F16 and BF16 tensors
//! (and integer tensors, converted exactly when they fit); values are kept in f64, which holds
//! every f32 exactly, so an f32 save → load round trip is bit-exact.

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};

use ndarray::{ArrayD, ArrayViewD, IxDyn};
use safetensors::tensor::{Dtype, SafeTensors, TensorView};

use crate::{Float, Tensor};

/// Why reading or writing a tensor file failed; every variant names the file.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum FileError {
    /// The file could not be read or written.
    #[error("{path}: {source}")]
    Io { path: PathBuf, source: std::io::Error },
    /// The bytes are not a valid safetensors file (truncated, corrupted header, bad offsets).
    #[error("{path}: not a valid safetensors file ({reason})")]
    Format { path: PathBuf, reason: String },
    /// A tensor's element type cannot be converted to a float.
    #[error("{path}: tensor `{name}` has unsupported dtype {dtype}")]
    Dtype { path: PathBuf, name: String, dtype: String },
}

/// The contents of a safetensors file: tensors by name (as f64) and the string metadata.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct TensorFile {
    pub tensors: BTreeMap<String, ArrayD<f64>>,
    /// Each tensor's dtype in the file (`F32`, `I64`, …), before the conversion to f64.
    pub dtypes: BTreeMap<String, String>,
    pub metadata: HashMap<String, String>,
}

impl TensorFile {
    /// A tensor converted to the element type `T`.
    pub fn get<T: Float>(&self, name: &str) -> Option<ArrayD<T>> {
        self.tensors.get(name).map(|a| a.mapv(T::cast))
    }
}

/// One tensor as a safetensors writer wants it: dtype, shape and little-endian bytes. Built from
/// a float [`Tensor`] (F32 or F64, its own type), or from `f64` / `i64` arrays (token ids must be
/// I64 for PyTorch), and written by [`write_tensor_bytes`].
#[derive(Debug, Clone, PartialEq)]
pub struct TensorBytes {
    dtype: Dtype,
    shape: Vec<usize>,
    data: Vec<u8>,
}

impl safetensors::View for &TensorBytes {
    fn dtype(&self) -> Dtype {
        self.dtype
    }
    fn shape(&self) -> &[usize] {
        &self.shape
    }
    fn data(&self) -> std::borrow::Cow<'_, [u8]> {
        std::borrow::Cow::Borrowed(&self.data)
    }
    fn data_len(&self) -> usize {
        self.data.len()
    }
}

impl TensorBytes {
    /// A tensor in its own element type (F32 or F64), row-major.
    pub fn of_tensor<T: Float>(t: &Tensor<T>) -> Self {
        Self::of_array(t.data().view())
    }

    /// An array in its own element type (F32 or F64), row-major (exact: f32 → f64 → f32 is
    /// lossless).
    pub fn of_array<T: Float>(a: ArrayViewD<'_, T>) -> Self {
        let (dtype, data) = if T::NAME == "f32" {
            (Dtype::F32, a.iter().flat_map(|v| (v.as_f64() as f32).to_le_bytes()).collect())
        } else {
            (Dtype::F64, a.iter().flat_map(|v| v.as_f64().to_le_bytes()).collect())
        };
        TensorBytes { dtype, shape: a.shape().to_vec(), data }
    }

    /// An F64 tensor, row-major.
    pub fn f64(a: ArrayViewD<'_, f64>) -> Self {
        let data = a.iter().flat_map(|v| v.to_le_bytes()).collect();
        TensorBytes { dtype: Dtype::F64, shape: a.shape().to_vec(), data }
    }

    /// An I64 tensor (token ids), row-major.
    pub fn i64(a: ArrayViewD<'_, i64>) -> Self {
        let data = a.iter().flat_map(|v| v.to_le_bytes()).collect();
        TensorBytes { dtype: Dtype::I64, shape: a.shape().to_vec(), data }
    }
}

/// Writes `tensors` (in their own element type) and `metadata` to `path`, atomically.
pub fn write_safetensors<T: Float>(
    path: &Path,
    tensors: &[(String, Tensor<T>)],
    metadata: &HashMap<String, String>,
) -> Result<(), FileError> {
    let bytes: Vec<(String, TensorBytes)> =
        tensors.iter().map(|(n, t)| (n.clone(), TensorBytes::of_tensor(t))).collect();
    write_tensor_bytes(path, &bytes, metadata)
}

/// Writes tensors of any dtype ([`TensorBytes`]) and `metadata` to `path`, atomically, with
/// the header's keys sorted ([`canonical_header`]).
pub fn write_tensor_bytes(
    path: &Path,
    tensors: &[(String, TensorBytes)],
    metadata: &HashMap<String, String>,
) -> Result<(), FileError> {
    let meta = if metadata.is_empty() { None } else { Some(metadata.clone()) };
    let buffer = serialize_tensor_bytes(tensors, meta)
        .map_err(|reason| FileError::Format { path: path.to_path_buf(), reason })?;
    write_atomically(path, &buffer)
}

/// The bytes of a safetensors file holding `tensors` and `metadata`, with the header's keys
/// sorted ([`canonical_header`]).
pub fn serialize_tensor_bytes(
    tensors: &[(String, TensorBytes)],
    metadata: Option<HashMap<String, String>>,
) -> Result<Vec<u8>, String> {
    let views = tensors.iter().map(|(n, b)| (n.clone(), b));
    let buffer = safetensors::serialize(views, metadata).map_err(|e| e.to_string())?;
    canonical_header(buffer)
}

/// The same safetensors bytes with the JSON header's keys sorted (the metadata is a `HashMap`,
/// whose order changes from process to process), so equal contents give equal bytes. Every
/// writer of safetensors in the workspace passes its bytes through this.
pub fn canonical_header(bytes: Vec<u8>) -> Result<Vec<u8>, String> {
    let n = u64::from_le_bytes(bytes[..8].try_into().map_err(|_| "short buffer")?) as usize;
    let header: serde_json::Value =
        serde_json::from_slice(&bytes[8..8 + n]).map_err(|e| e.to_string())?;
    let mut text = serde_json::to_vec(&sorted_keys(header)).map_err(|e| e.to_string())?;
    text.resize(text.len().next_multiple_of(8), b' ');
    let mut out = Vec::with_capacity(bytes.len());
    out.extend((text.len() as u64).to_le_bytes());
    out.extend(text);
    out.extend(&bytes[8 + n..]);
    Ok(out)
}

/// Writes `bytes` to `path` through a temporary file of this process, `fsync`, and a rename
/// (then an `fsync` of the directory): after a crash, `path` holds the old bytes or the new ones.
pub fn write_atomically(path: &Path, bytes: &[u8]) -> Result<(), FileError> {
    use std::io::Write as _;
    let io = |source| FileError::Io { path: path.to_path_buf(), source };
    let dir = path.parent().filter(|d| !d.as_os_str().is_empty());
    if let Some(dir) = dir {
        std::fs::create_dir_all(dir).map_err(io)?;
    }
    // a name of this process's own: two writers of one file never share a temporary
    let mut tmp = path.as_os_str().to_owned();
    tmp.push(format!(".{}.tmp", std::process::id()));
    crate::failpoint::hit("write:start");
    let mut file = std::fs::File::create(&tmp).map_err(io)?;
    let (head, tail) = bytes.split_at(bytes.len() / 2);
    file.write_all(head).map_err(io)?;
    crate::failpoint::hit("write:half");
    file.write_all(tail).map_err(io)?;
    // the bytes reach the disk before the name does: a crash leaves the old file or the new one
    file.sync_all().map_err(io)?;
    drop(file);
    crate::failpoint::hit("write:before-rename");
    std::fs::rename(&tmp, path).map_err(io)?;
    if let Some(dir) = dir
        && let Ok(handle) = std::fs::File::open(dir)
    {
        let _ = handle.sync_all(); // the rename itself, durable
    }
    Ok(())
}

/// `value` with every object's keys in sorted order (serde_json keeps insertion order when any
/// crate in the build turns on its `preserve_order` feature).
fn sorted_keys(value: serde_json::Value) -> serde_json::Value {
    match value {
        serde_json::Value::Object(map) => {
            let mut entries: Vec<(String, serde_json::Value)> = map.into_iter().collect();
            entries.sort_by(|a, b| a.0.cmp(&b.0));
            serde_json::Value::Object(
                entries.into_iter().map(|(k, v)| (k, sorted_keys(v))).collect(),
            )
        }
        other => other,
    }
}

/// Reads every tensor and the metadata of a safetensors file.
pub fn read_safetensors(path: &Path) -> Result<TensorFile, FileError> {
    let bytes =
        std::fs::read(path).map_err(|source| FileError::Io { path: path.to_path_buf(), source })?;
    parse_safetensors(path, &bytes)
}

/// Parses safetensors bytes (`path` only names the source in errors).
pub fn parse_safetensors(path: &Path, bytes: &[u8]) -> Result<TensorFile, FileError> {
    let format = |e: safetensors::SafeTensorError| FileError::Format {
        path: path.to_path_buf(),
        reason: e.to_string(),
    };
    let (_, header) = SafeTensors::read_metadata(bytes).map_err(format)?;
    let file = SafeTensors::deserialize(bytes).map_err(format)?;
    let mut tensors = BTreeMap::new();
    let mut dtypes = BTreeMap::new();
    for (name, view) in file.iter() {
        tensors.insert(name.to_string(), to_f64(path, name, &view)?);
        dtypes.insert(name.to_string(), format!("{:?}", view.dtype()));
    }
    Ok(TensorFile { tensors, dtypes, metadata: header.metadata().clone().unwrap_or_default() })
}

fn to_f64(path: &Path, name: &str, view: &TensorView<'_>) -> Result<ArrayD<f64>, FileError> {
    let data = view.data();
    let values: Vec<f64> = match view.dtype() {
        Dtype::F64 => data
            .chunks_exact(8)
            .map(|c| f64::from_le_bytes(c.try_into().expect("8 bytes")))
            .collect(),
        Dtype::F32 => data
            .chunks_exact(4)
            .map(|c| f32::from_le_bytes(c.try_into().expect("4 bytes")) as f64)
            .collect(),
        Dtype::F16 => {
            data.chunks_exact(2).map(|c| f16_to_f64(u16::from_le_bytes([c[0], c[1]]))).collect()
        }
        Dtype::BF16 => data
            .chunks_exact(2)
            .map(|c| f32::from_bits((u16::from_le_bytes([c[0], c[1]]) as u32) << 16) as f64)
            .collect(),
        Dtype::I64 => data
            .chunks_exact(8)
            .map(|c| i64::from_le_bytes(c.try_into().expect("8 bytes")) as f64)
            .collect(),
        Dtype::I32 => data
            .chunks_exact(4)
            .map(|c| i32::from_le_bytes(c.try_into().expect("4 bytes")) as f64)
            .collect(),
        Dtype::U32 => data
            .chunks_exact(4)
            .map(|c| u32::from_le_bytes(c.try_into().expect("4 bytes")) as f64)
            .collect(),
        Dtype::I16 => {
            data.chunks_exact(2).map(|c| i16::from_le_bytes([c[0], c[1]]) as f64).collect()
        }
        Dtype::U16 => {
            data.chunks_exact(2).map(|c| u16::from_le_bytes([c[0], c[1]]) as f64).collect()
        }
        Dtype::U8 => data.iter().map(|&b| b as f64).collect(),
        Dtype::I8 => data.iter().map(|&b| b as i8 as f64).collect(),
        Dtype::BOOL => data.iter().map(|&b| if b != 0 { 1.0 } else { 0.0 }).collect(),
        other => {
            return Err(FileError::Dtype {
                path: path.to_path_buf(),
                name: name.to_string(),
                dtype: format!("{other:?}"),
            });
        }
    };
    ArrayD::from_shape_vec(IxDyn(view.shape()), values).map_err(|e| FileError::Format {
        path: path.to_path_buf(),
        reason: format!("tensor `{name}`: {e}"),
    })
}

/// IEEE half precision to f64.
fn f16_to_f64(h: u16) -> f64 {
    let sign = if h >> 15 == 1 { -1.0 } else { 1.0 };
    let exp = ((h >> 10) & 0x1f) as i32;
    let frac = (h & 0x3ff) as f64;
    sign * match exp {
        0 => frac * 2f64.powi(-24),
        31 if frac == 0.0 => f64::INFINITY,
        31 => f64::NAN,
        e => (1.0 + frac / 1024.0) * 2f64.powi(e - 15),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tmp(name: &str) -> PathBuf {
        std::env::temp_dir().join(format!("saturn-io-{}-{name}", std::process::id()))
    }

    #[test]
    fn f32_and_f64_round_trips_are_bit_exact() {
        let a = Tensor::<f32>::from_vec(vec![0.1, -3.25e-8, f32::MAX, 7.0], &[2, 2]).unwrap();
        let path = tmp("f32.safetensors");
        let meta = HashMap::from([("config".to_string(), "{}".to_string())]);
        write_safetensors(&path, &[("w".to_string(), a.clone())], &meta).unwrap();
        let file = read_safetensors(&path).unwrap();
        assert_eq!(file.get::<f32>("w").unwrap().iter().copied().collect::<Vec<_>>(), a.to_vec());
        assert_eq!(file.metadata["config"], "{}");
        let b = Tensor::<f64>::from_vec(vec![0.1, 1e-300], &[2]).unwrap();
        write_safetensors(&path, &[("b".to_string(), b.clone())], &HashMap::new()).unwrap();
        assert_eq!(
            read_safetensors(&path).unwrap().get::<f64>("b").unwrap().into_raw_vec_and_offset().0,
            b.to_vec()
        );
        std::fs::remove_file(path).unwrap();
    }

    #[test]
    fn truncated_and_corrupted_files_are_format_errors() {
        let path = tmp("bad.safetensors");
        let t = Tensor::<f32>::ones(&[4]);
        write_safetensors(&path, &[("w".to_string(), t)], &HashMap::new()).unwrap();
        let bytes = std::fs::read(&path).unwrap();
        assert!(matches!(
            parse_safetensors(&path, &bytes[..bytes.len() - 3]),
            Err(FileError::Format { .. })
        ));
        let mut garbled = bytes.clone();
        garbled[8] = b'x'; // the header's opening brace
        assert!(matches!(parse_safetensors(&path, &garbled), Err(FileError::Format { .. })));
        assert!(matches!(read_safetensors(&tmp("missing")), Err(FileError::Io { .. })));
        std::fs::remove_file(path).unwrap();
    }

    #[test]
    fn equal_contents_give_equal_bytes() {
        let t = Tensor::<f32>::ones(&[3]);
        let meta: HashMap<String, String> =
            (0..8).map(|i| (format!("k{i}"), i.to_string())).collect();
        let (p, q) = (tmp("det-a.safetensors"), tmp("det-b.safetensors"));
        write_safetensors(&p, &[("w".to_string(), t.clone())], &meta).unwrap();
        let meta2: HashMap<String, String> = meta.clone().into_iter().collect();
        write_safetensors(&q, &[("w".to_string(), t)], &meta2).unwrap();
        assert_eq!(std::fs::read(&p).unwrap(), std::fs::read(&q).unwrap());
        assert_eq!(read_safetensors(&p).unwrap().metadata, meta);
        std::fs::remove_file(p).unwrap();
        std::fs::remove_file(q).unwrap();
    }

    #[test]
    fn half_precision_decodes() {
        assert_eq!(f16_to_f64(0x3c00), 1.0);
        assert_eq!(f16_to_f64(0xc000), -2.0);
        assert_eq!(f16_to_f64(0x0001), 2f64.powi(-24));
    }
}
