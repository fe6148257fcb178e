//! Least-squares lines used to read the measurements: y = a + b·x with its R², by the
//! closed-form OLS of [`saturn_tensor::flat::linear_fit`] (re-exported here and at the crate
//! root).

pub use saturn_tensor::flat::{LinearFit, linear_fit};
