//! A claim of a paper, checked the way a reviewer would accept: one value per seed, an interval,
//! the gates that must be met for the value to mean anything, and a three-valued verdict
//! computed here, in one place, for every experiment.
//!
//! The rules (docs/ARCHITECTURE.md, "Claims and verdicts"):
//!
//! - **Evidence** is one number per seed (a paired difference, a ratio, a fitted slope — the
//!   experiment computes it per seed) and a [`Rule`] against a threshold. With ≥ 2 seeds the
//!   verdict comes from the 95 % Student t interval of the mean ([`crate::stats`]): `holds` when
//!   the whole interval is on the claimed side, `fails` when it is wholly on the other side,
//!   `inconclusive` when it straddles the threshold. With one seed the point value decides, and
//!   the claim says so (the report marks it).
//! - **Gates** are preconditions (a trained model learned; the comparison arms trained). A gate
//!   that is not met makes the claim `inconclusive`, never `holds`.
//! - **Undefined is never a pass**: a NaN or infinite value, or no value at all, makes the claim
//!   `inconclusive`.
//! - Every claim says where its threshold comes from ([`Threshold`]): the source (with the
//!   derivation), `ours` (with the reason), or `as-before` (kept from before this schema, to be
//!   derived from the source).

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::stats::{Interval, LEVEL, t_interval};

/// The outcome of a claim.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Verdict {
    Holds,
    Fails,
    Inconclusive,
}

impl Verdict {
    pub fn name(self) -> &'static str {
        match self {
            Verdict::Holds => "holds",
            Verdict::Fails => "fails",
            Verdict::Inconclusive => "inconclusive",
        }
    }
}

/// Where a threshold comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Origin {
    /// Read off the source (figure, table, equation, reference-code line); `note` derives it.
    Source,
    /// Chosen by us; `note` gives the reason.
    Ours,
    /// Kept from the suite before this schema; still to be derived from the source.
    AsBefore,
}

/// A threshold's origin and its derivation or reason.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Threshold {
    pub origin: Origin,
    pub note: String,
}

impl Threshold {
    /// Derived from the source: `derivation` says how (e.g. "Fig. 5: 0.45 → 0.30 over 12
    /// sublayers ⇒ slope −0.28; window [−0.5, −0.15]").
    pub fn from_source(derivation: impl Into<String>) -> Self {
        Threshold { origin: Origin::Source, note: derivation.into() }
    }

    /// Ours, for `reason`.
    pub fn ours(reason: impl Into<String>) -> Self {
        Threshold { origin: Origin::Ours, note: reason.into() }
    }

    /// Kept from before this schema.
    pub fn as_before() -> Self {
        Threshold {
            origin: Origin::AsBefore,
            note: "kept from the suite before per-seed verdicts; not yet derived from the source"
                .into(),
        }
    }
}

/// What the per-seed value must satisfy.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Rule {
    /// Greater than the threshold.
    Above(f64),
    /// Less than the threshold.
    Below(f64),
    /// Inside `[low, high]`.
    Within(f64, f64),
}

impl Rule {
    /// The rule in a few symbols: "> 1.5", "< 0", "in [−0.5, −0.15]".
    pub fn describe(self) -> String {
        match self {
            Rule::Above(t) => format!("> {}", short(t)),
            Rule::Below(t) => format!("< {}", short(t)),
            Rule::Within(a, b) => format!("in [{}, {}]", short(a), short(b)),
        }
    }

    fn point(self, v: f64) -> bool {
        match self {
            Rule::Above(t) => v > t,
            Rule::Below(t) => v < t,
            Rule::Within(a, b) => (a..=b).contains(&v),
        }
    }

    /// Holds when the whole interval satisfies the rule, fails when none of it can.
    fn interval(self, i: &Interval) -> Verdict {
        let (holds, fails) = match self {
            Rule::Above(t) => (i.low > t, i.high <= t),
            Rule::Below(t) => (i.high < t, i.low >= t),
            Rule::Within(a, b) => (a <= i.low && i.high <= b, i.high < a || i.low > b),
        };
        match (holds, fails) {
            (true, _) => Verdict::Holds,
            (false, true) => Verdict::Fails,
            (false, false) => Verdict::Inconclusive,
        }
    }
}

/// A number in 4 significant digits.
pub fn short(v: f64) -> String {
    if v == 0.0 || !v.is_finite() {
        return format!("{v}");
    }
    let digits = (3 - v.abs().log10().floor() as i32).clamp(0, 12) as usize;
    let s = format!("{v:.digits$}");
    if s.contains('.') { s.trim_end_matches('0').trim_end_matches('.').to_string() } else { s }
}

