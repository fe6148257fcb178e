//! Linear: y = x·Wᵀ + b, with W stored [out, in] like `torch.nn.Linear`.
//!
//! Inputs of any rank […, in] are flattened to one [N, in] matrix so the product is one GEMM,
//! with Wᵀ passed to BLAS as a transpose flag.

use saturn_tensor::{Float, Tensor};

use crate::error::{Result, batch_err};
use crate::init::Initializer;
use crate::module::{Module, join};

/// A fully connected layer.
#[derive(Debug, Clone)]
pub struct Linear<T: Float> {
    /// [out, in].
    pub weight: Tensor<T>,
    /// `[out]`, if the layer has a bias.
    pub bias: Option<Tensor<T>>,
}

impl<T: Float> Linear<T> {
    /// A layer `inp → out`, weight from the initializer (scaled by `gain`), bias zero.
    pub fn new(init: &mut Initializer, inp: usize, out: usize, bias: bool, gain: f64) -> Self {
        let weight = init.linear_weight(out, inp, gain);
        Linear { weight, bias: bias.then(|| init.linear_bias(out, inp)) }
    }

    /// The input size.
    pub fn in_features(&self) -> usize {
        self.weight.shape()[1]
    }

    /// The output size.
    pub fn out_features(&self) -> usize {
        self.weight.shape()[0]
    }

    /// y = x·Wᵀ + b for x of shape […, in].
    pub fn forward(&self, x: &Tensor<T>) -> Result<Tensor<T>> {
        let shape = x.shape();
        let inp = self.in_features();
        if shape.last() != Some(&inp) {
            return Err(batch_err(format!("Linear expects inputs [..., {inp}], got {shape:?}")));
        }
        let rows = shape[..shape.len() - 1].iter().product();
        let y = x.reshape(&[rows, inp])?.linear(&self.weight, self.bias.as_ref())?;
        let mut out_shape = shape;
        *out_shape.last_mut().expect("rank ≥ 1") = self.out_features();
        Ok(y.reshape(&out_shape)?)
    }
}

impl<T: Float> Module<T> for Linear<T> {
    fn visit(&self, prefix: &str, f: &mut dyn FnMut(String, &Tensor<T>)) {
        f(join(prefix, "weight"), &self.weight);
        if let Some(b) = &self.bias {
            f(join(prefix, "bias"), b);
        }
    }
}

#[cfg(test)]
mod tests {
    use saturn_tensor::gradcheck;

    use super::*;
    use crate::init::InitScheme;

    #[test]
    fn linear_matches_x_w_transpose_plus_b_and_gradchecks() {
        let mut init = Initializer::new(InitScheme::Normal { std: 0.5 }, 1);
        let lin: Linear<f64> = Linear::new(&mut init, 3, 2, true, 1.0);
        lin.bias
            .as_ref()
            .unwrap()
            .set_data(Tensor::<f64>::from_vec(vec![0.1, -0.2], &[2]).unwrap().data())
            .unwrap();
        let x = init.normal::<f64>(&[2, 2, 3], 1.0);
        let y = lin.forward(&x).unwrap();
        assert_eq!(y.shape(), vec![2, 2, 2]);
        let (w, xv, yv) = (lin.weight.to_vec(), x.to_vec(), y.to_vec());
        let expected = (0..3).map(|k| xv[3 + k] * w[3 + k]).sum::<f64>() - 0.2;
        assert!((yv[3] - expected).abs() < 1e-12);
        let (wt, bt) = (lin.weight.clone(), lin.bias.clone().unwrap());
        gradcheck(
            |p| {
                let l = Linear { weight: p[1].clone(), bias: Some(p[2].clone()) };
                l.forward(&p[0])
            },
            &[x, wt, bt],
        )
        .unwrap();
        assert!(lin.forward(&Tensor::zeros(&[2, 4])).is_err());
    }
}
