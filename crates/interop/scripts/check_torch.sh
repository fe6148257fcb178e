#!/usr/bin/env bash
# Checks Saturn's f64 loss, logits, hidden states and gradients against the PyTorch oracle
# (bench/torch_io.py) for every residual scheme of the LM and the encoder-decoder.
#
#   crates/interop/scripts/check_torch.sh [OUT_DIR]
#
# Needs a Python with torch, numpy and safetensors (bench README §1); set PY to choose it
# (default $HOME/.venv-torch/bin/python) and TORCH_IO for torch_io.py (default
# ../shared/bench/torch_io.py next to the workspace). Prints one line per run:
# <name> <compare's JSON line>. Exits non-zero if any comparison fails.
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/../../.." && pwd)
OUT=${1:-/tmp/saturn-interop-check}
PY=${PY:-$HOME/.venv-torch/bin/python}
TORCH_IO=${TORCH_IO:-$ROOT/../shared/bench/torch_io.py}
RTOL=${RTOL:-1e-10}
ATOL=${ATOL:-1e-12}

cd "$ROOT"
cargo build --quiet --release -p saturn-interop
BIN=$ROOT/target/release/saturn-interop

status=0
check() { # name, then saturn-interop arguments
    local name=$1
    shift
    local dir=$OUT/$name
    "$BIN" "$@" --out "$dir" > /dev/null
    "$PY" "$TORCH_IO" compute --weights "$dir/model.safetensors" --batch "$dir/batch.safetensors" \
        --out "$dir/ref.safetensors" > /dev/null
    local line
    if line=$("$PY" "$TORCH_IO" compare --ref "$dir/ref.safetensors" --test "$dir/grads.safetensors" \
        --rtol "$RTOL" --atol "$ATOL" | tail -1); then :; else status=1; fi
    echo "$name $line"
}

# the micro sizes of torch_io (d 8, H 2, F 16, V 11, T 5, B 3), 2 layers
for r in post pre admin branch deepnorm; do
    check "lm-$r" --model lm --residual "$r" --seed 0
done
# encoder-decoder, deliberately asymmetric: N = 3, M = 2, Vs = 13, Vt = 11, S = 7, T = 5
for r in post pre admin deepnorm; do
    check "seq2seq-$r" --model seq2seq --residual "$r" --seed 0 \
        --layers 2 --enc-layers 3 --vocab 11 --src-vocab 13 --seq-len 5 --src-len 7 --batch 3
done
# the other activations, and torch_io's tiny sizes (d 64, H 4, F 256, V 64, T 32, B 16)
check lm-admin-gelu --model lm --residual admin --act gelu --seed 1
check seq2seq-pre-relu --model seq2seq --residual pre --act relu --seed 1 --src-len 7
TINY=(--d-model 64 --heads 4 --d-ff 256 --vocab 64 --seq-len 32 --batch 16 --seed 2)
for r in post pre admin branch deepnorm; do
    check "lm-$r-tiny" --model lm --residual "$r" "${TINY[@]}"
done
for r in post pre admin deepnorm; do
    check "seq2seq-$r-tiny" --model seq2seq --residual "$r" "${TINY[@]}"
done
exit $status
