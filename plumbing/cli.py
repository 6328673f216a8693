"""
The command line: the errors a command stops with (RunError, InputError, Stopped), the one place where a command's
process ends (command_line), and flags checked as they are parsed. It does not import torch, so that fineweb.py's
tokenizer processes need not load it.
"""
import argparse
import contextlib
import functools
import gc
import math
import os
import re
import sys


class RunError(Exception):
    """What stops a command, with a message that says what is wrong and what to do: bad input (InputError, below), a
    download that failed, a full disk, a loss that is not finite. Library code raises it and never ends the process:
    a notebook catches it like any exception, and a script's main() (see command_line) prints the message alone,
    without a traceback. quiet: another process of this machine prints the same message, so this one need not."""

    def __init__(self, message, quiet=False):
        super().__init__(message)
        self.quiet = quiet


class InputError(RunError, ValueError):
    """Bad data, flags, files or model names: the message says what to change. Library callers can catch it as a
    ValueError too."""


class Stopped(Exception):
    """A run stopped on request (Ctrl-C, SIGTERM) after keeping its work: its command line prints `message` (what was
    kept, how to go on) and exits with the signal's conventional status, 128 + its number (130 for SIGINT, 143 for
    SIGTERM)."""

    def __init__(self, signum, message):
        super().__init__(message)
        self.status = 128 + signum


def print0(*args, **kwargs):
    """print, from the master process only (rank 0, or a run without torchrun). What cannot be written is dropped:
    where the terminal hung up (its SIGHUP stops the run, plumbing.processes.StopRequests), the run must get as far as
    its checkpoint, and log.txt keeps the record."""
    if int(os.environ.get("RANK", "0")) == 0:
        try:
            print(*args, **kwargs, flush=True)
        except OSError:
            pass


_undo_at_exit = []  # what command_line undoes however main() ends: signal handlers set, folders locked


def command_line(main):
    """Wrap a script's main() so that a RunError ends the program with its message and exit status 1, and a Stopped
    with its status (the one place where a script's work is ended with an exit), and so that however main() ends, at
    its last step or on an error, it leaves no process group, signal handler or folder lock behind: this is the
    lecture's destroy_process_group() at the end of a DDP run (NCCL warns at exit of a group left behind)."""
    def group():  # torch.distributed, if main() set up a process group (a script that never imported torch has none)
        dist = sys.modules.get("torch.distributed")
        return dist if dist is not None and dist.is_available() and dist.is_initialized() else None

    @functools.wraps(main)
    def run(*args, **kwargs):
        end = None  # the SystemExit that ends the program, raised once the group is destroyed
        try:
            result = main(*args, **kwargs)
            if dist := group():
                # Every process ends here together (rank 0 samples after the last checkpoint while the others are
                # done). The SIGABRT at exit once blamed on ending apart came from a group that outlived
                # destroy_process_group(): see plumbing.processes.import_what_holds_the_group.
                dist.barrier()
            return result
        except Stopped as e:
            print0(e)
            if dist := group():
                dist.barrier()  # every process stops after the same step: here, together, as above
            end = SystemExit(e.status)
        except RunError as e:
            end = SystemExit(1 if e.quiet else str(e))
        finally:
            # Here the exception is gone, and with its traceback main()'s frame and the DDP model in it, which holds
            # the process group: destroy_process_group() can free it (raised from the except clause, the SystemExit
            # kept the exception as its __context__, and the group lived on into the interpreter's shutdown).
            while _undo_at_exit:
                _undo_at_exit.pop()()
            if dist := group():
                if end is not None:
                    gc.collect()  # what the exception's frames still hold through a cycle (an error kept in a local)
                dist.destroy_process_group()
        raise end
    return run


# ----------------------------------------------------------------------------------------------------------------------
# Flags, checked as they are parsed: argparse types that refuse a value out of range, with the flag, the value and
# the range in the message (argparse adds "argument --FLAG:" in front); then the checks of flags together.


def whole_number(low, high=None):
    """An argparse type: a whole number from `low` (to `high`)."""
    accepted = f"a whole number from {low}" + (f" to {high}" if high is not None else " up")

    def parse(text):
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not {accepted}") from None
        if value < low or (high is not None and value > high):
            raise argparse.ArgumentTypeError(f"{text} is not {accepted}")
        return value
    return parse


def real_number(low, above=True, hint=""):
    """An argparse type: a finite number above `low` (or, with above=False, from `low` up)."""
    accepted = f"a finite number {'above' if above else 'from'} {low}{'' if above else ' up'}{hint}"

    def parse(text):
        try:
            value = float(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not {accepted}") from None
        if not math.isfinite(value) or value < low or (above and value == low):
            raise argparse.ArgumentTypeError(f"{text} is not {accepted}")
        return value
    return parse


def device_name(text):
    """An argparse type: auto, cpu, mps, cuda or cuda:N (whether the machine has it is checked later)."""
    if not re.fullmatch(r"auto|cpu|mps|cuda(:\d+)?", text):
        raise argparse.ArgumentTypeError(f"{text!r} is not a device: use auto, cpu, cuda, cuda:N or mps")
    return text


def check_flags(args):
    """Raise an InputError if parsed flags do not go together (each was checked alone as it was parsed), saying what
    to do."""
    if args.n_embd % args.n_head != 0:
        raise InputError(f"--n_embd {args.n_embd} is not divisible by --n_head {args.n_head}: each head gets an "
                         "equal share of the channels; pick values that divide")
    if args.init_from == "scratch" and args.seq_len > args.block_size:
        raise InputError(f"--seq_len {args.seq_len} is longer than the model's context --block_size "
                         f"{args.block_size}; lower --seq_len or raise --block_size")
    if args.min_lr > args.max_lr:
        raise InputError(f"--min_lr {args.min_lr} is above --max_lr {args.max_lr}: the cosine decays from max_lr "
                         "down to min_lr; lower --min_lr")
    if 0 < args.max_steps < args.warmup_steps:
        raise InputError(f"--warmup_steps {args.warmup_steps} is more than --max_steps {args.max_steps}: the "
                         "learning rate would never reach its peak; lower --warmup_steps")


def check_total_batch(total_batch_size, B, T, world_size):
    per_micro_step = B * T * world_size
    if total_batch_size % per_micro_step != 0:
        raise InputError(f"--total_batch_size {total_batch_size:,} is not a multiple of batch_size * seq_len * "
                         f"processes = {B} * {T} * {world_size} = {per_micro_step:,}: set --total_batch_size to a "
                         f"multiple of {per_micro_step:,}, or change --batch_size / --seq_len")


@contextlib.contextmanager
def named_by(flag):
    """Inside it, a RunError (a model or checkpoint that cannot be loaded, say) says which flag named what failed:
    "--init_from: gpt3: unknown model ...". Its kind (InputError or RunError) is kept."""
    try:
        yield
    except RunError as e:
        raise (InputError if isinstance(e, InputError) else RunError)(f"{flag}: {e}", quiet=e.quiet) from None
