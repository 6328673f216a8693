"""
What each idea of modern_gpt.py gives on a CPU: the README's table "After the lecture: the speedrun's ideas".

The ladder adds the ideas one at a time, in the speedrun's order, from the lecture's GPT-2 (--ideas none) to all of
them; "all but X" runs every idea but X (all but the last idea is the ladder's step before it, run once). Every run
is the README's first command (4 blocks of 128 channels on tiny Shakespeare, 1,024 tokens a step, max_lr 2e-3, a
warmup of a tenth of the steps, compiled, the CPU's default dtype) cut to --steps steps, once for each of --seeds
seeds, each in a process of its own. Per configuration it prints:
    val loss         the final val loss (8 batches of the val split), mean over seeds and (min-max)
    tokens to reach  the training tokens after which the val loss, averaged over seeds and interpolated between
                     evaluations (every --eval_interval steps), first reaches the lecture's mean final val loss
    time/step        the median time of a training step (steps 5 on), mean over seeds, over the lecture's
    tok/s            the training tokens a second of that median step
The runs go seed by seed through every configuration, so that a drift of the machine's speed spreads over all; the
results are kept in --out as they come, so that a run stopped part way goes on where it stopped.

    python benchmarks/modern_ladder.py                  # 24 configurations x 3 seeds: about 80 minutes on 2 cores
    python benchmarks/modern_ladder.py --quick          # 2 steps of a tiny model per run, to try the script
    python benchmarks/modern_ladder.py --gpu            # on a GPU: GPT-2 (124M) with and without the ideas
"""
import argparse
import json
import os
import re
import statistics
import subprocess
import sys
import tempfile

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)
import modern_gpt  # noqa: E402  (after the path: the ideas and their order)

MODEL = ["--n_layer", "4", "--n_head", "4", "--n_embd", "128", "--batch_size", "8", "--seq_len", "128",
         "--total_batch_size", "1024", "--max_lr", "2e-3"]  # the README's first command
GPU = ["--device", "cuda", "--batch_size", "16", "--seq_len", "1024", "--total_batch_size", "16384",  # GPT-2 (124M)
       "--val_steps", "2"]  # (tiny Shakespeare's val split holds 2 batches of 16 x 1024)
TINY = ["--device", "cpu", "--n_layer", "2", "--n_head", "2", "--n_embd", "32", "--batch_size", "2", "--seq_len", "32",
        "--total_batch_size", "64", "--max_lr", "3e-3", "--no-compile"]


def setup(args):
    """(the model's flags, tokens a step) of the CPU's configuration, --quick's or --gpu's."""
    if args.quick:
        return TINY, 64
    return (GPU, 16384) if getattr(args, "gpu", False) else (["--device", "cpu", *MODEL], 1024)


def configurations(gpu=False):
    """(label, --ideas) of the ladder and of every idea left out of all; with --gpu, the lecture's and all."""
    ideas = list(modern_gpt.parse_ideas("all"))  # without muon on a torch that lacks it
    if gpu:
        return [("none (the lecture)", "none"), ("all", ",".join(ideas))]
    ladder = [("none (the lecture)", "none")] + [(f"+ {name}", ",".join(ideas[:i + 1])) for i, name in
                                                 enumerate(ideas)]
    ladder[-2] = (f"{ladder[-2][0]} (= all but {ideas[-1]})", ladder[-2][1])  # the same runs: listed once
    ladder[-1] = (f"{ladder[-1][0]} (= all)", ladder[-1][1])
    return ladder + [(f"all but {name}", ",".join(i for i in ideas if i != name)) for name in ideas[:-1]]


