"""
HellaSwag examples/s on this machine's CPU: hellaswag.py's scoring (predictions(), which evaluate() sums) one example
per forward pass (batch_size 1, how it scored before batching) against hellaswag.BATCH_SIZE examples per forward
pass, in float32 and under bf16 autocast, measured side by side in one sitting.

The model is a random-init GPT(GPTConfig()), the GPT-2 124M shape (vocab 50257): speed does not depend on the
weights. The data is synthetic, in the HellaSwag schema, cut from tiny Shakespeare (--text) at lengths like the real
val set's: a context of 40-80 tokens and 4 endings of 10-30 tokens, the label's ending being the text that follows
the context. (The real val set could not be downloaded where this was written.)

Each round takes a fresh slice of --per_round examples and runs every setting on it in turn, so that the settings see
the same machine load; the table shows the median over rounds. The "same picks" column compares each example's
(acc, acc_norm) picks with those of float32 one at a time. Last, the CPU's peak, measured: large float32
and bf16 matmuls, as in cpu_speed.py.

    python benchmarks/hellaswag_speed.py        # about 4 minutes on 2 idle cores; results as a markdown table
"""
import argparse
import json
import os
import random
import statistics
import sys
import tempfile
import time

import torch

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)
import hellaswag  # noqa: E402  (after the path is set: benchmarks/ is not the repository root)
from cpu_speed import matmul_flops  # noqa: E402  (benchmarks/cpu_speed.py, beside this file)
from train_gpt2 import GPT, GPTConfig, load_tokens  # noqa: E402

VAL_EXAMPLES = 10042  # HellaSwag's val split, to turn a rate into the time of a full evaluation


def synthetic_examples(tokens, n, seed=1337):
    """n examples in the HellaSwag schema, cut from the token list `tokens`: a 40-80 token context and four 10-30
    token endings each."""
    enc = hellaswag._tokenizer()
    rng = random.Random(seed)

    def span(start, length):
        # Strip: render_example adds the space between context and ending itself.
        return enc.decode(tokens[start:start + length]).strip()

    examples = []
    for i in range(n):
        start, ctx_len = rng.randrange(len(tokens) - 200), rng.randint(40, 80)
        label = rng.randrange(4)
        endings = [span(rng.randrange(len(tokens) - 200), rng.randint(10, 30)) for _ in range(4)]
        endings[label] = span(start + ctx_len, rng.randint(10, 30))  # the real continuation
        examples.append({"ind": i, "activity_label": "Shakespeare", "ctx": span(start, ctx_len), "endings": endings,
                         "label": label, "split": "val", "split_type": "indomain", "source_id": f"shakespeare~{i}"})
    return examples


