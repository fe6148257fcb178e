//! Attention heads under saturation (Merrill et al. 2021, §5 and the norm-growth code's
//! top-level `saturate.py`; docs/REFERENCES.md#merrill-heads, docs/REFERENCES.md#target-12).
//!
//! For each head, from its attention probabilities p[b, h, q, k] in the network at cθ (c = 1000,
//! "under saturation") and, optionally, at θ:
//!
//! - n(b, q) = #{ k : p_sat[b, h, q, k] > 1e-5 }, the keys attended; the head's **mean count**
//!   is its mean over the analysed queries, with its standard deviation and the **split
//!   fraction** P(n > 1);
//! - the visible prefix m(b, q) (the keys the mask lets query q see: q + 1 under a causal mask,
//!   the real tokens of a padded sentence otherwise) and the **prefix fraction**
//!   mean n / mean m (a ratio of means, as in the paper's histograms);
//! - the **entropy** of the unsaturated attention, −Σ_k p_k ln p_k / ln m, averaged over
//!   queries with m > 1 (1 for uniform attention, 0 for one-hot);
//! - the **first-token mass** Σ_q p_sat[b, h, q, k₀] / #queries over queries with m > 1, k₀ the
//!   first visible key (`[CLS]` in BERT, the first character of an LM window);
//! - the **future-support fraction**: among the analysed queries that see a key after them (a
//!   bidirectional model, or the norm-growth reference's multiplicative "causal" mask, whose
//!   future scores are 0), the share whose saturated support is exactly their future keys
//!   {k > q}: the reference mask's artifact, counted per (query, head) — a per-head mean count
//!   mixes such queries with argmax ones. NaN when no query sees a future key (a causal model).
//!
//! The class, with every threshold in [`HEAD_THRESHOLDS`], tested in this order:
//! **averaging** if the prefix fraction is ≥ 0.9; **sink** if the first-token mass is ≥ 0.9;
//! **hard** (argmax) if the mean count is ≤ 2; **mixed** otherwise. The paper classifies by the
//! histogram alone; these cut-offs are ours (docs/REFERENCES.md#merrill-definitions \[ours\] with
//! target 12's "≤ 2").

use saturn_layers::AttentionMode;
use saturn_tensor::ndarray::{ArrayView2, Ix4};
use saturn_tensor::{Float, Tensor};
use serde::{Deserialize, Serialize};

use crate::error::{Result, invalid};
use crate::layered::{Layered, TokenBatch};
use crate::scaling::probe;

/// The cut-offs of the head statistics and classes, in one place.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct HeadThresholds {
    /// A key is attended when its saturated weight exceeds this (the reference code's 1e-5).
    pub attended_weight: f64,
    /// Hard (argmax) heads attend to at most this many keys on average.
    pub hard_max_count: f64,
    /// Averaging heads attend to at least this fraction of the visible prefix.
    pub averaging_min_fraction: f64,
    /// Sink heads put at least this much saturated mass on the first visible key.
    pub sink_min_mass: f64,
}

/// The thresholds every analysis uses.
pub const HEAD_THRESHOLDS: HeadThresholds = HeadThresholds {
    attended_weight: 1e-5,
    hard_max_count: 2.0,
    averaging_min_fraction: 0.9,
    sink_min_mass: 0.9,
};

/// What a head does under saturation.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum HeadClass {
    /// Attends to one key (or two): argmax attention.
    Hard,
    /// Attends uniformly to (almost) the whole visible prefix: a mean, which can count.
    Averaging,
    /// Parks its attention on the first token.
    Sink,
    /// Anything else.
    Mixed,
}

impl HeadClass {
    /// Every class, in the order of the classification.
    pub const ALL: [HeadClass; 4] =
        [HeadClass::Averaging, HeadClass::Sink, HeadClass::Hard, HeadClass::Mixed];

    /// `hard`, `averaging`, `sink`, `mixed`.
    pub fn name(self) -> &'static str {
        match self {
            HeadClass::Hard => "hard",
            HeadClass::Averaging => "averaging",
            HeadClass::Sink => "sink",
            HeadClass::Mixed => "mixed",
        }
    }

    /// The class of a head from its statistics (module docs).
    pub fn of(
        mean_count: f64,
        prefix_fraction: f64,
        first_token_mass: f64,
        t: &HeadThresholds,
    ) -> Self {
        if prefix_fraction >= t.averaging_min_fraction {
            HeadClass::Averaging
        } else if first_token_mass >= t.sink_min_mass {
            HeadClass::Sink
        } else if mean_count <= t.hard_max_count {
            HeadClass::Hard
        } else {
            HeadClass::Mixed
        }
    }
}

