//! Reverse-mode differentiation over the recorded graph: [`grad`], [`Tensor::backward`], [`hvp`].
//!
//! The walk visits only the nodes on a path from the outputs to the requested inputs (the rest of
//! the graph is pruned), in reverse topological order, summing the gradient contributions of
//! every path into a node before passing it on, and dropping each intermediate gradient as soon
//! as it has been propagated. Backward rules are differentiable tensor operations: with
//! `create_graph = true` the returned gradients are themselves tracked, so they can be
//! differentiated again (Hessian-vector products, gradient penalties, any order).

use std::collections::HashMap;

use crate::profile::timed;
use crate::tensor::{BackwardArgs, GradModeGuard, is_grad_enabled};
use crate::{Float, Result, Tensor, TensorError};

/// Gradients of the sum of `outputs` (each a single-element tensor) with respect to `inputs`.
///
/// An input that the outputs do not depend on gets a zero gradient. With `create_graph` the
/// result is tracked (differentiable again); otherwise it is a constant and no graph is built.
pub fn grad<T: Float>(
    outputs: &[Tensor<T>],
    inputs: &[Tensor<T>],
    create_graph: bool,
) -> Result<Vec<Tensor<T>>> {
    for out in outputs {
        if out.len() != 1 {
            return Err(TensorError::NotScalar { op: "grad", shape: out.shape() });
        }
    }
    let seeds: Vec<Tensor<T>> = outputs.iter().map(|o| Tensor::ones(&o.shape())).collect();
    grad_with(outputs, &seeds, inputs, create_graph)
}

/// Vector-Jacobian products: the gradient of Σₖ ⟨outputs\[k\], grad_outputs\[k\]⟩ with respect to
/// each of `inputs`. `grad_outputs[k]` must have the shape of `outputs[k]`.
pub fn grad_with<T: Float>(
    outputs: &[Tensor<T>],
    grad_outputs: &[Tensor<T>],
    inputs: &[Tensor<T>],
    create_graph: bool,
) -> Result<Vec<Tensor<T>>> {
    if outputs.len() != grad_outputs.len() {
        return Err(TensorError::invalid(
            "grad",
            format!("{} outputs but {} output gradients", outputs.len(), grad_outputs.len()),
        ));
    }
    for (o, g) in outputs.iter().zip(grad_outputs) {
        if o.shape() != g.shape() {
            return Err(TensorError::ShapeMismatch { op: "grad", lhs: o.shape(), rhs: g.shape() });
        }
    }
    if !outputs.iter().any(Tensor::requires_grad) {
        return Err(TensorError::NotTracked { op: "grad" });
    }
    let targets: HashMap<u64, usize> =
        inputs.iter().enumerate().map(|(i, t)| (t.id(), i)).collect();
    let mut found: Vec<Option<Tensor<T>>> = vec![None; inputs.len()];
    let _mode = GradModeGuard::set(create_graph);
    propagate(
        outputs,
        grad_outputs,
        |node| targets.contains_key(&node.id()),
        |node, g| {
            let slot = &mut found[targets[&node.id()]];
            *slot = Some(match slot.take() {
                Some(old) => old.add(&g)?,
                None => g,
            });
            Ok(())
        },
    )?;
    // The same tensor may be requested twice: every occurrence gets its gradient.
    let mut result = Vec::with_capacity(inputs.len());
    for (i, input) in inputs.iter().enumerate() {
        let first = targets[&input.id()];
        let g = if first == i { found[i].take() } else { found[first].clone() };
        let g = match g.or_else(|| result.get(first).cloned()) {
            Some(g) => g,
            None => Tensor::zeros(&input.shape()),
        };
        result.push(g);
    }
    Ok(result)
}

impl<T: Float> Tensor<T> {
    /// Accumulates d(self)/d(leaf) into the `grad` of every parameter this single-element
    /// tensor depends on (adding to what is already there, as PyTorch does).
    pub fn backward(&self) -> Result<()> {
        self.backward_with(false)
    }

    /// [`Tensor::backward`], keeping the accumulated gradients differentiable when
    /// `create_graph` is true.
    pub fn backward_with(&self, create_graph: bool) -> Result<()> {
        if self.len() != 1 {
            return Err(TensorError::NotScalar { op: "backward", shape: self.shape() });
        }
        if !self.requires_grad() {
            return Err(TensorError::NotTracked { op: "backward" });
        }
        let _mode = GradModeGuard::set(create_graph);
        let seed = Tensor::ones(&self.shape());
        propagate(std::slice::from_ref(self), &[seed], Tensor::is_leaf, |leaf, g| {
            leaf.accumulate_grad(g)
        })
    }
}

