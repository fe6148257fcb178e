//! Properties of exact Hessian-vector products from double backward.

use proptest::prelude::*;
use rand::{RngExt, SeedableRng};
use saturn_tensor::{CrossEntropy, Result, Tensor, hvp};

fn random(shape: &[usize], seed: u64) -> Tensor<f64> {
    let mut rng = rand_pcg::Pcg64::seed_from_u64(seed);
    let n = shape.iter().product();
    Tensor::param_from_vec((0..n).map(|_| rng.random_range(-1.0..1.0)).collect(), shape).unwrap()
}

/// A one-block transformer-like loss: LN(x + softmax(x·Wq·(x·Wk)ᵀ)·x·Wv) · W_out → cross-entropy.
fn loss(p: &[Tensor<f64>], x: &Tensor<f64>, targets: &[usize]) -> Result<Tensor<f64>> {
    let (wq, wk, wv, wo) = (&p[0], &p[1], &p[2], &p[3]);
    let scores = x.matmul(wq)?.matmul(&x.matmul(wk)?.transpose(0, 1)?)?;
    let h = x.add(&scores.softmax(-1)?.matmul(&x.matmul(wv)?)?)?.layer_norm(None, None, 1e-5)?;
    h.gelu()?.matmul(wo)?.cross_entropy(targets, CrossEntropy::default())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(12))]

    /// The Hessian is symmetric, so uᵀ(Hv) = vᵀ(Hu) for any directions u and v.
    #[test]
    fn hessian_vector_products_are_symmetric(t in 2usize..5, d in 2usize..5, seed: u64) {
        let params: Vec<Tensor<f64>> = (0..4).map(|i| random(&[d, d], seed.wrapping_add(i))).collect();
        let x = random(&[t, d], seed ^ 99).detach();
        let targets: Vec<usize> = (0..t).map(|i| i % d).collect();
        let u: Vec<Tensor<f64>> = (0..4).map(|i| random(&[d, d], seed ^ (1000 + i)).detach()).collect();
        let v: Vec<Tensor<f64>> = (0..4).map(|i| random(&[d, d], seed ^ (2000 + i)).detach()).collect();
        let l = loss(&params, &x, &targets).unwrap();
        let hv = hvp(&l, &params, &v).unwrap();
        let hu = hvp(&l, &params, &u).unwrap();
        let dot = |a: &[Tensor<f64>], b: &[Tensor<f64>]| -> f64 {
            a.iter().zip(b).map(|(x, y)| x.dot(y).unwrap().item().unwrap()).sum()
        };
        let (uhv, vhu) = (dot(&u, &hv), dot(&v, &hu));
        prop_assert!((uhv - vhu).abs() <= 1e-10 * (1.0 + uhv.abs()), "uᵀHv = {uhv}, vᵀHu = {vhu}");
    }

    /// The whole block passes the second-order check against finite differences of gradients.
    #[test]
    fn a_transformer_block_passes_gradgradcheck(t in 2usize..4, d in 2usize..4, seed: u64) {
        let params: Vec<Tensor<f64>> = (0..4).map(|i| random(&[d, d], seed.wrapping_add(i))).collect();
        let x = random(&[t, d], seed ^ 99).detach();
        let targets: Vec<usize> = (0..t).map(|i| i % d).collect();
        saturn_tensor::gradcheck(|p| loss(p, &x, &targets), &params).unwrap();
        saturn_tensor::gradgradcheck(|p| loss(p, &x, &targets), &params).unwrap();
    }
}

#[test]
fn tensors_can_cross_threads() {
    fn assert_send_sync<T: Send + Sync>() {}
    assert_send_sync::<Tensor<f32>>();
    let x = Tensor::<f64>::param_from_vec(vec![1.0, 2.0], &[2]).unwrap();
    let y = std::thread::spawn(move || x.powf(2.0).sum_all()).join().unwrap();
    assert_eq!(y.item().unwrap(), 5.0);
}
