//! Parameter norms and directions along training (Merrill et al. 2021, §4–5; the norm-growth
//! code's `get_norm` and T5 analysis; docs/REFERENCES.md#merrill-norms).
//!
//! A [`Snapshot`] copies the non-scalar parameters of a model (in `f64`, by name). From one or
//! two snapshots:
//!
//! - total norm ‖θ‖₂ = ‖concat of every non-scalar parameter‖₂ (`get_norm`);
//! - per-parameter norms ‖θ_p‖₂ and per-group norms, a group being a layer (`layers.3`,
//!   `encoder.layer.3`) or a top-level module (`embed`, `head`): see [`group_of`];
//! - direction cosine cos(θ_a, θ_b) = ⟨θ_a, θ_b⟩ / (‖θ_a‖·‖θ_b‖), total and per group: it tends
//!   to 1 when the direction θ/‖θ‖ converges;
//! - update alignment cos(θ_{t−1}, δ_t) with δ_t = θ_t − θ_{t−1}, i.e.
//!   (θ_t·θ_{t−1} − ‖θ_{t−1}‖²)/(‖δ_t‖·‖θ_{t−1}‖). Near 0 means the update is orthogonal to the
//!   parameters, and then ‖θ_t‖² ≈ ‖θ_0‖² + Σ‖δ_s‖² (docs/REFERENCES.md#merrill-norm-growth): √t
//!   growth when ‖δ‖ is about constant (Adam), t^¼ when ‖δ‖ ∝ 1/‖θ‖ (SGD on a scale-invariant
//!   loss).
//!
//! "Non-scalar" means more than one element: a lone learned scalar is left out, as in the
//! reference code (it would dominate nothing but is not a direction). [`NormTracker`] records
//! these quantities along a run.

use saturn_layers::Module;
pub use saturn_tensor::flat::cosine;
use saturn_tensor::flat::{cosine_from, dot};
use saturn_tensor::{Float, Tensor};

use crate::error::{Result, invalid};

/// The non-scalar parameters of a model at one moment, by name, copied to `f64`.
#[derive(Debug, Clone, PartialEq)]
pub struct Snapshot {
    names: Vec<String>,
    values: Vec<Vec<f64>>,
}

/// The group (layer or top-level module) of a parameter name: the prefix up to and including
/// the first all-digit component (`layers.3.attn.q.weight` → `layers.3`,
/// `encoder.layer.11.output.dense.bias` → `encoder.layer.11`), else the first component
/// (`embed.weight` → `embed`).
pub fn group_of(name: &str) -> String {
    let parts: Vec<&str> = name.split('.').collect();
    match parts.iter().position(|p| !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit())) {
        Some(i) => parts[..=i].join("."),
        None => parts[0].to_string(),
    }
}

impl Snapshot {
    /// The non-scalar parameters of `model`.
    pub fn of<T: Float>(model: &impl Module<T>) -> Self {
        Self::from_named(&model.named_parameters())
    }

    /// The non-scalar tensors of a named list (a tensor listed twice, i.e. tied, counts once).
    pub fn from_named<T: Float>(params: &[(String, Tensor<T>)]) -> Self {
        let mut seen = std::collections::HashSet::new();
        let (names, values) = params
            .iter()
            .filter(|(_, t)| t.len() > 1 && seen.insert(t.id()))
            .map(|(n, t)| (n.clone(), t.data().iter().map(|v| v.as_f64()).collect()))
            .unzip();
        Snapshot { names, values }
    }

    /// From explicit (name, values) pairs (tests, saved data); single values are left out.
    pub fn from_values(params: Vec<(String, Vec<f64>)>) -> Self {
        let (names, values) = params.into_iter().filter(|(_, v)| v.len() > 1).unzip();
        Snapshot { names, values }
    }

    /// The parameter names, in model order.
    pub fn names(&self) -> &[String] {
        &self.names
    }

    /// The number of scalars.
    pub fn len(&self) -> usize {
        self.values.iter().map(Vec::len).sum()
    }

