"""
Tokens/s of each "make it fast" step of the history, on this machine's CPU, measured side by side in one sitting.

Each step is the commit that introduced it, checked out into a temporary git worktree and run with the same command
(its default settings), so a row measures the code as it was at that step. Two more rows: the baseline, the same model
eager under bf16 autocast with plain AdamW (what the lecture's final script does on a CPU), and the newest commit's
default. Last, the CPU's peak, measured: large fp32 and bf16 matmuls.

    python benchmarks/cpu_speed.py            # about 15 minutes on 2 cores; results as a markdown table
"""
import argparse
import os
import re
import statistics
import subprocess
import sys
import tempfile
import time

import torch

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
# (label, the subject of the commit that made the step, extra flags); subject None is the newest commit
STEPS = [
    ("fp32, eager, masked attention, vocab 50257, AdamW", "Time each step", []),
    ("+ TF32 (CUDA only: no change expected on CPU)", "Use TF32", []),
    ("+ bf16 autocast", "Run the forward pass and loss under bf16", []),
    ("+ torch.compile", "torch.compile the model", []),
    ("+ flash attention (SDPA)", "Use flash attention", []),
    ("+ vocab 50304", "Pad the vocabulary to 50304", []),
    ("+ fused AdamW", "Use the fused AdamW", []),
]
# The lecture's final script on a CPU: bf16 autocast, flash attention, vocab 50304, plain AdamW, no compile. That is
# the vocab-50304 commit run eagerly.
BASELINE = ("baseline: eager under bf16 autocast, plain AdamW (the lecture's final script on a CPU)",
            "Pad the vocabulary to 50304", ["--no-compile"])
NEWEST = ("newest commit, default settings", None, [])


def git(*args):
    return subprocess.run(["git", *args], cwd=ROOT, check=True, capture_output=True, text=True).stdout


def commit_of(subject):
    for line in git("log", "--format=%H %s").splitlines():
        sha, _, s = line.partition(" ")
        if s.startswith(subject):
            return sha
    raise SystemExit(f"no commit whose subject starts with {subject!r}")


def tokens_per_second(workdir, data, steps, model, extra=(), device="cpu", log_dir=None):
    """Median tok/s over the steps after the first three (compilation and warm-up happen there). log_dir: where a
    commit that writes log.txt and checkpoints writes them (default: its own log/)."""
    cmd = [sys.executable, "train_gpt2.py", "--device", device, "--data", data, *model, "--max_steps", str(steps),
           "--num_samples", "1", "--max_new_tokens", "1", *extra]
    with open(os.path.join(workdir, "train_gpt2.py")) as f:
        source = f.read()
    # Flags that later steps added, whose defaults would change the run: pass them where they exist.
    if "--hellaswag" in source:  # no evaluation (and no download) to wait for
        cmd += ["--no-hellaswag"]
    if "--val_steps" in source:  # one batch per validation: it is not what is measured
        cmd += ["--val_steps", "1"]
    if log_dir and "--log_dir" in source:
        cmd += ["--log_dir", log_dir]
    if "--warmup_steps" in source:
        cmd += ["--warmup_steps", "1"]
    if "--total_batch_size" in source:
        B, T = (int(model[model.index(flag) + 1]) for flag in ("--batch_size", "--seq_len"))
        cmd += ["--total_batch_size", str(B * T)]  # one micro-step per optimizer step
    out = subprocess.run(cmd, cwd=workdir, check=True, capture_output=True, text=True).stdout
    rates = [float(r.replace(",", "")) for r in re.findall(r"tok/s ([\d,]+)", out)]
    assert len(rates) == steps, out
    return statistics.median(rates[3:])


def matmul_flops(dtype, n=4096, reps=10):
    a, b = torch.randn(n, n, dtype=dtype), torch.randn(n, n, dtype=dtype)
    a @ b
    t0 = time.perf_counter()
    for _ in range(reps):
        a @ b
    return 2 * n ** 3 * reps / (time.perf_counter() - t0)


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=3, help="runs of each row; the table shows their median")
    parser.add_argument("--steps", type=int, default=10, help="training steps per run")
    parser.add_argument("--data", default=os.path.join(ROOT, "input.txt"), help="training text")
    parser.add_argument("--n_embd", type=int, default=256, help="model width (4 layers, 4 heads, B = 8)")
    parser.add_argument("--seq_len", type=int, default=256, help="T")
    parser.add_argument("--baseline_only", action="store_true",
                        help="measure only the baseline and the newest commit, not every step")
    args = parser.parse_args()
    data = os.path.abspath(args.data)
    model = ["--n_layer", "4", "--n_head", "4", "--n_embd", str(args.n_embd), "--batch_size", "8",
             "--seq_len", str(args.seq_len)]
    steps = [] if args.baseline_only else STEPS

    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for i, (label, subject, extra) in enumerate(steps + [BASELINE, NEWEST]):
            workdir = ROOT
            if subject is not None:
                workdir = os.path.join(tmp, str(i))
                git("worktree", "add", "--detach", workdir, commit_of(subject))
            try:
                runs = [tokens_per_second(workdir, data, args.steps, model, extra) for _ in range(args.runs)]
            finally:
                if subject is not None:
                    git("worktree", "remove", "--force", workdir)
            rows.append((label, runs))
            print(f"{label}: {runs}", file=sys.stderr)

    sys.path.insert(0, ROOT)
    from train_gpt2 import GPT, GPTConfig
    config = GPTConfig(n_layer=4, n_head=4, n_embd=args.n_embd, vocab_size=50304)
    flops_per_token = GPT(config).flops_per_token(args.seq_len)
    peak = {dtype: max(matmul_flops(dtype) for _ in range(3)) for dtype in (torch.float32, torch.bfloat16)}

    print(f"torch {torch.__version__}, {os.cpu_count()} CPUs, {args.runs} runs of {args.steps} steps each, "
          f"4 layers, n_embd {args.n_embd}, B 8, T {args.seq_len}\n")
    print("| step | tok/s (median) | vs step before | training TFLOP/s | of bf16 matmul peak |")
    print("| --- | ---: | ---: | ---: | ---: |")
    prev = None
    for i, (label, runs) in enumerate(rows):
        tps = statistics.median(runs)
        ratio = f"{tps / prev:.2f}x" if prev and i < len(steps) else ""
        flops = tps * flops_per_token
        print(f"| {label} | {tps:,.0f} | {ratio} | {flops / 1e12:.3f} | {flops / peak[torch.bfloat16]:.0%} |")
        prev = tps
    lecture, default = (statistics.median(r) for _, r in rows[-2:])
    print(f"\nnewest commit's default vs the baseline: {default / lecture:.2f}x")
    print(f"measured matmul peak (4096^3): fp32 {peak[torch.float32] / 1e12:.3f} TFLOP/s, "
          f"bf16 {peak[torch.bfloat16] / 1e12:.3f} TFLOP/s")


if __name__ == "__main__":
    main()
