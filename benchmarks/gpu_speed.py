"""
Tokens/s, ms per step and MFU of GPT-2 (124M) on one GPU, for each "make it fast" step of the history in turn, as
benchmarks/cpu_speed.py measures them on the CPU: each step's commit is checked out into a git worktree and run the
same way, in one sitting. Each step is B = 16 x T = 1024 tokens, the lecture's Part 2 setting (the lecture's A100
took 1000, 333, 300, 130, 96, 93 and 90 ms), on tiny Shakespeare. A last row runs the newest commit with its
default micro-batch, B = 64, on shards made from the same text (its loader needs a val split of at least one
batch). Everything a run writes goes to a temporary folder. MFU is against the GPU's dense bf16 peak
(plumbing.hardware.PEAK_TFLOPS), float32 rows too.

    python benchmarks/gpu_speed.py            # about 10 minutes; prints a markdown table for BENCHMARKS.md
    python benchmarks/gpu_speed.py --quick    # one run of 8 steps per row: the table in a few minutes

(--device cpu, not shown in --help, runs every row with a tiny model on the CPU, uncompiled: it checks the rows'
logic, as the tests do, not any speed.)
"""
import argparse
import os
import statistics
import subprocess
import sys
import tempfile

import numpy as np
import tiktoken
import torch
from cpu_speed import BASELINE, ROOT, STEPS, commit_of, git, tokens_per_second

NEWEST = ("newest commit, default settings", None, [])


def write_shards(text_path, out_dir, val_tokens):
    """Shards as fineweb.py writes them, of the text's GPT-2 tokens: the first val_tokens are the val split."""
    sys.path.insert(0, ROOT)
    import fineweb
    with open(text_path, encoding="utf-8") as f:
        tokens = np.array(tiktoken.get_encoding("gpt2").encode_ordinary(f.read()), dtype=np.uint16)
    os.makedirs(out_dir)
    fineweb.write_shard(fineweb.shard_path(out_dir, 0), tokens[:val_tokens])
    fineweb.write_shard(fineweb.shard_path(out_dir, 1), tokens[val_tokens:])


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=2, help="runs of each row; the table shows their median")
    parser.add_argument("--steps", type=int, default=20, help="training steps per run")
    parser.add_argument("--quick", action="store_true", help="one run of 8 steps per row")
    parser.add_argument("--data", default=os.path.join(ROOT, "input.txt"), help="training text")
    parser.add_argument("--device", default="cuda", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.quick:
        args.runs, args.steps = 1, 8
    if args.device == "cuda" and not torch.cuda.is_available():
        raise SystemExit("benchmarks/gpu_speed.py measures a CUDA GPU, and torch sees none on this machine; run it "
                         "where there is one, or run benchmarks/cpu_speed.py to measure this CPU")
    sys.path.insert(0, ROOT)
    from plumbing import files, hardware
    from train_gpt2 import GPT, GPTConfig
    if args.device == "cuda":
        name, peak = torch.cuda.get_device_name(), hardware.peak_flops("cuda")
        shape, T, lecture_B, newest_B = dict(n_layer=12, n_head=12, n_embd=768), 1024, 16, 64
    else:  # the rows' logic only: a tiny model, uncompiled (the compile rows would spend minutes compiling)
        name, peak = "CPU (a logic check, not a measurement)", None
        shape, T, lecture_B, newest_B = dict(n_layer=2, n_head=2, n_embd=64), 64, 4, 8
    model = [f"--{k}={v}" for k, v in shape.items()] + ["--seq_len", str(T)]
    data = os.path.abspath(args.data)
    if os.path.basename(data) == "input.txt":
        files.fetch_tiny_shakespeare(data)

    steps = STEPS + [BASELINE]
    if subprocess.run(["git", "rev-parse", "--verify", "-q", "HEAD"], cwd=ROOT, capture_output=True).returncode:
        print("no git history here to check the steps' commits out of: only the newest commit's row", file=sys.stderr)
        steps = []
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        shards = os.path.join(tmp, "shards")
        write_shards(data, shards, val_tokens=newest_B * T + 1)  # one batch of the newest row, and its next token
        for i, (label, subject, extra) in enumerate(steps + [NEWEST]):
            B = newest_B if subject is None else lecture_B
            workdir, row_data = ROOT, shards
            if subject is not None:  # the commit of that step, which reads a text file (shards came later)
                workdir, row_data = os.path.join(tmp, str(i)), data
                git("worktree", "add", "--detach", workdir, commit_of(subject))
            row_extra = [*extra, "--no-compile"] if args.device == "cpu" and "--compile" in open(
                os.path.join(workdir, "train_gpt2.py")).read() and "--no-compile" not in extra else list(extra)
            try:
                runs = [tokens_per_second(workdir, row_data, args.steps, [*model, "--batch_size", str(B)], row_extra,
                                          args.device, log_dir=os.path.join(tmp, "log", str(i)))
                        for _ in range(args.runs)]
            finally:
                if subject is not None:
                    git("worktree", "remove", "--force", workdir)
            rows.append((label, B, runs))
            print(f"{label}: {runs}", file=sys.stderr)

    flops_per_token = GPT(GPTConfig(vocab_size=50304, **shape)).flops_per_token(T)
    print(f"{name}, torch {torch.__version__}, {args.runs} run(s) of {args.steps} steps each, "
          f"{sum(p.numel() for p in GPT(GPTConfig(vocab_size=50304, **shape)).parameters()) / 1e6:.0f}M "
          f"parameters, T {T}\n")
    print("| step | B | tok/s (median) | ms per step | vs step before | MFU (bf16 peak) |")
    print("| --- | ---: | ---: | ---: | ---: | ---: |")
    prev = None
    for i, (label, B, runs) in enumerate(rows):
        tps = statistics.median(runs)
        ratio = f"{tps / prev:.2f}x" if prev and i < len(STEPS) else ""
        mfu = f"{tps * flops_per_token / peak:.0%}" if peak else "(peak unknown)"
        print(f"| {label} | {B} | {tps:,.0f} | {B * T / tps * 1000:.0f} | {ratio} | {mfu} |")
        prev = tps


if __name__ == "__main__":
    main()
