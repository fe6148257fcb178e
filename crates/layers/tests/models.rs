//! Properties of the models: gradients, masks, equivariance, Admin ≡ Post-LN at ω = 1,
//! traces, padding invariance.

use saturn_layers::{Activation, PositionKind};
use saturn_layers::{
    AttentionMask, DecoderLm, EncoderLayer, ForwardCtx, InitScheme, Initializer, LayerSpec,
    LmConfig, Module, NormKind, ResidualScheme, Seq2Seq, Seq2SeqBatch, Seq2SeqConfig,
    admin_profile,
};
use saturn_tensor::ndarray::{Array2, array};
use saturn_tensor::{CheckOptions, gradcheck_leaves};

const SCHEMES: [ResidualScheme; 5] = [
    ResidualScheme::PostLn,
    ResidualScheme::PreLn,
    ResidualScheme::Admin,
    ResidualScheme::DeepNorm,
    ResidualScheme::BranchLn,
];

fn micro_lm(residual: ResidualScheme) -> LmConfig {
    LmConfig { residual, init: InitScheme::Normal { std: 0.5 }, ..LmConfig::new(6, 4, 2, 8, 2, 5) }
}

#[test]
fn every_residual_scheme_passes_gradcheck() {
    let inputs = array![[1, 2, 3], [4, 5, 0]];
    let targets = array![[2, 3, 4], [5, 0, 1]];
    for scheme in SCHEMES {
        let model = DecoderLm::<f64>::new(micro_lm(scheme), 3).unwrap();
        // every parameter, perturbed in place
        let loss = || model.loss(inputs.view(), targets.view(), &mut ForwardCtx::eval());
        gradcheck_leaves(loss, &model.parameters(), CheckOptions::FIRST_ORDER)
            .unwrap_or_else(|e| panic!("{scheme:?}: {e}"));
    }
}

#[test]
fn causal_outputs_ignore_later_tokens() {
    for scheme in SCHEMES {
        let model = DecoderLm::<f64>::new(micro_lm(scheme), 1).unwrap();
        let a =
            model.forward(array![[1, 2, 3, 4]].view(), &mut ForwardCtx::eval()).unwrap().to_array();
        let b =
            model.forward(array![[1, 2, 5, 0]].view(), &mut ForwardCtx::eval()).unwrap().to_array();
        for t in 0..2 {
            for v in 0..6 {
                assert_eq!(a[[0, t, v]], b[[0, t, v]], "{scheme:?}");
            }
        }
        assert_ne!(a[[0, 2, 0]], b[[0, 2, 0]]);
    }
}

#[test]
fn unmasked_attention_without_positions_is_permutation_equivariant() {
    let spec = LayerSpec {
        d_model: 4,
        n_heads: 2,
        d_ff: 8,
        act: Activation::Gelu,
        norm: NormKind::LayerNorm,
        ln_eps: 1e-5,
        bias: true,
        scale_scores: true,
        scheme: ResidualScheme::PostLn,
        alpha: 1.0,
        beta: 1.0,
        qkv_gain: 1.0,
        omega_init: 1.0,
        dropout: 0.0,
    };
    let mut init = Initializer::new(InitScheme::Normal { std: 0.5 }, 9);
    let layer: EncoderLayer<f64> = EncoderLayer::new("l".into(), &spec, &mut init).unwrap();
    let x = init.normal::<f64>(&[1, 4, 4], 1.0);
    let perm = [2usize, 0, 3, 1];
    let xp = x.index_select(1, &perm).unwrap();
    let y = layer.forward(&x, AttentionMask::default(), &mut ForwardCtx::eval()).unwrap();
    let yp = layer.forward(&xp, AttentionMask::default(), &mut ForwardCtx::eval()).unwrap();
    let expected = y.index_select(1, &perm).unwrap().to_vec();
    assert!(yp.to_vec().iter().zip(&expected).all(|(a, b)| (a - b).abs() < 1e-12));
}