/// Which keys each query sees, and which queries the statistics are taken over.
#[derive(Debug, Clone, Copy, Default)]
pub struct Visibility<'a> {
    /// Query q sees keys k ≤ q only.
    pub causal: bool,
    /// [B, T_k], true for a real key (padding is hidden).
    pub keys: Option<ArrayView2<'a, bool>>,
    /// [B, T_q], the queries to analyse; by default every query that is a real token (when
    /// queries and keys are the same tokens) or every query.
    pub queries: Option<ArrayView2<'a, bool>>,
}

impl Visibility<'_> {
    fn sees(&self, b: usize, q: usize, k: usize) -> bool {
        !(self.causal && k > q) && self.keys.is_none_or(|m| m[[b, k]])
    }

    fn analysed(&self, b: usize, q: usize, tq: usize, tk: usize) -> bool {
        match (&self.queries, &self.keys) {
            (Some(m), _) => m[[b, q]],
            (None, Some(m)) if tq == tk => m[[b, q]],
            _ => true,
        }
    }

    fn check(&self, b: usize, tq: usize, tk: usize) -> Result<()> {
        if let Some(m) = &self.keys
            && m.dim() != (b, tk)
        {
            return Err(invalid(
                "head statistics",
                format!("key mask {:?} for [{b}, {tk}] keys", m.dim()),
            ));
        }
        if let Some(m) = &self.queries
            && m.dim() != (b, tq)
        {
            return Err(invalid(
                "head statistics",
                format!("query mask {:?} for [{b}, {tq}] queries", m.dim()),
            ));
        }
        Ok(())
    }
}

/// The statistics of one head (module docs).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct HeadStats {
    /// The attention layer, e.g. `layers.0.attn`.
    pub layer: String,
    pub head: usize,
    /// Queries analysed.
    pub queries: usize,
    pub mean_count: f64,
    pub std_count: f64,
    pub split_fraction: f64,
    pub mean_prefix: f64,
    pub prefix_fraction: f64,
    /// Normalized entropy of the unsaturated attention (NaN when it was not given).
    pub entropy: f64,
    pub first_token_mass: f64,
    /// The share of queries with a future key whose saturated support is exactly their future
    /// keys (module docs); NaN when no query sees a future key.
    #[serde(default = "not_measured")]
    pub future_support_fraction: f64,
    pub class: HeadClass,
}

/// What a statistic recorded before it existed reads as.
fn not_measured() -> f64 {
    f64::NAN
}

/// Probabilities as a 4-D f64 array [B, H, T_q, T_k].
pub(crate) fn probs4<T: Float>(
    p: &Tensor<T>,
    what: &str,
) -> Result<saturn_tensor::ndarray::Array4<f64>> {
    p.to_array().mapv(|v| v.as_f64()).into_dimensionality::<Ix4>().map_err(|_| {
        invalid(
            "head statistics",
            format!("{what} probabilities must be [B, H, T_q, T_k], got {:?}", p.shape()),
        )
    })
}

/// One batch of one attention layer's probabilities: under saturation and (for the entropy)
/// without, [B, H, T_q, T_k] each, and what each query sees.
#[derive(Debug, Clone, Copy)]
pub struct HeadBatch<'a, T: Float> {
    pub saturated: &'a Tensor<T>,
    pub soft: Option<&'a Tensor<T>>,
    pub visibility: Visibility<'a>,
}

/// The statistics and class of every head of one attention layer from its probabilities under
/// saturation [B, H, T_q, T_k] and, for the entropy, without.
pub fn head_stats<'a, T: Float>(
    layer: &str,
    saturated: &'a Tensor<T>,
    soft: Option<&'a Tensor<T>>,
    vis: &Visibility<'a>,
    thresholds: &HeadThresholds,
) -> Result<Vec<HeadStats>> {
    head_stats_over(layer, &[HeadBatch { saturated, soft, visibility: *vis }], thresholds)
}

/// Running sums of one head's statistics.
#[derive(Debug, Clone, Copy, Default)]
struct Sums {
    queries: usize,
    count: f64,
    count_sq: f64,
    split: usize,
    prefix: f64,
    entropy: f64,
    entropy_n: usize,
    first: f64,
    first_n: usize,
    future_exact: usize,
    future_n: usize,
}

