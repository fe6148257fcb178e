#!/usr/bin/env python3
"""Check `saturn-interop --model bert` outputs against Hugging Face transformers.

    saturn-interop --model bert --from DIR --text FILE --out OUT
    python check_bert.py --model-dir DIR --outputs OUT/outputs.safetensors [--dtype f32|f64]

For every line n of the text (stored in the outputs' metadata):
- the token ids: Saturn's minimal WordPiece against the checkpoint's own tokenizer
  (AutoTokenizer, i.e. tokenizer.json when present), exactly;
- BertModel (eager attention, output_attentions=True) run on Saturn's ids:
  last_hidden_state [T, d], attentions [heads, T, T] per layer, and the sentence embedding
  (mean over tokens, L2-normalized, as sentence-transformers' all-MiniLM-L6-v2).

A tensor passes when max|saturn - hf| <= atol + rtol * max|hf| (torch_io.py compare's rule).
Saturn computes in f64; --dtype picks the precision HF runs in (f32: rtol 1e-5, atol 1e-6 by
default; f64: rtol 1e-10, atol 1e-12). Prints the failures, then one JSON line; exits 1 on any
failure (ids or values).
"""
import argparse
import json
import sys

import torch
from safetensors import safe_open
from transformers import AutoTokenizer, BertModel

DEFAULT_TOL = {"f32": (1e-5, 1e-6), "f64": (1e-10, 1e-12)}


def main():
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model-dir", required=True)
    ap.add_argument("--outputs", required=True)
    ap.add_argument("--dtype", choices=["f32", "f64"], default="f32")
    ap.add_argument("--rtol", type=float)
    ap.add_argument("--atol", type=float)
    a = ap.parse_args()
    rtol, atol = DEFAULT_TOL[a.dtype]
    rtol = a.rtol if a.rtol is not None else rtol
    atol = a.atol if a.atol is not None else atol
    torch.set_num_threads(1)

    with safe_open(a.outputs, framework="pt") as f:
        texts = json.loads(f.metadata()["texts"])
        saturn = {k: f.get_tensor(k) for k in f.keys()}
    tokenizer = AutoTokenizer.from_pretrained(a.model_dir)
    model = BertModel.from_pretrained(a.model_dir, attn_implementation="eager").eval()
    if a.dtype == "f64":
        model = model.double()

    rows = []  # (name, max_abs_err, err_over_tol)
    id_mismatches = []
    for n, text in enumerate(texts):
        ids = saturn[f"input_ids.{n}"]
        hf_ids = tokenizer(text)["input_ids"]
        if ids.tolist() != hf_ids:
            id_mismatches.append({"line": n, "saturn": ids.tolist(), "hf": hf_ids})
        with torch.no_grad():
            out = model(input_ids=ids[None], attention_mask=torch.ones_like(ids)[None],
                        output_attentions=True)
        h = out.last_hidden_state[0]
        pooled = h.mean(0)
        ref = {f"last_hidden_state.{n}": h,
               f"sentence_embedding.{n}": pooled / pooled.norm().clamp_min(1e-12)}
        for layer, att in enumerate(out.attentions):
            ref[f"attentions.{n}.{layer}"] = att[0]
        for name, r in ref.items():
            t = saturn[name].to(torch.float64)
            r = r.to(torch.float64)
            if t.shape != r.shape:
                rows.append((name, float("inf"), float("inf")))
                continue
            err = (t - r).abs().max().item()
            rows.append((name, err, err / (atol + rtol * r.abs().max().item())))

    failed = [r for r in rows if not r[2] <= 1.0]
    for name, err, ratio in failed:
        print(f"{name}  FAIL max_abs_err={err:.3e} err/tol={ratio:.3f}")
    for m in id_mismatches:
        print(f"input_ids.{m['line']}  MISMATCH saturn={m['saturn']} hf={m['hf']}")

    def worst(prefix):
        sel = [r for r in rows if r[0].startswith(prefix)]
        w = max(sel, key=lambda r: r[2])
        return {"name": w[0], "max_abs_err": w[1], "err_over_tol": w[2]}

    ok = not failed and not id_mismatches
    print(json.dumps({"pass": ok, "dtype": a.dtype, "rtol": rtol, "atol": atol,
                      "lines": len(texts), "ids_equal": len(texts) - len(id_mismatches),
                      "compared": len(rows), "failed": len(failed),
                      "worst": {p: worst(p) for p in
                                ("last_hidden_state", "attentions", "sentence_embedding")}}))
    sys.exit(0 if ok else 1)


if __name__ == "__main__":
    main()