#[test]
fn admin_with_unit_omega_is_post_ln_exactly() {
    let ids = array![[1, 2, 3, 4], [0, 5, 2, 1]];
    let post = DecoderLm::<f64>::new(micro_lm(ResidualScheme::PostLn), 4).unwrap();
    let admin = DecoderLm::<f64>::new(micro_lm(ResidualScheme::Admin), 4).unwrap();
    let a = post.forward(ids.view(), &mut ForwardCtx::eval()).unwrap().to_vec();
    let b = admin.forward(ids.view(), &mut ForwardCtx::eval()).unwrap().to_vec();
    assert_eq!(a, b);
    assert_eq!(admin.num_parameters(), post.num_parameters() + 2 * 2 * 4);
}

#[test]
fn admin_profiling_follows_the_running_variance() {
    let cfg = LmConfig {
        residual: ResidualScheme::Admin,
        init: InitScheme::XavierUniform,
        ..LmConfig::new(50, 16, 2, 32, 4, 8)
    };
    let model = DecoderLm::<f64>::new(cfg, 0).unwrap();
    let ids = Array2::from_shape_fn((4, 8), |(b, t)| (b * 7 + t * 3) % 50);
    let mut ctx = ForwardCtx::eval();
    let omegas = admin_profile(&mut ctx, |ctx| model.forward(ids.view(), ctx)).unwrap();
    assert_eq!(omegas.len(), 8);
    assert_eq!(omegas[0], ("layers.0.attn".to_string(), 1.0));
    // ω² grows by about Var[f] per sublayer: strictly increasing after the first
    assert!(omegas.windows(2).skip(1).all(|w| w[1].1 > w[0].1), "{omegas:?}");
    // the parameters hold the profiled values
    let named = model.named_parameters();
    let w3 = named.iter().find(|(n, _)| n == "layers.1.omega2").unwrap();
    assert!(w3.1.to_vec().iter().all(|&v| v == omegas[3].1));
}

#[test]
fn tracing_does_not_change_the_result() {
    let model = DecoderLm::<f64>::new(micro_lm(ResidualScheme::PreLn), 2).unwrap();
    let ids = array![[1, 2, 3]];
    let plain = model.forward(ids.view(), &mut ForwardCtx::eval()).unwrap().to_vec();
    let mut ctx = ForwardCtx::eval().with_trace();
    let traced = model.forward(ids.view(), &mut ctx).unwrap().to_vec();
    assert_eq!(plain, traced);
    let trace = ctx.trace.unwrap();
    assert_eq!(trace.sublayers.len(), 4);
    assert_eq!(trace.attention.len(), 2);
    assert_eq!(trace.attention[0].probs.shape(), vec![1, 2, 3, 3]);
    assert_eq!(trace.sublayers[1].name, "layers.0.ffn");
}

#[test]
fn parameter_names_follow_torch_io() {
    let names: Vec<String> = DecoderLm::<f32>::new(micro_lm(ResidualScheme::Admin), 0)
        .unwrap()
        .named_parameters()
        .into_iter()
        .map(|(n, _)| n)
        .collect();
    for expected in [
        "embed.weight",
        "pos.weight",
        "layers.0.attn.q.weight",
        "layers.0.attn.o.bias",
        "layers.1.ln1.gamma",
        "layers.1.ffn.w2.weight",
        "layers.0.omega1",
        "layers.1.omega2",
        "head.weight",
    ] {
        assert!(names.contains(&expected.to_string()), "{expected} missing from {names:?}");
    }
    let pre: Vec<String> = DecoderLm::<f32>::new(micro_lm(ResidualScheme::PreLn), 0)
        .unwrap()
        .named_parameters()
        .into_iter()
        .map(|(n, _)| n)
        .collect();
    assert!(pre.contains(&"ln_f.gamma".to_string()));
    let nopos =
        LmConfig { positions: PositionKind::Sinusoidal, ..micro_lm(ResidualScheme::PostLn) };
    assert!(
        !DecoderLm::<f32>::new(nopos, 0)
            .unwrap()
            .named_parameters()
            .iter()
            .any(|(n, _)| n.starts_with("pos"))
    );
}

