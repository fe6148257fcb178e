//! Learning-rate schedules: an optional linear warmup followed by a decay, each able to say its
//! learning rate at any step.
//!
//! `step` counts the updates already made (0 for the first update), as fairseq's
//! `lr_scheduler.step_update(num_updates)` does: the first update runs at `lr_at(0)`. With peak
//! learning rate η, W warmup steps and initial rate η₀:
//!
//! ```text
//! warmup, s < W:      lr = η₀ + s·(η − η₀)/W                          (linear from η₀ to η)
//! then, s ≥ W, by decay:
//!   constant:         lr = η
//!   inverse_sqrt:     lr = η·√W / √s              (fairseq `inverse_sqrt`; W = 0 reads as W = 1)
//!   linear:           lr = (η − η_f)·(1 − (s − W)/(T − W)) + η_f,  η_f once s ≥ T
//!   cosine:           lr = η_f + (η − η_f)·½(1 + cos(π(s − W)/(T − W))),  η_f once s ≥ T
//! ```
//!
//! Settings used by the papers reproduced here (see docs/REFERENCES.md):
//! - Xiong et al. 2020 (§3.3), Post-LN on IWSLT'14: Adam β = (0.9, 0.98), η = 5e-4, W = 4000,
//!   inverse-sqrt decay;
//! - Liu et al. 2020 (Admin): RAdam, inverse_sqrt with η₀ = 1e-7, W = 6000 (IWSLT'14, η = 7e-4)
//!   or 8000 (WMT'14, η = 1e-3); the no-warmup study uses `linear` (Transformer-Clinic's
//!   `linear_schedule.py`, the formula above with η_f = min-lr and T = max-update) and W = 1;
//! - Merrill et al. 2021: constant η = 1e-2 for AdamW; their `sqrt_lr` (η until step W, then
//!   η·√(W/s)) is `inverse_sqrt` with η₀ = η, and their `linear_lr` (η until W, then linearly
//!   down to 0.1η at the last step) is `linear` with η₀ = η, η_f = 0.1η.
//!
//! In a TOML config:
//!
//! ```toml
//! [schedule]
//! peak_lr = 5e-4
//! warmup_steps = 4000
//! warmup_init_lr = 1e-7
//! decay = { kind = "inverse_sqrt" }
//! ```

use std::f64::consts::PI;

use serde::{Deserialize, Serialize};

use crate::error::{OptimError, Result, check_non_negative};

/// A learning-rate schedule: linear warmup over `warmup_steps` from `warmup_init_lr` to
/// `peak_lr`, then `decay` (see the module docs for the formulas).
///
/// Deserializing validates (so a config with a bad value fails to load, naming it); a schedule
/// built field by field should be checked with [`Schedule::validate`].
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
#[serde(try_from = "ScheduleFields")]
pub struct Schedule {
    /// η: the learning rate at the end of warmup.
    pub peak_lr: f64,
    /// W: number of warmup steps (0 = no warmup).
    pub warmup_steps: u64,
    /// η₀: the learning rate at step 0 of the warmup.
    pub warmup_init_lr: f64,
    /// What happens after warmup.
    pub decay: Decay,
}

/// The part of a [`Schedule`] after warmup.
#[derive(Clone, Copy, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case", deny_unknown_fields)]
pub enum Decay {
    /// Stay at the peak.
    #[default]
    Constant,
    /// η·√W/√s (fairseq `inverse_sqrt`).
    InverseSqrt,
    /// Linearly from η at step W to `final_lr` at step `total_steps`, then constant.
    Linear {
        total_steps: u64,
        #[serde(default)]
        final_lr: f64,
    },
    /// Half a cosine from η at step W to `final_lr` at step `total_steps`, then constant.
    Cosine {
        total_steps: u64,
        #[serde(default)]
        final_lr: f64,
    },
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ScheduleFields {
    peak_lr: f64,
    #[serde(default)]
    warmup_steps: u64,
    #[serde(default)]
    warmup_init_lr: f64,
    #[serde(default)]
    decay: Decay,
}

impl TryFrom<ScheduleFields> for Schedule {
    type Error = OptimError;
    fn try_from(f: ScheduleFields) -> Result<Self> {
        Schedule::new(f.peak_lr, f.warmup_steps, f.warmup_init_lr, f.decay)
    }
}

impl Schedule {
    /// Warmup from `warmup_init_lr` to `peak_lr` over `warmup_steps`, then `decay` (validated).
    pub fn new(peak_lr: f64, warmup_steps: u64, warmup_init_lr: f64, decay: Decay) -> Result<Self> {
        let s = Schedule { peak_lr, warmup_steps, warmup_init_lr, decay };
        s.validate()?;
        Ok(s)
    }

