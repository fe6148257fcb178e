//! The scale trend of `grad-norms`' depth sweep (issue 22, "Scale"): at each width d the last
//! decoder layer's ‖∂L/∂W^{2,L}‖_F over the depths L (on the seed's first `scale.batches`
//! batches; at the main sweep's width, the main sweep on all its batches), and two per-seed
//! statistics over d:
//!
//! - the **depth exponent** p_d, the log-log slope of the norm against L at width d (Theorem 1:
//!   0 for Post-LN, −½ for Pre-LN, at any d); drawn in `scale.png`, claimed at the widest d;
//! - the **level**, the geometric mean of the norm over L at width d, and its log-log slope
//!   against d (Theorem 1 bounds Post-LN's norm by O(d·√(ln d)): over d = 64 … 512 that bound's
//!   exponent is 1 + ½·ln(ln 512 / ln 64) / ln 8 ≈ 1.10); drawn in `scale_level.png`, reported
//!   beside the claims (a bound is not a prediction of the level).

use saturn_layers::ResidualScheme;
use serde_json::json;

use super::{GradNormsConfig, Profile, SweepRow, depth_window, post_ln_window};
use crate::cells::Cell;
use crate::claim::{Claim, ClaimBuilder, Evidence, Rule, Threshold, short};
use crate::error::Result;
use crate::experiments::ExperimentCtx;
use crate::stats::{LEVEL, log_log_slope, t_interval};
use crate::tasks::scale::{ScaleTrend, scale_chart};
use crate::tasks::scheme_label::label;

/// One width d and, per seed, the last decoder layer's norm at each depth of the sweep.
type Width = (usize, Vec<Vec<f64>>);

/// A scale cell (scheme, L, Some(d)) with its norms.
pub(super) type ScaleCellRow = (Cell<(ResidualScheme, usize, Option<usize>)>, Profile);

/// Per arm: at each width, per seed, the last decoder layer's norm at each depth of the sweep
/// (NaN where a cell is missing).
pub(super) struct ScaleSweep {
    arms: Vec<(ResidualScheme, Vec<Width>)>,
    depths: Vec<f64>,
}

impl ScaleSweep {
    /// From the scale cells, and at the main width from the main sweep (on all its batches).
    pub(super) fn new(
        cfg: &GradNormsConfig,
        scaled: &[ScaleCellRow],
        sweep: &[SweepRow],
        seeds: &[u64],
    ) -> Self {
        let arms = cfg
            .schemes
            .iter()
            .map(|&scheme| {
                let widths = cfg
                    .scale
                    .widths
                    .iter()
                    .map(|&d| {
                        let per_seed = seeds
                            .iter()
                            .map(|&seed| {
                                cfg.depths
                                    .iter()
                                    .map(|&l| {
                                        if d == cfg.model.d_model {
                                            return sweep
                                                .iter()
                                                .find(|r| (r.0, r.1, r.2) == (scheme, l, seed))
                                                .map_or(f64::NAN, |r| r.3);
                                        }
                                        scaled
                                            .iter()
                                            .find(|(c, _)| {
                                                c.seed == seed && c.spec == (scheme, l, Some(d))
                                            })
                                            .map_or(f64::NAN, |(_, p)| p.decoder[l - 1])
                                    })
                                    .collect()
                            })
                            .collect();
                        (d, per_seed)
                    })
                    .collect();
                (scheme, widths)
            })
            .collect();
        ScaleSweep { arms, depths: cfg.depths.iter().map(|&l| l as f64).collect() }
    }

    fn arm(&self, scheme: ResidualScheme) -> Option<&[Width]> {
        self.arms.iter().find(|a| a.0 == scheme).map(|a| a.1.as_slice())
    }

    /// Per width, per seed: the log-log slope of the norm against L.
    fn exponent(&self, scheme: ResidualScheme) -> Option<ScaleTrend> {
        let points = self
            .arm(scheme)?
            .iter()
            .map(|(d, seeds)| (*d, seeds.iter().map(|g| log_log_slope(&self.depths, g)).collect()));
        Some(ScaleTrend::new(label(scheme), points))
    }

    /// Per width, per seed: the geometric mean of the norm over L.
    fn level(&self, scheme: ResidualScheme) -> Option<ScaleTrend> {
        let points = self.arm(scheme)?.iter().map(|(d, seeds)| {
            let gm = |g: &Vec<f64>| (g.iter().map(|x| x.ln()).sum::<f64>() / g.len() as f64).exp();
            (*d, seeds.iter().map(gm).collect())
        });
        Some(ScaleTrend::new(label(scheme), points))
    }

