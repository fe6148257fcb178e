//! Sabotage tests of `heads`, `heads-minilm` and `counting`: each runs a tiny config laid over
//! the quick preset as it is and sabotaged, and checks that the sabotage moves the claims it
//! targets to `fails` or `inconclusive` while the clean run does not (`common::assert_sabotage`).
//! The runs are deterministic (fixed seeds), so the clean verdicts named below are stable.

use std::path::Path;

use crate::common::{assert_complete, assert_sabotage, run, verdict};
use saturn_lab::claim::Verdict;

const BROKEN: &[Verdict] = &[Verdict::Fails, Verdict::Inconclusive];
const GATED: &[Verdict] = &[Verdict::Inconclusive];

/// A 2-layer, d 32 char LM trained 300 steps: it ends ≈ 0.8 nats below the unigram entropy.
const TINY_HEADS: &str = "steps = 300\nprobe_windows = 8\n\
                          [model]\nd_model = 32\nn_heads = 2\nd_ff = 64\nn_layers = 2\nact = \"relu\"\n\
                          [data]\nbatch_size = 8\nseq_len = 32\neval_batches = 2\n";

/// `heads` with lr = 0: no LM learns, so every claim's learning gate is unmet.
///
/// At this size the clean run (seeds 0 and 1) gives `heads-are-hard-or-averaging` holds (every
/// head is hard), but `both-modes-present` fails (no averaging head in a 2-layer, 300-step LM)
/// and so does `reference-mask-makes-future-averaging-heads` (a zero-mask LM of each seed has
/// no future-averaging head): those two cannot hold at a tiny size, so the sabotage targets
/// their gate (sabotaged → inconclusive, clean → not inconclusive). c = 1 would flip none of
/// them here: at c = 1 every head attends its whole prefix, which keeps the hard-or-averaging
/// share at 1, and `both-modes-present` already fails clean.
#[test]
fn heads_claims_are_gated_on_the_lm_learning() {
    let clean = run("heads", "clean", &[0, 1], TINY_HEADS);
    assert_complete(&clean);
    let sabotaged = run("heads", "lr0", &[0], &format!("lr = 0.0\n{TINY_HEADS}"));
    assert_eq!(verdict(&clean, "heads-are-hard-or-averaging"), Verdict::Holds);
    assert_sabotage(
        "lr = 0",
        &clean,
        &sabotaged,
        &[
            "heads-are-hard-or-averaging",
            "both-modes-present",
            "reference-mask-makes-future-averaging-heads",
        ],
        GATED,
    );
}

/// A 4-layer, d 32 Post-LN char LM, 300 steps: under the reference's recipe (constant lr 1e-2,
/// no warmup, no clipping) it stays on the unigram plateau (final loss 3.33 against an entropy
/// of 3.31), under the stable recipe it learns (2.48).
const DEEP_TINY_POST: &str = "steps = 300\nprobe_windows = 4\nreference_mask_runs = false\n\
                              schemes = [\"post\"]\n\
                              [model]\nd_model = 32\nn_heads = 2\nd_ff = 64\nn_layers = 4\n\
                              act = \"relu\"\n\
                              [data]\nbatch_size = 8\nseq_len = 32\neval_batches = 2\n";

/// `reference-recipe-leaves-post-ln-untrained` with the reference recipe's lr cut from 1e-2 to
/// 1e-3: the Post-LN LM then learns under it too, and the claim fails. One seed (its point
/// value decides: with two, the plateau losses 0.02 and 0.10 nats above the entropy give a t
/// interval too wide to decide).
#[test]
fn the_reference_recipe_claim_fails_when_that_recipe_trains_post_ln() {
    let id = "reference-recipe-leaves-post-ln-untrained";
    let clean = run("heads", "ref-recipe", &[0], DEEP_TINY_POST);
    assert_eq!(verdict(&clean, id), Verdict::Holds);
    let gentle =
        run("heads", "ref-lr-1e-3", &[0], &format!("reference_lr = 1e-3\n{DEEP_TINY_POST}"));
    assert_sabotage("reference_lr = 1e-3", &clean, &gentle, &[id], BROKEN);
}

/// `heads-minilm` at c = 1 instead of 1000: not saturated, MiniLM's soft heads attend almost
/// every key, none is hard, and the share of hard heads falls from ≈ 1 to 0 on every chunk.
/// Skipped, saying so, when the data directory is missing.
#[test]
fn minilm_hard_heads_need_saturation() {
    let shared = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../../shared/data");
    let data = if shared.is_dir() {
        format!("data_dir = {:?}\n", shared.display().to_string())
    } else {
        String::new()
    };
    let config = format!(
        "sentences = 15\nchunks = 3\nbatch_size = 8\nexample_heads = 1\ncs = [1000.0]\n{data}"
    );
    let clean = run("heads-minilm", "clean", &[0], &config);
    let evaluated = clean
        .claims
        .iter()
        .all(|c| c.measured.get("evaluated").and_then(|v| v.as_bool()) != Some(false));
    if !evaluated {
        eprintln!("SKIP minilm_hard_heads_need_saturation: data directory missing");
        return;
    }
    assert_complete(&clean);
    let id = "most-heads-are-hard-under-saturation";
    assert_eq!(verdict(&clean, id), Verdict::Holds);
    let sabotaged = run("heads-minilm", "c1", &[0], &format!("c = 1.0\n{config}"));
    assert_sabotage("c = 1", &clean, &sabotaged, &[id], BROKEN);
}

/// A 2-layer, d 32 counter trained 300 steps on MAJORITY up to length 8: accuracy 1.0.
const TINY_COUNTING: &str = "tasks = [\"majority\"]\nmax_len = 8\nd_model = 32\nn_heads = 2\n\
                             d_ff = 64\ntest_samples = 500\nvalid_samples = 64\n\
                             [train]\nsteps = 300\neval_every = 100\nlog_every = 50\n\
                             checkpoint_every = 0\n";

/// `counting` with lr = 0: the counter stays at chance, so `learns-counting-tasks` fails and the
/// three claims about a trained counter (the NoPE control's among them) are inconclusive (their
/// learning gate is unmet).
///
/// At this size the clean counter learns (accuracy 1.0: `learns-counting-tasks` holds), but it
/// has no averaging head, so `an-averaging-head` fails clean; the sabotage targets the gates.
/// One seed: with two, the saturated accuracies can straddle 0.90 in the t interval and the
/// clean verdict would be inconclusive.
#[test]
fn counting_claims_need_a_counter_that_learned() {
    let clean = run("counting", "clean", &[0], TINY_COUNTING);
    assert_complete(&clean);
    let lr0 = format!("{TINY_COUNTING}[train.schedule]\npeak_lr = 0.0\n");
    let sabotaged = run("counting", "lr0", &[0], &lr0);
    assert_eq!(verdict(&clean, "learns-counting-tasks"), Verdict::Holds);
    assert_sabotage("lr = 0", &clean, &sabotaged, &["learns-counting-tasks"], BROKEN);
    assert_sabotage(
        "lr = 0",
        &clean,
        &sabotaged,
        &[
            "an-averaging-head",
            "saturated-model-still-counts",
            "nope-control-has-an-averaging-head",
        ],
        GATED,
    );
}