    /// Whether there are no parameters.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// ‖θ‖₂ over every non-scalar parameter.
    pub fn total_norm(&self) -> f64 {
        self.values.iter().map(|v| dot(v, v)).sum::<f64>().sqrt()
    }

    /// ‖θ_p‖₂ of every parameter, in model order.
    pub fn parameter_norms(&self) -> Vec<(String, f64)> {
        self.names.iter().zip(&self.values).map(|(n, v)| (n.clone(), dot(v, v).sqrt())).collect()
    }

    /// The norm of every group ([`group_of`]), in order of first appearance.
    pub fn group_norms(&self) -> Vec<(String, f64)> {
        self.per_group(|v| dot(v, v)).into_iter().map(|(g, s)| (g, s.sqrt())).collect()
    }

    /// Sums `f(values)` per group, in order of first appearance.
    fn per_group(&self, mut f: impl FnMut(&[f64]) -> f64) -> Vec<(String, f64)> {
        let mut out: Vec<(String, f64)> = Vec::new();
        for (name, v) in self.names.iter().zip(&self.values) {
            let g = group_of(name);
            let x = f(v);
            match out.iter_mut().find(|(k, _)| *k == g) {
                Some((_, s)) => *s += x,
                None => out.push((g, x)),
            }
        }
        out
    }

    fn check_same(&self, other: &Snapshot, op: &'static str) -> Result<()> {
        if self.names != other.names {
            return Err(invalid(op, "the snapshots hold different parameters"));
        }
        if let Some((n, (a, b))) = self
            .names
            .iter()
            .zip(self.values.iter().zip(&other.values))
            .find(|(_, (a, b))| a.len() != b.len())
        {
            return Err(invalid(
                op,
                format!("`{n}` has {} values in one and {} in the other", a.len(), b.len()),
            ));
        }
        Ok(())
    }

    /// cos(θ_self, θ_other) over all parameters.
    pub fn cosine(&self, other: &Snapshot) -> Result<f64> {
        self.check_same(other, "direction cosine")?;
        let (mut ab, mut aa, mut bb) = (0.0, 0.0, 0.0);
        for (a, b) in self.values.iter().zip(&other.values) {
            ab += dot(a, b);
            aa += dot(a, a);
            bb += dot(b, b);
        }
        Ok(cosine_from(ab, aa, bb))
    }

    /// cos(θ_self, θ_other) per group, in order of first appearance.
    pub fn group_cosines(&self, other: &Snapshot) -> Result<Vec<(String, f64)>> {
        self.check_same(other, "direction cosine")?;
        let mut sums: Vec<(String, [f64; 3])> = Vec::new();
        for ((name, a), b) in self.names.iter().zip(&self.values).zip(&other.values) {
            let g = group_of(name);
            let x = [dot(a, b), dot(a, a), dot(b, b)];
            match sums.iter_mut().find(|(k, _)| *k == g) {
                Some((_, s)) => (0..3).for_each(|i| s[i] += x[i]),
                None => sums.push((g, x)),
            }
        }
        Ok(sums.into_iter().map(|(g, s)| (g, cosine_from(s[0], s[1], s[2]))).collect())
    }

    /// cos(θ_{t−1}, δ_t) with θ_t = `self`, θ_{t−1} = `previous` and δ_t = θ_t − θ_{t−1}.
    pub fn update_alignment(&self, previous: &Snapshot) -> Result<f64> {
        Ok(self.update_from(previous)?.alignment)
    }

    /// The update δ_t = θ_t − θ_{t−1} (θ_t = `self`, θ_{t−1} = `previous`) and how it changes
    /// the squared norm: ρ_t² − ρ_{t−1}² = 2⟨θ_{t−1}, δ_t⟩ + ‖δ_t‖² ([`UpdateStep`]).
    pub fn update_from(&self, previous: &Snapshot) -> Result<UpdateStep> {
        self.check_same(previous, "update alignment")?;
        let (mut pd, mut pp, mut dd) = (0.0, 0.0, 0.0);
        for (cur, prev) in self.values.iter().zip(&previous.values) {
            for (c, p) in cur.iter().zip(prev) {
                let d = c - p;
                pd += p * d;
                pp += p * p;
                dd += d * d;
            }
        }
        Ok(UpdateStep { alignment: cosine_from(pd, pp, dd), radial: 2.0 * pd, tangential: dd })
    }
}