    /// The same learning rate at every step.
    pub fn constant(lr: f64) -> Result<Self> {
        Self::new(lr, 0, 0.0, Decay::Constant)
    }

    /// fairseq's `inverse_sqrt`: linear warmup, then η·√W/√s.
    pub fn inverse_sqrt(peak_lr: f64, warmup_steps: u64, warmup_init_lr: f64) -> Result<Self> {
        Self::new(peak_lr, warmup_steps, warmup_init_lr, Decay::InverseSqrt)
    }

    /// Checks that rates are finite and ≥ 0 and that a linear or cosine decay ends after the
    /// warmup.
    pub fn validate(&self) -> Result<()> {
        check_non_negative("schedule", "peak_lr", self.peak_lr)?;
        check_non_negative("schedule", "warmup_init_lr", self.warmup_init_lr)?;
        if let Decay::Linear { total_steps, final_lr } | Decay::Cosine { total_steps, final_lr } =
            self.decay
        {
            check_non_negative("schedule", "final_lr", final_lr)?;
            if total_steps <= self.warmup_steps {
                return Err(OptimError::InvalidConfig(format!(
                    "schedule: total_steps ({total_steps}) must exceed warmup_steps ({})",
                    self.warmup_steps
                )));
            }
        }
        Ok(())
    }