/// [`head_stats`] over several batches (e.g. sentences bucketed by length): every query of
/// every batch counts once.
pub fn head_stats_over<T: Float>(
    layer: &str,
    batches: &[HeadBatch<'_, T>],
    thresholds: &HeadThresholds,
) -> Result<Vec<HeadStats>> {
    let mut sums: Vec<Sums> = Vec::new();
    for batch in batches {
        let sat = probs4(batch.saturated, "saturated")?;
        let soft = batch.soft.map(|s| probs4(s, "unsaturated")).transpose()?;
        let (nb, nh, tq, tk) = sat.dim();
        if let Some(s) = &soft
            && s.dim() != sat.dim()
        {
            return Err(invalid(
                "head statistics",
                format!("unsaturated {:?} vs saturated {:?}", s.dim(), sat.dim()),
            ));
        }
        if sums.is_empty() {
            sums = vec![Sums::default(); nh];
        } else if sums.len() != nh {
            return Err(invalid(
                "head statistics",
                format!("{layer}: {nh} heads after {}", sums.len()),
            ));
        }
        let vis = &batch.visibility;
        vis.check(nb, tq, tk)?;
        for (h, acc) in sums.iter_mut().enumerate() {
            for b in 0..nb {
                for q in 0..tq {
                    if !vis.analysed(b, q, tq, tk) {
                        continue;
                    }
                    let visible: Vec<usize> = (0..tk).filter(|&k| vis.sees(b, q, k)).collect();
                    let m = visible.len();
                    if m == 0 {
                        continue;
                    }
                    let attended = |k: usize| sat[[b, h, q, k]] > thresholds.attended_weight;
                    let count = visible.iter().filter(|&&k| attended(k)).count();
                    if visible.iter().any(|&k| k > q) {
                        acc.future_n += 1;
                        let exactly_future = visible.iter().all(|&k| attended(k) == (k > q));
                        acc.future_exact += usize::from(exactly_future);
                    }
                    acc.queries += 1;
                    acc.count += count as f64;
                    acc.count_sq += (count * count) as f64;
                    acc.split += usize::from(count > 1);
                    acc.prefix += m as f64;
                    if m > 1 {
                        acc.first += sat[[b, h, q, visible[0]]];
                        acc.first_n += 1;
                        if let Some(s) = &soft {
                            let e: f64 = visible
                                .iter()
                                .map(|&k| s[[b, h, q, k]])
                                .filter(|&p| p > 0.0)
                                .map(|p| -p * p.ln())
                                .sum();
                            acc.entropy += e / (m as f64).ln();
                            acc.entropy_n += 1;
                        }
                    }
                }
            }
        }
    }
    sums.iter()
        .enumerate()
        .map(|(h, acc)| {
            if acc.queries == 0 {
                return Err(invalid("head statistics", format!("{layer}: no query to analyse")));
            }
            let n = acc.queries as f64;
            let mean_count = acc.count / n;
            let mean_prefix = acc.prefix / n;
            let prefix_fraction = mean_count / mean_prefix;
            let first_token_mass =
                if acc.first_n > 0 { acc.first / acc.first_n as f64 } else { f64::NAN };
            Ok(HeadStats {
                layer: layer.to_string(),
                head: h,
                queries: acc.queries,
                mean_count,
                std_count: (acc.count_sq / n - mean_count * mean_count).max(0.0).sqrt(),
                split_fraction: acc.split as f64 / n,
                mean_prefix,
                prefix_fraction,
                entropy: if acc.entropy_n > 0 {
                    acc.entropy / acc.entropy_n as f64
                } else {
                    f64::NAN
                },
                first_token_mass,
                future_support_fraction: if acc.future_n > 0 {
                    acc.future_exact as f64 / acc.future_n as f64
                } else {
                    f64::NAN
                },
                class: HeadClass::of(mean_count, prefix_fraction, first_token_mass, thresholds),
            })
        })
        .collect()
}

/// Every head of every attention layer of `model` over `batches`: saturated probabilities from
/// the network at cθ (c = 1000 in the paper), the entropy from the network at θ, queries and
/// keys as each batch's masks say.
pub fn analyze_heads<T: Float, M: Layered<T>>(
    model: &M,
    batches: &[TokenBatch],
    c: f64,
    thresholds: &HeadThresholds,
) -> Result<Vec<HeadStats>> {
    let mut probes = Vec::with_capacity(batches.len());
    for batch in batches {
        let sat = probe(model, batch, c, AttentionMode::Softmax)?.attention;
        let soft = probe(model, batch, 1.0, AttentionMode::Softmax)?.attention;
        probes.push((sat, soft));
    }
    let Some((first, _)) = probes.first() else { return Ok(Vec::new()) };
    let mut out = Vec::new();
    for (i, layer) in first.iter().enumerate() {
        let per_batch: Vec<HeadBatch<'_, T>> = probes
            .iter()
            .zip(batches)
            .map(|((sat, soft), batch)| HeadBatch {
                saturated: &sat[i].probs,
                soft: Some(&soft[i].probs),
                visibility: Visibility {
                    causal: model.sees_only_the_past(),
                    keys: batch.real.as_ref().map(|m| m.view()),
                    queries: batch.analysed.as_ref().map(|m| m.view()),
                },
            })
            .collect();
        out.extend(head_stats_over(&layer.name, &per_batch, thresholds)?);
    }
    Ok(out)
}

/// The number of heads of each class, in [`HeadClass::ALL`] order.
pub fn class_counts(stats: &[HeadStats]) -> Vec<(HeadClass, usize)> {
    HeadClass::ALL.iter().map(|&c| (c, stats.iter().filter(|s| s.class == c).count())).collect()
}

#[cfg(test)]
mod tests {
    use saturn_tensor::ndarray::{Array2, Array4};

    use super::*;

    fn tensor(a: Array4<f64>) -> Tensor<f64> {
        Tensor::constant(a.into_dyn())
    }

    /// Causal attention of T queries: head 0 one-hot on the previous token, head 1 uniform over
    /// the prefix, head 2 one-hot on the first token, head 3 on the last two keys.
    fn causal_heads(t: usize) -> Array4<f64> {
        Array4::from_shape_fn((2, 4, t, t), |(_, h, q, k)| {
            if k > q {
                return 0.0;
            }
            match h {
                0 => f64::from(k == q.saturating_sub(1)),
                1 => 1.0 / (q + 1) as f64,
                2 => f64::from(k == 0),
                _ if q == 0 => 1.0,
                _ => f64::from(k + 1 >= q) * 0.5,
            }
        })
    }

    /// The reference mask's artifact per (query, head): a head that ties on the zero future
    /// scores attends exactly the keys after each query; an argmax head on the previous key
    /// never does; a causal model has no future to count (NaN).
    #[test]
    fn the_future_support_fraction_counts_queries_attending_exactly_their_future() {
        let t = 6;
        let p = Array4::from_shape_fn((1, 2, t, t), |(_, h, q, k)| match h {
            // uniform over k > q; the last query has no future and attends itself
            0 if q + 1 < t => f64::from(k > q) / (t - q - 1) as f64,
            0 => f64::from(k == q),
            _ => f64::from(k == q.saturating_sub(1)),
        });
        let p = tensor(p);
        let bidirectional = Visibility::default();
        let s = head_stats("l", &p, None, &bidirectional, &HEAD_THRESHOLDS).unwrap();
        assert_eq!(s[0].future_support_fraction, 1.0);
        assert_eq!(s[1].future_support_fraction, 0.0);
        let causal = Visibility { causal: true, ..Default::default() };
        let s = head_stats("l", &p, None, &causal, &HEAD_THRESHOLDS).unwrap();
        assert!(s[0].future_support_fraction.is_nan() && s[1].future_support_fraction.is_nan());
    }

    #[test]
    fn a_one_hot_head_counts_one_and_a_uniform_head_counts_the_prefix() {
        let t = 8;
        let p = tensor(causal_heads(t));
        let vis = Visibility { causal: true, ..Default::default() };
        let s = head_stats("l", &p, Some(&p), &vis, &HEAD_THRESHOLDS).unwrap();
        assert_eq!(s[0].mean_count, 1.0);
        assert_eq!(s[0].split_fraction, 0.0);
        assert_eq!(s[0].std_count, 0.0);
        assert_eq!(s[0].entropy, 0.0);
        assert_eq!(s[0].class, HeadClass::Hard);
        // uniform: n = q + 1 = m, so the count is the prefix and the entropy is 1
        assert_eq!(s[1].mean_count, (1..=t).sum::<usize>() as f64 / t as f64);
        assert_eq!(s[1].prefix_fraction, 1.0);
        assert!((s[1].entropy - 1.0).abs() < 1e-12);
        assert_eq!(s[1].split_fraction, (t - 1) as f64 / t as f64);
        let var = (1..=t).map(|n| (n * n) as f64).sum::<f64>() / t as f64 - s[1].mean_count.powi(2);
        assert!((s[1].std_count - var.sqrt()).abs() < 1e-12);
        assert_eq!(s[1].class, HeadClass::Averaging);
        assert_eq!(s[2].first_token_mass, 1.0);
        assert_eq!(s[2].class, HeadClass::Sink);
        assert!(s[3].mean_count > 1.5 && s[3].mean_count <= 2.0);
        assert_eq!(s[3].class, HeadClass::Hard);
        assert!(s.iter().all(|h| h.queries == 2 * t));
    }

    #[test]
    fn padding_is_neither_a_key_nor_a_query() {
        // a bidirectional sentence of 3 real tokens padded to 5, uniform attention
        let keys = Array2::from_shape_fn((1, 5), |(_, k)| k < 3);
        let p =
            Array4::from_shape_fn((1, 1, 5, 5), |(_, _, _, k)| if k < 3 { 1.0 / 3.0 } else { 0.0 });
        let vis = Visibility { causal: false, keys: Some(keys.view()), queries: None };
        let s = head_stats("l", &tensor(p), None, &vis, &HEAD_THRESHOLDS).unwrap();
        assert_eq!((s[0].queries, s[0].mean_count, s[0].mean_prefix), (3, 3.0, 3.0));
        assert!(s[0].entropy.is_nan());
        assert_eq!(s[0].class, HeadClass::Averaging);
    }

    #[test]
    fn a_query_mask_selects_the_analysed_queries() {
        let t = 6;
        let last = Array2::from_shape_fn((2, t), |(_, q)| q == t - 1);
        let vis = Visibility { causal: true, keys: None, queries: Some(last.view()) };
        let s = head_stats("l", &tensor(causal_heads(t)), None, &vis, &HEAD_THRESHOLDS).unwrap();
        assert_eq!(s[1].mean_count, t as f64);
        assert_eq!(s[1].queries, 2);
        assert_eq!(
            class_counts(&s),
            vec![
                (HeadClass::Averaging, 1),
                (HeadClass::Sink, 1),
                (HeadClass::Hard, 2),
                (HeadClass::Mixed, 0)
            ]
        );
    }

    #[test]
    fn batches_pool_their_queries() {
        let t = 5;
        let p = tensor(causal_heads(t));
        let vis = Visibility { causal: true, ..Default::default() };
        let one = head_stats("l", &p, Some(&p), &vis, &HEAD_THRESHOLDS).unwrap();
        let b = HeadBatch { saturated: &p, soft: Some(&p), visibility: vis };
        let two = head_stats_over("l", &[b, b], &HEAD_THRESHOLDS).unwrap();
        for (x, y) in one.iter().zip(&two) {
            assert_eq!(y.queries, 2 * x.queries);
            assert_eq!((x.mean_count, x.std_count, x.class), (y.mean_count, y.std_count, y.class));
            assert!((x.entropy - y.entropy).abs() < 1e-12);
        }
    }

    #[test]
    fn heads_of_a_model_are_analysed_per_layer() {
        use saturn_layers::{DecoderLm, LmConfig};
        let m = DecoderLm::<f64>::new(LmConfig::new(7, 8, 2, 16, 2, 6), 0).unwrap();
        let batch =
            TokenBatch::new(saturn_tensor::ndarray::Array2::from_shape_fn((2, 6), |(b, t)| {
                (b + 2 * t) % 7
            }));
        let stats = analyze_heads(&m, &[batch.clone(), batch], 1000.0, &HEAD_THRESHOLDS).unwrap();
        assert_eq!(stats.len(), 4);
        assert_eq!(stats[2].layer, "layers.1.attn");
        assert!(
            stats.iter().all(|s| s.queries == 24
                && s.mean_count >= 1.0
                && (0.0..=1.0).contains(&s.entropy))
        );
    }

    #[test]
    fn a_head_between_the_modes_is_mixed() {
        let t = 12;
        // each query attends to half of its prefix (rounded up)
        let p = Array4::from_shape_fn((1, 1, t, t), |(_, _, q, k)| {
            let n = q.div_ceil(2).max(1);
            if k <= q && k + n > q { 1.0 / n as f64 } else { 0.0 }
        });
        let vis = Visibility { causal: true, ..Default::default() };
        let s = head_stats("l", &tensor(p), None, &vis, &HEAD_THRESHOLDS).unwrap();
        assert_eq!(s[0].class, HeadClass::Mixed, "{:?}", s[0]);
    }

    #[test]
    fn wrong_shapes_are_errors() {
        let vis = Visibility::default();
        let p3 = Tensor::<f64>::zeros(&[2, 3, 3]);
        assert!(head_stats("l", &p3, None, &vis, &HEAD_THRESHOLDS).is_err());
        let keys = Array2::from_elem((1, 4), true);
        let bad = Visibility { keys: Some(keys.view()), ..Default::default() };
        let p = Tensor::<f64>::zeros(&[1, 1, 3, 3]);
        assert!(head_stats("l", &p, None, &bad, &HEAD_THRESHOLDS).is_err());
    }
}
