//! The position-wise feed-forward network FFN(x) = W₂·act(W₁·x + b₁) + b₂ (Vaswani et al. 2017),
//! with ReLU (fairseq, Xiong et al.), GELU-erf (BERT) or GELU-tanh (GPT-2, torch_io's default).

use saturn_tensor::{Float, Tensor};
use serde::{Deserialize, Serialize};

use crate::error::Result;
use crate::init::Initializer;
use crate::linear::Linear;
use crate::module::{Module, join};

/// The FFN's nonlinearity.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum Activation {
    /// max(x, 0).
    Relu,
    /// x·Φ(x), exact.
    Gelu,
    /// The tanh approximation of GELU.
    #[default]
    GeluTanh,
}

impl Activation {
    /// Applies the activation.
    pub fn apply<T: Float>(self, x: &Tensor<T>) -> Result<Tensor<T>> {
        Ok(match self {
            Activation::Relu => x.relu(),
            Activation::Gelu => x.gelu()?,
            Activation::GeluTanh => x.gelu_tanh()?,
        })
    }
}

/// Two Linear layers around an activation; `w1`: d → d_ff, `w2`: d_ff → d.
#[derive(Debug, Clone)]
pub struct FeedForward<T: Float> {
    pub w1: Linear<T>,
    pub w2: Linear<T>,
    pub act: Activation,
}

impl<T: Float> FeedForward<T> {
    /// An FFN d → d_ff → d; `gain` scales both matrices' init (DeepNorm's β).
    pub fn new(
        init: &mut Initializer,
        d: usize,
        d_ff: usize,
        act: Activation,
        bias: bool,
        gain: f64,
        xavier_normal: bool,
    ) -> Self {
        let make = |init: &mut Initializer, i: usize, o: usize| {
            if xavier_normal {
                Linear {
                    weight: init.xavier_normal(o, i, gain),
                    bias: bias.then(|| crate::init::filled(&[o], 0.0)),
                }
            } else {
                Linear::new(init, i, o, bias, gain)
            }
        };
        let w1 = make(init, d, d_ff);
        let w2 = make(init, d_ff, d);
        FeedForward { w1, w2, act }
    }

    /// FFN(x) for x [..., d].
    pub fn forward(&self, x: &Tensor<T>) -> Result<Tensor<T>> {
        self.w2.forward(&self.act.apply(&self.w1.forward(x)?)?)
    }
}

impl<T: Float> Module<T> for FeedForward<T> {
    fn visit(&self, prefix: &str, f: &mut dyn FnMut(String, &Tensor<T>)) {
        self.w1.visit(&join(prefix, "w1"), f);
        self.w2.visit(&join(prefix, "w2"), f);
    }
}

#[cfg(test)]
mod tests {
    use saturn_tensor::{gradcheck, gradgradcheck};

    use super::*;
    use crate::init::InitScheme;

    #[test]
    fn ffn_passes_gradcheck_and_gradgradcheck_for_every_activation() {
        for act in [Activation::Relu, Activation::Gelu, Activation::GeluTanh] {
            let mut init = Initializer::new(InitScheme::Normal { std: 0.5 }, 5);
            let ffn: FeedForward<f64> = FeedForward::new(&mut init, 3, 5, act, true, 1.0, false);
            let x = init.normal::<f64>(&[2, 3], 1.0);
            let f = |p: &[Tensor<f64>]| {
                FeedForward {
                    w1: Linear { weight: p[1].clone(), bias: ffn.w1.bias.clone() },
                    ..ffn.clone()
                }
                .forward(&p[0])
            };
            gradcheck(f, &[x.clone(), ffn.w1.weight.clone()]).unwrap();
            gradgradcheck(f, &[x, ffn.w1.weight.clone()]).unwrap();
        }
    }
}
