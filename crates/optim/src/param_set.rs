//! What every optimizer shares: its named parameters, each with the options of its group, its
//! step count and its buffers; the loop that hands each parameter that has a gradient to an
//! update rule; and the export / import of that state.

use std::collections::{BTreeSet, HashMap};

use ndarray::ArrayD;
use saturn_tensor::{Data, DataMut, Float, Tensor, no_grad};

use crate::error::{OptimError, Result, check_non_negative};
use crate::groups::{GroupOptions, ParamGroups};
use crate::optimizer::{OptimizerKind, StepStats};
use crate::state::{OptimizerState, ParamState};

/// The parameters of one optimizer and their per-parameter state. (`pub` in this private
/// module only so that [`OwnsParamSet`] can name it: unreachable from outside the crate.)
pub struct ParamSet<T: Float> {
    kind: OptimizerKind,
    /// Names of the buffers each stepped parameter holds, in the order of `Slot::buffers`.
    buffer_names: &'static [&'static str],
    slots: Vec<Slot<T>>,
    steps: u64,
}

struct Slot<T: Float> {
    name: String,
    tensor: Tensor<T>,
    options: GroupOptions,
    step: u64,
    /// Empty until the parameter's first update; then one array per buffer name.
    buffers: Vec<ArrayD<T>>,
}

/// What an update rule receives for one parameter.
pub struct ParamStep<'a, T: Float> {
    /// t: the parameter's step count, this update included (1 on its first update).
    pub t: u64,
    /// The learning rate for this parameter: `lr · lr_scale`.
    pub lr: f64,
    /// The weight decay λ of the parameter's group.
    pub weight_decay: f64,
    /// ∇θ, of the parameter's shape.
    pub grad: &'a Data<T>,
    /// The parameter's buffers: empty on its first update (the rule creates them), then as the
    /// rule left them.
    pub buffers: &'a mut Vec<ArrayD<T>>,
}

/// An optimizer built on a [`ParamSet`]: what the default methods of
/// [`Optimizer`](crate::Optimizer) forward to (kind, steps, parameters, options, gradients,
/// state). A supertrait of `Optimizer` that cannot be named outside this crate, so only this
/// crate's optimizers implement it (with `owns_param_set!`).
pub trait OwnsParamSet<T: Float> {
    /// The parameters and their state.
    fn param_set(&self) -> &ParamSet<T>;
    /// The parameters and their state, to load a state into.
    fn param_set_mut(&mut self) -> &mut ParamSet<T>;
}

/// Implements [`OwnsParamSet`] for an optimizer `$ty<T>` whose field `params` is its
/// [`ParamSet`], and gives it the accessor `config()` of its field `config: $config`.
macro_rules! owns_param_set {
    ($ty:ident, $config:ty) => {
        impl<T: saturn_tensor::Float> $crate::param_set::OwnsParamSet<T> for $ty<T> {
            fn param_set(&self) -> &$crate::param_set::ParamSet<T> {
                &self.params
            }
            fn param_set_mut(&mut self) -> &mut $crate::param_set::ParamSet<T> {
                &mut self.params
            }
        }

        impl<T: saturn_tensor::Float> $ty<T> {
            /// The hyper-parameters.
            pub fn config(&self) -> &$config {
                &self.config
            }
        }
    };
}
pub(crate) use owns_param_set;