/// One value per seed, the rule they are judged by, and the interval of their mean.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Evidence {
    /// What one seed's value is (e.g. "paired ratio Post-LN / Pre-LN of the final loss").
    pub statistic: String,
    pub seeds: Vec<u64>,
    /// One per seed; non-finite values are written as `null` and read back as NaN.
    #[serde(with = "nullable_f64s")]
    pub values: Vec<f64>,
    pub rule: Rule,
    /// The 95 % t interval of the mean; absent with one seed or an undefined value.
    pub interval: Option<Interval>,
}

impl Evidence {
    /// `values[i]` measured with `seeds[i]`, judged by `rule`.
    pub fn new(statistic: impl Into<String>, seeds: &[u64], values: Vec<f64>, rule: Rule) -> Self {
        let interval = t_interval(&values, LEVEL);
        Evidence { statistic: statistic.into(), seeds: seeds.to_vec(), values, rule, interval }
    }

    /// The mean of the values (NaN when any is undefined).
    pub fn mean(&self) -> f64 {
        saturn_tensor::flat::mean(&self.values)
    }

    /// The verdict of the values alone, and why.
    fn judge(&self) -> (Verdict, String) {
        if self.values.is_empty() {
            return (Verdict::Inconclusive, "no value was measured".into());
        }
        if self.values.len() != self.seeds.len() {
            return (Verdict::Inconclusive, "values and seeds do not pair up".into());
        }
        if let Some(i) = self.values.iter().position(|v| !v.is_finite()) {
            return (
                Verdict::Inconclusive,
                format!("the value of seed {} is undefined ({})", self.seeds[i], self.values[i]),
            );
        }
        if self.values.len() == 1 {
            let v = self.values[0];
            let verdict = if self.rule.point(v) { Verdict::Holds } else { Verdict::Fails };
            return (
                verdict,
                format!("one seed: the point value {} decides (no interval)", short(v)),
            );
        }
        let i = self.interval.as_ref().expect("≥ 2 finite values have an interval");
        let verdict = self.rule.interval(i);
        let side = match verdict {
            Verdict::Holds => "lies wholly inside the claimed region",
            Verdict::Fails => "lies wholly outside the claimed region",
            Verdict::Inconclusive => "straddles the threshold",
        };
        (
            verdict,
            format!(
                "{} seeds: the {:.0} % t interval [{}, {}] {side}",
                i.n,
                i.level * 100.0,
                short(i.low),
                short(i.high)
            ),
        )
    }
}

/// How far below the unigram entropy (nats) a model's final validation loss must be for it to
/// count as having learned: the margin of every learning gate ([`Gate::learned`]) in the suite.
/// Ours (see [`LEARNED_MARGIN_REASON`]).
pub const LEARNED_MARGIN: f64 = 0.1;

/// Why [`LEARNED_MARGIN`] is 0.1 nats.
pub const LEARNED_MARGIN_REASON: &str = "ours: a model that learned nothing beyond the token \
    frequencies sits at the unigram entropy, within a few hundredths of a nat of validation \
    noise at these sizes; 0.1 nats below it means the model uses its context";

/// A precondition of a claim: unless it is met, the claim is `inconclusive`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Gate {
    /// The precondition in words, with its margin.
    pub what: String,
    pub met: bool,
    /// The values it was decided from.
    pub measured: BTreeMap<String, Value>,
}

impl Gate {
    pub fn new(what: impl Into<String>, met: bool) -> Self {
        Gate { what: what.into(), met, measured: BTreeMap::new() }
    }

    /// Records a value the gate was decided from.
    pub fn with(mut self, key: &str, value: Value) -> Self {
        self.measured.insert(key.to_string(), value);
        self
    }

    /// Every model learned: each of `final_losses` (one per run) is finite and at least
    /// `margin` below `reference` (the loss of a model that learned nothing beyond the unigram
    /// distribution, or of the uniform prediction).
    pub fn learned(
        what: &str,
        final_losses: &[f64],
        reference_name: &str,
        reference: f64,
        margin: f64,
    ) -> Self {
        let met = !final_losses.is_empty()
            && final_losses.iter().all(|l| l.is_finite() && *l <= reference - margin);
        Gate::new(
            format!(
                "{what} learned: every final validation loss ≤ {reference_name} − {margin} nats"
            ),
            met,
        )
        .with("final_losses", serde_json::json!(final_losses))
        .with(reference_name, serde_json::json!(reference))
    }
}

/// One claim of a paper, checked.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Claim {
    pub id: String,
    pub statement: String,
    /// Paper, section / figure / table (or reference-code line) the claim and its threshold
    /// come from.
    pub source: String,
    /// The criterion, in words, with its threshold.
    pub expected: String,
    /// Where the threshold comes from (absent in legacy records).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub threshold: Option<Threshold>,
    /// Everything else measured that the reader needs to judge the claim.
    pub measured: BTreeMap<String, Value>,
    /// The per-seed values and their interval (absent in legacy records).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub evidence: Option<Evidence>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub gates: Vec<Gate>,
    /// `None` in records made before verdicts had three values (shown as `legacy`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub verdict: Option<Verdict>,
    /// Why the verdict is what it is, in one line.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub reason: String,
    /// `verdict == holds` (kept for tools that read only this).
    pub holds: bool,
}

