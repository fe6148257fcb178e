//! The element types a [`Tensor`](crate::Tensor) can hold: `f32` (training speed) and `f64`
//! (gradient checks, theorem tests, scaling limits).

use std::fmt::{Debug, Display};
use std::iter::Sum;
use std::ops::{AddAssign, DivAssign, MulAssign, SubAssign};

/// A floating-point element type. Implemented for `f32` and `f64` only.
pub trait Float:
    num_traits::Float
    + ndarray::LinalgScalar
    + ndarray::ScalarOperand
    + Sum
    + AddAssign
    + SubAssign
    + MulAssign
    + DivAssign
    + Debug
    + Display
    + Default
    + Send
    + Sync
    + 'static
{
    /// `"f32"` or `"f64"`.
    const NAME: &'static str;
    /// Converts from `f64`, rounding to the nearest representable value.
    fn cast(x: f64) -> Self;
    /// Widens (or copies) to `f64`.
    fn as_f64(self) -> f64;
    /// The error function erf(x) = 2/√π ∫₀ˣ e^(−t²) dt (libm, correctly rounded to ~1 ulp).
    fn erf(self) -> Self;
}

impl Float for f32 {
    const NAME: &'static str = "f32";
    fn cast(x: f64) -> Self {
        x as f32
    }
    fn as_f64(self) -> f64 {
        self as f64
    }
    fn erf(self) -> Self {
        libm::erff(self)
    }
}

impl Float for f64 {
    const NAME: &'static str = "f64";
    fn cast(x: f64) -> Self {
        x
    }
    fn as_f64(self) -> f64 {
        self
    }
    fn erf(self) -> Self {
        libm::erf(self)
    }
}
