"""
Tokens/s, ms per step and MFU of GPT-2 (124M) on one GPU, for each "make it fast" step of the history in turn, as
benchmarks/cpu_speed.py measures them on the CPU: each step's commit is checked out into a git worktree and run the
same way, in one sitting. Each step is B = 16 x T = 1024 tokens, the lecture's Part 2 setting (the lecture's A100
took 1000, 333, 300, 130, 96, 93 and 90 ms), on tiny Shakespeare. A last row runs the newest commit with its
default micro-batch, B = 64. MFU is against the GPU's dense bf16 peak (plumbing.PEAK_BF16_FLOPS), float32 rows too.

    python benchmarks/gpu_speed.py          # about 10 minutes; prints a markdown table for BENCHMARKS.md
"""
import argparse
import os
import statistics
import sys
import tempfile

import torch

from cpu_speed import BASELINE, ROOT, STEPS, commit_of, git, tokens_per_second

NEWEST = ("newest commit, default settings", None, [])


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=2, help="runs of each row; the table shows their median")
    parser.add_argument("--steps", type=int, default=20, help="training steps per run")
    parser.add_argument("--data", default=os.path.join(ROOT, "input.txt"), help="training text")
    args = parser.parse_args()
    if not torch.cuda.is_available():
        raise SystemExit("benchmarks/gpu_speed.py measures a CUDA GPU, and torch sees none on this machine; run it "
                         "where there is one, or run benchmarks/cpu_speed.py to measure this CPU")
    sys.path.insert(0, ROOT)
    import plumbing
    from train_gpt2 import GPT, GPTConfig
    name = torch.cuda.get_device_name()
    peak = plumbing.peak_flops("cuda")
    data = os.path.abspath(args.data)
    if os.path.basename(data) == "input.txt":
        plumbing.fetch_tiny_shakespeare(data)
    model = ["--n_layer", "12", "--n_head", "12", "--n_embd", "768", "--seq_len", "1024"]

    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for i, (label, subject, extra) in enumerate(STEPS + [BASELINE, NEWEST]):
            B = 64 if subject is None else 16
            workdir = ROOT
            if subject is not None:
                workdir = os.path.join(tmp, str(i))
                git("worktree", "add", "--detach", workdir, commit_of(subject))
            try:
                runs = [tokens_per_second(workdir, data, args.steps, [*model, "--batch_size", str(B)], extra, "cuda")
                        for _ in range(args.runs)]
            finally:
                if subject is not None:
                    git("worktree", "remove", "--force", workdir)
            rows.append((label, B, runs))
            print(f"{label}: {runs}", file=sys.stderr)

    flops_per_token = GPT(GPTConfig(vocab_size=50304)).flops_per_token(1024)
    print(f"{name}, torch {torch.__version__}, {args.runs} runs of {args.steps} steps each, GPT-2 124M, T 1024\n")
    print("| step | B | tok/s (median) | ms per step | vs step before | MFU (bf16 peak) |")
    print("| --- | ---: | ---: | ---: | ---: | ---: |")
    prev = None
    for i, (label, B, runs) in enumerate(rows):
        tps = statistics.median(runs)
        ratio = f"{tps / prev:.2f}x" if prev and i < len(STEPS) else ""
        mfu = f"{tps * flops_per_token / peak:.0%}" if peak else "(peak unknown)"
        print(f"| {label} | {B} | {tps:,.0f} | {B * 1024 / tps * 1000:.0f} | {ratio} | {mfu} |")
        prev = tps


if __name__ == "__main__":
    main()