def write_split(data_dir, examples):
    os.makedirs(data_dir)
    with open(os.path.join(data_dir, "hellaswag_val.jsonl"), "w", encoding="utf-8") as f:
        for example in examples:
            f.write(json.dumps(example) + "\n")


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--text", default=os.path.join(ROOT, "input.txt"),
                        help="text to cut examples from (input.txt: tiny Shakespeare, downloaded on first use)")
    parser.add_argument("--examples", type=int, default=200, help="synthetic examples written")
    parser.add_argument("--rounds", type=int, default=3, help="rounds; the table shows the median over them")
    parser.add_argument("--per_round", type=int, default=64,
                        help="examples the batched settings score per round (a multiple of --batch_size keeps the "
                             "batches full)")
    parser.add_argument("--one_every", type=int, default=4,
                        help="one at a time scores every this many-th example of each round")
    parser.add_argument("--batch_size", type=int, default=hellaswag.BATCH_SIZE,
                        help="examples per forward pass of the batched settings")
    args = parser.parse_args()
    if args.rounds * args.per_round > args.examples:
        parser.error(f"{args.rounds} rounds of {args.per_round} need {args.rounds * args.per_round} examples; "
                     "raise --examples")

    examples = synthetic_examples(load_tokens(args.text).tolist(), args.examples)  # input.txt: fetched if missing
    torch.manual_seed(1337)
    gpt = GPT(GPTConfig()).eval()
    tokens = flops = 0  # tokens and forward-pass FLOPs of the current run, padding included: what the CPU computes

    def model(x):
        nonlocal tokens, flops
        B, T = x.shape
        tokens += B * T
        flops += B * T * gpt.flops_per_token(T) / 3  # flops_per_token counts forward + backward, 3 forwards' worth
        return gpt(x)[0]

    def run(data_dir, batch_size, dtype):
        """Score every example in data_dir; return (examples/s, tokens run, forward TFLOP/s, each example's picks)."""
        nonlocal tokens, flops
        tokens = flops = 0
        t0 = time.perf_counter()
        picks = [(pred, pred_norm) for pred, pred_norm, _ in hellaswag.predictions(
            model, data_dir=data_dir, autocast_dtype=dtype, batch_size=batch_size)]
        seconds = time.perf_counter() - t0
        return len(picks) / seconds, tokens, flops / seconds / 1e12, picks

    dtypes = {"float32": None, "bf16": torch.bfloat16}
    settings = [(name, b) for name in dtypes for b in (1, args.batch_size)]
    rates, tflops = {s: [] for s in settings}, {s: [] for s in settings}
    tokens_run, scored = {s: 0 for s in settings}, {s: {} for s in settings}  # scored: example index -> picks
    load_before = os.getloadavg()[0]
    with tempfile.TemporaryDirectory() as tmp:
        # Untimed warm-up: the first forward pass in each dtype pays for allocating memory and setting up kernels.
        write_split(os.path.join(tmp, "warmup"), examples[-1:])
        for dtype in dtypes.values():
            run(os.path.join(tmp, "warmup"), 1, dtype)
        for r in range(args.rounds):
            # One example at a time is the slow part and its speed does not depend on the other examples, so it
            # scores every --one_every-th example of the round; the batched settings score them all, batched by
            # length as they would be in a full evaluation.
            indices = {1: range(r * args.per_round, (r + 1) * args.per_round, args.one_every),
                       args.batch_size: range(r * args.per_round, (r + 1) * args.per_round)}
            for batch_size, idx in indices.items():
                write_split(os.path.join(tmp, f"round{r}_{batch_size}"), [examples[i] for i in idx])
            for name, batch_size in settings:
                s = (name, batch_size)
                rate, n_tokens, achieved, round_picks = run(os.path.join(tmp, f"round{r}_{batch_size}"),
                                                            batch_size, dtypes[name])
                rates[s].append(rate)
                tflops[s].append(achieved)
                tokens_run[s] += n_tokens
                scored[s].update(zip(indices[batch_size], round_picks))
                print(f"round {r}: {name}, batch_size {batch_size}: {rate:.3f} examples/s", file=sys.stderr,
                      flush=True)
    peak = {name: max(matmul_flops(dtype) for _ in range(2)) / 1e12
            for name, dtype in (("float32", torch.float32), ("bf16", torch.bfloat16))}

    lengths = [hellaswag.render_example(e)[0].size(1) for e in examples[:args.rounds * args.per_round]]
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, GPT-2 124M shape (random init); "
          f"{args.rounds} rounds of {args.per_round} examples, one at a time on 1 in {args.one_every} of them; "
          f"tokens per row, each example padded to its longest ending: mean {statistics.mean(lengths):.0f}, "
          f"max {max(lengths)}")
    # Other work on the machine slows the settings unevenly; the load average says whether the numbers can be trusted.
    print(f"load average (1 min) before: {load_before:.2f}, after: {os.getloadavg()[0]:.2f} on {os.cpu_count()} CPUs\n")
    print(f"| setting | examples/s (median) | vs float32 one at a time | vs one at a time, same dtype "
          f"| full val set ({VAL_EXAMPLES:,} examples) | tokens run per example | forward TFLOP/s (median) "
          f"| of matmul peak | same picks as float32 one at a time |")
    print("| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |")
    rate = {s: statistics.median(rates[s]) for s in settings}
    base = ("float32", 1)
    for name, batch_size in settings:
        s = (name, batch_size)
        same = [scored[s][i] == picks_base for i, picks_base in scored[base].items()]
        achieved = statistics.median(tflops[s])
        print(f"| {name}, batch_size {batch_size} | {rate[s]:.3f} | {rate[s] / rate[base]:.2f}x "
              f"| {rate[s] / rate[name, 1]:.2f}x | {VAL_EXAMPLES / rate[s] / 3600:.1f} h "
              f"| {tokens_run[s] / len(scored[s]):.0f} | {achieved:.3f} | {achieved / peak[name]:.0%} "
              f"| {sum(same)}/{len(same)} |")
    print(f"\nmeasured matmul peak (4096^3, best of 2): float32 {peak['float32']:.3f} TFLOP/s, "
          f"bf16 {peak['bf16']:.3f} TFLOP/s")


if __name__ == "__main__":
    main()