impl Claim {
    /// Starts a claim called `id`: give it a statement, source, expected, threshold and
    /// evidence, optionally gates and measured values, then [`ClaimBuilder::build`].
    pub fn builder(id: &str) -> ClaimBuilder {
        ClaimBuilder {
            id: id.to_string(),
            statement: String::new(),
            source: String::new(),
            expected: String::new(),
            threshold: None,
            measured: BTreeMap::new(),
            evidence: None,
            gates: Vec::new(),
        }
    }

    /// The verdict; legacy records (no verdict) read as holds / fails.
    pub fn outcome(&self) -> Verdict {
        self.verdict.unwrap_or(if self.holds { Verdict::Holds } else { Verdict::Fails })
    }
}

/// Builds a [`Claim`]; the verdict is computed by [`ClaimBuilder::build`].
#[derive(Debug, Clone)]
#[must_use = "a claim counts only when built and added"]
pub struct ClaimBuilder {
    id: String,
    statement: String,
    source: String,
    expected: String,
    threshold: Option<Threshold>,
    measured: BTreeMap<String, Value>,
    evidence: Option<Evidence>,
    gates: Vec<Gate>,
}

impl ClaimBuilder {
    /// What the paper claims, in one sentence.
    pub fn statement(mut self, s: impl Into<String>) -> Self {
        self.statement = s.into();
        self
    }

    /// The paper's section, figure, table or equation (or the reference code's line).
    pub fn source(mut self, s: impl Into<String>) -> Self {
        self.source = s.into();
        self
    }

    /// The criterion in words, with its threshold.
    pub fn expected(mut self, s: impl Into<String>) -> Self {
        self.expected = s.into();
        self
    }

    pub fn threshold(mut self, t: Threshold) -> Self {
        self.threshold = Some(t);
        self
    }

    /// Records a value the reader needs (curves, means per arm, fits).
    pub fn measured(mut self, key: &str, value: Value) -> Self {
        self.measured.insert(key.to_string(), value);
        self
    }

    /// The per-seed values the verdict is computed from.
    pub fn evidence(mut self, e: Evidence) -> Self {
        self.evidence = Some(e);
        self
    }

    /// A precondition; several may be given, all must be met.
    pub fn gate(mut self, g: Gate) -> Self {
        self.gates.push(g);
        self
    }

    /// Computes the verdict: inconclusive when a gate is not met, else the evidence's.
    pub fn build(self) -> Claim {
        let (mut verdict, mut reason) = match &self.evidence {
            Some(e) => e.judge(),
            None => (Verdict::Inconclusive, "no evidence was given".to_string()),
        };
        if let Some(g) = self.gates.iter().find(|g| !g.met) {
            verdict = Verdict::Inconclusive;
            reason = format!("gate not met: {} (the evidence alone: {reason})", g.what);
        }
        Claim {
            id: self.id,
            statement: self.statement,
            source: self.source,
            expected: self.expected,
            threshold: self.threshold,
            measured: self.measured,
            evidence: self.evidence,
            gates: self.gates,
            verdict: Some(verdict),
            reason,
            holds: verdict == Verdict::Holds,
        }
    }
}

/// The claims of one run.
#[derive(Debug, Default)]
pub struct Claims {
    pub list: Vec<Claim>,
}

impl Claims {
    /// Builds `claim` (computing its verdict) and adds it.
    pub fn push(&mut self, claim: ClaimBuilder) {
        self.list.push(claim.build());
    }

    /// The claim called `id`.
    pub fn get(&self, id: &str) -> Option<&Claim> {
        self.list.iter().find(|c| c.id == id)
    }
}

