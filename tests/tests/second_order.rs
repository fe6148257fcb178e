//! Second order: Hessian-vector products (Pearlmutter 1994; PyHessian, the method of
//! docs/REFERENCES.md#hessian).
//!
//! For a twice continuously differentiable loss L(θ), the Hessian H = ∇²L is a symmetric linear
//! map (Schwarz), so for any directions u, v and scalars α, β:
//!
//! - symmetry: ⟨u, H·v⟩ = ⟨v, H·u⟩;
//! - linearity: H·(α·u + β·v) = α·H·u + β·H·v.
//!
//! saturn-tensor computes H·v exactly by double backward, H·v = ∇_θ⟨∇_θ L, v⟩; both properties
//! are checked on the cross-entropy loss of random small decoder LMs of every residual scheme
//! with smooth (GELU) activations, over all their parameters.
//!
//! The Lanczos part of the second-order property is `lanczos.rs`.

use proptest::prelude::*;
use saturn_layers::{
    Activation, DecoderLm, ForwardCtx, InitScheme, LmConfig, Module, ResidualScheme,
};
use saturn_tensor::ndarray::Array2;
use saturn_tensor::{Tensor, hvp};
use saturn_theorems::proptest_config;
use saturn_theorems::random::{any_scheme, inner, normal};

/// A random small LM, its parameters, and its loss on a random sequence.
fn model_and_loss(
    scheme: ResidualScheme,
    gelu_tanh: bool,
    layers: usize,
    tokens: &[usize],
    seed: u64,
) -> (Vec<Tensor<f64>>, Tensor<f64>) {
    let config = LmConfig {
        residual: scheme,
        act: if gelu_tanh { Activation::GeluTanh } else { Activation::Gelu },
        init: InitScheme::Normal { std: 0.5 },
        ..LmConfig::new(6, 4, 2, 8, layers, 6)
    };
    let model = DecoderLm::<f64>::new(config, seed).unwrap();
    let t = tokens.len() - 1;
    let inputs = Array2::from_shape_vec((1, t), tokens[..t].to_vec()).unwrap();
    let targets = Array2::from_shape_vec((1, t), tokens[1..].to_vec()).unwrap();
    let loss = model.loss(inputs.view(), targets.view(), &mut ForwardCtx::eval()).unwrap();
    (model.parameters(), loss)
}

fn direction(params: &[Tensor<f64>], seed: u64) -> Vec<Tensor<f64>> {
    params
        .iter()
        .enumerate()
        .map(|(i, p)| normal(&p.shape(), 1.0, seed ^ ((i as u64) << 20)))
        .collect()
}

fn sq_norm(v: &[Tensor<f64>]) -> f64 {
    inner(v, v)
}

proptest! {
    #![proptest_config(proptest_config(16))]

    /// Schwarz's theorem: the Hessian of a C² loss is symmetric, so ⟨u, H·v⟩ = ⟨v, H·u⟩ for random
    /// directions u, v over all parameters of random decoder LMs (any residual scheme), to
    /// 1e-10·‖u‖·‖H·v‖.
    #[test]
    fn hessian_vector_products_are_symmetric(
        scheme in any_scheme(),
        gelu_tanh: bool,
        layers in 1usize..3,
        tokens in prop::collection::vec(0usize..6, 3..6),
        seed in any::<u64>(),
    ) {
        let (params, loss) = model_and_loss(scheme, gelu_tanh, layers, &tokens, seed);
        let (u, v) = (direction(&params, seed ^ 1), direction(&params, seed ^ 2));
        let (hu, hv) = (hvp(&loss, &params, &u).unwrap(), hvp(&loss, &params, &v).unwrap());
        let (uhv, vhu) = (inner(&u, &hv), inner(&v, &hu));
        let size = (sq_norm(&u) * sq_norm(&hv)).sqrt().max((sq_norm(&v) * sq_norm(&hu)).sqrt());
        prop_assert!(
            (uhv - vhu).abs() <= 1e-10 * size,
            "THEOREM (Schwarz: the Hessian is symmetric): ⟨u, Hv⟩ = ⟨v, Hu⟩; contradicted ({scheme:?}): \
             ⟨u, Hv⟩ = {uhv:e}, ⟨v, Hu⟩ = {vhu:e}, ‖u‖‖Hv‖ = {size:e}"
        );
    }

    /// The Hessian is a linear map: H·(α·u + β·v) = α·H·u + β·H·v for random directions and
    /// coefficients, entry by entry to 1e-10 of the largest |α·Hu| + |β·Hv|, over all parameters
    /// of random decoder LMs (any residual scheme).
    #[test]
    fn hessian_vector_products_are_linear_in_the_direction(
        scheme in any_scheme(),
        gelu_tanh: bool,
        layers in 1usize..3,
        tokens in prop::collection::vec(0usize..6, 3..6),
        seed in any::<u64>(),
        alpha in -3.0f64..3.0,
        beta in -3.0f64..3.0,
    ) {
        let (params, loss) = model_and_loss(scheme, gelu_tanh, layers, &tokens, seed);
        let (u, v) = (direction(&params, seed ^ 3), direction(&params, seed ^ 4));
        let w: Vec<Tensor<f64>> = u.iter().zip(&v)
            .map(|(a, b)| a.mul_scalar(alpha).add(&b.mul_scalar(beta)).unwrap())
            .collect();
        let (hu, hv, hw) = (
            hvp(&loss, &params, &u).unwrap(),
            hvp(&loss, &params, &v).unwrap(),
            hvp(&loss, &params, &w).unwrap(),
        );
        let scale = hu
            .iter()
            .zip(&hv)
            .flat_map(|(a, b)| {
                a.to_vec().into_iter().zip(b.to_vec()).map(|(x, y)| (alpha * x).abs() + (beta * y).abs()).collect::<Vec<_>>()
            })
            .fold(0.0, f64::max);
        for (k, ((a, b), c)) in hu.iter().zip(&hv).zip(&hw).enumerate() {
            for (j, ((x, y), z)) in a.to_vec().iter().zip(b.to_vec()).zip(c.to_vec()).enumerate() {
                let expected = alpha * x + beta * y;
                prop_assert!(
                    (z - expected).abs() <= 1e-10 * scale + 1e-300,
                    "THEOREM (the Hessian is linear): H(αu + βv) = αHu + βHv; contradicted ({scheme:?}) at parameter {k}, \
                     entry {j}: {z:e} vs {expected:e} (α = {alpha}, β = {beta})"
                );
            }
        }
    }
}
