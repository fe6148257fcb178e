"""Wall time per backward function of torch_ref's decoder-LM step, per step (PyTorch's side of
`saturn-bench --profile-backward`; docs/perf/HISTORY.md#round-7).

usage: python torch_backward_profile.py CONFIG VARIANT THREADS [STEPS] [--shared DIR]

Builds the model of ../shared/bench/torch_ref.py (or DIR/torch_ref.py), runs two untimed steps,
then STEPS steps (default 6) under torch.profiler, and prints the mean time per step of every
`autograd::engine::evaluate_function: <Node>` row: the wall time of each backward node as the
autograd engine's thread sees it, comparable to Saturn's `backward_op` lines. Run it with the
same environment as the bench (OMP_WAIT_POLICY=PASSIVE).
"""
import argparse
import collections
import os
import sys
import time

ap = argparse.ArgumentParser()
ap.add_argument("config")
ap.add_argument("variant")
ap.add_argument("threads", type=int)
ap.add_argument("steps", type=int, nargs="?", default=6)
here = os.path.dirname(os.path.abspath(__file__))
ap.add_argument("--shared", default=os.path.join(here, "..", "..", "..", "..", "shared", "bench"))
args = ap.parse_args()
sys.path.insert(0, args.shared)

import torch  # noqa: E402
import torch_ref as ref  # noqa: E402
from torch.profiler import ProfilerActivity, profile  # noqa: E402

torch.set_num_threads(args.threads)
torch.manual_seed(0)
cfg = dict(ref.CONFIGS[args.config])
model = ref.TransformerLM(cfg, args.variant, "gelu_tanh", "sdpa")
B, T, V = cfg["batch"], cfg["seq_len"], cfg["vocab"]
g = torch.Generator().manual_seed(1)
batches = [torch.randint(0, V, (B, T + 1), generator=g) for _ in range(4)]
if args.variant == "admin":
    model.admin_profile(batches[0][:, :-1])
opt = torch.optim.Adam(model.parameters(), lr=1e-3)


def step(tokens):
    opt.zero_grad(set_to_none=True)
    loss = ref.lm_loss(model(tokens[:, :-1]), tokens[:, 1:])
    start = time.perf_counter()
    loss.backward()
    backward = time.perf_counter() - start
    opt.step()
    return backward


for i in range(2):
    step(batches[i % 4])
backward_s = []
with profile(activities=[ProfilerActivity.CPU]) as prof:
    for i in range(args.steps):
        backward_s.append(step(batches[i % 4]))
rows = collections.defaultdict(lambda: [0.0, 0.0])
prefix = "autograd::engine::evaluate_function:"
for e in prof.key_averages():
    if e.key.startswith(prefix):
        name = e.key[len(prefix):].strip()
        rows[name][0] += e.cpu_time_total / 1e3 / args.steps
        rows[name][1] += e.count / args.steps
backward_s.sort()
print(f"backward (profiled) median {backward_s[len(backward_s) // 2] * 1e3:.1f} ms per step")
for name, (ms, calls) in sorted(rows.items(), key=lambda r: -r[1][0]):
    print(f"{name:48s} {ms:8.2f} ms {calls:6.1f} calls")
print(f"sum {sum(ms for ms, _ in rows.values()):.1f} ms")
