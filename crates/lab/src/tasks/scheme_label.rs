//! The name figures and tables show for a residual scheme.

use saturn_layers::ResidualScheme;

/// The name a figure or table shows for a scheme.
pub fn label(scheme: ResidualScheme) -> &'static str {
    match scheme {
        ResidualScheme::PostLn => "Post-LN",
        ResidualScheme::PreLn => "Pre-LN",
        ResidualScheme::Admin => "Admin",
        ResidualScheme::DeepNorm => "DeepNorm",
        ResidualScheme::BranchLn => "branch-LN",
    }
}