/// Exact Hessian-vector product H·v of a scalar `loss` with respect to `params`, by double
/// backward: H·v = ∇_θ ⟨∇_θ loss, v⟩ (Pearlmutter 1994; the way PyHessian computes it).
///
/// `loss` must have been computed with gradient recording on; `v` has one tensor per parameter.
pub fn hvp<T: Float>(
    loss: &Tensor<T>,
    params: &[Tensor<T>],
    v: &[Tensor<T>],
) -> Result<Vec<Tensor<T>>> {
    if params.len() != v.len() {
        return Err(TensorError::invalid(
            "hvp",
            format!("{} parameters but {} direction tensors", params.len(), v.len()),
        ));
    }
    let grads = grad(std::slice::from_ref(loss), params, true)?;
    let mut dot: Option<Tensor<T>> = None;
    for (g, vi) in grads.iter().zip(v) {
        if g.shape() != vi.shape() {
            return Err(TensorError::ShapeMismatch { op: "hvp", lhs: g.shape(), rhs: vi.shape() });
        }
        if !g.requires_grad() {
            continue; // this gradient does not depend on θ: its block of H is zero
        }
        let term = g.mul(vi)?.sum_all();
        dot = Some(match dot {
            Some(d) => d.add(&term)?,
            None => term,
        });
    }
    match dot {
        Some(dot) => grad(&[dot], params, false),
        None => Ok(params.iter().map(|p| Tensor::zeros(&p.shape())).collect()),
    }
}

/// The reverse walk shared by [`grad_with`] and [`Tensor::backward`]: `is_target` marks the nodes
/// whose total gradient is wanted, and `deliver` receives each one's gradient once it is
/// complete. Nodes that cannot reach a target are never visited by a backward rule.
fn propagate<T: Float>(
    outputs: &[Tensor<T>],
    seeds: &[Tensor<T>],
    is_target: impl Fn(&Tensor<T>) -> bool,
    mut deliver: impl FnMut(&Tensor<T>, Tensor<T>) -> Result<()>,
) -> Result<()> {
    // Post-order DFS over tracked nodes (iterative: graphs of deep models are deep).
    let mut order: Vec<Tensor<T>> = Vec::new();
    let mut reaches: HashMap<u64, bool> = HashMap::new();
    let mut stack: Vec<(Tensor<T>, usize)> = Vec::new();
    for out in outputs.iter().filter(|o| o.requires_grad()) {
        if reaches.contains_key(&out.id()) {
            continue;
        }
        reaches.insert(out.id(), false);
        stack.push((out.clone(), 0));
        while let Some((node, next_child)) = stack.pop() {
            let inputs = node.grad_fn().map(|f| f.inputs.as_slice()).unwrap_or(&[]);
            if let Some(child) = inputs.get(next_child) {
                let child = child.clone();
                stack.push((node, next_child + 1));
                if child.requires_grad() && !reaches.contains_key(&child.id()) {
                    reaches.insert(child.id(), false);
                    stack.push((child, 0));
                }
            } else {
                let r = is_target(&node)
                    || inputs.iter().any(|c| reaches.get(&c.id()).copied().unwrap_or(false));
                reaches.insert(node.id(), r);
                order.push(node);
            }
        }
    }

    let mut pending: HashMap<u64, Tensor<T>> = HashMap::new();
    for (out, seed) in outputs.iter().zip(seeds) {
        if out.requires_grad() {
            accumulate(&mut pending, out, seed.clone())?;
        }
    }
    for node in order.iter().rev() {
        if !reaches[&node.id()] {
            continue;
        }
        let Some(g) = pending.remove(&node.id()) else { continue };
        if is_target(node) {
            deliver(node, g.clone())?;
        }
        let Some(grad_fn) = node.grad_fn() else { continue };
        let needs: Vec<bool> =
            grad_fn.inputs.iter().map(|c| reaches.get(&c.id()).copied().unwrap_or(false)).collect();
        if !needs.iter().any(|&n| n) {
            continue;
        }
        let args = BackwardArgs { inputs: &grad_fn.inputs, output: node, grad: &g, needs: &needs };
        let input_grads = timed(grad_fn.op, || (grad_fn.rule)(&args))?;
        for ((input, gi), need) in grad_fn.inputs.iter().zip(input_grads).zip(&needs) {
            let (Some(gi), true) = (gi, *need) else { continue };
            if gi.shape() != input.shape() {
                return Err(TensorError::invalid(
                    grad_fn.op,
                    format!(
                        "internal error: backward gave a gradient of shape {:?} for an input of shape {:?}",
                        gi.shape(),
                        input.shape()
                    ),
                ));
            }
            accumulate(&mut pending, input, gi)?;
        }
    }
    Ok(())
}

