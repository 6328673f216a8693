"""
How long a stop takes: the seconds from a signal to the end of the run, which must fit in the grace a scheduler gives
(torchrun: 30 s between its SIGTERM and SIGKILL). It starts train_gpt2.py with the flags given after `--`, waits for
--after training steps, sends the signal halfway through the next step (by the time the steps before took), and times
until the process is gone; it prints that beside the time of a step and the size of the checkpoint the stop wrote.

    python benchmarks/stop_time.py -- --data input.txt --device cpu --n_layer 4 --n_embd 256 --batch_size 4 \\
        --seq_len 256 --total_batch_size 32768 --hellaswag_limit 100
    python benchmarks/stop_time.py --torchrun 8 -- --data edu_fineweb10B      # the recipe, on a machine of 8 GPUs
    python benchmarks/stop_time.py --repo ../older-checkout -- ...             # the same, for another commit
"""
import argparse
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def train_lines(log_dir):
    try:
        with open(os.path.join(log_dir, "log.txt")) as f:
            return sum(line.split()[1:2] == ["train"] for line in f)
    except FileNotFoundError:
        return 0


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--signal", default="SIGTERM", choices=["SIGINT", "SIGTERM", "SIGHUP"])
    parser.add_argument("--after", type=int, default=3, help="training steps before the signal (default: 3)")
    parser.add_argument("--torchrun", type=int, default=0, metavar="N", help="run under torchrun, N processes")
    parser.add_argument("--repo", default=ROOT, help="the checkout whose train_gpt2.py runs (default: this one)")
    parser.add_argument("flags", nargs=argparse.REMAINDER, help="-- and train_gpt2.py's flags")
    args = parser.parse_args()
    flags = args.flags[1:] if args.flags[:1] == ["--"] else args.flags
    launcher = [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc_per_node={args.torchrun}"] \
        if args.torchrun else [sys.executable]
    with tempfile.TemporaryDirectory() as log_dir:
        run = subprocess.Popen([*launcher, os.path.join(args.repo, "train_gpt2.py"), *flags, "--log_dir", log_dir,
                                "--checkpoint_interval", "100000"], cwd=args.repo, stdout=subprocess.DEVNULL,
                               start_new_session=True)
        seen = []  # when each training step's line appeared
        while len(seen) < args.after + 1:
            if run.poll() is not None:
                sys.exit(f"the run ended first (exit status {run.returncode}): check its flags")
            if train_lines(log_dir) > len(seen):
                seen.append(time.monotonic())
            time.sleep(0.01)
        step = statistics.median(b - a for a, b in zip(seen, seen[1:])) if len(seen) > 1 else 0.0
        time.sleep(step / 2)
        sent = time.monotonic()
        run.send_signal(getattr(signal, args.signal))  # under torchrun, to torchrun: it passes it on to every worker
        run.wait()
        took = time.monotonic() - sent
        saved = [name for name in os.listdir(log_dir) if name.endswith(".pt")]
        size = sum(os.path.getsize(os.path.join(log_dir, name)) for name in saved) / 1e9
        print(f"{args.signal} halfway through step {args.after + 1}: the run was gone {took:.1f} s later (exit status "
              f"{run.returncode}); a step took {step:.2f} s; checkpoint: {', '.join(saved) or 'none'} ({size:.2f} GB)")


if __name__ == "__main__":
    main()