def run(ideas, seed, args, data):
    """One training run: its val losses {step: loss} and the median time of its steps, in ms."""
    with tempfile.TemporaryDirectory() as log_dir:
        command = [sys.executable, os.path.join(ROOT, "modern_gpt.py"), "--data", data, "--log_dir", log_dir,
                   "--no-hellaswag",
                   "--max_steps", str(args.steps), "--warmup_steps", str(max(1, args.steps // 10)),
                   "--eval_interval", str(args.eval_interval), "--val_steps", "8", "--sample_interval",
                   str(args.steps), "--num_samples", "1", "--max_new_tokens", "8", "--seed", str(seed),
                   *setup(args)[0], "--ideas", ideas]
        out = subprocess.run(command, cwd=ROOT, capture_output=True, text=True)
        if out.returncode != 0:
            sys.exit(f"{' '.join(command)} failed:\n{out.stderr[-3000:]}")
        with open(os.path.join(log_dir, "log.txt")) as f:
            val = {int(step): float(value) for step, kind, value in (line.split() for line in f) if kind == "val"}
    step_line = r"^step +(\d+) \| loss .*? \| dt ([\d.]+)ms"
    times = {int(step): float(ms) for step, ms in re.findall(step_line, out.stdout, re.M)}
    warm = [ms for step, ms in times.items() if step >= 5] or list(times.values())  # (--quick: 2 steps)
    return {"val": val, "ms": statistics.median(warm)}


def tokens_to_reach(curve, target, tokens_per_step):
    """The tokens after which the curve ({step: val loss}) first reaches target, interpolated; None if never."""
    steps = sorted(curve)
    for a, b in zip(steps, steps[1:]):
        if curve[b] <= target:
            if curve[a] <= target:
                return a * tokens_per_step
            return (a + (curve[a] - target) / (curve[a] - curve[b]) * (b - a)) * tokens_per_step
    return None


def table(results, seeds, tokens_per_step, gpu=False):
    lecture = results["none"]
    target = statistics.mean(lecture[str(s)]["val"][max(lecture[str(s)]["val"])] for s in seeds)
    lecture_ms = statistics.mean(lecture[str(s)]["ms"] for s in seeds)
    lines = ["| ideas | val loss, mean (min-max) | tokens to reach the lecture's | time/step | tok/s |",
             "| --- | --- | --- | --- | --- |"]
    for label, ideas in configurations(gpu):
        runs = [results[ideas][str(s)] for s in seeds if str(s) in results.get(ideas, {})]
        if len(runs) < len(seeds):
            continue
        finals = [r["val"][max(r["val"])] for r in runs]
        curve = {int(step): statistics.mean(r["val"][step] for r in runs) for step in runs[0]["val"]}
        reach = tokens_to_reach(curve, target, tokens_per_step)
        ms = statistics.mean(r["ms"] for r in runs)
        lines.append(f"| {label} | {statistics.mean(finals):.3f} ({min(finals):.3f}-{max(finals):.3f}) | "
                     f"{'not reached' if reach is None else f'{reach:,.0f}'} | {ms / lecture_ms:.2f}x | "
                     f"{tokens_per_step / ms * 1e3:,.0f} |")
    return "\n".join(lines)


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--steps", type=int, default=100, help="training steps a run (default: %(default)s)")
    parser.add_argument("--eval_interval", type=int, default=10, help="steps between val evaluations")
    parser.add_argument("--seeds", type=int, default=3, help="seeds per configuration (default: %(default)s)")
    parser.add_argument("--data", default=os.path.join(ROOT, "input.txt"), help="tiny Shakespeare")
    parser.add_argument("--out", default="modern_ladder.json", help="where the results are kept as they come")
    parser.add_argument("--quick", action="store_true", help="a tiny model and 2 steps: to try the script")
    parser.add_argument("--gpu", action="store_true", help="GPT-2 (124M), B 16 x T 1024, compiled, on CUDA: the "
                        "lecture's and all the ideas, one seed, val 4 times (for benchmarks/gpu_check.sh)")
    args = parser.parse_args()
    if args.quick:
        args.steps, args.eval_interval = 2, 1
    elif args.gpu:
        args.seeds, args.eval_interval = 1, args.steps // 4
    results = {}
    if os.path.exists(args.out):
        with open(args.out) as f:
            results = json.load(f)
        for runs in results.values():  # JSON's keys are strings
            for r in runs.values():
                r["val"] = {int(step): loss for step, loss in r["val"].items()}
    seeds = list(range(args.seeds))
    for seed in seeds:
        for label, ideas in configurations(args.gpu):
            if str(seed) in results.get(ideas, {}):
                continue
            results.setdefault(ideas, {})[str(seed)] = run(ideas, seed, args, args.data)
            with open(args.out + ".tmp", "w") as f:
                json.dump(results, f)
            os.replace(args.out + ".tmp", args.out)
            r = results[ideas][str(seed)]
            print(f"seed {seed} | {label:24s} | val {r['val'][max(r['val'])]:.4f} | {r['ms']:.1f} ms/step",
                  flush=True)
    print(table(results, seeds, setup(args)[1], args.gpu))


if __name__ == "__main__":
    main()
