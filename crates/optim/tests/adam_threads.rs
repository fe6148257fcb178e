//! Adam updates a parameter larger than one block in parallel blocks: θ, the moments and the
//! update norm must have the same bits on any thread count. Its own test binary, because the
//! thread count is process-wide.

use saturn_optim::{Adam, AdamConfig, Optimizer};
use saturn_tensor::Tensor;

/// Three steps on a 3.5-block parameter; returns θ, Adam's state (as f32 bits) and the update
/// norms.
fn three_steps(threads: usize) -> (Vec<f32>, Vec<Vec<f32>>, Vec<f64>) {
    saturn_tensor::blas::set_num_threads(threads);
    let n = (1 << 16) * 7 / 2 + 5;
    let theta: Vec<f32> = (0..n).map(|i| ((i * 7919) % 1000) as f32 * 0.002 - 1.0).collect();
    let w = Tensor::param_from_vec(theta, &[n]).unwrap();
    let mut opt = Adam::new(vec![("w".into(), w.clone())], AdamConfig::default()).unwrap();
    let mut norms = Vec::new();
    for step in 0..3 {
        let g: Vec<f32> =
            (0..n).map(|i| ((i * 104_729 + step * 31) % 997) as f32 * 0.01 - 5.0).collect();
        w.set_grad(Some(Tensor::from_vec(g, &[n]).unwrap()));
        norms.push(opt.step(1e-3).unwrap().update_norm);
    }
    let state = opt
        .state()
        .params
        .into_values()
        .flat_map(|p| p.buffers.into_values())
        .map(|b| b.iter().copied().collect())
        .collect();
    (w.to_vec(), state, norms)
}

#[test]
fn a_large_parameter_gets_the_same_bits_on_any_thread_count() {
    let one = three_steps(1);
    for threads in [2, 3] {
        let many = three_steps(threads);
        assert_eq!(one.0, many.0, "θ on {threads} threads");
        assert_eq!(one.1, many.1, "moments on {threads} threads");
        assert_eq!(one.2, many.2, "update norms on {threads} threads");
    }
    saturn_tensor::blas::set_num_threads(1);
}
