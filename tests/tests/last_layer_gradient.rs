//! The last layer's gradient against depth (Xiong et al. 2020, "On Layer Normalization in the
//! Transformer Architecture", §3.2, Theorem 1; docs/REFERENCES.md#xiong-theorem).
//!
//! Theorem 1: at initialization, in their setting, with probability ≥ 0.99 − δ − ε/(0.9 + ε),
//! the gradient of the second FFN matrix of the last layer, W^{2,L}, satisfies
//! ‖∂L̃/∂W^{2,L}‖_F ≤ O(d·√(ln d)) for Post-LN (independent of L) and ≤ O(d·√(ln d / L)) for
//! Pre-LN: Pre-LN's final LN divides the gradient by ‖x_L‖/√d ≈ √(1 + cL) (the forward-norm
//! lemma), Post-LN's last LN sees a stream of norm √d whatever L. Consequence checked here:
//! the ratio ‖∇W^{2,L}‖_Post / ‖∇W^{2,L}‖_Pre grows with the depth L.
//!
//! Setting ([`XiongStack`]): d_model = d_ffn = d, weights N(0, 1/d), no biases, ReLU FFN, LN
//! without affine terms, softmax attention; inputs with i.i.d. N(0, 1) entries. The loss is the
//! mean token cross-entropy of a fixed random read-out (N(0, 1/d) weights, 16 classes, random
//! targets) of the stack's output (Post-LN: x_L; Pre-LN: LN(x_L)) — a loss whose gradient with
//! respect to the normalized output is O(1), as the theorem assumes. Post-LN and Pre-LN of one
//! seed share every weight, the input, the read-out and the targets, and a deeper stack shares
//! its first layers with a shallower one of the same seed, so comparisons are paired.
//!
//! Statistical check: for each seed s and depth L, r_s(L) = ln(‖∇_Post‖/‖∇_Pre‖); over seeds
//! 0..K (K = 48 by default, 480 with --full), the paired increase r_s(L') − r_s(L) between
//! consecutive depths L < L' in {1, 2, 4, 8, 16} must be positive by more than 3 standard errors
//! (one-sided false alarm ≈ 1.3·10⁻³ per comparison under the normal approximation; the fixed
//! seeds make the verdict reproducible).

use saturn_layers::ResidualScheme;
use saturn_tensor::{CrossEntropy, grad};
use saturn_theorems::random::{XiongStack, normal, xiong_input};
use saturn_theorems::{Estimate, seeds};

const D: usize = 32;
const HEADS: usize = 4;
const CLASSES: usize = 16;
const DEPTHS: [usize; 5] = [1, 2, 4, 8, 16];

/// ‖∂L/∂W^{2,L}‖_F for the stack of `layers` layers of `scheme` built from `seed`.
fn last_ffn_gradient_norm(scheme: ResidualScheme, layers: usize, seed: u64) -> f64 {
    let (batch, tokens) = (2, 8);
    let stack = XiongStack::new(scheme, layers, D, HEADS, seed);
    let x0 = xiong_input(batch, tokens, D, seed ^ 0x1_0000);
    let readout = normal(&[D, CLASSES], (1.0 / D as f64).sqrt(), seed ^ 0x2_0000);
    let targets: Vec<usize> = normal(&[batch * tokens], 1.0, seed ^ 0x3_0000)
        .to_vec()
        .iter()
        .map(|v| ((v.abs() * 1000.0) as usize) % CLASSES)
        .collect();
    let (_, out) = stack.forward(&x0);
    let logits = out.reshape(&[batch * tokens, D]).unwrap().matmul(&readout).unwrap();
    let loss = logits.cross_entropy(&targets, CrossEntropy::default()).unwrap();
    let w2 = stack.layers.last().expect("at least one layer").ffn.w2.weight.clone();
    let g = grad(&[loss], &[w2], false).unwrap().remove(0);
    g.to_vec().iter().map(|v| v * v).sum::<f64>().sqrt()
}

/// Xiong et al. 2020, §3.2, Theorem 1: at initialization the last FFN matrix's gradient is
/// O(d√(ln d)) for Post-LN, independent of L, and O(d√(ln d / L)) for Pre-LN, so the ratio
/// ‖∇W^{2,L}‖_Post / ‖∇W^{2,L}‖_Pre grows with depth. Statistical (paired over seeds) check that
/// ln of the ratio increases significantly from each depth in {1, 2, 4, 8, 16} to the next.
#[test]
fn post_ln_to_pre_ln_last_layer_gradient_ratio_grows_with_depth() {
    let seeds: Vec<u64> = seeds(48).collect();
    // log_ratio[depth][seed], and the two gradient norms for the message
    let mut log_ratio = Vec::new();
    let mut norms = Vec::new();
    for &layers in &DEPTHS {
        let pairs: Vec<(f64, f64)> = seeds
            .iter()
            .map(|&s| {
                (
                    last_ffn_gradient_norm(ResidualScheme::PostLn, layers, s),
                    last_ffn_gradient_norm(ResidualScheme::PreLn, layers, s),
                )
            })
            .collect();
        log_ratio.push(pairs.iter().map(|(post, pre)| (post / pre).ln()).collect::<Vec<f64>>());
        norms.push((
            layers,
            Estimate::of(&pairs.iter().map(|p| p.0).collect::<Vec<_>>()).mean,
            Estimate::of(&pairs.iter().map(|p| p.1).collect::<Vec<_>>()).mean,
        ));
    }
    let summary: Vec<String> = DEPTHS
        .iter()
        .zip(&log_ratio)
        .zip(&norms)
        .map(|((l, r), (_, post, pre))| {
            format!("L = {l}: mean ‖∇‖ Post {post:.4}, Pre {pre:.4}, ln ratio {}", Estimate::of(r))
        })
        .collect();
    for k in 0..DEPTHS.len() - 1 {
        let increase: Vec<f64> =
            log_ratio[k + 1].iter().zip(&log_ratio[k]).map(|(b, a)| b - a).collect();
        let est = Estimate::of(&increase);
        assert!(
            est.significantly_positive(3.0),
            "THEOREM (Xiong et al. 2020 §3.2, Theorem 1): ‖∇W^{{2,L}}‖_Post / ‖∇W^{{2,L}}‖_Pre grows with L; contradicted \
             from L = {} to L = {}: paired increase of the ln ratio {est} is not > 3 SE\n{}",
            DEPTHS[k],
            DEPTHS[k + 1],
            summary.join("\n")
        );
    }
    eprintln!("{}", summary.join("\n"));
}
