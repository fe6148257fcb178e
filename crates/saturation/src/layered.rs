//! [`Layered`]: the models whose representations h₀ … h_L (the input of each layer, then the
//! last layer's output) and final output (what the head reads: after the final LN under
//! Pre-LN) the saturation measurements read — implemented for [`DecoderLm`] and [`Bert`] — and
//! the [`TokenBatch`] they read them on.

use saturn_layers::{
    Bert, DecoderLm, EncoderLayer, ForwardCtx, MaskFill, Module, SublayerTrace, Trace,
};
use saturn_tensor::ndarray::Array2;
use saturn_tensor::{Float, Tensor};

use crate::error::{Result, invalid};

/// Token ids [B, T] and which of them are real (not padding), plus the queries that head
/// statistics read (all real tokens by default).
#[derive(Debug, Clone)]
pub struct TokenBatch {
    pub ids: Array2<usize>,
    /// [B, T], true for a real token; `None`: every token is real.
    pub real: Option<Array2<bool>>,
    /// [B, T], the queries head statistics are taken over; `None`: every real token.
    pub analysed: Option<Array2<bool>>,
}

impl TokenBatch {
    /// Every token real.
    pub fn new(ids: Array2<usize>) -> Self {
        TokenBatch { ids, real: None, analysed: None }
    }

    /// Is token (b, t) real?
    pub fn is_real(&self, b: usize, t: usize) -> bool {
        self.real.as_ref().is_none_or(|m| m[[b, t]])
    }
}

/// The representations of a forward pass.
#[derive(Debug, Clone)]
pub struct Representations<T: Float> {
    /// h₀ … h_L, [B, T, d] each: h_ℓ is the input of layer ℓ, h_L the last layer's output.
    pub layers: Vec<Tensor<T>>,
    /// What the output head reads, [B, T, d] (h_L, or LN(h_L) under Pre-LN).
    pub output: Tensor<T>,
}

/// A model built from [`EncoderLayer`]s whose representations can be read.
pub trait Layered<T: Float>: Module<T> {
    /// The representations for a batch under `ctx` (its mode and trace are honoured).
    fn representations(
        &self,
        batch: &TokenBatch,
        ctx: &mut ForwardCtx<T>,
    ) -> Result<Representations<T>>;
    /// The layer stack.
    fn layer_stack(&self) -> &[EncoderLayer<T>];
    /// Whether attention is causal.
    fn causal(&self) -> bool;
    /// What the mask puts on blocked scores (−∞ unless the model reproduces the norm-growth
    /// reference code's multiplicative mask, which hides nothing).
    fn mask_fill(&self) -> MaskFill {
        MaskFill::NegInfinity
    }
    /// Whether a query sees only the keys up to itself: causal, with a mask that hides.
    fn sees_only_the_past(&self) -> bool {
        self.causal() && self.mask_fill() == MaskFill::NegInfinity
    }
}

/// Runs `f` with a trace in `ctx` and returns the sublayer traces it added, leaving `ctx`'s own
/// trace (if any) as it would have been.
fn traced_sublayers<T: Float, R>(
    ctx: &mut ForwardCtx<T>,
    f: impl FnOnce(&mut ForwardCtx<T>) -> Result<R>,
) -> Result<(R, Vec<SublayerTrace<T>>)> {
    let had_trace = ctx.trace.is_some();
    if !had_trace {
        ctx.trace = Some(Trace::default());
    }
    let start = ctx.trace.as_ref().map_or(0, |t| t.sublayers.len());
    let out = f(ctx);
    let trace = ctx.trace.as_ref().map(|t| t.sublayers[start.min(t.sublayers.len())..].to_vec());
    if !had_trace {
        ctx.trace = None;
    }
    Ok((out?, trace.unwrap_or_default()))
}

impl<T: Float> Layered<T> for DecoderLm<T> {
    fn representations(
        &self,
        batch: &TokenBatch,
        ctx: &mut ForwardCtx<T>,
    ) -> Result<Representations<T>> {
        let (hidden, _) = self.forward_hidden(batch.ids.view(), ctx)?;
        let last =
            hidden.last().cloned().ok_or_else(|| invalid("representations", "no hidden state"))?;
        let output = match &self.ln_f {
            Some(ln) => ln.forward(&last)?,
            None => last,
        };
        Ok(Representations { layers: hidden, output })
    }