/// Serde for `Vec<f64>` that writes non-finite values as `null` (JSON has no NaN) and reads
/// `null` back as NaN.
mod nullable_f64s {
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(v: &[f64], s: S) -> Result<S::Ok, S::Error> {
        s.collect_seq(v.iter().map(|x| x.is_finite().then_some(*x)))
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<f64>, D::Error> {
        let v: Vec<Option<f64>> = Vec::deserialize(d)?;
        Ok(v.into_iter().map(|x| x.unwrap_or(f64::NAN)).collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn claim(values: Vec<f64>, rule: Rule) -> Claim {
        let seeds: Vec<u64> = (0..values.len() as u64).collect();
        Claim::builder("c")
            .statement("s")
            .source("src")
            .expected("e")
            .threshold(Threshold::ours("test"))
            .evidence(Evidence::new("v", &seeds, values, rule))
            .build()
    }

    #[test]
    fn an_interval_above_the_threshold_holds_below_fails_across_is_inconclusive() {
        assert_eq!(claim(vec![2.0, 2.1, 1.9], Rule::Above(1.0)).verdict, Some(Verdict::Holds));
        assert_eq!(claim(vec![0.5, 0.6, 0.4], Rule::Above(1.0)).verdict, Some(Verdict::Fails));
        assert_eq!(
            claim(vec![0.5, 1.5, 1.0], Rule::Above(1.0)).verdict,
            Some(Verdict::Inconclusive)
        );
        assert_eq!(claim(vec![0.5, 0.6, 0.55], Rule::Below(1.0)).verdict, Some(Verdict::Holds));
        assert_eq!(
            claim(vec![-0.3, -0.28, -0.31], Rule::Within(-0.5, -0.15)).verdict,
            Some(Verdict::Holds)
        );
        assert_eq!(
            claim(vec![0.3, 0.28, 0.31], Rule::Within(-0.5, -0.15)).verdict,
            Some(Verdict::Fails)
        );
    }

    #[test]
    fn a_tie_with_the_threshold_never_holds() {
        // the Hessian trace of seed 0: 67.4 vs 68.0 within noise — equal values are no pass
        assert_eq!(claim(vec![1.0, 1.0, 1.0], Rule::Above(1.0)).verdict, Some(Verdict::Fails));
        assert_eq!(claim(vec![1.0], Rule::Above(1.0)).verdict, Some(Verdict::Fails));
    }

    #[test]
    fn undefined_values_and_missing_evidence_never_pass() {
        for v in [f64::NAN, f64::INFINITY, f64::NEG_INFINITY] {
            let c = claim(vec![2.0, v, 2.0], Rule::Above(1.0));
            assert_eq!(c.verdict, Some(Verdict::Inconclusive), "{v}");
            assert!(!c.holds);
        }
        assert_eq!(claim(vec![], Rule::Above(1.0)).verdict, Some(Verdict::Inconclusive));
        let bare = Claim::builder("c").build();
        assert_eq!(bare.verdict, Some(Verdict::Inconclusive));
    }

    #[test]
    fn one_seed_is_decided_by_its_point_value_and_says_so() {
        let c = claim(vec![2.0], Rule::Above(1.0));
        assert_eq!(c.verdict, Some(Verdict::Holds));
        assert!(c.reason.contains("one seed"), "{}", c.reason);
        assert!(c.evidence.unwrap().interval.is_none());
    }

    #[test]
    fn an_unmet_gate_makes_a_passing_claim_inconclusive() {
        let seeds = [0, 1, 2];
        let evidence = Evidence::new("v", &seeds, vec![2.0, 2.1, 1.9], Rule::Above(1.0));
        let gate = Gate::learned("the LM", &[3.4, 2.0, 2.1], "unigram_entropy", 3.3, 0.1);
        assert!(!gate.met);
        let c = Claim::builder("c").evidence(evidence.clone()).gate(gate).build();
        assert_eq!(c.verdict, Some(Verdict::Inconclusive));
        assert!(c.reason.starts_with("gate not met"), "{}", c.reason);
        let met = Gate::learned("the LM", &[2.0, 2.1, 2.0], "unigram_entropy", 3.3, 0.1);
        let c = Claim::builder("c").evidence(evidence).gate(met).build();
        assert_eq!(c.verdict, Some(Verdict::Holds));
        // NaN losses never meet a learning gate
        assert!(!Gate::learned("x", &[f64::NAN], "u", 3.3, 0.1).met);
        assert!(!Gate::learned("x", &[], "u", 3.3, 0.1).met);
    }

    #[test]
    fn claims_round_trip_through_json_with_undefined_values() {
        let c = claim(vec![2.0, f64::NAN], Rule::Above(1.0));
        let text = serde_json::to_string(&c).unwrap();
        assert!(text.contains("\"verdict\":\"inconclusive\""), "{text}");
        let back: Claim = serde_json::from_str(&text).unwrap();
        assert!(back.evidence.as_ref().unwrap().values[1].is_nan());
        assert_eq!(back.verdict, c.verdict);
    }

    #[test]
    fn a_legacy_claim_reads_without_a_verdict() {
        let legacy =
            r#"{"id":"a","statement":"s","source":"x","expected":"e","measured":{},"holds":true}"#;
        let c: Claim = serde_json::from_str(legacy).unwrap();
        assert_eq!(c.verdict, None);
        assert_eq!(c.outcome(), Verdict::Holds);
    }

    #[test]
    fn numbers_print_short() {
        assert_eq!(short(1.23456), "1.235");
        assert_eq!(short(0.0012346), "0.001235");
        assert_eq!(short(12345.6), "12346");
        assert_eq!(short(2.0), "2");
    }
}
