"""
Checkpoints: log_dir/model_STEP.pt written whole with what it takes to go on exactly, read without running code,
checked against the run that resumes from them, and put back.
"""
import dataclasses
import os
import re

import torch
import torch.distributed as dist

from plumbing.cli import InputError, RunError
from plumbing.files import sha256_of, write_atomically
from plumbing.processes import stop_if_any_failed, stop_unless_same


def checkpoint_path(log_dir, step):
    """Where the checkpoint of `step` is written: log_dir/model_STEP.pt, the step zero-padded to 5 digits (so that the
    names sort by step up to 99,999; latest_checkpoint does not rely on it)."""
    return os.path.join(log_dir, f"model_{step:05d}.pt")


def latest_checkpoint(log_dir):
    """The checkpoint of log_dir with the highest step, or None. By the step number, not the name: model_100000.pt
    sorts before model_99999.pt."""
    steps = {}
    for name in os.listdir(log_dir) if os.path.isdir(log_dir) else []:
        match = re.fullmatch(r"model_(\d+)\.pt", name)
        if match:
            steps[int(match.group(1))] = name
    return os.path.join(log_dir, steps[max(steps)]) if steps else None


def run_state(optimizer, train_loader, scaler):
    """What a checkpoint needs, beside the weights, to continue the run exactly: the optimizer's and the data loader's
    state, float16's gradient scaler's, and the CPU's RNG state. Plain tensors, numbers and strings only."""
    # The CPU's RNG only. Nothing in training draws from a GPU's RNG (no dropout; samples use a generator of their
    # own, seeded anew), and each GPU's state belongs to one process, which a resume on another layout of GPUs would
    # not have. Not asking for it also keeps a CPU run on a GPU machine from starting CUDA here.
    state = {"optimizer": optimizer.state_dict(), "train_loader": train_loader.state_dict(),
             "rng": {"cpu": torch.get_rng_state()}}
    if scaler is not None and scaler.is_enabled():
        state["scaler"] = scaler.state_dict()
    return state


def write(path, save):
    """save(f) into the checkpoint file `path` (torch.save(checkpoint, f)), written to a temporary name, synced to the
    disk and renamed: a crash or a power loss never leaves a file that looks whole and is not. A full disk stops the
    run with a message that says what is kept."""
    try:
        write_atomically(path, save)
    except (OSError, RuntimeError) as e:  # a full disk, say (torch.save reports it as a RuntimeError after an OSError)
        cause = e
        while cause is not None and not isinstance(cause, OSError):
            cause = cause.__context__
        if cause is None:
            raise
        raise RunError(f"could not write the checkpoint {path} ({cause}): the run stops here. The checkpoints before "
                       "it and log.txt are intact: free some space and continue with --resume auto") from None


def read_checkpoint(path):
    """A checkpoint written by train_gpt2.save_checkpoint, as a dict. weights_only=True: the file can only hold tensors
    and plain data, so loading one cannot run code. mmap=True: the tensors are the file's pages, read as they are
    used and shared through the page cache by the processes of a machine, not a copy in each process's memory (every
    process of a resume loads the checkpoint: gpt2-xl's is 19 GB, 150 GB for 8 processes if each made a copy)."""
    try:
        checkpoint = torch.load(path, map_location="cpu", weights_only=True, mmap=True)
    except FileNotFoundError:
        raise InputError(f"{path}: no such checkpoint") from None
    except Exception as e:  # truncated, corrupted, or not a torch file: torch's own error is deep and long
        raise InputError(f"{path}: cannot be read as a checkpoint ({type(e).__name__}: {str(e)[:200]}); it may be "
                         "truncated or damaged: use an earlier checkpoint") from None
    if not isinstance(checkpoint, dict) or not {"model", "config"} <= set(checkpoint):
        raise InputError(f"{path}: not a checkpoint of train_gpt2.py (no 'model' and 'config' in it)")
    return checkpoint


def config_of(path, config, config_class):
    """The checkpoint's config (a dict) as a config_class; a field the class lacks (the ideas of a model of
    modern_gpt.py, read by train_gpt2.py) is refused, naming the script that reads it."""
    unknown = sorted(set(config) - {f.name for f in dataclasses.fields(config_class)})
    if unknown:
        by = "modern_gpt.py" if "ideas" in unknown else "a newer version of this script"
        raise InputError(f"{path}: a model with {', '.join(unknown)} in its config, which this script's "
                         f"{config_class.__name__} does not have; load it with {by}")
    return config_class(**config)