/// One update δ_t = θ_t − θ_{t−1} and its share of the norm's growth (Merrill et al. 2021, §4:
/// updates orthogonal to θ make ρ² grow by ‖δ‖² a step, so ρ ∝ √t when ‖δ‖ is steady):
///
/// ```text
/// ρ_t² − ρ_{t−1}² = 2⟨θ_{t−1}, δ_t⟩ + ‖δ_t‖²  =  radial + tangential
/// ```
///
/// The radial part is the update's component along θ (it can be negative); the tangential part
/// is what an orthogonal update adds. |cos(θ_{t−1}, δ_t)| < 0.1 alone cannot tell the two
/// apart when ρ/‖δ‖ ≈ 100: radial/tangential = 2·cos·ρ/‖δ‖ is then up to 20.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct UpdateStep {
    /// cos(θ_{t−1}, δ_t).
    pub alignment: f64,
    /// 2⟨θ_{t−1}, δ_t⟩.
    pub radial: f64,
    /// ‖δ_t‖².
    pub tangential: f64,
}

/// One observation of a [`NormTracker`].
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct NormRecord {
    pub step: usize,
    /// ‖θ_t‖₂.
    pub total_norm: f64,
    /// cos(θ_prev, θ_t − θ_prev) against the previous observation (a single optimizer step when
    /// the tracker observes every step); `None` at the first observation.
    pub update_alignment: Option<f64>,
    /// The update since the previous observation, split into its radial and tangential growth
    /// of ρ² ([`UpdateStep`]); `None` at the first observation.
    pub update: Option<UpdateStep>,
}

/// Records the norm and update alignment at every observation, and keeps a snapshot every
/// `checkpoint_every` steps for direction cosines cos(θ_t, θ_{t+Δ}) and group norms.
#[derive(Debug, Clone)]
pub struct NormTracker {
    checkpoint_every: usize,
    previous: Option<Snapshot>,
    checkpoints: Vec<(usize, Snapshot)>,
    records: Vec<NormRecord>,
}

impl NormTracker {
    /// A tracker that keeps a snapshot at every step that is a multiple of `checkpoint_every`.
    pub fn new(checkpoint_every: usize) -> Result<Self> {
        if checkpoint_every == 0 {
            return Err(invalid("norm tracker", "checkpoint_every must be positive"));
        }
        Ok(NormTracker {
            checkpoint_every,
            previous: None,
            checkpoints: Vec::new(),
            records: Vec::new(),
        })
    }

    /// Observes the model after `step` optimizer steps.
    pub fn observe<T: Float>(&mut self, step: usize, model: &impl Module<T>) -> Result<NormRecord> {
        let now = Snapshot::of(model);
        let update = match &self.previous {
            Some(prev) => Some(now.update_from(prev)?),
            None => None,
        };
        let record = NormRecord {
            step,
            total_norm: now.total_norm(),
            update_alignment: update.map(|u| u.alignment),
            update,
        };
        self.records.push(record);
        if step.is_multiple_of(self.checkpoint_every)
            && self.checkpoints.last().is_none_or(|(s, _)| *s != step)
        {
            self.checkpoints.push((step, now.clone()));
        }
        self.previous = Some(now);
        Ok(record)
    }

    /// Every observation, in order.
    pub fn records(&self) -> &[NormRecord] {
        &self.records
    }

    /// The kept snapshots (step, θ).
    pub fn checkpoints(&self) -> &[(usize, Snapshot)] {
        &self.checkpoints
    }

    /// (t, cos(θ_t, θ_{t+lag·checkpoint_every})) for every pair of kept snapshots `lag` apart.
    pub fn direction_cosines(&self, lag: usize) -> Result<Vec<(usize, f64)>> {
        if lag == 0 {
            return Err(invalid("direction cosines", "the lag must be positive"));
        }
        self.checkpoints
            .iter()
            .zip(self.checkpoints.iter().skip(lag))
            .map(|((s, a), (_, b))| Ok((*s, a.cosine(b)?)))
            .collect()
    }

