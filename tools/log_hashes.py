"""
The sha256 of log.txt of a few fixed-seed training runs, for a change that must not change what the recipe computes
(a refactor, a new code path that is off by default): run it before and after, and compare.

    python tools/log_hashes.py                      # this checkout
    python tools/log_hashes.py --repo ../old        # another checkout (a git worktree of an earlier commit, say)

The runs: 2 layers on tiny Shakespeare, 12 steps, an evaluation with HellaSwag every 4 steps (a 24-example file in
the HellaSwag schema written here) and a checkpoint every 6, eager:
    text-float32     --data input.txt, float32
    text-bf16        --data input.txt, bfloat16 autocast (emulated, and slow, on CPUs without bf16 instructions)
    shards-shuffle   shards that fineweb.py makes from the text, --shuffle
    torchrun-2       the same under torchrun, 2 processes (the mean of 2 processes' losses may differ from
                     shards-shuffle's in the last digit)
    resumed          shards-shuffle resumed from its step-6 checkpoint: its log must equal shards-shuffle's
Beside each log's sha256, the start of the sha256 of the samples the run printed. Not a test (pytest does not collect
it): about a minute on 2 cores.
"""
import argparse
import hashlib
import json
import os
import shutil
import subprocess
import sys
import tempfile

HERE = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
RUN = ["--device", "cpu", "--n_layer", "2", "--n_head", "2", "--n_embd", "64", "--batch_size", "2", "--seq_len", "64",
       "--total_batch_size", "512", "--max_steps", "12", "--warmup_steps", "3", "--max_lr", "3e-3",
       "--eval_interval", "4", "--val_steps", "4", "--checkpoint_interval", "6", "--sample_interval", "6",
       "--num_samples", "2", "--max_new_tokens", "8", "--no-compile", "--hellaswag", "--hellaswag_limit", "24",
       "--seed", "7"]


def sha256(path):
    with open(path, "rb") as f:
        return hashlib.sha256(f.read()).hexdigest()


def write_hellaswag(path, text):
    """24 examples cut from the text: a context of 8 words and 4 endings of 3 to 10 words."""
    words = text.split()
    with open(path, "w") as f:
        for i in range(24):
            at = 997 * i
            endings = [" ".join(words[at + 8 + 13 * j:at + 8 + 13 * j + 3 + (i + j) % 8]) for j in range(4)]
            f.write(json.dumps({"ind": i, "activity_label": "test", "ctx_a": "", "ctx_b": "", "split": "val",
                                "split_type": "indomain", "source_id": f"t~{i}", "label": i % 4,
                                "ctx": " ".join(words[at:at + 8]), "endings": endings}) + "\n")


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repo", default=HERE, help="the checkout whose train_gpt2.py and fineweb.py to run")
    parser.add_argument("--data", default=os.path.join(HERE, "input.txt"), help="tiny Shakespeare")
    parser.add_argument("--only", nargs="*", help="run only these runs (resumed needs shards-shuffle)")
    parser.add_argument("--keep", help="a new folder to keep the runs' folders in (default: a temporary one)")
    args = parser.parse_args()
    repo, data = os.path.abspath(args.repo), os.path.abspath(args.data)
    env = dict(os.environ, OMP_NUM_THREADS="1", PYTHONPATH=repo)
    hashes = {}
    with tempfile.TemporaryDirectory() as tmp:
        if args.keep:
            os.makedirs(args.keep)
            tmp = os.path.abspath(args.keep)

        def run(*argv, launcher=(sys.executable,)):
            out = subprocess.run([*launcher, *argv], cwd=tmp, env=env, capture_output=True, text=True)
            if out.returncode != 0:
                raise SystemExit(f"{' '.join(argv)} failed:\n{out.stdout[-2000:]}\n{out.stderr[-3000:]}")
            return out.stdout

        shutil.copy(data, os.path.join(tmp, "input.txt"))
        os.makedirs(os.path.join(tmp, "hellaswag"))
        with open(data) as f:
            write_hellaswag(os.path.join(tmp, "hellaswag", "hellaswag_val.jsonl"), f.read())
        run(os.path.join(repo, "fineweb.py"), "--dataset", "input.txt", "--out_dir", "shards", "--shard_size", "40000",
            "--workers", "1")
        train = os.path.join(repo, "train_gpt2.py")
        torchrun = (sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2")
        runs = {
            "text-float32": (["--data", "input.txt", "--dtype", "float32"], (sys.executable,)),
            "text-bf16": (["--data", "input.txt", "--dtype", "bfloat16"], (sys.executable,)),
            "shards-shuffle": (["--data", "shards", "--shuffle", "--dtype", "float32"], (sys.executable,)),
            "torchrun-2": (["--data", "shards", "--shuffle", "--dtype", "float32"], torchrun),
        }
        for name, (flags, launcher) in runs.items():
            if args.only and name not in args.only:
                continue
            out = run(train, *RUN, *flags, "--log_dir", name, launcher=launcher)
            hashes[name] = sha256(os.path.join(tmp, name, "log.txt"))
            samples = "".join(line for line in out.splitlines(keepends=True) if "| sample: " in line)
            print(f"{name:15s} {hashes[name]}  samples {hashlib.sha256(samples.encode()).hexdigest()[:16]}",
                  flush=True)
        if "shards-shuffle" in hashes:
            os.makedirs(os.path.join(tmp, "resumed"))
            for name in ("model_00006.pt", "log.txt"):  # what a run killed after its step-6 checkpoint leaves
                shutil.copy(os.path.join(tmp, "shards-shuffle", name), os.path.join(tmp, "resumed"))
            run(train, *RUN, *runs["shards-shuffle"][0], "--log_dir", "resumed", "--resume", "auto")
            hashes["resumed"] = sha256(os.path.join(tmp, "resumed", "log.txt"))
            same = "the same as shards-shuffle" if hashes["resumed"] == hashes["shards-shuffle"] else "DIFFERS"
            print(f"{'resumed':15s} {hashes['resumed']} ({same})", flush=True)


if __name__ == "__main__":
    main()