    /// The learning rate of the update made after `step` updates (0 for the first).
    pub fn lr_at(&self, step: u64) -> f64 {
        let s = step as f64;
        let w = self.warmup_steps as f64;
        let peak = self.peak_lr;
        if step < self.warmup_steps {
            // fairseq: lr_step = (warmup_end_lr − warmup_init_lr)/W; lr = init + s·lr_step.
            let lr_step = (peak - self.warmup_init_lr) / w;
            return self.warmup_init_lr + s * lr_step;
        }
        match self.decay {
            Decay::Constant => peak,
            Decay::InverseSqrt => {
                // fairseq: decay_factor = lr·W^0.5; lr = decay_factor·s^−0.5.
                let decay_factor = peak * w.max(1.0).powf(0.5);
                decay_factor * s.max(1.0).powf(-0.5)
            }
            Decay::Linear { total_steps, final_lr } => {
                if step >= total_steps {
                    return final_lr;
                }
                let progress = (s - w) / (total_steps as f64 - w);
                (peak - final_lr) * (1.0 - progress) + final_lr
            }
            Decay::Cosine { total_steps, final_lr } => {
                if step >= total_steps {
                    return final_lr;
                }
                let progress = (s - w) / (total_steps as f64 - w);
                final_lr + (peak - final_lr) * 0.5 * (1.0 + (PI * progress).cos())
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use approx::assert_relative_eq;

    fn close(a: f64, b: f64) {
        assert_relative_eq!(a, b, max_relative = 1e-12);
    }

    #[test]
    fn constant_schedule_is_constant() {
        let s = Schedule::constant(1e-2).unwrap();
        for step in [0, 1, 1000, u64::MAX] {
            assert_eq!(s.lr_at(step), 1e-2);
        }
    }

    #[test]
    fn fairseq_inverse_sqrt_at_named_steps() {
        // Xiong et al. 2020 IWSLT'14 setting: η = 5e-4, W = 4000, η₀ = 1e-7.
        let s = Schedule::inverse_sqrt(5e-4, 4000, 1e-7).unwrap();
        assert_eq!(s.lr_at(0), 1e-7);
        close(s.lr_at(2000), 1e-7 + 2000.0 * (5e-4 - 1e-7) / 4000.0);
        close(s.lr_at(4000), 5e-4); // end of warmup: the peak
        close(s.lr_at(16000), 2.5e-4); // 4× further: half the peak
        close(s.lr_at(64000), 1.25e-4);
        // Admin WMT'14: η = 1e-3, W = 8000.
        let s = Schedule::inverse_sqrt(1e-3, 8000, 1e-7).unwrap();
        close(s.lr_at(8000), 1e-3);
        close(s.lr_at(32000), 5e-4);
    }

    #[test]
    fn inverse_sqrt_without_warmup_starts_at_the_peak() {
        let s = Schedule::inverse_sqrt(1e-3, 0, 0.0).unwrap();
        assert_eq!(s.lr_at(0), 1e-3);
        assert_eq!(s.lr_at(1), 1e-3);
        close(s.lr_at(4), 5e-4);
    }

    #[test]
    fn warmup_then_constant_at_named_steps() {
        let s = Schedule::new(1.0, 10, 0.0, Decay::Constant).unwrap();
        assert_eq!(s.lr_at(0), 0.0);
        close(s.lr_at(5), 0.5);
        assert_eq!(s.lr_at(10), 1.0);
        assert_eq!(s.lr_at(1_000_000), 1.0);
    }

    #[test]
    fn linear_decay_at_named_steps() {
        // Transformer-Clinic's no-warmup study: W = 1, linear to min-lr at max-update.
        let decay = Decay::Linear { total_steps: 101, final_lr: 1e-9 };
        let s = Schedule::new(5e-4, 1, 1e-7, decay).unwrap();
        assert_eq!(s.lr_at(0), 1e-7);
        close(s.lr_at(1), 5e-4);
        close(s.lr_at(51), (5e-4 - 1e-9) * 0.5 + 1e-9);
        close(s.lr_at(101), 1e-9);
        close(s.lr_at(500), 1e-9);
    }

    #[test]
    fn cosine_decay_at_named_steps() {
        let decay = Decay::Cosine { total_steps: 110, final_lr: 0.1 };
        let s = Schedule::new(1.0, 10, 0.0, decay).unwrap();
        close(s.lr_at(5), 0.5);
        close(s.lr_at(10), 1.0);
        close(s.lr_at(60), 0.55); // halfway: the mean of peak and final
        close(s.lr_at(110), 0.1);
        close(s.lr_at(10_000), 0.1);
    }

    #[test]
    fn norm_growth_sqrt_lr_is_inverse_sqrt_with_a_flat_warmup() {
        // η until step W = 1000, then η·√(W/s).
        let s = Schedule::inverse_sqrt(1e-2, 1000, 1e-2).unwrap();
        assert_eq!(s.lr_at(0), 1e-2);
        assert_eq!(s.lr_at(999), 1e-2);
        close(s.lr_at(1000), 1e-2);
        close(s.lr_at(4000), 5e-3);
    }

    #[test]
    fn schedules_read_from_config_and_bad_values_are_errors() {
        let s: Schedule = serde_json::from_str(
            r#"{"peak_lr": 5e-4, "warmup_steps": 4000, "warmup_init_lr": 1e-7,
                "decay": {"kind": "inverse_sqrt"}}"#,
        )
        .unwrap();
        assert_eq!(s, Schedule::inverse_sqrt(5e-4, 4000, 1e-7).unwrap());
        let back: Schedule = serde_json::from_str(&serde_json::to_string(&s).unwrap()).unwrap();
        assert_eq!(back, s);
        let c: Schedule = serde_json::from_str(r#"{"peak_lr": 0.01}"#).unwrap();
        assert_eq!(c, Schedule::constant(0.01).unwrap());

        let err = |json: &str| serde_json::from_str::<Schedule>(json).unwrap_err().to_string();
        assert!(err(r#"{"peak_lr": 1e-3, "warmup": 10}"#).contains("unknown field"));
        assert!(err(r#"{"peak_lr": -1e-3}"#).contains("peak_lr"));
        let e = err(r#"{"peak_lr": 1e-3, "decay": {"kind": "exponential"}}"#);
        assert!(e.contains("unknown variant"), "{e}");
        let e = err(
            r#"{"peak_lr": 1, "warmup_steps": 10, "decay": {"kind": "cosine", "total_steps": 10}}"#,
        );
        assert!(e.contains("total_steps"), "{e}");
        let e = err(r#"{"peak_lr": 1, "decay": {"kind": "linear", "total_steps": 10, "end": 0}}"#);
        assert!(e.contains("unknown field"), "{e}");
    }
}
