//! Per-parameter-group options, selected by parameter name.
//!
//! Parameters have PyTorch `state_dict`-style names (`layers.3.attn.q.weight`). A
//! [`ParamGroups`] is an ordered list of [`GroupRule`]s; each rule has a name pattern and the
//! options it overrides (weight decay, a learning-rate scale). For each parameter **the first
//! rule whose pattern matches its whole name wins**; a parameter that no rule matches keeps the
//! optimizer's own options (its `weight_decay`, lr scale 1).
//!
//! Patterns are globs with one wildcard: `*` matches any run of characters, dots included, or
//! none; every other character matches itself. So `*.bias` matches every bias, `layers.0.*`
//! everything in the first layer, `*ln*.weight` the gains of modules whose name contains `ln`,
//! and a pattern without `*` one exact name.
//!
//! The usual "no weight decay on biases and LayerNorm gains" (BERT, fairseq's `--no-decay`):
//!
//! ```
//! use saturn_optim::{GroupRule, ParamGroups};
//! let groups = ParamGroups::new(vec![
//!     GroupRule::new("*.bias").weight_decay(0.0),
//!     GroupRule::new("*ln*.weight").weight_decay(0.0),
//! ]);
//! let opts = groups.options_for("layers.0.ln1.weight", 0.01);
//! assert_eq!(opts.weight_decay, 0.0);
//! assert_eq!(groups.options_for("layers.0.attn.q.weight", 0.01).weight_decay, 0.01);
//! ```
//!
//! In a TOML config (inside an optimizer table):
//!
//! ```toml
//! [[optimizer.groups]]
//! pattern = "*.bias"
//! weight_decay = 0.0
//! ```

use serde::{Deserialize, Serialize};

use crate::error::{OptimError, Result, check_non_negative};

/// One rule: parameters whose name matches `pattern` get these overrides.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GroupRule {
    /// A glob over the full parameter name; `*` matches any run of characters.
    pub pattern: String,
    /// Replaces the optimizer's weight decay for the matched parameters.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub weight_decay: Option<f64>,
    /// Multiplies the learning rate given to `step` for the matched parameters (default 1).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lr_scale: Option<f64>,
}

impl GroupRule {
    /// A rule with this pattern and no overrides yet.
    pub fn new(pattern: impl Into<String>) -> Self {
        GroupRule { pattern: pattern.into(), weight_decay: None, lr_scale: None }
    }

    /// Sets the weight decay of the matched parameters.
    pub fn weight_decay(mut self, weight_decay: f64) -> Self {
        self.weight_decay = Some(weight_decay);
        self
    }

    /// Sets the learning-rate scale of the matched parameters.
    pub fn lr_scale(mut self, lr_scale: f64) -> Self {
        self.lr_scale = Some(lr_scale);
        self
    }

    /// Whether the pattern matches the whole of `name`.
    pub fn matches(&self, name: &str) -> bool {
        glob_matches(&self.pattern, name)
    }

    fn validate(&self) -> Result<()> {
        if self.pattern.is_empty() {
            return Err(OptimError::InvalidConfig(
                "a parameter-group pattern is empty (use \"*\" to match every name)".into(),
            ));
        }
        let owner = format!("group {:?}", self.pattern);
        if let Some(wd) = self.weight_decay {
            check_non_negative(&owner, "weight_decay", wd)?;
        }
        if let Some(s) = self.lr_scale {
            check_non_negative(&owner, "lr_scale", s)?;
        }
        Ok(())
    }
}

/// The options one parameter is stepped with, after its group rule (if any) is applied.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct GroupOptions {
    /// Weight decay λ.
    pub weight_decay: f64,
    /// The parameter is stepped with `lr · lr_scale`.
    pub lr_scale: f64,
}

/// An ordered list of [`GroupRule`]s; the first matching rule wins (see the module docs).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct ParamGroups {
    pub rules: Vec<GroupRule>,
}

impl ParamGroups {
    /// Rules in priority order.
    pub fn new(rules: Vec<GroupRule>) -> Self {
        ParamGroups { rules }
    }

    /// No rules: every parameter uses the optimizer's options.
    pub fn none() -> Self {
        ParamGroups::default()
    }

    /// Weight decay 0 for every parameter matching one of `patterns`.
    pub fn no_decay<S: Into<String>>(patterns: impl IntoIterator<Item = S>) -> Self {
        ParamGroups::new(
            patterns.into_iter().map(|p| GroupRule::new(p).weight_decay(0.0)).collect(),
        )
    }

    /// Checks every rule (non-empty pattern; finite, non-negative overrides).
    pub fn validate(&self) -> Result<()> {
        self.rules.iter().try_for_each(GroupRule::validate)
    }

    /// The first rule matching `name`, if any.
    pub fn rule_for(&self, name: &str) -> Option<&GroupRule> {
        self.rules.iter().find(|r| r.matches(name))
    }

