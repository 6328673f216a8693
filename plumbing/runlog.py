"""
log_dir/log.txt: one line per event, appended and flushed at once, cut back to its checkpoint on a resume; a fresh run
first moves an earlier run's files aside. Beside it, log_dir/run.json: what each start of the run ran with.
"""
import collections
import datetime
import json
import math
import os
import re
import subprocess

import torch

from plumbing.cli import RunError, print0
from plumbing.files import write_atomically
from plumbing.hardware import device_name
from plumbing.nonfinite import NotFinite
from plumbing.processes import run_or_stop_all, stop_if_any_failed


def move_earlier_run(log_dir):
    """A run that starts from step 0 in a log_dir that holds an earlier run's log.txt or checkpoints moves them into a
    folder of their own there, named after the time of the newest, and says where: nothing of the earlier run is lost
    (its log would have been cut to nothing), and --resume auto then finds only this run's checkpoints."""
    names = [n for n in os.listdir(log_dir) if n in ("log.txt", "run.json") or re.fullmatch(r"model_(\d+)\.pt", n)]
    if not names:
        return
    newest = max(os.path.getmtime(os.path.join(log_dir, n)) for n in names)
    folder = os.path.join(log_dir, datetime.datetime.fromtimestamp(newest).strftime("run_%Y-%m-%d_%H-%M-%S"))
    folder = next(f for f in (folder, *(f"{folder}_{i}" for i in range(2, 1000))) if not os.path.exists(f))
    os.makedirs(folder)
    for name in names:
        os.replace(os.path.join(log_dir, name), os.path.join(folder, name))
    print(f"{log_dir}/ held an earlier run ({', '.join(sorted(names))}): moved to {folder}/", flush=True)


def git_commit():
    """(the commit of the code that runs, whether the files git tracks have changes), or (None, None) outside a git
    checkout or without git."""
    here = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    try:
        commit = subprocess.run(["git", "rev-parse", "HEAD"], cwd=here, capture_output=True, text=True, timeout=10)
        status = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=here,
                                capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.SubprocessError):
        return None, None
    if commit.returncode or status.returncode:
        return None, None
    return commit.stdout.strip(), bool(status.stdout.strip())


def record(args, device, amp_dtype, start_step):
    """What one start of a run ran with, for run.json: every flag as parse_args left it (presets and defaults filled
    in, the micro-batch as fitted), the code's commit, the versions, the device, the processes and the dtype."""
    commit, changed = git_commit()
    return {"started": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
            "start_step": start_step, "flags": dict(sorted(vars(args).items())),
            "commit": commit, "uncommitted_changes": changed, "torch": torch.__version__,
            "cuda": torch.version.cuda, "device": device_name(device), "processes": args.world_size,
            "dtype": "float32" if amp_dtype is None else str(amp_dtype).removeprefix("torch.")}


def write_record(path, run, resume):
    """run.json: {"runs": [...]}, one record per start. A resume keeps the records before it and adds its own; a
    record that cannot be read (written by hand, cut short) is kept aside as run.json.unreadable."""
    runs = []
    if resume and os.path.exists(path):
        try:
            with open(path) as f:
                runs = list(json.load(f)["runs"])
        except (OSError, ValueError, KeyError, TypeError):
            os.replace(path, path + ".unreadable")
            print0(f"{path} could not be read: kept as {path}.unreadable, and a new one started")
    text = json.dumps({"runs": runs + [run]}, indent=1, default=str) + "\n"
    write_atomically(path, lambda f: f.write(text.encode()))


class Log:
    """log_dir/log.txt, one line per event ("{step} train {loss}", "{step} val {loss}", ...), each appended and
    flushed at once. A run resumed at step S keeps the lines before S and the evaluations of S itself (logged just
    before its checkpoint) and drops the rest, which the killed run wrote after its checkpoint. Only the process with
    write=True (the master) writes. A run from step 0 first moves an earlier run's files aside (move_earlier_run).
    Beside log.txt it writes run.json, the record of what each start of the run ran with (runlog.record).
    A line it cannot write does not raise: that would stop the master alone while the
    other processes wait for it in their next collective. It is kept in `error`, and the training loop stops every
    process with it (in its step's all-reduce, and at each evaluation). counts: the lines of each kind so far."""

    def __init__(self, args, device, amp_dtype, resume_step=None, write=True, ddp=False):
        self.path, self.write_here, self.error, self.ddp = os.path.join(args.log_dir, "log.txt"), write, None, ddp
        self.counts = collections.Counter()
        run = record(args, device, amp_dtype, resume_step or 0) if write else None
        run_or_stop_all(ddp, self.start, resume_step, run, where=write)  # starting it: the same for every process

    def start(self, resume_step, run):
        os.makedirs(os.path.dirname(self.path), exist_ok=True)
        if resume_step is None:
            move_earlier_run(os.path.dirname(self.path))
        kept = []
        if resume_step is not None and os.path.exists(self.path):
            with open(self.path, errors="replace") as f:
                for line in f:
                    fields = line.split()
                    # A power loss can leave the last line cut short or a tail of zero bytes: like every line
                    # after the checkpoint, such remnants are dropped.
                    if len(fields) != 3 or not fields[0].isdigit():
                        continue
                    step, kind = int(fields[0]), fields[1]
                    if step < resume_step or (step == resume_step and kind in ("val", "hella")):
                        kept.append(line if line.endswith("\n") else line + "\n")
                        self.counts[kind] += 1
        try:
            write_atomically(self.path, lambda f: f.write("".join(kept).encode()))
            write_record(os.path.join(os.path.dirname(self.path), "run.json"), run, resume_step is not None)
        except OSError as e:
            raise RunError(f"could not write {self.path} ({e}); free some space, or give another --log_dir") from None

    def write(self, line):
        if not self.write_here or self.error:
            return
        try:
            with open(self.path, "a") as f:
                f.write(line + "\n")
                f.flush()
            self.counts[line.split()[1]] += 1
        except OSError as e:  # a line cut short is dropped by a resume, like any line after its checkpoint
            self.error = RunError(f"could not add to {self.path} ({e}): the run stops here. The checkpoints and the "
                                  "lines before are intact: free some space and continue with --resume auto")

    def report(self, step, kind, label, value):
        """Print an evaluation's result and log it. A value that is not finite (the weights themselves went bad: never
        checkpoint them), or a log that could not be written, stops every process (all see the same value). None: not
        evaluated (a stop came during it), nothing to say."""
        if value is None:
            return
        if not math.isfinite(value):
            raise NotFinite(step, f"{label} {value}", os.path.dirname(self.path))
        print0(f"step {step:5d} | {label} {value:.4f}")
        self.write(f"{step} {kind} {value:.4f}")
        stop_if_any_failed(self.error, self.ddp)

    def train_step(self, step, loss, lr, norm, scale, speed):
        """Print a training step's line (speed: its time, tok/s and MFU, as hardware.Speed says them) and log its loss,
        its learning rate and, under float16, the loss scale after it (scale None: not float16)."""
        print0(f"step {step:5d} | loss {loss:.6f} | lr {lr:.4e} | norm {norm:.4f} | "
               f"{'' if scale is None else f'scale {scale:g} | '}{speed}")
        self.write(f"{step} train {loss:.6f}")
        self.write(f"{step} lr {lr:.6e}")
        if scale is not None:
            self.write(f"{step} scale {scale:g}")
