//! [`Tensor`]: an n-dimensional array that may record how it was computed.
//!
//! A tensor is a cheap handle (`Arc`) to a node of a dynamic graph, PyTorch style. A node holds
//! its value (an [`ArcArray`], so views such as transposes and slices share memory), whether it
//! requires a gradient, and — for results of operations on tracked tensors — the rule that maps
//! the gradient of the result to the gradients of its inputs ([`GradFn`]). Leaves that require a
//! gradient are *parameters*; everything else that is not tracked is a *constant*.
//!
//! Invariants:
//! - a node's value never changes, except a leaf's through [`Tensor::set_data`] /
//!   [`Tensor::update_data`] (optimizers). Changing a leaf while a graph that used it is still to
//!   be differentiated gives that graph's gradient at the new value, as in PyTorch without its
//!   version check: step the optimizer after `backward`, not between forward and backward;
//! - a node is tracked (has a `GradFn`) only if gradient recording was on and one of its inputs
//!   required a gradient; so untracked subgraphs never enter the graph.

use std::cell::Cell;
use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock};

use ndarray::{ArcArray, ArrayD, ArrayViewMut, IxDyn};

use crate::{Float, Result, TensorError};

/// The value type of a tensor: a reference-counted, copy-on-write n-dimensional array.
pub type Data<T> = ArcArray<T, IxDyn>;

/// A tensor's values lent for an in-place change ([`Tensor::update_data`]): the elements can
/// change, the shape cannot.
pub type DataMut<'a, T> = ArrayViewMut<'a, T, IxDyn>;

/// An n-dimensional array of `f32` or `f64` that records the operations applied to it when it
/// requires a gradient. Cloning a `Tensor` clones the handle, not the data.
pub struct Tensor<T: Float = f32>(Arc<Node<T>>);

pub(crate) struct Node<T: Float> {
    id: u64,
    data: RwLock<Data<T>>,
    requires_grad: bool,
    grad_fn: Option<GradFn<T>>,
    grad: Mutex<Option<Tensor<T>>>,
}

/// What a backward rule receives: the inputs of the operation, its output, the gradient of the
/// differentiated quantity with respect to that output, and which inputs need a gradient.
pub(crate) struct BackwardArgs<'a, T: Float> {
    pub inputs: &'a [Tensor<T>],
    pub output: &'a Tensor<T>,
    pub grad: &'a Tensor<T>,
    pub needs: &'a [bool],
}

type BackwardRule<T> =
    Box<dyn Fn(&BackwardArgs<'_, T>) -> Result<Vec<Option<Tensor<T>>>> + Send + Sync>;

/// How a tracked tensor was computed: the operation's name, its inputs, and its backward rule.
///
/// The rule returns one gradient per input (`None` where `needs` is false) and is written with
/// differentiable tensor operations, so that under `create_graph` the gradient is itself a graph.
pub(crate) struct GradFn<T: Float> {
    pub op: &'static str,
    pub inputs: Vec<Tensor<T>>,
    pub rule: BackwardRule<T>,
}

static NEXT_ID: AtomicU64 = AtomicU64::new(0);

thread_local! {
    static GRAD_ENABLED: Cell<bool> = const { Cell::new(true) };
}

/// Whether operations on this thread currently record a graph.
pub fn is_grad_enabled() -> bool {
    GRAD_ENABLED.with(Cell::get)
}

/// Restores the previous gradient-recording mode when dropped. Made by [`no_grad_guard`] and
/// [`GradModeGuard::set`].
#[must_use = "the mode is restored when the guard is dropped"]
pub struct GradModeGuard {
    previous: bool,
}

impl GradModeGuard {
    /// Turns gradient recording on or off on this thread until the guard is dropped.
    pub fn set(enabled: bool) -> Self {
        let previous = GRAD_ENABLED.with(|g| g.replace(enabled));
        GradModeGuard { previous }
    }
}

impl Drop for GradModeGuard {
    fn drop(&mut self) {
        GRAD_ENABLED.with(|g| g.set(self.previous));
    }
}

/// Turns gradient recording off on this thread until the returned guard is dropped.
pub fn no_grad_guard() -> GradModeGuard {
    GradModeGuard::set(false)
}

/// Runs `f` with gradient recording off (evaluation, parameter updates, analysis).
pub fn no_grad<R>(f: impl FnOnce() -> R) -> R {
    let _guard = no_grad_guard();
    f()
}

impl<T: Float> Clone for Tensor<T> {
    fn clone(&self) -> Self {
        Tensor(Arc::clone(&self.0))
    }
}

impl<T: Float> fmt::Debug for Tensor<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let data = self.data();
        let mut s = f.debug_struct("Tensor");
        s.field("dtype", &T::NAME).field("shape", &data.shape());
        if let Some(g) = &self.0.grad_fn {
            s.field("grad_fn", &g.op);
        } else {
            s.field("requires_grad", &self.0.requires_grad);
        }
        if data.len() <= 16 {
            s.field("data", &data.iter().collect::<Vec<_>>());
        }
        s.finish()
    }
}

