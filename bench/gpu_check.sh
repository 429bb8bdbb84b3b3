#!/usr/bin/env bash
# Issue 12 §6: on a machine with an NVIDIA GPU, run the correctness tests that matter and the
# benchmark, in float16 (paged runner) and NF4 (bitsandbytes, padded runner).
#
#   bench/gpu_check.sh              the GPU check: about 10-15 minutes once the venv exists
#   bench/gpu_check.sh --cpu-smoke  the same sequence on CPU, tiny sizes: proves the plumbing
#
# Each pass runs, with SESERAGI_DEVICE/DTYPE/QUANTIZATION set (tests/servers.py make_settings
# reads them): greedy "Paris", stream = unary, eight mixed streams (seeded sampling) equal to their
# solo runs, and in the NF4 pass the quantization tests (its layers really are 4-bit); then
# `python -m bench.run --engines seseragi` at 1/16/64 streams, 3 rounds, into bench/results/gpu/.
# Every step has a time limit; the script goes on after a failed step, prints a summary table
# and exits 1 if any step failed, 2 when there is no GPU (or the venv's torch cannot use it).
set -euo pipefail

usage() {
    echo "usage: bench/gpu_check.sh [--cpu-smoke]"
}

mode=gpu
case "${1:-}" in
    "") ;;
    --cpu-smoke) mode=cpu-smoke ;;
    -h | --help)
        usage
        exit 0
        ;;
    *)
        usage >&2
        exit 64
        ;;
esac

# Builtins only up to here, so this check works whatever PATH holds.
if [[ $mode == gpu ]]; then
    if ! command -v nvidia-smi >/dev/null 2>&1; then
        echo "gpu_check: no GPU here (nvidia-smi is not on PATH); run it on a machine with an" \
            "NVIDIA GPU, or use --cpu-smoke to check the script's plumbing on CPU" >&2
        exit 2
    fi
    if ! gpus=$(nvidia-smi -L 2>&1) || [[ $gpus != *GPU* ]]; then
        echo "gpu_check: no GPU here (nvidia-smi -L: ${gpus:-no output})" >&2
        exit 2
    fi
    echo "$gpus"
fi

cd "${BASH_SOURCE[0]%/*}/.."
python=.venv/bin/python
[[ -f .venv/.installed ]] || make venv
make model redis

if [[ $mode == gpu ]]; then
    if ! "$python" -c 'import sys, torch; sys.exit(not torch.cuda.is_available())'; then
        echo "gpu_check: .venv's torch cannot use the GPU (torch $("$python" -c \
            'import torch; print(torch.__version__, "cuda", torch.version.cuda)')); install a" \
            "CUDA build of torch into .venv" >&2
        exit 2
    fi
    # name:device:dtype:quantization
    passes=(fp16:cuda:float16:none nf4:cuda:bfloat16:nf4)
    bench_args=(--rounds 3 --concurrency "1,16,64")
    out=bench/results/gpu
    test_limit=900
    bench_limit=1200
else
    passes=(fp32:cpu:float32:none)
    bench_args=(--quick --rounds 1 --max-new-tokens 8 --concurrency "1,2")
    out=bench/results/gpu-smoke
    test_limit=600
    bench_limit=600
fi

correctness=(
    tests/integration/test_generate.py::test_unary_chat_answers_paris
    tests/integration/test_generate.py::test_stream_orders_events_and_joins_to_the_unary_text
    tests/integration/test_concurrency.py::test_eight_concurrent_streams_match_their_solo_runs
)

mkdir -p "$out"
failed=()
run_dirs=()
started=$SECONDS

step() { # name limit command...: run one step under a time limit, note a failure, go on
    local name=$1 limit=$2
    shift 2
    echo "=== $name (limit ${limit} s) ==="
    if ! timeout --kill-after=30 "$limit" "$@"; then
        failed+=("$name")
        echo "=== $name FAILED ===" >&2
    fi
}

for spec in "${passes[@]}"; do
    IFS=: read -r name device dtype quantization <<<"$spec"
    tests=("${correctness[@]}")
    if [[ $quantization == nf4 ]]; then
        tests+=(
            "tests/integration/test_quantization.py::test_quantized_model_answers_and_reports_itself[nf4]"
            "tests/integration/test_quantization.py::test_linear_layers_hold_quantized_weights[nf4]"
        )
    fi
    step "$name tests" "$test_limit" env SESERAGI_DEVICE="$device" SESERAGI_DTYPE="$dtype" \
        SESERAGI_QUANTIZATION="$quantization" "$python" -m pytest -q -p no:cacheprovider \
        "${tests[@]}"
    step "$name benchmark" "$bench_limit" "$python" -m bench.run --engines seseragi \
        --device "$device" --dtype "$dtype" --quantization "$quantization" "${bench_args[@]}" \
        --out "$out/$name" --logs "$out/$name/logs"
    run_dirs+=("$out/$name")
done

echo
echo "=== summary ($mode, $((SECONDS - started)) s) ==="
"$python" -m bench.gpu_summary "$out/summary.md" "${run_dirs[@]}"
echo "wrote $out/summary.md; per-run figures in $out/<run>/results.{json,md}"
if ((${#failed[@]})); then
    echo "failed steps: ${failed[*]}" >&2
    exit 1
fi
echo "all steps passed"
