#![cfg_attr(test, allow(clippy::cloned_ref_to_slice_refs))]
//! # saturn-tensor
//!
//! N-dimensional `f32` / `f64` tensors on [`ndarray`] with matrix products through OpenBLAS,
//! and reverse-mode automatic differentiation of any order.
//!
//! ```
//! use saturn_tensor::{Tensor, grad, hvp};
//!
//! // loss = Σ tanh(W·x)², differentiated once and twice
//! let w = Tensor::<f64>::param_from_vec(vec![0.5, -0.3, 0.8, 0.1], &[2, 2])?;
//! let x = Tensor::from_vec(vec![1.0, 2.0], &[2, 1])?;
//! let loss = w.matmul(&x)?.tanh().powf(2.0).sum_all();
//! let g = grad(&[loss.clone()], &[w.clone()], false)?;      // ∇_W loss
//! let hv = hvp(&loss, &[w.clone()], &[Tensor::ones(&[2, 2])])?; // H·1, exact
//! assert_eq!(g[0].shape(), vec![2, 2]);
//! assert_eq!(hv[0].shape(), vec![2, 2]);
//! # Ok::<(), saturn_tensor::TensorError>(())
//! ```
//!
//! - [`Tensor`]: a handle to a value and, when it requires a gradient, the operation that made it.
//!   Parameters are leaves created with [`Tensor::param`]; [`no_grad`] turns recording off.
//! - Operations (methods on `Tensor`) return `Result`: a bad shape, axis or index is an
//!   [`TensorError`] naming the operation and the shapes, never a panic.
//! - [`grad`] / [`Tensor::backward`] walk the graph backwards; each backward rule is written in the
//!   same differentiable operations, so with `create_graph = true` gradients can be
//!   differentiated again: [`hvp`] gives exact Hessian-vector products by double backward.
//! - [`gradcheck`] and [`gradgradcheck`] compare first and second derivatives with central
//!   differences in `f64`; every operation's tests use them.
//! - [`flat`]: numerics on flat `f64` vectors (dot, norms, means, cosines, line fits) shared by
//!   the analysis crates.
//! - [`RestoreGuard`]: move parameters to new values and get the exact old values back on drop.
//! - [`profile`]: opt-in wall time per backward rule, to see where a backward pass goes.
//! - [`alloc::tune_malloc`]: binaries call it at startup so that glibc keeps freed tensor
//!   buffers instead of unmapping them (see `docs/PERFORMANCE.md#malloc`).

// Link OpenBLAS (the provider of ndarray's `blas` feature) exactly once, here.
extern crate blas_src;

pub mod alloc;
mod autograd;
pub mod blas;
pub mod check;
mod error;
pub mod failpoint;
pub mod flat;
mod float;
pub mod io;
mod ops;
pub mod parallel;
pub mod profile;
mod restore;
mod simd_math;
mod tensor;

pub use autograd::{grad, grad_with, hvp};
pub use check::{
    CheckError, CheckOptions, gradcheck, gradcheck_leaves, gradcheck_with, gradgradcheck,
    gradgradcheck_with,
};
pub use error::{Result, TensorError};
pub use float::Float;
pub use ops::{CrossEntropy, broadcast_shape};
pub use restore::RestoreGuard;
pub use tensor::{Data, DataMut, GradModeGuard, Tensor, is_grad_enabled, no_grad, no_grad_guard};

/// Re-exported so that users name the same `ndarray` version as this crate.
pub use ndarray;
