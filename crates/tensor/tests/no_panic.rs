//! No public operation panics, whatever the shapes, axes and indices: a bad combination is an
//! `Err`. Random shapes include 0-dimensional tensors and empty axes.

use proptest::prelude::*;
use saturn_tensor::ndarray::{ArrayD, IxDyn};
use saturn_tensor::{CrossEntropy, Tensor};

fn shape() -> impl Strategy<Value = Vec<usize>> {
    prop::collection::vec(0usize..4, 0..5)
}

fn tensor(shape: &[usize]) -> Tensor<f64> {
    let n: usize = shape.iter().product();
    Tensor::param_from_vec((0..n).map(|i| (i as f64 * 0.37).sin()).collect(), shape).unwrap()
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn every_op_returns_ok_or_err_for_any_shapes(
        sa in shape(),
        sb in shape(),
        axis in -5isize..5,
        axis2 in -5isize..5,
        start in 0usize..5,
        len in 0usize..5,
        ids in prop::collection::vec(0usize..5, 0..4),
        perm in prop::collection::vec(0usize..5, 0..5),
        keep: bool,
    ) {
        let (a, b) = (tensor(&sa), tensor(&sb));
        let _ = a.add(&b);
        let _ = a.sub(&b);
        let _ = a.mul(&b);
        let _ = a.div(&b);
        let _ = a.dot(&b);
        let _ = a.matmul(&b);
        let _ = a.transpose_matmul(&b);
        let _ = a.broadcast_to(&sb);
        let _ = a.sum_to(&sb);
        let _ = a.reshape(&sb);
        let _ = a.sum_axes(&[axis], keep);
        let _ = a.sum_axes(&[axis, axis2], keep);
        let _ = a.mean_axes(&[axis], keep);
        let _ = a.mean_all();
        let _ = a.max_axes(&[axis, axis2], keep);
        let _ = a.var_axes(&[axis], true, keep);
        let _ = a.softmax(axis);
        let _ = a.log_softmax(axis);
        let _ = a.transpose(axis, axis2);
        let _ = a.permute(&perm);
        let _ = a.narrow(axis, start, len);
        let _ = a.pad_axis(axis, start, len);
        let _ = a.unsqueeze(axis);
        let _ = a.squeeze(axis);
        let _ = Tensor::concat(&[a.clone(), b.clone()], axis);
        let _ = Tensor::stack(&[a.clone(), b.clone()], axis);
        let _ = a.index_select(axis, &ids);
        let _ = a.index_add(axis, &ids, &b);
        let index = ArrayD::from_elem(IxDyn(&sb), start);
        let _ = a.gather(axis, &index);
        let _ = a.scatter_add(axis, &index, &b);
        let mask = ArrayD::from_elem(IxDyn(&sb), true);
        let _ = a.masked_fill(&mask, f64::NEG_INFINITY);
        let _ = Tensor::where_cond(&mask, &a, &b);
        let _ = a.cross_entropy(&ids, CrossEntropy { ignore_index: Some(start), label_smoothing: 0.1 });
        let _ = a.layer_norm(Some(&b), Some(&b), 1e-5);
        let _ = a.rms_norm(Some(&b), 1e-5);
        let _ = a.item();
        let _ = a.set_data(b.data());
        for y in [a.exp(), a.log(), a.sqrt(), a.powf(-1.5), a.tanh(), a.sigmoid(), a.relu(), a.abs(), a.erf(), a.neg()] {
            let _ = y.sum_all().backward();
        }
        // gradients through whatever succeeded
        if let Ok(y) = a.mul(&b).and_then(|y| y.softmax(axis)) {
            let _ = saturn_tensor::grad(&[y.sum_all()], &[a.clone(), b.clone()], true);
        }
    }
}
