//! Named parameters, PyTorch `state_dict` style: `layers.3.attn.q.weight`.
//!
//! Every layer and model implements [`Module`] by visiting its parameters with their names; the
//! optimizers, norm trackers, checkpoints and analyses all use these names.

use saturn_tensor::{Float, Tensor};

/// Something that owns parameters.
pub trait Module<T: Float> {
    /// Calls `f(name, parameter)` for every parameter, each name prefixed by `prefix` and a dot.
    fn visit(&self, prefix: &str, f: &mut dyn FnMut(String, &Tensor<T>));

    /// Every parameter with its full name, in a fixed order.
    fn named_parameters(&self) -> Vec<(String, Tensor<T>)> {
        let mut out = Vec::new();
        self.visit("", &mut |name, t| out.push((name, t.clone())));
        out
    }

    /// Every parameter, in the order of [`Module::named_parameters`].
    fn parameters(&self) -> Vec<Tensor<T>> {
        self.named_parameters().into_iter().map(|(_, t)| t).collect()
    }

    /// The number of scalar parameters.
    fn num_parameters(&self) -> usize {
        let mut n = 0;
        self.visit("", &mut |_, t| n += t.len());
        n
    }

    /// Clears every parameter's accumulated gradient.
    fn zero_grad(&self) {
        self.visit("", &mut |_, t| t.zero_grad());
    }
}

/// `prefix.name`, or `name` when the prefix is empty.
pub fn join(prefix: &str, name: &str) -> String {
    if prefix.is_empty() { name.to_string() } else { format!("{prefix}.{name}") }
}

impl<T: Float, M: Module<T>> Module<T> for Vec<M> {
    fn visit(&self, prefix: &str, f: &mut dyn FnMut(String, &Tensor<T>)) {
        for (i, m) in self.iter().enumerate() {
            m.visit(&join(prefix, &i.to_string()), f);
        }
    }
}

impl<T: Float, M: Module<T>> Module<T> for Option<M> {
    fn visit(&self, prefix: &str, f: &mut dyn FnMut(String, &Tensor<T>)) {
        if let Some(m) = self {
            m.visit(prefix, f);
        }
    }
}