    fn layer_stack(&self) -> &[EncoderLayer<T>] {
        &self.layers
    }

    fn causal(&self) -> bool {
        true
    }

    fn mask_fill(&self) -> MaskFill {
        self.config.mask_fill
    }
}

impl<T: Float> Layered<T> for Bert<T> {
    fn representations(
        &self,
        batch: &TokenBatch,
        ctx: &mut ForwardCtx<T>,
    ) -> Result<Representations<T>> {
        let mask = batch.real.as_ref().map(|m| m.view());
        let (output, subs) =
            traced_sublayers(ctx, |ctx| Ok(self.forward(batch.ids.view(), mask, None, ctx)?))?;
        let n = self.layers.len();
        if subs.len() != 2 * n {
            return Err(invalid(
                "representations",
                format!("{} sublayer traces for {n} layers", subs.len()),
            ));
        }
        let mut layers = Vec::with_capacity(n + 1);
        layers.push(if n == 0 { output.clone() } else { subs[0].residual.clone() });
        layers.extend(subs.iter().skip(1).step_by(2).map(|s| s.output.clone()));
        Ok(Representations { layers, output })
    }

    fn layer_stack(&self) -> &[EncoderLayer<T>] {
        &self.layers
    }

    fn causal(&self) -> bool {
        false
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use saturn_layers::{BertConfig, LmConfig, ResidualScheme};

    use super::*;
    use crate::limit::saturated_limit_check;

    /// A small f64 decoder LM over 11 tokens.
    pub(crate) fn lm(scheme: ResidualScheme, seed: u64) -> DecoderLm<f64> {
        let cfg = LmConfig { residual: scheme, ..LmConfig::new(11, 16, 2, 32, 2, 8) };
        DecoderLm::new(cfg, seed).unwrap()
    }

    /// Three sequences of 8 tokens.
    pub(crate) fn batch(seed: u64) -> TokenBatch {
        TokenBatch::new(Array2::from_shape_fn((3, 8), |(b, t)| {
            ((b * 7 + t * 3) as u64 + seed) as usize % 11
        }))
    }

    #[test]
    fn bert_representations_are_its_layer_inputs_and_output() {
        let cfg: BertConfig = serde_json_config();
        let m = Bert::<f64>::new(cfg, 5).unwrap();
        let mut b = TokenBatch::new(Array2::from_shape_fn((2, 5), |(i, j)| (i + 2 * j) % 20));
        b.real = Some(Array2::from_shape_fn((2, 5), |(i, j)| i == 0 || j < 3));
        let r = m.representations(&b, &mut ForwardCtx::eval()).unwrap();
        assert_eq!(r.layers.len(), 3);
        let direct = m
            .forward(b.ids.view(), b.real.as_ref().map(|x| x.view()), None, &mut ForwardCtx::eval())
            .unwrap();
        assert_eq!(r.output.to_vec(), direct.to_vec());
        assert_eq!(r.layers[2].to_vec(), direct.to_vec());
        let mut traced = ForwardCtx::eval().with_trace();
        m.representations(&b, &mut traced).unwrap();
        assert_eq!(traced.trace.unwrap().attention.len(), 2, "the caller's trace is kept");
        let checks = saturated_limit_check(&m, &b, 1e4, 1e-6, 1e-3).unwrap();
        assert_eq!(checks.len(), 2);
        assert!(
            checks.iter().all(|c| c.checked + c.near_ties == 2 * (5 + 3) && c.max_abs_diff < 1e-3),
            "{checks:?}"
        );
    }

    fn serde_json_config() -> BertConfig {
        BertConfig {
            vocab_size: 20,
            hidden_size: 8,
            num_hidden_layers: 2,
            num_attention_heads: 2,
            intermediate_size: 16,
            max_position_embeddings: 10,
            type_vocab_size: 2,
            layer_norm_eps: 1e-12,
            hidden_act: "gelu".into(),
        }
    }
}
