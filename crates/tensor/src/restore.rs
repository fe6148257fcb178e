//! [`RestoreGuard`]: move leaf tensors (parameters) to new values for a while, and get the old
//! values back when the guard is dropped — at the end of the scope, on an early return (`?`)
//! or while unwinding from a panic. The old values are kept, not recomputed: the restored bits
//! are the original bits (scaling by c and back by 1/c would not give them).
//!
//! Used to evaluate a model at a perturbed or rescaled point θ' and then return to θ
//! (saturn-dynamics' output change, saturn-saturation's scaled parameters).

use crate::error::Result;
use crate::float::Float;
use crate::tensor::{Data, Tensor};

/// Saved values of moved tensors, put back (last moved first) on drop.
#[derive(Debug)]
pub struct RestoreGuard<T: Float> {
    saved: Vec<(Tensor<T>, Data<T>)>,
}

impl<T: Float> Default for RestoreGuard<T> {
    fn default() -> Self {
        Self::new()
    }
}

impl<T: Float> RestoreGuard<T> {
    /// A guard that has moved nothing yet.
    pub fn new() -> Self {
        RestoreGuard { saved: Vec::new() }
    }

    /// Sets `param` (a leaf) to `value`, keeping its current value to restore. On an error
    /// (`param` is not a leaf, or `value` has another shape) `param` is unchanged and not
    /// recorded.
    pub fn set(&mut self, param: &Tensor<T>, value: impl Into<Data<T>>) -> Result<()> {
        let old = param.data();
        param.set_data(value)?;
        self.saved.push((param.clone(), old));
        Ok(())
    }

    /// Moves every tensor of `params`, in order, to `new_value(p)`. On an error the tensors
    /// already moved are restored before it is returned.
    pub fn apply<'a>(
        params: impl IntoIterator<Item = &'a Tensor<T>>,
        mut new_value: impl FnMut(&Tensor<T>) -> Data<T>,
    ) -> Result<Self> {
        let mut guard = RestoreGuard::new();
        for p in params {
            guard.set(p, new_value(p))?;
        }
        Ok(guard)
    }

    /// How many tensors are moved.
    pub fn len(&self) -> usize {
        self.saved.len()
    }

    /// Whether nothing is moved.
    pub fn is_empty(&self) -> bool {
        self.saved.is_empty()
    }
}

impl<T: Float> Drop for RestoreGuard<T> {
    fn drop(&mut self) {
        // last moved first, so that a tensor moved twice gets its first saved value back
        while let Some((param, old)) = self.saved.pop() {
            // the shape it had when saved, and a leaf (`set` succeeded): cannot fail
            let _ = param.set_data(old);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn param(values: &[f64]) -> Tensor<f64> {
        Tensor::param_from_vec(values.to_vec(), &[values.len()]).unwrap()
    }

    #[test]
    fn values_come_back_bit_for_bit_at_the_end_of_the_scope() {
        let (a, b) = (param(&[0.1, 0.2]), param(&[0.3]));
        {
            let guard = RestoreGuard::apply([&a, &b], |p| p.data().mapv(|v| v * 3.0).into_shared())
                .unwrap();
            assert_eq!(guard.len(), 2);
            assert_eq!(b.to_vec(), vec![0.3 * 3.0]);
        }
        assert_eq!(a.to_vec(), vec![0.1, 0.2]);
        assert_eq!(b.to_vec(), vec![0.3]);
    }

    #[test]
    fn an_early_return_restores() {
        let a = param(&[1.0, 2.0]);
        let bad = param(&[5.0]);
        let run = || -> Result<()> {
            let mut guard = RestoreGuard::new();
            guard.set(&a, Tensor::<f64>::zeros(&[2]).data())?;
            assert_eq!(a.to_vec(), vec![0.0, 0.0]);
            guard.set(&bad, Tensor::<f64>::zeros(&[3]).data())?; // wrong shape: returns early
            Ok(())
        };
        assert!(run().is_err());
        assert_eq!(a.to_vec(), vec![1.0, 2.0]);
        assert_eq!(bad.to_vec(), vec![5.0]);
        // apply restores what it moved before the failing tensor
        let moved = RestoreGuard::apply([&a, &bad], |p| {
            if p.len() == 2 {
                Tensor::<f64>::zeros(&[2]).data()
            } else {
                Tensor::zeros(&[4]).data()
            }
        });
        assert!(moved.is_err());
        assert_eq!(a.to_vec(), vec![1.0, 2.0]);
    }

    #[test]
    fn a_panic_restores() {
        let a = param(&[1.0, 2.0]);
        let caught = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            let _guard = RestoreGuard::apply([&a], |_| Tensor::<f64>::full(&[2], 7.0).data());
            panic!("the measurement failed");
        }));
        assert!(caught.is_err());
        assert_eq!(a.to_vec(), vec![1.0, 2.0]);
    }

    #[test]
    fn a_tensor_moved_twice_gets_its_first_value_back() {
        let a = param(&[1.0]);
        {
            let mut guard = RestoreGuard::new();
            guard.set(&a, Tensor::<f64>::full(&[1], 2.0).data()).unwrap();
            guard.set(&a, Tensor::<f64>::full(&[1], 3.0).data()).unwrap();
            assert_eq!(a.to_vec(), vec![3.0]);
        }
        assert_eq!(a.to_vec(), vec![1.0]);
    }
}
