#!/usr/bin/env bash
# The GPU check, for the day a GPU is lent: tests/test_gpu.py (the real CUDA paths, about 4 minutes: among them one
# compile for the probe and step 0, the val batches of a halved-then-resumed run, MFU in float32), then
# benchmarks/gpu_speed.py --quick (each "make it fast" step's tok/s and MFU, one run of 8 steps per row), then
# benchmarks/stop_time.py (how long a SIGTERM takes to stop gpt2 under torchrun), then benchmarks/modern_ladder.py
# --gpu (GPT-2 (124M) with modern_gpt.py's ideas and without: tok/s and val loss after the same 100 steps), at most
# 15 minutes in all. The
# outputs go to one file; it exits non-zero if any part fails or runs out of time.
#
# Run it from a checkout with tiny Shakespeare as input.txt and the GPT-2 tokenizer files in $TIKTOKEN_CACHE_DIR
# (or in tiktoken_cache/ beside input.txt): such a machine may have no network. It uses the machine's own torch and
# installs nothing. The speed rows check out the history's commits: bring .git along, or only the newest row runs.
#
#     benchmarks/gpu_check.sh [OUTPUT]        # default: gpu_check.txt
set -u
cd "$(dirname "$0")/.."
out="${1:-gpu_check.txt}"
python="${PYTHON:-python3}"
export TIKTOKEN_CACHE_DIR="${TIKTOKEN_CACHE_DIR:-$PWD/tiktoken_cache}" HF_HUB_OFFLINE=1 PYTHONUNBUFFERED=1
exec > >(tee "$out") 2>&1

echo "== $(date -u '+%Y-%m-%d %H:%M UTC'), $(nvidia-smi --query-gpu=name,memory.total,driver_version \
    --format=csv,noheader 2>/dev/null || echo 'nvidia-smi: none')"
"$python" -c "import torch; print('torch', torch.__version__, 'CUDA', torch.version.cuda, '|',
              torch.cuda.get_device_name() if torch.cuda.is_available() else 'torch sees no GPU')"
if ! "$python" -c "import sys, torch; sys.exit(not torch.cuda.is_available())"; then
    echo "this check is for a machine with a CUDA GPU, and torch sees none here: nothing was run"
    exit 1
fi
echo "== tests/test_gpu.py"
timeout 300 "$python" -m pytest -q -s -p no:cacheprovider tests/test_gpu.py
tests=$?
echo "== benchmarks/gpu_speed.py --quick"
timeout 240 "$python" benchmarks/gpu_speed.py --quick
speed=$?
echo "== benchmarks/stop_time.py: gpt2 (124M) under torchrun, SIGTERM halfway through step 4"
timeout 180 "$python" benchmarks/stop_time.py --torchrun 1 -- --data input.txt --no-hellaswag --seq_len 256 \
    --max_steps 50 --warmup_steps 5 --eval_interval 1000 --sample_interval 1000
stop=$?
echo "== benchmarks/modern_ladder.py --gpu: GPT-2 (124M), 100 steps of 16 x 1024 tokens, --ideas none and all"
timeout 240 "$python" benchmarks/modern_ladder.py --gpu --out "$(mktemp -d)/modern_gpu.json"
modern=$?
echo "== tests/test_gpu.py: exit status $tests; benchmarks/gpu_speed.py: $speed; stop_time.py: $stop;" \
     "modern_ladder.py: $modern (124: out of time)"
[ "$tests" -eq 0 ] && [ "$speed" -eq 0 ] && [ "$stop" -eq 0 ] && [ "$modern" -eq 0 ]