    /// The options of parameter `name` given the optimizer's default weight decay.
    pub fn options_for(&self, name: &str, default_weight_decay: f64) -> GroupOptions {
        let rule = self.rule_for(name);
        GroupOptions {
            weight_decay: rule.and_then(|r| r.weight_decay).unwrap_or(default_weight_decay),
            lr_scale: rule.and_then(|r| r.lr_scale).unwrap_or(1.0),
        }
    }

    /// The patterns of rules that match none of `names` (often a typo worth a warning; not an
    /// error, since e.g. a bias-free model legitimately matches no `*.bias`).
    pub fn unmatched_patterns<'a>(&'a self, names: &[&str]) -> Vec<&'a str> {
        self.rules
            .iter()
            .filter(|r| !names.iter().any(|n| r.matches(n)))
            .map(|r| r.pattern.as_str())
            .collect()
    }
}

/// Glob match of the whole `name`: `*` matches any run of characters (or none); every other
/// character matches itself. Iterative with one backtrack point, O(len(pattern)·len(name)).
pub fn glob_matches(pattern: &str, name: &str) -> bool {
    let p: Vec<char> = pattern.chars().collect();
    let n: Vec<char> = name.chars().collect();
    let (mut i, mut j) = (0, 0);
    // Position of the last `*` seen and the name position it is currently matched up to.
    let mut star: Option<(usize, usize)> = None;
    while j < n.len() {
        if i < p.len() && p[i] == '*' {
            star = Some((i, j));
            i += 1;
        } else if i < p.len() && p[i] == n[j] {
            i += 1;
            j += 1;
        } else if let Some((si, sj)) = star {
            // Let the last `*` swallow one more character and retry.
            i = si + 1;
            j = sj + 1;
            star = Some((si, sj + 1));
        } else {
            return false;
        }
    }
    p[i..].iter().all(|&c| c == '*')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn star_matches_any_run_including_dots_and_nothing() {
        assert!(glob_matches("*.bias", "layers.3.attn.q.bias"));
        assert!(glob_matches("*.bias", ".bias"));
        assert!(!glob_matches("*.bias", "layers.3.attn.q.weight"));
        assert!(!glob_matches("*.bias", "bias"));
        assert!(glob_matches("layers.*.ln1.*", "layers.11.ln1.weight"));
        assert!(glob_matches("*ln*.weight", "final_ln.weight"));
        assert!(!glob_matches("*ln*.weight", "final_ln.bias"));
        assert!(glob_matches("*", ""));
        assert!(glob_matches("**a*", "banana"));
        assert!(!glob_matches("a*b*c", "abacab"));
    }

    #[test]
    fn pattern_without_star_matches_the_exact_name_only() {
        assert!(glob_matches("embed.weight", "embed.weight"));
        assert!(!glob_matches("embed.weight", "embed.weight2"));
        assert!(!glob_matches("embed.weight", "pos_embed.weight"));
    }

    #[test]
    fn first_matching_rule_wins() {
        let groups = ParamGroups::new(vec![
            GroupRule::new("layers.0.*").lr_scale(0.5),
            GroupRule::new("*.bias").weight_decay(0.0),
        ]);
        // layers.0.q.bias matches both: the first rule wins, so its weight decay is the default.
        let o = groups.options_for("layers.0.q.bias", 0.1);
        assert_eq!(o, GroupOptions { weight_decay: 0.1, lr_scale: 0.5 });
        let o = groups.options_for("layers.1.q.bias", 0.1);
        assert_eq!(o, GroupOptions { weight_decay: 0.0, lr_scale: 1.0 });
        let o = groups.options_for("layers.1.q.weight", 0.1);
        assert_eq!(o, GroupOptions { weight_decay: 0.1, lr_scale: 1.0 });
    }

    #[test]
    fn bad_rules_are_errors() {
        assert!(ParamGroups::new(vec![GroupRule::new("")]).validate().is_err());
        let negative = ParamGroups::new(vec![GroupRule::new("*").weight_decay(-1.0)]);
        assert!(matches!(
            negative.validate(),
            Err(OptimError::InvalidHyperParameter { name: "weight_decay", .. })
        ));
        let nan = ParamGroups::new(vec![GroupRule::new("*").lr_scale(f64::NAN)]);
        assert!(nan.validate().is_err());
    }

    #[test]
    fn unmatched_patterns_are_reported() {
        let groups = ParamGroups::no_decay(["*.bias", "*.gain"]);
        assert_eq!(groups.unmatched_patterns(&["a.weight", "a.bias"]), vec!["*.gain"]);
    }

    #[test]
    fn rules_read_from_json_and_reject_unknown_fields() {
        let g: ParamGroups =
            serde_json::from_str(r#"[{"pattern": "*.bias", "weight_decay": 0.0}]"#).unwrap();
        assert_eq!(g.rules[0], GroupRule::new("*.bias").weight_decay(0.0));
        let bad = serde_json::from_str::<ParamGroups>(r#"[{"pattern": "*", "wd": 0.0}]"#);
        assert!(bad.unwrap_err().to_string().contains("unknown field"));
    }
}