def check_weights_fit(path, config, model_state, file_state):
    """Refuse weights whose names or shapes are not those of the model their config builds."""
    expected = {k: tuple(v.shape) for k, v in model_state.items()}
    found = {k: tuple(v.shape) for k, v in file_state.items()}
    if expected != found:
        diff = [f"{k}: {found.get(k, 'missing')} in the file, {expected.get(k, 'none')} in the model"
                for k in sorted(set(expected) | set(found)) if expected.get(k) != found.get(k)]
        raise InputError(f"{path}: its weights do not fit its config {config}: "
                         + "; ".join(diff[:5]) + (f"; and {len(diff) - 5} more" if len(diff) > 5 else ""))


def check_same_checkpoint(path, step, ddp):
    """Under torchrun, stop every process unless every machine read the same checkpoint as rank 0 (the same step and
    the same bytes: each reads it from its own disk, and another machine's file of that name can be another run's)."""
    if ddp:
        stop_unless_same((step, sha256_of(path)), f"--resume {path}: not the file rank 0 resumes from (another step, "
                         f"or other bytes); copy rank 0's {path} to the same path on every machine", ddp)


def checkpoint_to_resume(resume, log_dir, ddp):
    """The checkpoint --resume names (auto: the newest in log_dir, or None if there is none yet), as rank 0 sees it.
    Only rank 0 writes checkpoints, so another machine's log_dir may lack it or hold older ones of its own: rank 0
    decides, tells every process, and every process must be able to read that file before any loads it."""
    path = latest_checkpoint(log_dir) if resume == "auto" else resume
    if ddp:
        shared = [path]
        dist.broadcast_object_list(shared, src=0)
        path = shared[0]
    if path is not None:
        readable = os.path.isfile(path) and os.access(path, os.R_OK)
        advice = (f"; checkpoints are written by rank 0 only: put --log_dir on a file system that every machine "
                  f"shares, or copy {path} to the same path on every machine") if ddp else ""
        what = "is a folder; give a model_STEP.pt file, or auto" if os.path.isdir(path) else \
            f"no such checkpoint here{advice}"
        stop_if_any_failed(None if readable else InputError(f"--resume {path}: {what}"), ddp)
    return path


def check_resumable(path, checkpoint, flags, world_size):
    """Refuse to resume the checkpoint's run unless every flag in `flags` ({name: value}: those that would change what
    the run computes) has the value the run was saved with, and it runs on as many processes."""
    if "optimizer" not in checkpoint:
        raise InputError(f"{path} holds weights only, not a run to resume; start from it with --init_from")
    saved = checkpoint["args"]
    for name, value in flags.items():
        if saved.get(name) != value:  # a flag the saving script did not have: None
            raise InputError(f"--resume {path}: that run had --{name} {saved.get(name)}, this one {value}; resume with "
                             "the same value, or start a new run")
    if saved.get("world_size", 1) != world_size:
        raise InputError(f"--resume {path}: that run had {saved.get('world_size', 1)} process(es), this one "
                         f"{world_size}; resume on as many, or start a new run")


def restore_run(checkpoint, optimizer, train_loader, scaler):
    """Put the optimizer, the data loader, float16's gradient scaler and the CPU's RNG back where the checkpoint's run
    was; return its step. (Checkpoints from before the CPU-only RNG state also hold every GPU's state of rank 0: not
    used, see above.)"""
    if ("scaler" in checkpoint) != scaler.is_enabled():
        was, now = ("in float16" if f16 else "in bfloat16 or float32" for f16 in ("scaler" in checkpoint,
                                                                                  scaler.is_enabled()))
        raise InputError(f"--resume: that run trained {was}, this one would train {now}; resume with that run's "
                         "--dtype, or start a new run")
    if scaler.is_enabled():
        scaler.load_state_dict(checkpoint["scaler"])
    optimizer.load_state_dict(checkpoint["optimizer"])
    train_loader.load_state_dict(checkpoint["train_loader"])
    torch.set_rng_state(checkpoint["rng"]["cpu"])
    return checkpoint["step"]