fn accumulate<T: Float>(
    pending: &mut HashMap<u64, Tensor<T>>,
    node: &Tensor<T>,
    g: Tensor<T>,
) -> Result<()> {
    let summed = match pending.remove(&node.id()) {
        Some(mut old) => {
            // first order: in place when the running sum is ours alone (no buffer per term)
            timed("accumulate", || -> Result<Tensor<T>> {
                if !is_grad_enabled() && old.try_add_assign(&g) { Ok(old) } else { old.add(&g) }
            })?
        }
        None => g,
    };
    pending.insert(node.id(), summed);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(v: &[f64]) -> Tensor<f64> {
        Tensor::param_from_vec(v.to_vec(), &[v.len()]).unwrap()
    }

    #[test]
    fn gradients_sum_over_every_path() {
        // y = Σ x·x + Σ x  ⇒  dy/dx = 2x + 1
        let x = p(&[1.0, -2.0, 3.0]);
        let y = x.mul(&x).unwrap().sum_all().add(&x.sum_all()).unwrap();
        let g = grad(&[y], &[x], false).unwrap();
        assert_eq!(g[0].to_vec(), vec![3.0, -3.0, 7.0]);
    }

    #[test]
    fn in_place_accumulation_leaves_shared_gradients_and_seeds_alone() {
        // add's rule hands the same gradient tensor to both inputs, and u is used three times;
        // the seed is held by the caller too. Each sum must be formed without changing them.
        let x = p(&[1.0, -2.0]);
        let u = x.mul_scalar(3.0);
        let w = u.mul_scalar(1.0);
        let v = u.add(&u).unwrap().add(&w).unwrap().add(&w).unwrap();
        let seed = Tensor::constant(ndarray::ArrayD::from_elem(ndarray::IxDyn(&[2]), 1.0));
        let g = grad_with(&[v.clone()], &[seed.clone()], &[x.clone(), w.clone()], false).unwrap();
        assert_eq!(g[0].to_vec(), vec![12.0, 12.0]);
        assert_eq!(g[1].to_vec(), vec![2.0, 2.0]);
        assert_eq!(seed.to_vec(), vec![1.0, 1.0]);
    }

    #[test]
    fn backward_accumulates_into_leaves() {
        let x = p(&[2.0]);
        x.mul(&x).unwrap().sum_all().backward().unwrap();
        x.mul(&x).unwrap().sum_all().backward().unwrap();
        assert_eq!(x.grad().unwrap().to_vec(), vec![8.0]);
        x.zero_grad();
        assert!(x.grad().is_none());
    }

    #[test]
    fn unused_inputs_get_zero_gradients() {
        let x = p(&[1.0, 2.0]);
        let z = p(&[5.0]);
        let g = grad(&[x.sum_all()], &[x.clone(), z], false).unwrap();
        assert_eq!(g[1].to_vec(), vec![0.0]);
    }

    #[test]
    fn first_order_gradients_are_constants_unless_create_graph() {
        let x = p(&[1.5]);
        let y = x.mul(&x).unwrap().mul(&x).unwrap().sum_all();
        assert!(!grad(&[y.clone()], &[x.clone()], false).unwrap()[0].requires_grad());
        let g = grad(&[y], &[x.clone()], true).unwrap();
        assert!(g[0].requires_grad());
        // d²(x³)/dx² = 6x, d³/dx³ = 6
        let g2 = grad(&[g[0].sum_all()], &[x.clone()], true).unwrap();
        assert!((g2[0].item().unwrap() - 9.0).abs() < 1e-12);
        let g3 = grad(&[g2[0].sum_all()], &[x], false).unwrap();
        assert!((g3[0].item().unwrap() - 6.0).abs() < 1e-12);
    }

    #[test]
    fn hvp_of_a_quadratic_form_is_the_matrix_times_v() {
        // loss = ½ xᵀAx with A symmetric ⇒ H = A
        let a = Tensor::<f64>::from_vec(vec![2.0, 1.0, 1.0, 3.0], &[2, 2]).unwrap();
        let x = Tensor::param_from_vec(vec![0.3, -0.7], &[2, 1]).unwrap();
        let loss = x
            .transpose(0, 1)
            .unwrap()
            .matmul(&a.matmul(&x).unwrap())
            .unwrap()
            .mul_scalar(0.5)
            .sum_all();
        let v = Tensor::from_vec(vec![1.0, -1.0], &[2, 1]).unwrap();
        let hv = hvp(&loss, &[x], &[v]).unwrap();
        assert_eq!(hv[0].to_vec(), vec![1.0, -2.0]);
    }

    #[test]
    fn differentiating_an_untracked_output_is_an_error() {
        let c = Tensor::<f64>::ones(&[1]);
        assert!(matches!(
            grad(&[c.clone()], &[c.clone()], false),
            Err(TensorError::NotTracked { .. })
        ));
        assert!(c.backward().is_err());
        assert!(p(&[1.0, 2.0]).backward().is_err());
    }

    #[test]
    fn deep_chains_do_not_overflow_the_stack() {
        let x = p(&[1.0]);
        let mut y = x.clone();
        for _ in 0..20_000 {
            y = y.mul_scalar(1.0);
        }
        let g = grad(&[y.sum_all()], &[x], false).unwrap();
        assert_eq!(g[0].to_vec(), vec![1.0]);
    }
}
