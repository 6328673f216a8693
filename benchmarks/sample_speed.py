"""
Tokens/s of generation with and without the KV cache, side by side: GPT-2 124M's shape (random weights: speed does
not depend on them), 4 samples of --new tokens from an 8-token prompt, alternating the two, median of --repeats.

    python benchmarks/sample_speed.py
"""
import argparse
import os
import statistics
import sys
import time

import torch

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from train_gpt2 import GPT, GPTConfig  # noqa: E402


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--new", type=int, default=64, help="tokens generated per sample")
    parser.add_argument("--repeats", type=int, default=3, help="timed runs of each; the median is reported")
    args = parser.parse_args()
    torch.manual_seed(0)
    model = GPT(GPTConfig()).eval()
    idx = torch.randint(0, 50257, (4, 8))
    times = {True: [], False: []}
    outputs = {}
    model.generate(idx, 4, top_k=1)  # warm-up
    for _ in range(args.repeats):
        for use_cache in (True, False):
            t0 = time.perf_counter()
            outputs[use_cache] = model.generate(idx, args.new, top_k=1, use_cache=use_cache)
            times[use_cache].append(time.perf_counter() - t0)
    assert torch.equal(outputs[True], outputs[False])  # greedy: the very same tokens
    n = idx.size(0) * args.new
    print(f"torch {torch.__version__}, {os.cpu_count()} CPUs, 124M shape, 4 x {args.new} new tokens, fp32\n")
    print("| generation | median time | tokens/s |")
    print("| --- | ---: | ---: |")
    for use_cache, label in ((False, "without KV cache"), (True, "with KV cache")):
        t = statistics.median(times[use_cache])
        print(f"| {label} | {t:.2f} s | {n / t:,.1f} |")
    print(f"\nspeed-up: {statistics.median(times[False]) / statistics.median(times[True]):.2f}x")


if __name__ == "__main__":
    main()
