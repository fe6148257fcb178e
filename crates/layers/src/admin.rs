//! Admin initialization by profiling (Liu et al. 2020; the Transformer-Clinic code,
//! docs/REFERENCES.md#admin-profiling): one forward pass on a given batch with a running r = 1 per
//! stack (encoder and decoder separately); at each Admin sublayer, in forward order, ω_i ← r (every
//! entry), then r ← √(Var[x_{i−1} ⊙ ω_i] + Var[f_i(x_{i−1})]), population variances over all
//! elements. The pass runs in the context's mode (the reference code profiles in train mode,
//! dropout on).

use saturn_tensor::{Float, Tensor};

use crate::ctx::{AdminProfile, ForwardCtx};
use crate::error::Result;

/// Runs `forward` once with profiling on and returns ω per Admin sublayer, in forward order;
/// the model's ω parameters are left at these values.
pub fn admin_profile<T: Float, R>(
    ctx: &mut ForwardCtx<T>,
    forward: impl FnOnce(&mut ForwardCtx<T>) -> Result<R>,
) -> Result<Vec<(String, f64)>> {
    ctx.admin_profile = Some(AdminProfile { r: 1.0, omegas: Vec::new() });
    let result = saturn_tensor::no_grad(|| forward(ctx));
    let profile = ctx.admin_profile.take().expect("set above");
    result?;
    Ok(profile.omegas)
}

/// Sets every entry of every ω among `params` (names ending in `omegaK`) to `value`, e.g. the
/// closed form [`crate::init::admin_omega_closed_form`].
pub fn set_admin_omegas<T: Float>(params: &[(String, Tensor<T>)], value: f64) -> Result<usize> {
    let mut n = 0;
    for (name, p) in params {
        if name.rsplit('.').next().is_some_and(|last| last.starts_with("omega")) {
            p.set_data(Tensor::<T>::full(&p.shape(), T::cast(value)).data())?;
            n += 1;
        }
    }
    Ok(n)
}