fn micro_seq2seq(residual: ResidualScheme) -> Seq2SeqConfig {
    serde_json::from_value(serde_json::json!({
        "src_vocab": 13, "tgt_vocab": 11, "d_model": 8, "n_heads": 2, "d_ff": 16,
        "n_enc_layers": 3, "n_dec_layers": 2, "max_src_len": 7, "max_tgt_len": 5,
        "residual": residual.name(), "init": {"kind": "normal", "std": 0.3}
    }))
    .unwrap()
}

#[test]
fn padded_positions_change_nothing_real() {
    for scheme in [
        ResidualScheme::PostLn,
        ResidualScheme::PreLn,
        ResidualScheme::Admin,
        ResidualScheme::DeepNorm,
    ] {
        let model = Seq2Seq::<f64>::new(micro_seq2seq(scheme), 5).unwrap();
        let src_mask = array![[true, true, true, false], [true, true, true, true]];
        let tgt_mask = array![[true, true, false], [true, true, true]];
        let tgt_out = array![[1, 2, 3], [4, 5, 6]];
        let loss = |src: Array2<usize>, tgt: Array2<usize>| {
            let batch = Seq2SeqBatch {
                src: src.view(),
                src_mask: src_mask.view(),
                tgt_in: tgt.view(),
                tgt_mask: tgt_mask.view(),
            };
            model.loss(&batch, tgt_out.view(), &mut ForwardCtx::eval()).unwrap().item().unwrap()
        };
        let a = loss(array![[1, 2, 3, 4], [5, 6, 7, 8]], array![[1, 2, 3], [4, 5, 6]]);
        let b = loss(array![[1, 2, 3, 9], [5, 6, 7, 8]], array![[1, 2, 10], [4, 5, 6]]);
        assert_eq!(a, b, "{scheme:?}");
        let c = loss(array![[1, 2, 12, 4], [5, 6, 7, 8]], array![[1, 2, 3], [4, 5, 6]]);
        assert_ne!(a, c);
    }
    assert!(Seq2Seq::<f64>::new(micro_seq2seq(ResidualScheme::BranchLn), 0).is_err());
}

#[test]
fn seq2seq_names_follow_torch_io_and_deepnorm_alphas_default() {
    let model = Seq2Seq::<f32>::new(micro_seq2seq(ResidualScheme::DeepNorm), 0).unwrap();
    let names: Vec<String> = model.named_parameters().into_iter().map(|(n, _)| n).collect();
    for expected in [
        "src_embed.weight",
        "tgt_pos.weight",
        "enc.layers.2.attn.k.bias",
        "dec.layers.1.cross_attn.v.weight",
        "dec.layers.0.ln3.beta",
        "head.weight",
    ] {
        assert!(names.contains(&expected.to_string()), "{expected}");
    }
    let ((ae, _), (ad, _)) = model.config.deepnorm();
    assert!((ae - 1.1132).abs() < 1e-4 && (ad - 1.5651).abs() < 1e-4);
    assert_eq!(model.dec[0].sub_self.alpha, ad);
}

#[test]
fn bad_configs_and_batches_are_errors() {
    assert!(DecoderLm::<f32>::new(LmConfig::new(5, 6, 4, 8, 1, 4), 0).is_err());
    assert!(serde_json::from_str::<LmConfig>(r#"{"vocab": 5, "d_model": 4, "n_heads": 2, "d_ff": 8, "n_layers": 1, "max_seq": 4, "colour": 1}"#).is_err());
    let model = DecoderLm::<f32>::new(micro_lm(ResidualScheme::PostLn), 0).unwrap();
    assert!(model.forward(array![[1, 2, 6]].view(), &mut ForwardCtx::eval()).is_err());
    assert!(model.forward(Array2::zeros((1, 6)).view(), &mut ForwardCtx::eval()).is_err());
    assert!(
        model.loss(array![[1, 2]].view(), array![[1]].view(), &mut ForwardCtx::eval()).is_err()
    );
}
