//! Small fixtures shared by the unit tests.

use saturn_tensor::{Float, Tensor};

use crate::Optimizer;

/// One named f64 parameter, as the list optimizers take, and the tensor itself.
pub fn named(
    name: &str,
    values: &[f64],
    shape: &[usize],
) -> (Vec<(String, Tensor<f64>)>, Tensor<f64>) {
    let p = Tensor::param_from_vec(values.to_vec(), shape).expect("shape fits");
    (vec![(name.to_string(), p.clone())], p)
}

/// Sets the gradient of each of the optimizer's parameters, in order.
pub fn set_grads<T: Float>(opt: &dyn Optimizer<T>, grads: &[&[f64]]) {
    let params = opt.params();
    assert_eq!(params.len(), grads.len(), "one gradient per parameter");
    for ((_, p), g) in params.into_iter().zip(grads) {
        let g: Vec<T> = g.iter().map(|&x| T::cast(x)).collect();
        p.set_grad(Some(
            Tensor::from_vec(g, &p.shape()).expect("gradient of the parameter's size"),
        ));
    }
}

/// The values of a tensor as f64.
pub fn values<T: Float>(p: &Tensor<T>) -> Vec<f64> {
    p.to_vec().into_iter().map(Float::as_f64).collect()
}