    /// `scale.csv`, `scale.png` (the depth exponent against d) and `scale_level.png` (the
    /// level against d).
    pub(super) fn write(&self, ctx: &ExperimentCtx, cfg: &GradNormsConfig) -> Result<()> {
        let mut table = Vec::new();
        for (scheme, widths) in &self.arms {
            for (d, seeds) in widths {
                for (k, g) in seeds.iter().enumerate() {
                    for (l, v) in cfg.depths.iter().zip(g) {
                        table.push(vec![
                            scheme.name().into(),
                            d.to_string(),
                            ctx.seeds[k].to_string(),
                            l.to_string(),
                            v.to_string(),
                        ]);
                    }
                }
            }
        }
        ctx.dir.write_csv(
            "scale.csv",
            &["scheme", "d_model", "seed", "layers", "decoder_w2_last_grad_norm"],
            &table,
        )?;
        let exponents: Vec<ScaleTrend> =
            cfg.schemes.iter().filter_map(|&s| self.exponent(s)).collect();
        let title = format!(
            "grad-norms at init: depth exponent of ‖∂L/∂W^{{2,L}}‖_F (L = {:?}) against the width \
             (theory: Post-LN 0, Pre-LN −0.5)",
            cfg.depths
        );
        scale_chart(&ctx.dir, "scale", &title, "log-log slope in L", &exponents)?;
        let levels: Vec<ScaleTrend> = cfg.schemes.iter().filter_map(|&s| self.level(s)).collect();
        scale_chart(
            &ctx.dir,
            "scale_level",
            "grad-norms at init: the last layer's ‖∂L/∂W^{2,L}‖_F (geometric mean over L) against \
             the width",
            "‖∂L/∂W^{2,L}‖_F",
            &levels,
        )
    }

    /// The two depth-exponent claims at the widest width, for the arms present.
    pub(super) fn claims(&self, cfg: &GradNormsConfig, seeds: &[u64]) -> Vec<ClaimBuilder> {
        let mut out = Vec::new();
        let widths = &cfg.scale.widths;
        let (d_min, d_max) = (
            widths.iter().copied().min().unwrap_or(0) as f64,
            widths.iter().copied().max().unwrap_or(0) as f64,
        );
        // the exponent of Theorem 1's bound d·√(ln d) between the extreme widths
        let bound_exponent = if d_max > d_min && d_min > 1.0 {
            1.0 + 0.5 * (d_max.ln().ln() - d_min.ln().ln()) / (d_max / d_min).ln()
        } else {
            f64::NAN
        };
        for (scheme, id, window, theory) in [
            (
                ResidualScheme::PostLn,
                "post-ln-depth-independent-at-width",
                post_ln_window(),
                "independent of L",
            ),
            (ResidualScheme::PreLn, "pre-ln-falls-at-width", depth_window(), "∝ 1/√L"),
        ] {
            let (Some(exponent), Some(level)) = (self.exponent(scheme), self.level(scheme)) else {
                continue;
            };
            let Some(widest) = exponent.points.last().map(|p| p.d) else { continue };
            let width_slopes = level.log_log_slope_per_seed();
            let (lo, hi) = window;
            out.push(
                Claim::builder(id)
                    .statement(format!(
                        "At init and width d = {widest}, {}'s gradient of W^{{2,L}} is {theory}",
                        label(scheme)
                    ))
                    .source(
                        "Xiong et al. 2020, Theorem 1 (stated for any d; the paper's models have \
                         d = 512) and Fig. 3d (panel unverified); docs/REFERENCES.md#target-5; \
                         issue 22's scale trend",
                    )
                    .expected(format!(
                        "per seed, at the widest d = {widest}: the log-log slope of the last \
                         decoder layer's ‖∂L/∂W^{{2,L}}‖_F against L = {:?} in [{}, {}] ({} \
                         batches of {} pairs); the exponents at every d are in `scale.png`",
                        cfg.depths,
                        short(lo),
                        short(hi),
                        cfg.scale.batches,
                        cfg.batch_size
                    ))
                    .threshold(Threshold::from_source(super::WINDOW_DERIVATION))
                    .measured("widths", json!(widths))
                    .measured(
                        "depth_exponent_bands",
                        json!(
                            exponent
                                .bands()
                                .iter()
                                .map(|b| json!({"d": b.0, "mean": b.1, "low": b.2, "high": b.3}))
                                .collect::<Vec<_>>()
                        ),
                    )
                    .measured("depth_exponent_per_width", json!(exponent.points))
                    .measured("level_per_width", json!(level.points))
                    .measured("level_width_exponent_per_seed", json!(width_slopes))
                    .measured(
                        "level_width_exponent_interval",
                        json!(t_interval(&width_slopes, LEVEL)),
                    )
                    .measured("theorem_bound_width_exponent", json!(bound_exponent))
                    .evidence(Evidence::new(
                        format!(
                            "log-log slope of the last decoder layer's ‖∂L/∂W²‖_F against L at \
                             d = {widest} ({})",
                            label(scheme)
                        ),
                        seeds,
                        exponent.widest().to_vec(),
                        Rule::Within(lo, hi),
                    )),
            );
        }
        out
    }
}