impl<T: Float> ParamSet<T> {
    /// Checks the parameters (unique names, distinct leaf tensors) and the group rules, and
    /// resolves each parameter's options.
    pub fn new(
        kind: OptimizerKind,
        buffer_names: &'static [&'static str],
        params: Vec<(String, Tensor<T>)>,
        default_weight_decay: f64,
        groups: &ParamGroups,
    ) -> Result<Self> {
        groups.validate()?;
        let mut names: HashMap<&str, ()> = HashMap::new();
        let mut ids: HashMap<u64, &str> = HashMap::new();
        for (name, tensor) in &params {
            if names.insert(name, ()).is_some() {
                return Err(OptimError::DuplicateName { name: name.clone() });
            }
            if let Some(first) = ids.insert(tensor.id(), name) {
                return Err(OptimError::DuplicateTensor {
                    first: first.to_string(),
                    second: name.clone(),
                });
            }
            if !tensor.is_leaf() {
                return Err(OptimError::NotALeaf { name: name.clone() });
            }
        }
        let slots = params
            .into_iter()
            .map(|(name, tensor)| Slot {
                options: groups.options_for(&name, default_weight_decay),
                name,
                tensor,
                step: 0,
                buffers: Vec::new(),
            })
            .collect();
        Ok(ParamSet { kind, buffer_names, slots, steps: 0 })
    }

    pub fn kind(&self) -> OptimizerKind {
        self.kind
    }

    pub fn steps(&self) -> u64 {
        self.steps
    }

    pub fn params(&self) -> Vec<(&str, &Tensor<T>)> {
        self.slots.iter().map(|s| (s.name.as_str(), &s.tensor)).collect()
    }

    pub fn options(&self) -> Vec<(&str, GroupOptions)> {
        self.slots.iter().map(|s| (s.name.as_str(), s.options)).collect()
    }

    pub fn zero_grad(&self) {
        for s in &self.slots {
            s.tensor.zero_grad();
        }
    }

    /// One optimizer step: for every parameter with a gradient, `rule(step, θ)` updates θ in
    /// place (under `no_grad`) and returns Σ(Δθ)². Every gradient's shape is checked before any
    /// parameter changes.
    pub fn step(
        &mut self,
        lr: f64,
        mut rule: impl FnMut(ParamStep<'_, T>, &mut DataMut<'_, T>) -> f64,
    ) -> Result<StepStats> {
        check_non_negative(self.kind.as_str(), "lr", lr)?;
        let mut grads = Vec::with_capacity(self.slots.len());
        for s in &self.slots {
            let grad = s.tensor.grad().map(|g| g.data());
            if let Some(g) = &grad {
                let shape = s.tensor.shape();
                if g.shape() != shape.as_slice() {
                    return Err(OptimError::GradShape {
                        name: s.name.clone(),
                        param: shape,
                        grad: g.shape().to_vec(),
                    });
                }
            }
            grads.push(grad);
        }
        let mut stats = StepStats::default();
        let mut sum_sq = 0.0;
        no_grad(|| -> Result<()> {
            for (slot, grad) in self.slots.iter_mut().zip(grads) {
                let Some(grad) = grad else {
                    stats.skipped += 1;
                    continue;
                };
                slot.step += 1;
                let tensor = slot.tensor.clone();
                tensor.update_data(|theta| {
                    let step = ParamStep {
                        t: slot.step,
                        lr: lr * slot.options.lr_scale,
                        weight_decay: slot.options.weight_decay,
                        grad: &grad,
                        buffers: &mut slot.buffers,
                    };
                    sum_sq += rule(step, theta);
                })?;
                stats.updated += 1;
            }
            Ok(())
        })?;
        self.steps += 1;
        stats.update_norm = sum_sq.sqrt();
        Ok(stats)
    }

    pub fn export(&self) -> OptimizerState<T> {
        let params = self
            .slots
            .iter()
            .filter(|s| s.step > 0)
            .map(|s| {
                let buffers = self
                    .buffer_names
                    .iter()
                    .zip(&s.buffers)
                    .map(|(k, b)| (k.to_string(), b.clone()))
                    .collect();
                (s.name.clone(), ParamState { step: s.step, buffers })
            })
            .collect();
        OptimizerState {
            kind: self.kind,
            steps: self.steps,
            names: self.slots.iter().map(|s| s.name.clone()).collect(),
            params,
        }
    }

    /// Replaces the state after checking all of it: kind, parameter names (both ways), buffer
    /// names and shapes. On error nothing changes.
    pub fn import(&mut self, mut state: OptimizerState<T>) -> Result<()> {
        if state.kind != self.kind {
            return Err(OptimError::state(format!(
                "it was saved by a {} optimizer, this one is {}",
                state.kind, self.kind
            )));
        }
        let ours: BTreeSet<&str> = self.slots.iter().map(|s| s.name.as_str()).collect();
        let theirs: BTreeSet<&str> = state.names.iter().map(String::as_str).collect();
        let missing: Vec<&str> = ours.difference(&theirs).copied().collect();
        let extra: Vec<&str> = theirs.difference(&ours).copied().collect();
        if !missing.is_empty() || !extra.is_empty() {
            return Err(OptimError::state(format!(
                "parameter names differ: missing from the state {}; in the state but not in \
                 the optimizer {}",
                list(&missing),
                list(&extra)
            )));
        }
        if let Some(name) = state.params.keys().find(|n| !ours.contains(n.as_str())) {
            return Err(OptimError::state(format!("state for unknown parameter {name:?}")));
        }
        let expected: BTreeSet<&str> = self.buffer_names.iter().copied().collect();
        for slot in &self.slots {
            let Some(ps) = state.params.get(&slot.name) else { continue };
            let found: BTreeSet<&str> = ps.buffers.keys().map(String::as_str).collect();
            if found != expected {
                return Err(OptimError::state(format!(
                    "parameter {:?} has buffers {} but a {} optimizer with this config keeps {}",
                    slot.name,
                    list(&found.into_iter().collect::<Vec<_>>()),
                    self.kind,
                    list(&expected.iter().copied().collect::<Vec<_>>()),
                )));
            }
            let shape = slot.tensor.shape();
            for (key, b) in &ps.buffers {
                if b.shape() != shape.as_slice() {
                    return Err(OptimError::state(format!(
                        "buffer {key} of {:?} has shape {:?}, the parameter has shape {shape:?}",
                        slot.name,
                        b.shape()
                    )));
                }
            }
        }
        for slot in &mut self.slots {
            match state.params.remove(&slot.name) {
                Some(mut ps) => {
                    slot.step = ps.step;
                    slot.buffers = self
                        .buffer_names
                        .iter()
                        .map(|k| ps.buffers.remove(*k).expect("buffer names checked"))
                        .collect();
                }
                None => {
                    slot.step = 0;
                    slot.buffers = Vec::new();
                }
            }
        }
        self.steps = state.steps;
        Ok(())
    }
}

/// `[a, b, c]`, or `none`; long lists are cut after 10 names.
fn list(names: &[&str]) -> String {
    if names.is_empty() {
        return "none".into();
    }
    let shown: Vec<String> = names.iter().take(10).map(|n| format!("{n:?}")).collect();
    let more = names.len().saturating_sub(10);
    if more > 0 {
        format!("[{}, … and {more} more]", shown.join(", "))
    } else {
        format!("[{}]", shown.join(", "))
    }
}