impl<T: Float> Tensor<T> {
    fn from_node(data: Data<T>, requires_grad: bool, grad_fn: Option<GradFn<T>>) -> Self {
        Tensor(Arc::new(Node {
            id: NEXT_ID.fetch_add(1, Ordering::Relaxed),
            data: RwLock::new(data),
            requires_grad,
            grad_fn,
            grad: Mutex::new(None),
        }))
    }

    /// A constant (no gradient) holding `data`.
    pub fn constant(data: impl Into<Data<T>>) -> Self {
        Self::from_node(data.into(), false, None)
    }

    /// A parameter: a leaf that requires a gradient; [`Tensor::backward`] fills its `grad`.
    pub fn param(data: impl Into<Data<T>>) -> Self {
        Self::from_node(data.into(), true, None)
    }

    /// A constant of the given shape from row-major values.
    pub fn from_vec(values: Vec<T>, shape: &[usize]) -> Result<Self> {
        Ok(Self::constant(vec_to_array("from_vec", values, shape)?))
    }

    /// A parameter of the given shape from row-major values.
    pub fn param_from_vec(values: Vec<T>, shape: &[usize]) -> Result<Self> {
        Ok(Self::param(vec_to_array("param_from_vec", values, shape)?))
    }

    /// A 0-dimensional constant.
    pub fn scalar(value: T) -> Self {
        Self::constant(ArrayD::from_elem(IxDyn(&[]), value))
    }

    /// A constant filled with `value`.
    pub fn full(shape: &[usize], value: T) -> Self {
        Self::constant(ArrayD::from_elem(IxDyn(shape), value))
    }

    /// A constant filled with zeros.
    pub fn zeros(shape: &[usize]) -> Self {
        Self::full(shape, T::zero())
    }

    /// A constant filled with ones.
    pub fn ones(shape: &[usize]) -> Self {
        Self::full(shape, T::one())
    }