    /// (t, group, cos(θ_t, θ_{t+lag})) per group, as [`NormTracker::direction_cosines`].
    pub fn group_direction_cosines(&self, lag: usize) -> Result<Vec<(usize, String, f64)>> {
        if lag == 0 {
            return Err(invalid("direction cosines", "the lag must be positive"));
        }
        let mut out = Vec::new();
        for ((s, a), (_, b)) in self.checkpoints.iter().zip(self.checkpoints.iter().skip(lag)) {
            out.extend(a.group_cosines(b)?.into_iter().map(|(g, c)| (*s, g, c)));
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn snap(values: &[(&str, &[f64])]) -> Snapshot {
        Snapshot::from_values(values.iter().map(|(n, v)| (n.to_string(), v.to_vec())).collect())
    }

    #[test]
    fn total_norm_concatenates_non_scalar_parameters() {
        let s = snap(&[("layers.0.w", &[3.0, 0.0]), ("scale", &[100.0]), ("head.w", &[0.0, 4.0])]);
        assert_eq!(s.names(), ["layers.0.w", "head.w"]);
        assert_eq!(s.total_norm(), 5.0);
        assert_eq!(s.parameter_norms(), vec![("layers.0.w".into(), 3.0), ("head.w".into(), 4.0)]);
    }

    #[test]
    fn groups_are_layers_or_top_level_modules() {
        assert_eq!(group_of("layers.3.attn.q.weight"), "layers.3");
        assert_eq!(group_of("encoder.layer.11.output.dense.bias"), "encoder.layer.11");
        assert_eq!(group_of("embed.weight"), "embed");
        let s = snap(&[
            ("layers.0.a", &[3.0, 0.0]),
            ("layers.0.b", &[0.0, 4.0]),
            ("head.w", &[1.0, 0.0]),
        ]);
        assert_eq!(s.group_norms(), vec![("layers.0".into(), 5.0), ("head".into(), 1.0)]);
    }

    #[test]
    fn the_direction_cosine_ignores_scale_and_sees_rotation() {
        let a = snap(&[("w", &[1.0, 2.0, 3.0])]);
        let b = snap(&[("w", &[10.0, 20.0, 30.0])]);
        assert!((a.cosine(&b).unwrap() - 1.0).abs() < 1e-15);
        let c = snap(&[("w", &[-2.0, 1.0, 0.0])]);
        assert_eq!(a.cosine(&c).unwrap(), 0.0);
        assert!(a.cosine(&snap(&[("v", &[1.0, 2.0, 3.0])])).is_err());
    }

    #[test]
    fn an_orthogonal_update_has_zero_alignment_and_a_radial_one_has_one() {
        let prev = snap(&[("w", &[1.0, 0.0]), ("v", &[0.0, 0.0])]);
        let orthogonal = snap(&[("w", &[1.0, 0.5]), ("v", &[0.0, 2.0])]);
        assert_eq!(orthogonal.update_alignment(&prev).unwrap(), 0.0);
        let radial = snap(&[("w", &[1.5, 0.0]), ("v", &[0.0, 0.0])]);
        assert_eq!(radial.update_alignment(&prev).unwrap(), 1.0);
        let shrink = snap(&[("w", &[0.5, 0.0]), ("v", &[0.0, 0.0])]);
        assert_eq!(shrink.update_alignment(&prev).unwrap(), -1.0);
    }

    #[test]
    fn the_squared_norm_grows_by_the_radial_plus_the_tangential_part() {
        let prev = snap(&[("w", &[1.0, -2.0, 0.5]), ("v", &[3.0, 0.25])]);
        let now = snap(&[("w", &[1.5, -1.0, 0.25]), ("v", &[2.0, 1.0])]);
        let u = now.update_from(&prev).unwrap();
        let growth = now.total_norm().powi(2) - prev.total_norm().powi(2);
        assert!((u.radial + u.tangential - growth).abs() < 1e-12, "{u:?} vs {growth}");
        assert_eq!(u.tangential, 0.25 + 1.0 + 0.0625 + 1.0 + 0.5625);
        assert_eq!(u.alignment, now.update_alignment(&prev).unwrap());
    }

    /// Merrill et al. 2021 §4's identity, true by construction: on an exactly scale-invariant
    /// loss L(cW) = L(W) (LayerNorm without ε), ⟨∇L, W⟩ = 0 (Euler), so an SGD step δ = −η∇L is
    /// orthogonal to W and ρ²_{t+1} − ρ²_t = η²‖∇L‖², the whole growth tangential.
    #[test]
    fn sgd_on_a_scale_invariant_loss_grows_the_norm_only_tangentially() {
        use saturn_tensor::ndarray::{ArrayD, IxDyn};
        let x: Vec<f64> = (0..12).map(|i| ((i * 7 % 5) as f64) - 2.0).collect();
        let y: Vec<f64> = (0..15).map(|i| ((i * 3 % 7) as f64) - 3.0).collect();
        let (x, y) = (Tensor::from_vec(x, &[3, 4]).unwrap(), Tensor::from_vec(y, &[3, 5]).unwrap());
        let w: Vec<f64> = (0..20).map(|i| ((i * 11 % 13) as f64) / 13.0 - 0.4).collect();
        let layer = saturn_layers::Linear::<f64> {
            weight: Tensor::param_from_vec(w, &[5, 4]).unwrap(),
            bias: None,
        };
        let eta = 0.5;
        let mut tracker = NormTracker::new(1).unwrap();
        tracker.observe(0, &layer).unwrap();
        for step in 1..=20 {
            layer.weight.zero_grad();
            let scores = x.matmul(&layer.weight.transpose(0, 1).unwrap()).unwrap();
            let loss = scores.layer_norm(None, None, 0.0).unwrap().mul(&y).unwrap().sum_all();
            loss.backward().unwrap();
            let g = layer.weight.grad().unwrap().to_vec();
            let g2: f64 = g.iter().map(|v| v * v).sum();
            let next: Vec<f64> =
                layer.weight.to_vec().iter().zip(&g).map(|(w, g)| w - eta * g).collect();
            let next = ArrayD::from_shape_vec(IxDyn(&[5, 4]), next).unwrap();
            layer.weight.set_data(next.into_shared()).unwrap();
            let u = tracker.observe(step, &layer).unwrap().update.unwrap();
            assert!(u.radial.abs() < 1e-9 * u.tangential, "step {step}: {u:?}");
            assert!((u.tangential - eta * eta * g2).abs() < 1e-12 * u.tangential);
        }
        let r = tracker.records();
        assert!(r[20].total_norm > r[0].total_norm, "the norm grew");
    }

    #[test]
    fn orthogonal_steps_of_constant_size_grow_the_norm_as_the_root_of_t() {
        // θ_t = θ_0 + Σ δ_s with δ_s ⟂ θ_{s−1}: ‖θ_t‖² = ‖θ_0‖² + t·‖δ‖² exactly in 2-D rotation
        let mut theta = [1.0f64, 0.0];
        let mut tracker = NormTracker::new(1).unwrap();
        for step in 0..50 {
            let m = saturn_layers::Linear::<f64> {
                weight: Tensor::param_from_vec(theta.to_vec(), &[1, 2]).unwrap(),
                bias: None,
            };
            let rec = tracker.observe(step, &m).unwrap();
            assert!((rec.total_norm.powi(2) - (1.0 + 0.01 * step as f64)).abs() < 1e-12);
            if step > 0 {
                assert!(rec.update_alignment.unwrap().abs() < 1e-12);
            }
            let n = (theta[0] * theta[0] + theta[1] * theta[1]).sqrt();
            let d = [-theta[1] / n * 0.1, theta[0] / n * 0.1];
            theta = [theta[0] + d[0], theta[1] + d[1]];
        }
        let cos = tracker.direction_cosines(10).unwrap();
        assert_eq!(cos.len(), 40);
        assert!(cos.windows(2).all(|w| w[1].1 > w[0].1), "directions converge as ‖θ‖ grows");
    }
}
