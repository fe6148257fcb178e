"""PyTorch's exact Hessian-vector product of the bench LM's loss, next to one gradient.

The anchor of saturn-bench's `step/*/hvp` cases under `--compare-torch`: the same decoder LM as
shared/bench/torch_ref.py (imported from there: config, variant, GELU-tanh), f32, one gradient
(`torch.autograd.grad(loss, params)`) against one HVP by double backward
(`g = grad(loss, params, create_graph=True)`, then `grad(Σ⟨g, v⟩, params)`), timed alternately
(grad, hvp, grad, …) with v drawn U(−1, 1) once. Attention is the explicit softmax form
(`attn_impl="manual"`): PyTorch's fused CPU attention kernels have no double backward.

Prints one JSON line: grad_ms, hvp_ms (medians), hvp_over_grad, steps, torch version.

usage: torch_hvp.py --shared DIR --config tiny --variant post --threads 1 --steps 5 --warmup 1
"""

import argparse
import json
import statistics
import sys
import time


def main():
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--shared", required=True, help="the directory holding bench/torch_ref.py")
    ap.add_argument("--config", default="tiny")
    ap.add_argument("--variant", default="post")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--steps", type=int, default=5)
    ap.add_argument("--warmup", type=int, default=1)
    args = ap.parse_args()
    sys.path.insert(0, f"{args.shared}/bench")
    import torch
    from torch_ref import CONFIGS, TransformerLM, lm_loss

    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    cfg = dict(CONFIGS[args.config])
    model = TransformerLM(cfg, args.variant, "gelu_tanh", "manual")
    B, T, V = cfg["batch"], cfg["seq_len"], cfg["vocab"]
    g = torch.Generator().manual_seed(1)
    batches = [torch.randint(0, V, (B, T + 1), generator=g) for _ in range(4)]
    if args.variant == "admin":
        model.admin_profile(batches[0][:, :-1])
    params = [p for p in model.parameters() if p.requires_grad]
    v = [torch.empty_like(p).uniform_(-1.0, 1.0, generator=g) for p in params]

    def loss_of(tokens):
        return lm_loss(model(tokens[:, :-1]), tokens[:, 1:])

    grad_ms, hvp_ms = [], []
    for i in range(args.warmup + args.steps):
        tokens = batches[i % len(batches)]
        t0 = time.perf_counter()
        torch.autograd.grad(loss_of(tokens), params)
        t1 = time.perf_counter()
        grads = torch.autograd.grad(loss_of(tokens), params, create_graph=True)
        dot = sum((gi * vi).sum() for gi, vi in zip(grads, v))
        torch.autograd.grad(dot, params)
        t2 = time.perf_counter()
        if i >= args.warmup:
            grad_ms.append((t1 - t0) * 1e3)
            hvp_ms.append((t2 - t1) * 1e3)
    grad_med, hvp_med = statistics.median(grad_ms), statistics.median(hvp_ms)
    print(json.dumps({
        "config": args.config, "variant": args.variant, "threads": args.threads,
        "grad_ms": round(grad_med, 3), "hvp_ms": round(hvp_med, 3),
        "hvp_over_grad": round(hvp_med / grad_med, 3), "steps": args.steps,
        "torch": torch.__version__,
    }), flush=True)


if __name__ == "__main__":
    main()