    /// The result of an operation: tracked (with `rule` as its backward) when recording is on
    /// and some input requires a gradient, a constant otherwise.
    pub(crate) fn from_op<F>(
        data: impl Into<Data<T>>,
        op: &'static str,
        inputs: &[&Tensor<T>],
        rule: F,
    ) -> Self
    where
        F: Fn(&BackwardArgs<'_, T>) -> Result<Vec<Option<Tensor<T>>>> + Send + Sync + 'static,
    {
        let data = data.into();
        if is_grad_enabled() && inputs.iter().any(|t| t.requires_grad()) {
            let grad_fn = GradFn {
                op,
                inputs: inputs.iter().map(|t| (*t).clone()).collect(),
                rule: Box::new(rule),
            };
            Self::from_node(data, true, Some(grad_fn))
        } else {
            Self::constant(data)
        }
    }

    /// A process-unique id of this node (stable for the node's lifetime).
    pub fn id(&self) -> u64 {
        self.0.id
    }

    /// The value, as a cheap shared handle (no copy).
    pub fn data(&self) -> Data<T> {
        self.0.data.read().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// The value copied into an owned, standard-layout array.
    pub fn to_array(&self) -> ArrayD<T> {
        self.data().as_standard_layout().into_owned()
    }

    /// The values in row-major order.
    pub fn to_vec(&self) -> Vec<T> {
        self.data().iter().copied().collect()
    }

    /// The value of a one-element tensor.
    pub fn item(&self) -> Result<T> {
        let data = self.data();
        if data.len() != 1 {
            return Err(TensorError::NotScalar { op: "item", shape: data.shape().to_vec() });
        }
        Ok(*data.iter().next().expect("one element"))
    }

    /// The shape.
    pub fn shape(&self) -> Vec<usize> {
        self.0.data.read().unwrap_or_else(|e| e.into_inner()).shape().to_vec()
    }

    /// The number of axes.
    pub fn ndim(&self) -> usize {
        self.0.data.read().unwrap_or_else(|e| e.into_inner()).ndim()
    }

    /// The number of elements.
    pub fn len(&self) -> usize {
        self.0.data.read().unwrap_or_else(|e| e.into_inner()).len()
    }

    /// Whether the tensor has no elements.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Whether gradients flow to this tensor (a parameter, or computed from one while recording).
    pub fn requires_grad(&self) -> bool {
        self.0.requires_grad
    }

    /// Whether this is a leaf (not the result of a tracked operation).
    pub fn is_leaf(&self) -> bool {
        self.0.grad_fn.is_none()
    }

    /// The name of the operation that produced this tensor, if it is tracked.
    pub fn op_name(&self) -> Option<&'static str> {
        self.0.grad_fn.as_ref().map(|g| g.op)
    }

    /// A constant sharing this tensor's value, cut off from the graph.
    pub fn detach(&self) -> Self {
        Self::constant(self.data())
    }

    /// A new parameter (leaf requiring a gradient) sharing this tensor's value.
    pub fn detach_param(&self) -> Self {
        Self::param(self.data())
    }

    /// The gradient accumulated by [`Tensor::backward`], if any.
    pub fn grad(&self) -> Option<Tensor<T>> {
        self.0.grad.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// Replaces the accumulated gradient (`None` clears it, like `zero_grad`).
    pub fn set_grad(&self, grad: Option<Tensor<T>>) {
        *self.0.grad.lock().unwrap_or_else(|e| e.into_inner()) = grad;
    }

    /// Clears the accumulated gradient.
    pub fn zero_grad(&self) {
        self.set_grad(None);
    }

    pub(crate) fn accumulate_grad(&self, g: Tensor<T>) -> Result<()> {
        let mut slot = self.0.grad.lock().unwrap_or_else(|e| e.into_inner());
        let summed = match slot.take() {
            Some(old) => old.add(&g)?,
            None => g,
        };
        *slot = Some(summed);
        Ok(())
    }

    /// Replaces the value of a leaf (same shape), e.g. an optimizer step or a rescaling θ → cθ.
    pub fn set_data(&self, data: impl Into<Data<T>>) -> Result<()> {
        let data = data.into();
        if !self.is_leaf() {
            return Err(TensorError::invalid(
                "set_data",
                "only leaves can be assigned a new value",
            ));
        }
        let mut slot = self.0.data.write().unwrap_or_else(|e| e.into_inner());
        if slot.shape() != data.shape() {
            return Err(TensorError::ShapeMismatch {
                op: "set_data",
                lhs: slot.shape().to_vec(),
                rhs: data.shape().to_vec(),
            });
        }
        *slot = data;
        Ok(())
    }

    /// Changes the values of a leaf in place (copy-on-write: no copy when nothing else shares
    /// them). `f` gets a mutable view, so it cannot change the shape: an `Err` (not a leaf)
    /// leaves the tensor untouched, and a success leaves it with its shape.
    pub fn update_data(&self, f: impl FnOnce(&mut DataMut<'_, T>)) -> Result<()> {
        if !self.is_leaf() {
            return Err(TensorError::invalid("update_data", "only leaves can be changed in place"));
        }
        let mut slot = self.0.data.write().unwrap_or_else(|e| e.into_inner());
        f(&mut slot.view_mut());
        Ok(())
    }

    pub(crate) fn grad_fn(&self) -> Option<&GradFn<T>> {
        self.0.grad_fn.as_ref()
    }

    /// Adds `other` into this tensor's values in place, when nobody can observe it: this is the
    /// only handle to its node, the node records nothing (no gradient, no graph) and the shapes
    /// are equal. The buffer itself is copy-on-write, so a buffer shared with another tensor is
    /// copied first. Returns false, changing nothing, otherwise. Used by gradient accumulation
    /// (a first-order backward sums contributions without allocating for each); the values are
    /// those of `self.add(other)`, bit for bit.
    pub(crate) fn try_add_assign(&mut self, other: &Tensor<T>) -> bool {
        let Some(node) = Arc::get_mut(&mut self.0) else { return false };
        if node.requires_grad || node.grad_fn.is_some() {
            return false;
        }
        let data = node.data.get_mut().unwrap_or_else(|e| e.into_inner());
        let other = other.data();
        if data.shape() != other.shape() {
            return false;
        }
        let add = |a: T, y: T| a + y;
        let same_order = data.strides() == other.strides();
        if let (true, Some(acc), Some(ys)) =
            (same_order, data.as_slice_memory_order_mut(), other.as_slice_memory_order())
        {
            // the same layout (row-major, or both transposed alike): element for element in
            // memory order
            crate::simd_math::zip_slices_in_place(acc, ys, add);
        } else if let Some(acc) = data.as_slice_mut() {
            // a row-major sum and a strided term (a transposed gradient): the term copied in
            // row-major order by the tiled copy first, instead of ndarray's strided walk
            let ys = crate::ops::layout::row_major_copy(other.view());
            crate::simd_math::zip_slices_in_place(acc, &ys, add);
        } else {
            data.zip_mut_with(&other, |a, &b| *a += b);
        }
        true
    }

    /// Converts to another element type (a constant: the cast is not differentiated).
    pub fn cast<U: Float>(&self) -> Tensor<U> {
        Tensor::constant(self.data().mapv(|x| U::cast(x.as_f64())))
    }
}

impl<T: Float> Drop for Node<T> {
    /// Drops the graph behind a node iteratively: a recursive drop of a long chain of operations
    /// (thousands of layers or steps) would overflow the stack.
    fn drop(&mut self) {
        let Some(grad_fn) = self.grad_fn.take() else { return };
        let mut stack = grad_fn.inputs;
        drop(grad_fn.rule);
        while let Some(tensor) = stack.pop() {
            if let Ok(mut node) = Arc::try_unwrap(tensor.0)
                && let Some(inner) = node.grad_fn.take()
            {
                stack.extend(inner.inputs);
            }
        }
    }
}

fn vec_to_array<T: Float>(op: &'static str, values: Vec<T>, shape: &[usize]) -> Result<ArrayD<T>> {
    let expected: usize = shape.iter().product();
    if values.len() != expected {
        return Err(TensorError::ElementCount {
            op,
            shape: shape.to_vec(),
            expected,
            got: values.len(),
        });
    }
    Ok(ArrayD::from_shape_vec(IxDyn(shape), values).expect("length checked"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn update_data_changes_a_leafs_values_in_place_and_refuses_a_non_leaf_untouched() {
        let theta = Tensor::<f64>::param_from_vec(vec![1.0, 2.0, 3.0, 4.0], &[2, 2]).unwrap();
        let before = theta.data(); // shares the buffer: the update must copy, not change it
        theta.update_data(|d| d.mapv_inplace(|v| v * 10.0)).unwrap();
        assert_eq!(theta.to_vec(), vec![10.0, 20.0, 30.0, 40.0]);
        assert_eq!(theta.shape(), vec![2, 2]);
        assert_eq!(before.iter().copied().collect::<Vec<_>>(), vec![1.0, 2.0, 3.0, 4.0]);

        let derived = theta.mul_scalar(2.0);
        let err = derived.update_data(|d| d.fill(0.0)).unwrap_err();
        assert!(err.to_string().contains("only leaves"), "{err}");
        assert_eq!(derived.to_vec(), vec![20.0, 40.0, 60.0, 80.0]);
        assert_eq!(derived.shape(), vec![2, 2]);
    }

    #[test]
    fn in_place_addition_matches_add_for_every_pair_of_layouts() {
        let values = |salt: usize| -> Vec<f64> {
            (0..12).map(|i| ((i * 7 + salt) % 11) as f64 - 5.0).collect()
        };
        let row_major = |salt| Tensor::from_vec(values(salt), &[3, 4]).unwrap();
        let transposed = |salt| {
            let t = ArrayD::from_shape_vec(IxDyn(&[4, 3]), values(salt)).unwrap();
            Tensor::constant(t.reversed_axes().into_shared())
        };
        let layouts: [&dyn Fn(usize) -> Tensor<f64>; 2] = [&row_major, &transposed];
        for (i, sum) in layouts.iter().enumerate() {
            for (j, term) in layouts.iter().enumerate() {
                let (mut acc, y) = (sum(1), term(2));
                let want = acc.add(&y).unwrap();
                assert!(acc.try_add_assign(&y), "layouts {i}, {j}");
                assert_eq!(acc.to_array(), want.to_array(), "layouts {i}, {j}");
            }
        }
    }

    #[test]
    fn no_grad_scope_records_nothing_and_restores_the_mode() {
        let p = Tensor::<f64>::param(ArrayD::from_elem(IxDyn(&[2]), 1.0));
        let y = no_grad(|| p.mul_scalar(2.0));
        assert!(!y.requires_grad());
        assert!(is_grad_enabled());
        assert!(p.mul_scalar(2.0).requires_grad());
    }

    #[test]
    fn detach_shares_the_value_but_not_the_graph() {
        let p = Tensor::<f64>::param_from_vec(vec![1.0, 2.0], &[2]).unwrap();
        let y = p.exp().detach();
        assert!(!y.requires_grad() && y.is_leaf());
        assert_eq!(y.to_vec(), vec![1f64.exp(), 2f64.exp()]);
    }

    #[test]
    fn wrong_element_count_is_an_error() {
        let err = Tensor::<f32>::from_vec(vec![1.0; 5], &[2, 3]).unwrap_err();
        assert!(matches!(err, TensorError::ElementCount { expected: 6, got: 5, .. }));
    }

    #[test]
    fn set_data_checks_the_shape() {
        let p = Tensor::<f32>::param(ArrayD::zeros(IxDyn(&[2, 2])));
        assert!(p.set_data(ArrayD::zeros(IxDyn(&[3]))).is_err());
        assert!(p.set_data(ArrayD::ones(IxDyn(&[2, 2]))).is_ok());
        assert_eq!(p.to_vec(), vec![1.0; 4]);
    }
}
