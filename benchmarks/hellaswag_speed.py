"""
HellaSwag examples/s on this machine's CPU, measured side by side in one sitting:
  lecture   one example per forward pass, the lecture's way: 4 rows, context + ending i, right-padded to the longest,
            the output head and the cross-entropy at every position, the ending tokens' losses kept by a mask;
  packed    hellaswag.py's scoring (predictions(), which evaluate() sums): each example one row, the context once
            and the 4 endings after it under an attention mask, the head only at the scored positions; --batch_size
            examples per forward pass, and also 1, to separate packing from batching;
each in float32 and under bf16 autocast.

The model is a random-init GPT(GPTConfig()), the GPT-2 124M shape (vocab 50257): speed does not depend on the
weights. The data is synthetic, in the HellaSwag schema, cut from tiny Shakespeare (--text) at lengths like the real
val set's: a context of 40-80 tokens and 4 endings of 10-30 tokens, the label's ending being the text that follows
the context. (The real val set could not be downloaded where this was written.)

Each round takes a fresh slice of --per_round examples and runs every setting on it in turn, so that the settings see
the same machine load; the table shows the median over rounds. The "same picks" column compares each example's
(acc, acc_norm) picks with those of the lecture's way in float32. Last, the CPU's peak, measured: large float32 and
bf16 matmuls, as in cpu_speed.py.

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

import tiktoken
import torch
from torch.nn import functional as F

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)
from cpu_speed import matmul_flops  # noqa: E402  (benchmarks/cpu_speed.py, beside this file)

import hellaswag  # noqa: E402  (after the path is set: benchmarks/ is not the repository root)
from plumbing.datafiles import read_text  # noqa: E402
from plumbing.hardware import autocast  # noqa: E402
from train_gpt2 import GPT, GPTConfig  # noqa: E402

VAL_EXAMPLES = 10042  # HellaSwag's val split, to turn a rate into the time of a full evaluation


def synthetic_examples(tokens, n, seed=1337):
    """n examples in the HellaSwag schema, cut from the token list `tokens`: a 40-80 token context and four 10-30
    token endings each."""
    enc = tiktoken.get_encoding("gpt2")
    rng = random.Random(seed)

    def span(start, length):
        # Strip: the scoring adds the space between context and ending itself.
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


def lecture_picks(model, example, dtype):
    """(acc, acc_norm) picks for one example scored the lecture's way: 4 rows, logits at every position."""
    enc = tiktoken.get_encoding("gpt2")
    ctx = enc.encode_ordinary(example["ctx"])
    rows = [ctx + enc.encode_ordinary(" " + ending) for ending in example["endings"]]
    tokens = torch.zeros(4, max(map(len, rows)), dtype=torch.long)
    mask = torch.zeros_like(tokens)
    for i, row in enumerate(rows):
        tokens[i, :len(row)] = torch.tensor(row)
        mask[i, len(ctx):len(row)] = 1
    with torch.no_grad(), autocast("cpu", dtype):
        logits, _ = model(tokens)  # (4, L, V)
    losses = F.cross_entropy(logits[:, :-1].flatten(0, 1).float(), tokens[:, 1:].flatten(), reduction="none")
    shift_mask = mask[:, 1:]
    sums = (losses.view(4, -1) * shift_mask).sum(dim=1)
    return sums.argmin().item(), (sums / shift_mask.sum(dim=1)).argmin().item()


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--text", default=os.path.join(ROOT, "input.txt"),
                        help="text to cut examples from (input.txt: tiny Shakespeare, downloaded on first use)")
    parser.add_argument("--rounds", type=int, default=3, help="rounds; the table shows the median over them")
    parser.add_argument("--per_round", type=int, default=32,
                        help="examples every setting scores per round (a multiple of --batch_size keeps the "
                             "batches full)")
    parser.add_argument("--batch_size", type=int, default=hellaswag.BATCH_SIZE,
                        help="examples per forward pass of the batched setting")
    args = parser.parse_args()

    tokens = tiktoken.get_encoding("gpt2").encode_ordinary(read_text(args.text))
    examples = synthetic_examples(tokens, args.rounds * args.per_round + 1)
    torch.manual_seed(1337)
    gpt = GPT(GPTConfig()).eval()
    c = gpt.config
    body_params = sum(p.numel() for p in gpt.transformer.h.parameters())
    # What the CPU computes, padding included: forward matmul FLOPs of the blocks (2 per parameter per token, plus
    # q k^T and the weighted sum of v over the whole L x L square that a masked kernel computes) and of the head.
    count = {"tokens": 0, "head_rows": 0, "flops": 0}

    def count_input(module, inputs, output):
        B, L = inputs[0].shape
        count["tokens"] += B * L
        count["flops"] += 2 * body_params * B * L + 4 * c.n_layer * c.n_embd * B * L * L

    def count_head(module, inputs, output):
        rows = inputs[0].shape[:-1].numel()
        count["head_rows"] += rows
        count["flops"] += 2 * c.n_embd * c.vocab_size * rows

    gpt.transformer.wte.register_forward_hook(count_input)
    gpt.lm_head.register_forward_hook(count_head)

    def run(setting, round_examples, data_dir):
        """Score round_examples; return (examples/s, counts, each example's picks)."""
        scorer, batch_size, dtype = setting
        for k in count:
            count[k] = 0
        t0 = time.perf_counter()
        if scorer == "lecture":
            picks = [lecture_picks(gpt, example, dtype) for example in round_examples]
        else:
            picks = [(pred, pred_norm) for pred, pred_norm, _ in hellaswag.predictions(
                gpt, data_dir=data_dir, autocast_dtype=dtype, batch_size=batch_size)]
        seconds = time.perf_counter() - t0
        return len(picks) / seconds, dict(count), picks, seconds

    dtypes = {"float32": None, "bf16": torch.bfloat16}
    name = {dtype: key for key, dtype in dtypes.items()}
    settings = [(scorer, batch_size, dtype) for dtype in dtypes.values()
                for scorer, batch_size in (("lecture", 1), ("packed", 1), ("packed", args.batch_size))]
    rates, tflops = {s: [] for s in settings}, {s: [] for s in settings}
    totals = {s: {k: 0 for k in count} for s in settings}
    picks = {s: [] for s in settings}
    load_before = os.getloadavg()[0]
    with tempfile.TemporaryDirectory() as tmp:
        # Untimed warm-up: the first forward pass of each kind pays for allocating memory and setting up kernels.
        write_split(os.path.join(tmp, "warmup"), examples[-1:])
        for setting in settings:
            run(setting, examples[-1:], os.path.join(tmp, "warmup"))
        for r in range(args.rounds):
            round_examples = examples[r * args.per_round:(r + 1) * args.per_round]
            data_dir = os.path.join(tmp, f"round{r}")
            write_split(data_dir, round_examples)
            for setting in settings:
                rate, counts, round_picks, seconds = run(setting, round_examples, data_dir)
                rates[setting].append(rate)
                tflops[setting].append(counts["flops"] / seconds / 1e12)
                for k in counts:
                    totals[setting][k] += counts[k]
                picks[setting] += round_picks
                print(f"round {r}: {setting[0]}, batch_size {setting[1]}, {name[setting[2]]}: {rate:.3f} "
                      "examples/s", file=sys.stderr, flush=True)
    load_after = os.getloadavg()[0]
    peak = {name: max(matmul_flops(dtype) for _ in range(2)) / 1e12
            for name, dtype in (("float32", torch.float32), ("bf16", torch.bfloat16))}

    n = args.rounds * args.per_round
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, GPT-2 124M shape (random init); "
          f"{args.rounds} rounds of {n // args.rounds} examples, every setting on the same examples")
    # Other work on the machine slows the settings unevenly; the load average says whether the numbers can be trusted.
    print(f"load average (1 min) before: {load_before:.2f}, after: {load_after:.2f} on {os.cpu_count()} CPUs\n")
    print(f"| setting | examples/s (median) | vs lecture float32 | vs lecture, same dtype "
          f"| full val set ({VAL_EXAMPLES:,}) | tokens run per example | head positions per example "
          f"| forward GFLOP per example | TFLOP/s (median) | of matmul peak | same picks as lecture float32 |")
    print("| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |")
    rate = {s: statistics.median(rates[s]) for s in settings}
    for s in settings:
        scorer, batch_size, dtype = s
        base, same_dtype = ("lecture", 1, None), ("lecture", 1, dtype)
        achieved = statistics.median(tflops[s])
        same = sum(a == b for a, b in zip(picks[s], picks[base]))
        print(f"| {scorer}, batch_size {batch_size}, {name[dtype]} | {rate[s]:.3f} | {rate[s] / rate[base]:.2f}x "
              f"| {rate[s] / rate[same_dtype]:.2f}x | {VAL_EXAMPLES / rate[s] / 60:.0f} min "
              f"| {totals[s]['tokens'] / n:.0f} | {totals[s]['head_rows'] / n:.0f} "
              f"| {totals[s]['flops'] / n / 1e9:.1f} | {achieved:.3f} | {achieved / peak[name[dtype]]:.0%} "
              f"| {same}/{n} |")
    print(f"\nmeasured matmul peak (4096^3, best of 2): float32 {peak['float32']:.3f} TFLOP/s, "
          f"bf16 {peak['bf16']:.3f} TFLOP/s")


if __name__ == "__main__":
    main()
