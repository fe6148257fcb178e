//! The falsifiability hook of the Liu et al. experiments (issue 20's sabotage tests): an arm
//! measured under another arm's label.

use saturn_layers::ResidualScheme;
use serde::{Deserialize, Serialize};

/// The arm labelled `arm` is built with the residual scheme `built_as` — e.g. Pre-LN measured
/// under the Post-LN label — while every figure, table and claim still calls it `arm`. No
/// preset sets one; a run that does is a sabotage, and the claims about the relabelled arms must
/// then not hold.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Relabel {
    pub arm: ResidualScheme,
    pub built_as: ResidualScheme,
}

impl Relabel {
    /// The scheme the arm labelled `arm` is built with under `relabels` (itself if none).
    pub fn scheme(relabels: &[Relabel], arm: ResidualScheme) -> ResidualScheme {
        relabels.iter().find(|r| r.arm == arm).map_or(arm, |r| r.built_as)
    }
}
