"""
What the scripts need besides the GPT-2 recipe, in sections: the errors a command stops with, and stopping every
process of a torchrun run together; flag, path and model-name checks; files written whole; downloads; token data
(text and shards); the training step's guard against non-finite numbers; checkpoints, resume and log.txt; devices
and precision; the model presets. A learner can skip this file: train_gpt2.py reads as the recipe without it. It
imports nothing of the project, so every script can import it.
"""
import argparse
import collections
import contextlib
import datetime
import functools
import hashlib
import http.client
import math
import os
import re
import shutil
import signal
import socket
import sys
import tempfile
import urllib.request
from dataclasses import asdict

import numpy as np
import torch
import torch.distributed as dist
from tqdm import tqdm


# ----------------------------------------------------------------------------------------------------------------------
# Errors: what stops a command, and the one place where a command's process ends


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
    """A run stopped on request (Ctrl-C, SIGTERM) after saying so and keeping its work: its command line exits with
    the signal's conventional status, 128 + its number (130 for SIGINT, 143 for SIGTERM)."""

    def __init__(self, signum):
        super().__init__(f"stopped by {signal.Signals(signum).name}")
        self.status = 128 + signum


_undo_at_exit = []  # what command_line undoes however main() ends: signal handlers set, folders locked


def command_line(main):
    """Wrap a script's main() so that a RunError ends the program with its message and exit status 1, and a Stopped
    with its status (the one place where a script's work is ended with an exit), and so that however main() ends, at
    its last step or on an error, it leaves no process group, signal handler or folder lock behind: this is the
    lecture's destroy_process_group() at the end of a DDP run (NCCL warns at exit of a group left behind)."""
    @functools.wraps(main)
    def run(*args, **kwargs):
        try:
            result = main(*args, **kwargs)
            if dist.is_available() and dist.is_initialized():
                # Every process ends here together. Rank 0 samples after the last checkpoint while the others are done:
                # a process that tore gloo down and exited meanwhile was killed in about one run in 20 by
                # "terminate called without an active exception" as its interpreter shut down.
                dist.barrier()
            return result
        except Stopped as e:
            if dist.is_available() and dist.is_initialized():
                dist.barrier()  # every process stops after the same step: here, together, as above
            raise SystemExit(e.status) from None
        except RunError as e:
            raise SystemExit(1 if e.quiet else str(e)) from None
        finally:
            while _undo_at_exit:
                _undo_at_exit.pop()()
            if dist.is_available() and dist.is_initialized():
                dist.destroy_process_group()
    return run


# ----------------------------------------------------------------------------------------------------------------------
# Processes that stop together. Under torchrun, a process that stops on an error must stop the others too:
# else they wait for it in their next collective until NCCL's watchdog kills them, with tracebacks instead
# of the message.


# How long a collective waits for the slowest process before the run fails (torch's defaults: 10 minutes for NCCL, 30
# for gloo). The longest wait is for rank 0's checkpoint: gpt2-xl's, with AdamW's state, is 19 GB, 16 minutes to write
# at 20 MB/s (a slow network disk), and NCCL's 10 would kill the processes waiting for it. A first run's downloads
# take less (--init_from gpt2-xl: about 6 GB per machine). The price: a run that really hangs takes 30 minutes to fail.
COLLECTIVE_TIMEOUT = datetime.timedelta(minutes=30)


def this_machine():
    """This process's machine, for messages: torchrun's node rank and the host name."""
    return f"node {os.environ.get('GROUP_RANK', '0')} ({socket.gethostname()})"


def print0(*args, **kwargs):
    """print, from the master process only (rank 0, or a run without torchrun)."""
    if int(os.environ.get("RANK", "0")) == 0:
        print(*args, **kwargs, flush=True)


def stop_if_any_failed(error, ddp):
    """Every process passes None, or a message saying what went wrong on it. If any process has a message, every
    process stops with it, naming the machines where it happened (each machine prints it once): none is left
    waiting in a collective for a process that stopped."""
    if ddp:
        errors = [None] * dist.get_world_size()
        dist.all_gather_object(errors, (error, this_machine()))
        failed = [(e, where) for e, where in errors if e]
        if failed:
            places = ", ".join(dict.fromkeys(where for _, where in failed))
            raise RunError(f"{failed[0][0]} [on {places}]", quiet=os.environ.get("LOCAL_RANK", "0") != "0")
    elif error:
        raise RunError(error)


class StopRequests:
    """From now until main() ends, a first Ctrl-C (SIGINT) or SIGTERM (a scheduler's, or a spot instance's being
    reclaimed; torchrun passes the signal to every worker) is kept in `signum` for the training loop, which finishes
    the step it is in, writes a checkpoint and stops; a second one stops at once, as without this."""

    def __init__(self):
        self.signum = None
        self.previous = {s: signal.signal(s, self.handle) for s in (signal.SIGINT, signal.SIGTERM)}
        _undo_at_exit.append(self.restore)

    def handle(self, signum, frame):
        if self.signum is None:
            self.signum = signum
            if os.environ.get("RANK", "0") == "0":
                print(f"{signal.Signals(signum).name}: stopping after this step, with a checkpoint (again to stop at "
                      "once)", flush=True)
            return
        self.restore()
        signal.raise_signal(signum)  # with the handler of before: KeyboardInterrupt, or the end of the process

    def restore(self):
        for signum, handler in self.previous.items():
            signal.signal(signum, handler)


def signal_of_any(signum, ddp):
    """The signal that stops the run: this process's (or None), or under torchrun the first of any process's."""
    if ddp:
        everyone = [None] * dist.get_world_size()
        dist.all_gather_object(everyone, signum)
        signum = next(s for s in everyone if s is not None)
    return signum


def shared_gpu_problem(device):
    """Under torchrun on CUDA: what is wrong if processes of one machine were given the same GPU, or None (every
    process must call it). NCCL would stop them at their first collective with "Duplicate GPU detected"; this asks
    through gloo (see setup_distributed), which needs no GPU."""
    mine = (this_machine(), str(torch.cuda.get_device_properties(device).uuid))
    everyone = [None] * dist.get_world_size()
    dist.all_gather_object(everyone, mine)
    gpus = [uuid for machine, uuid in everyone if machine == mine[0]]  # the GPU of each process of this machine
    if len(set(gpus)) < len(gpus):
        return (f"{len(gpus)} processes on this machine share {len(set(gpus))} GPU(s), and each needs one of its own: "
                f"start at most {len(set(gpus))} here (torchrun --nproc_per_node {len(set(gpus))})")
    return None


def run_or_stop_all(ddp, job, *args, where=True, **kwargs):
    """job(*args, **kwargs) on the processes where `where` is true (every process by default; each machine's local
    rank 0 for a download, rank 0 for a checkpoint) while the others wait, and its result (None where it did not
    run). If it fails on one process (a RunError, whose message says what to do), every process stops with that
    message: none is left waiting for it in the next collective. A single process (ddp False) gets the job's own
    error."""
    error = result = None
    try:
        if where:
            result = job(*args, **kwargs)
    except RunError as e:
        if not ddp:
            raise
        error = str(e)
    stop_if_any_failed(error, ddp)
    return result


def stop_unless_same(value, problem, ddp):
    """Every process passes its `value` (say, the step and the sha256 of the checkpoint it read from its own disk).
    Where a machine's differs from rank 0's, every process stops with `problem`, naming those machines: each machine
    reads its own files, and a run whose machines read different ones would go on, silently wrong."""
    if ddp:
        everyone = [None] * dist.get_world_size()
        dist.all_gather_object(everyone, (value, this_machine()))
        differ = dict.fromkeys(where for other, where in everyone if other != everyone[0][0])
        if differ:
            raise RunError(f"{problem} [on {', '.join(differ)}]", quiet=os.environ.get("LOCAL_RANK", "0") != "0")


def check_same_data(data, ddp):
    """Under torchrun, stop every process unless every machine's --data holds the same files as rank 0's."""
    if ddp:
        stop_unless_same(data_fingerprint(data), f"--data {data}: not the same files as on rank 0's machine (another "
                         "shard, or one of another size); make every machine's copy the same", ddp)


# ----------------------------------------------------------------------------------------------------------------------
# Flags, checked as they are parsed: argparse types that refuse a value out of range, with the flag, the value and
# the range in the message (argparse adds "argument --FLAG:" in front).


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


def flags_problem(args):
    """None, or what is wrong with parsed flags that do not go together (each was checked alone as it was
    parsed), and what to do."""
    if args.n_embd % args.n_head != 0:
        return (f"--n_embd {args.n_embd} is not divisible by --n_head {args.n_head}: each head gets an equal "
                "share of the channels; pick values that divide")
    if args.init_from == "scratch" and args.seq_len > args.block_size:
        return (f"--seq_len {args.seq_len} is longer than the model's context --block_size {args.block_size}; "
                "lower --seq_len or raise --block_size")
    if args.min_lr > args.max_lr:
        return (f"--min_lr {args.min_lr} is above --max_lr {args.max_lr}: the cosine decays from max_lr down to "
                "min_lr; lower --min_lr")
    if 0 < args.max_steps < args.warmup_steps:
        return (f"--warmup_steps {args.warmup_steps} is more than --max_steps {args.max_steps}: the learning rate "
                "would never reach its peak; lower --warmup_steps")


# ----------------------------------------------------------------------------------------------------------------------
# Paths, checked before any work: each returns None, or what is wrong (naming the flag) and what to do.


def folder_problem(flag, path, write=True):
    """Is `path` a folder, or can it be made one, that this process can read (and, with write, write in)?"""
    if os.path.exists(path) and not os.path.isdir(path):
        return f"{flag} {path}: is a file, not a folder; give a folder"
    existing = os.path.abspath(path)
    while not os.path.exists(existing):  # the nearest folder that exists: the missing ones would be made in it
        existing = os.path.dirname(existing)
    if not os.path.isdir(existing):
        return f"{flag} {path}: {existing} is a file, so no folder can be made there; give another path"
    if not os.access(existing, (os.W_OK if write else 0) | os.R_OK | os.X_OK):
        return f"{flag} {path}: cannot {'write in' if write else 'read'} {existing} (read-only?); give another folder"
    return None


def data_problem(data):
    """What --data names must be there: shards of both splits, or a text file (input.txt is downloaded if missing)."""
    if os.path.isdir(data):
        for split in ("train", "val"):
            if not shard_names(data, split):
                return no_shards_message(data, split)
    elif os.path.basename(data) == "input.txt" and not os.path.exists(data):
        return folder_problem("--data", os.path.dirname(data) or ".")  # tiny Shakespeare is downloaded there
    elif not os.path.isfile(data):
        return no_data_message(data)
    elif not os.access(data, os.R_OK):
        return f"--data {data}: cannot be read; check its permissions"
    return None


def paths_problem(data, log_dir=None, hellaswag_dir=None):
    """What is wrong with the paths a training run reads and writes, or None: --data; --log_dir, on the process that
    writes it (None on the others); --hellaswag_dir, where the val file is downloaded if missing (None: no
    HellaSwag)."""
    missing = hellaswag_dir and not os.path.exists(os.path.join(hellaswag_dir, "hellaswag_val.jsonl"))
    problems = [data_problem(data), log_dir and folder_problem("--log_dir", log_dir),
                hellaswag_dir and folder_problem("--hellaswag_dir", hellaswag_dir, write=missing)]
    return next((problem for problem in problems if problem), None)


def new_folder_problem(flag, path):
    """A folder to be written whole (--export_hf): it must not exist yet, or be empty, and be writable."""
    if os.path.isdir(path) and os.listdir(path):
        return f"{flag} {path}: already exists and is not empty; give a new folder, or empty this one"
    return folder_problem(flag, path)


# ----------------------------------------------------------------------------------------------------------------------
# Models named on the command line (--init_from, --model)


def load_named_by(flag, load, name_or_path):
    """load(name_or_path), for the model that `flag` names: an InputError it raises says which flag named it."""
    try:
        return load(name_or_path)
    except InputError as e:
        raise InputError(f"{flag}: {e}") from None


def hf_load_error(name_or_path, e, openai_models):
    """An InputError for transformers' failure to load a model: no network, no weights in the directory, ..."""
    if name_or_path in openai_models:
        what = "could not get OpenAI's weights from the Hugging Face hub; it needs the network the first time, then " \
               "reads its cache"
    else:
        what = "could not be read as a directory written by GPT2LMHeadModel.save_pretrained"
    reason = str(e).strip().splitlines()[0][:300] if str(e).strip() else ""
    return InputError(f"{name_or_path}: {what} ({type(e).__name__}: {reason})")


def export_hf(load, init_from, out_dir):
    """--export_hf DIR: write the --init_from model (loaded by `load`, GPT.load) as a HuggingFace directory, and nothing
    else."""
    if int(os.environ.get("RANK", "0")) != 0:
        return  # under torchrun, one process writes
    if problem := new_folder_problem("--export_hf", out_dir):
        raise InputError(problem)
    model = load_named_by("--init_from", load, init_from)
    write_folder(out_dir, model.save_pretrained)
    print0(f"wrote {out_dir}/: load it with GPT2LMHeadModel.from_pretrained({out_dir!r})")


# ----------------------------------------------------------------------------------------------------------------------
# Files written whole: a crash, a full disk or a power loss never leaves one that looks whole and is not


def write_atomically(path, write):
    """write(f) into a new file at `path`, all or nothing: the bytes go to path + ".tmp", are synced to the disk and
    only then renamed to `path` (a power loss can keep a rename and lose data not yet synced). A crash, a full disk or
    a power loss never leaves a file under that name that looks whole and is not. On an error (a full disk, say) or
    Ctrl-C the .tmp is removed and the error raised again; a crash can leave a .tmp, which no reader takes for the
    file."""
    tmp = path + ".tmp"
    try:
        with open(tmp, "wb") as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:  # KeyboardInterrupt too
        if os.path.exists(tmp):
            os.remove(tmp)
        raise


def write_folder(path, write):
    """write(folder) into a new temporary folder beside `path`, renamed to `path` once whole (an empty `path` is
    replaced): a failure, a full disk say, leaves nothing half-written."""
    parent = os.path.dirname(os.path.abspath(path))
    os.makedirs(parent, exist_ok=True)
    tmp = tempfile.mkdtemp(prefix=f".{os.path.basename(os.path.abspath(path))}.", dir=parent)
    try:
        write(tmp)
        os.chmod(tmp, 0o755)  # mkdtemp makes it private
        if os.path.isdir(path):
            os.rmdir(path)  # empty: new_folder_problem checked
        os.replace(tmp, path)
    except OSError as e:
        raise RunError(f"could not write {path} ({e}); nothing was left behind: free some space, or give another "
                         "folder") from None
    finally:
        if os.path.exists(tmp):
            shutil.rmtree(tmp)


def lock_folder(flag, path):
    """Hold an OS lock on folder `path` (made if missing) until main() ends, so that no second run writes into it at
    the same time; the OS lets go of it when the process dies, so a crashed run leaves no stale lock. A folder that
    another process holds is refused, naming that process (host and pid, which the holder notes in path/.in_use).
    Where the OS has no such lock (Windows), nothing is locked."""
    try:
        import fcntl
    except ImportError:
        return
    os.makedirs(path, exist_ok=True)
    fd, note = os.open(path, os.O_RDONLY), os.path.join(path, ".in_use")
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        os.close(fd)
        try:
            with open(note) as f:
                holder = f.read().strip()
        except OSError:
            holder = "another process"
        raise InputError(f"{flag} {path} is in use by another run ({holder}): wait for it to end, or give another "
                         f"{flag}") from None
    with contextlib.suppress(OSError), open(note, "w") as f:  # (a full disk: the lock holds, unnamed)
        f.write(f"pid {os.getpid()} on {socket.gethostname()}\n")

    def release():
        with contextlib.suppress(OSError):
            os.remove(note)
        os.close(fd)
    _undo_at_exit.append(release)


# ----------------------------------------------------------------------------------------------------------------------
# Downloads, checked, and a training run's files fetched once per machine


# Tiny Shakespeare, the char-rnn corpus (1,115,394 bytes); fetched on first use, never committed.
TINY_SHAKESPEARE_URL = "https://raw.githubusercontent.com/karpathy/char-rnn/master/data/tinyshakespeare/input.txt"
TINY_SHAKESPEARE_SHA256 = "86c4e6aa9db7c042ec79f339dcb96d42b0075e16b8fc2e86bf0ca57e2dc565ed"


def sha256_of(path):
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(1 << 24):  # 16 MB at a time: a checkpoint can be larger than the memory
            digest.update(chunk)
    return digest.hexdigest()


def download(url, path, sha256=None):
    """Fetch url into path, or raise an OSError saying why not. The bytes go to a temporary name of their own in the
    same folder and are renamed only once checked (HTTPS all the way, the length the server announced, the sha256
    if given): a failed download never leaves a file that looks whole, and processes that download the same file
    at once (machines sharing a file system) never mix their bytes."""
    folder = os.path.dirname(path) or "."
    os.makedirs(folder, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{os.path.basename(path)}.", suffix=".part", dir=folder)
    try:
        with os.fdopen(fd, "wb") as f, urllib.request.urlopen(url, timeout=60) as response:
            if not response.geturl().startswith("https://"):  # urlopen follows redirects, to anywhere
                raise OSError(f"redirected to a non-HTTPS address: {response.geturl()}")
            expected = response.headers.get("Content-Length")
            expected = int(expected) if expected is not None else None
            written = 0
            with tqdm(total=expected, unit="iB", unit_scale=True, desc=os.path.basename(path)) as bar:
                while chunk := response.read(1 << 20):
                    f.write(chunk)
                    written += len(chunk)
                    bar.update(len(chunk))
            # A connection that closes early can look like a normal end of stream.
            if expected is not None and written != expected:
                raise OSError(f"download cut short: got {written:,} of {expected:,} bytes")
        if sha256 is not None and sha256_of(tmp) != sha256:
            raise OSError(f"the file has the wrong sha256 (expected {sha256}); nothing was kept, try again later")
        os.chmod(tmp, 0o644)  # mkstemp makes the file private; a data file should be readable as usual
        os.replace(tmp, path)
    except http.client.HTTPException as e:
        raise OSError(f"{type(e).__name__}: {e}") from e
    finally:
        if os.path.exists(tmp):  # after any failure, Ctrl-C included
            os.remove(tmp)


def fetch_tiny_shakespeare(path="input.txt"):
    """Make sure `path` holds tiny Shakespeare: download it if missing, and check its sha256 either way."""
    if not os.path.exists(path):
        print(f"downloading tiny Shakespeare to {path}")
        try:
            download(TINY_SHAKESPEARE_URL, path, TINY_SHAKESPEARE_SHA256)
        except OSError as e:
            raise RunError(f"could not download tiny Shakespeare from {TINY_SHAKESPEARE_URL} ({e}); "
                             f"download it by hand to {path}, or pass --data with a text file of your own")
    elif sha256_of(path) != TINY_SHAKESPEARE_SHA256:
        raise InputError(f"{path} is not tiny Shakespeare (its sha256 is not {TINY_SHAKESPEARE_SHA256}): delete it "
                         "to download it again, or, if it is your own text, give it another name and pass --data")


def prepare_files(data, log_dir, hellaswag_dir, local_rank, ddp, download_hellaswag):
    """A training run's files, before any work: check the paths it reads and writes (log_dir: None on the processes
    that do not write it; hellaswag_dir: None without HellaSwag), fetch tiny Shakespeare and HellaSwag's val set
    (download_hellaswag: hellaswag.download, passed in so that this file imports nothing of the project) once per
    machine, by its local rank 0, while the other processes wait, and lock log_dir for this run. A problem on any
    process stops them all with its message."""
    stop_if_any_failed(paths_problem(data, log_dir, hellaswag_dir), ddp)

    def fetch():
        if os.path.basename(data) == "input.txt":
            fetch_tiny_shakespeare(data)
        if hellaswag_dir:
            download_hellaswag("val", hellaswag_dir)
    run_or_stop_all(ddp, fetch, where=local_rank == 0)
    check_same_data(data, ddp)  # each machine reads its own copy
    run_or_stop_all(ddp, lock_folder, "--log_dir", log_dir, where=log_dir is not None)  # one run


# ----------------------------------------------------------------------------------------------------------------------
# Token data: a text file, or the shards fineweb.py writes, read as one stream of tokens


def read_text(path):
    """The text of a --data file. A file named input.txt is tiny Shakespeare: fetched on first use and checked."""
    if os.path.basename(path) == "input.txt":
        fetch_tiny_shakespeare(path)
    if not os.path.isfile(path):
        raise InputError(no_data_message(path))
    try:
        with open(path, encoding="utf-8") as f:
            return f.read()
    except UnicodeDecodeError:
        raise InputError(f"--data {path}: not UTF-8 text (a binary file?); pass a text file, or a directory of "
                         "shards written by fineweb.py")


def no_data_message(data):
    return (f"--data {data}: no such file or shard directory; run 'python fineweb.py' to make the FineWeb-Edu shards "
            "in edu_fineweb10B/, or pass --data input.txt")


def no_shards_message(data, split):
    return f"--data {data}: no shards matching '{split}' in it; run 'python fineweb.py' first, or pass --data input.txt"


def shard_names(data, split):
    """The names of a split's shards in a directory written by fineweb.py, in name order."""
    return sorted(f for f in os.listdir(data) if f"_{split}_" in f and f.endswith(".npy"))


def shard_paths(data, split):
    """The shards of a split in a directory written by fineweb.py, as paths in name order."""
    names = shard_names(data, split)
    if not names:
        raise InputError(no_shards_message(data, split))
    return [os.path.join(data, name) for name in names]


def data_fingerprint(data):
    """What --data holds, to compare across machines: each shard's name and size, or the text file's sha256."""
    if os.path.isdir(data):
        return [(name, os.path.getsize(os.path.join(data, name))) for split in ("train", "val")
                for name in shard_names(data, split)]
    return sha256_of(data)


def open_shard(path, mmap_mode=None):
    """A shard written by fineweb.py as a numpy array of uint16 token ids (mmap_mode="r": only its header is read
    now), or a clear error saying how to mend it."""
    try:
        tokens = np.load(path, mmap_mode=mmap_mode, allow_pickle=False)
    except (OSError, ValueError, EOFError) as e:  # truncated, or not a .npy file at all
        raise InputError(f"{path}: not a readable .npy shard ({e}); delete it and run 'python fineweb.py' again "
                         "(it rewrites only the missing shards)")
    if tokens.dtype != np.uint16 or tokens.ndim != 1:
        raise InputError(f"{path}: a shard holds a 1-D array of uint16 token ids, this file holds {tokens.dtype} "
                         f"of shape {tokens.shape}; write the shards with 'python fineweb.py'")
    return tokens


def token_positions(tokens, token, chunk=1 << 20):
    """Where `token` is in a (memory-mapped) array, found a chunk at a time: the comparison's temporary array stays
    small however large the shard."""
    found = [np.flatnonzero(tokens[i:i + chunk] == token) + i for i in range(0, len(tokens), chunk)]
    return np.concatenate(found).tolist() if found else []


class TokenStream:
    """Token arrays read as one stream, without joining them: a slice copies only the tokens it holds."""

    def __init__(self, arrays):
        self.arrays = [a for a in arrays if len(a)]
        self.ends = np.cumsum([len(a) for a in self.arrays], dtype=np.int64)  # where each array ends in the stream

    def __len__(self):
        return int(self.ends[-1]) if len(self.ends) else 0

    def __getitem__(self, window):
        start, stop = window.start or 0, len(self) if window.stop is None else min(window.stop, len(self))
        parts = []
        i = int(np.searchsorted(self.ends, start, side="right"))  # the array holding token `start`
        while start < stop:
            begin = int(self.ends[i]) - len(self.arrays[i])  # where array i starts in the stream
            parts.append(self.arrays[i][start - begin:stop - begin])
            start, i = start + len(parts[-1]), i + 1
        return np.concatenate(parts) if parts else np.empty(0, dtype=np.uint16)


def check_enough_tokens(total, needed, split, data):
    if total < needed:
        raise InputError(f"the {split} split of {data} holds {total:,} tokens, fewer than one batch of every "
                         f"process needs (B * T * processes + 1 = {needed:,}); use a smaller --batch_size or "
                         "--seq_len, or more data")


def check_token_ids(tokens, vocab_size, where):
    if vocab_size is not None and len(tokens) and tokens.max().item() >= vocab_size:
        raise InputError(f"{where} holds token id {tokens.max().item()}, past the model's vocabulary of "
                         f"{vocab_size}: these tokens were not made with GPT-2's tokenizer, or the model's "
                         "--vocab_size is too small")


# ----------------------------------------------------------------------------------------------------------------------
# The training step: the batch the processes split, and the guard against a NaN or inf


def check_total_batch(total_batch_size, B, T, world_size):
    per_micro_step = B * T * world_size
    if total_batch_size % per_micro_step != 0:
        raise InputError(f"--total_batch_size {total_batch_size:,} is not a multiple of batch_size * seq_len * "
                         f"processes = {B} * {T} * {world_size} = {per_micro_step:,}: set --total_batch_size to a "
                         f"multiple of {per_micro_step:,}, or change --batch_size / --seq_len")


def step_if_finite(optimizer, loss, norm, scaler=None):
    """optimizer.step(), unless the loss or the gradient norm is NaN or inf: that would poison the weights for good.
    The fused AdamW kernel takes the check as a tensor (found_inf, as torch's GradScaler hands it over) and skips the
    update on the device itself, so the CPU need not wait for the GPU here; other optimizers need the answer first.
    Under float16 the gradient scaler steps: it skips a step whose gradients are not finite in the same way (a NaN
    loss makes NaN gradients), then lowers its scale after such a step, or raises it after 2,000 good ones."""
    if scaler is not None and scaler.is_enabled():
        scaler.step(optimizer)
        scaler.update()
        return
    bad = ~(torch.isfinite(loss) & torch.isfinite(norm))
    if optimizer.defaults.get("fused"):
        optimizer.found_inf = bad.float()
        optimizer.step()
    elif not bad.item():
        optimizer.step()


def nonfinite_message(step, what, log_dir):
    return (f"step {step}: {what} is not finite, so the run stops here. The checkpoints in {log_dir}/ are all "
            "from before it and untouched: continue from the last one with --resume auto (a lower --max_lr may "
            "help), or pass --skip_nonfinite to skip such steps instead of stopping")


def collapsed_scale_message(step, scale, log_dir):
    return (f"step {step}: float16's loss scale fell to {scale:g}: the gradients overflow float16 at every step, so "
            f"the run stops here. The checkpoints in {log_dir}/ are all from before it and untouched: continue from "
            "the last one with --resume auto in --dtype bfloat16 (where the GPU has it) or float32, or with a lower "
            "--max_lr; or pass --skip_nonfinite to skip such steps instead of stopping")


def skipped_step(step, loss, norm, scale, skip_nonfinite, log_dir, log):
    """Whether the step just taken was skipped (loss, norm and float16's loss scale, or None: floats read after it).
    Under float16 a step whose gradients overflowed (a finite loss, an inf or NaN norm) was skipped by the scaler as
    designed, which lowered its scale: logged, and the run goes on. A NaN or inf loss or norm otherwise, or a scale
    fallen below 1, stops the run, or with --skip_nonfinite is logged as skipped. All processes see the same numbers."""
    if math.isfinite(loss) and (scale is None or scale >= 1):
        if math.isfinite(norm):
            return False
        if scale is not None:
            print0(f"step {step:5d} | loss {loss:.6f} | the gradients overflowed float16: step skipped by the scaler, "
                   f"loss scale now {scale:g} ({log.counts['overflow'] + 1} skipped in all)")
            log.write(f"{step} overflow {scale:g}")
            return True
    if not skip_nonfinite:
        raise RunError(collapsed_scale_message(step, scale, log_dir) if math.isfinite(loss) and
                                math.isfinite(norm) else nonfinite_message(step, f"loss {loss}, gradient norm "
                                                                                    f"{norm}", log_dir))
    print0(f"step {step:5d} | loss {loss} | norm {norm} | not finite: step skipped")
    log.write(f"{step} skipped {loss}")
    return True


# ----------------------------------------------------------------------------------------------------------------------
# Checkpoints, resume and log.txt


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


def save_checkpoint(path, model, step, val_loss, args, optimizer=None, train_loader=None, scaler=None):
    """Write what it takes to use the model again (weights, shape), what says how it was made (step, val loss, the
    run's arguments) and, given the optimizer and the data loader, what it takes to continue the run exactly (their
    state, float16's gradient scaler's and the CPU's RNG state). Plain tensors, numbers and strings only, so it loads
    with weights_only=True. Written
    to a temporary name, synced to the disk and renamed: a crash or a power loss never leaves a file that looks
    whole and is not."""
    checkpoint = {"model": model.state_dict(), "config": asdict(model.config), "step": step, "val_loss": val_loss,
                  "args": vars(args)}
    if optimizer is not None:
        checkpoint["optimizer"] = optimizer.state_dict()
        checkpoint["train_loader"] = train_loader.state_dict()
        # The CPU's RNG only. Nothing in training draws from a GPU's RNG (no dropout; samples use a generator of
        # their own, seeded anew), and each GPU's state belongs to one process, which a resume on another layout of
        # GPUs would not have. Not asking for it also keeps a CPU run on a GPU machine from starting CUDA here.
        checkpoint["rng"] = {"cpu": torch.get_rng_state()}
        if scaler is not None and scaler.is_enabled():
            checkpoint["scaler"] = scaler.state_dict()
    try:
        write_atomically(path, lambda f: torch.save(checkpoint, f))
    except (OSError, RuntimeError) as e:  # a full disk, say (torch.save reports it as a RuntimeError after an OSError)
        cause = e
        while cause is not None and not isinstance(cause, OSError):
            cause = cause.__context__
        if cause is None:
            raise
        raise RunError(f"could not write the checkpoint {path} ({cause}): the run stops here. The checkpoints before "
                       "it and log.txt are intact: free some space and continue with --resume auto") from None


def read_checkpoint(path):
    """A checkpoint written by save_checkpoint, as a dict. weights_only=True: the file can only hold tensors and
    plain data, so loading one cannot run code. mmap=True: the tensors are the file's pages, read as they are used
    and shared through the page cache by the processes of a machine, not a copy in each process's memory (every
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
        stop_if_any_failed(None if readable else f"--resume {path}: {what}", ddp)
    return path


def check_resumable(path, checkpoint, flags, world_size):
    """Refuse to resume the checkpoint's run unless every flag in `flags` ({name: value}: those that would change what
    the run computes) has the value the run was saved with, and it runs on as many processes."""
    if "optimizer" not in checkpoint:
        raise InputError(f"{path} holds weights only, not a run to resume; start from it with --init_from")
    saved = checkpoint["args"]
    for name, value in flags.items():
        if saved[name] != value:
            raise InputError(f"--resume {path}: that run had --{name} {saved[name]}, this one {value}; resume with "
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


def move_earlier_run(log_dir):
    """A run that starts from step 0 in a log_dir that holds an earlier run's log.txt or checkpoints moves them into a
    folder of their own there, named after the time of the newest, and says where: nothing of the earlier run is lost
    (its log would have been cut to nothing), and --resume auto then finds only this run's checkpoints."""
    names = [n for n in os.listdir(log_dir) if n == "log.txt" or re.fullmatch(r"model_(\d+)\.pt", n)]
    if not names:
        return
    newest = max(os.path.getmtime(os.path.join(log_dir, n)) for n in names)
    folder = os.path.join(log_dir, datetime.datetime.fromtimestamp(newest).strftime("run_%Y-%m-%d_%H-%M-%S"))
    folder = next(f for f in (folder, *(f"{folder}_{i}" for i in range(2, 1000))) if not os.path.exists(f))
    os.makedirs(folder)
    for name in names:
        os.replace(os.path.join(log_dir, name), os.path.join(folder, name))
    print(f"{log_dir}/ held an earlier run ({', '.join(sorted(names))}): moved to {folder}/", flush=True)


class Log:
    """log_dir/log.txt, one line per event ("{step} train {loss}", "{step} val {loss}", ...), each appended and
    flushed at once. A run resumed at step S keeps the lines before S and the evaluations of S itself (logged just
    before its checkpoint) and drops the rest, which the killed run wrote after its checkpoint. Only the process with
    write=True (the master) writes. A run from step 0 first moves an earlier run's files aside (move_earlier_run).
    A line it cannot write does not raise: that would stop the master alone while the
    other processes wait for it in their next collective. It is kept in `error`, and the training loop stops every
    process with it (in its step's all-reduce, and at each evaluation). counts: the lines of each kind so far."""

    def __init__(self, log_dir, resume_step=None, write=True, ddp=False):
        self.path, self.write_here, self.error = os.path.join(log_dir, "log.txt"), write, None
        self.counts = collections.Counter()
        run_or_stop_all(ddp, self.start, resume_step, where=write)  # starting it: the same for every process

    def start(self, resume_step):
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
            self.error = (f"could not add to {self.path} ({e}): the run stops here. The checkpoints and the lines "
                          "before are intact: free some space and continue with --resume auto")


def report(step, kind, label, value, log, ddp):
    """Print an evaluation's result and append it to log.txt; if the log could not be written, stop every process."""
    print0(f"step {step:5d} | {label} {value:.4f}")
    log.write(f"{step} {kind} {value:.4f}")
    stop_if_any_failed(log.error, ddp)


# ----------------------------------------------------------------------------------------------------------------------
# Devices and precision


def pick_device(requested="auto"):
    """The device to run on and its type ("cuda", "mps" or "cpu"): the fastest one present unless one is asked for."""
    if requested == "auto":
        if torch.cuda.is_available():
            requested = "cuda"
        elif hasattr(torch.backends, "mps") and torch.backends.mps.is_available():
            requested = "mps"  # Apple silicon GPU
        else:
            requested = "cpu"
    device_type = requested.split(":")[0]
    if device_type == "cuda" and not torch.cuda.is_available():
        raise InputError(f"--device {requested}: this machine has no CUDA GPU (or torch was installed without CUDA); "
                         "use --device cpu, or leave --device out to pick the best device present")
    if device_type == "mps" and not (hasattr(torch.backends, "mps") and torch.backends.mps.is_available()):
        raise InputError(f"--device {requested}: MPS is not available here; use --device cpu")
    if device_type not in ("cuda", "mps", "cpu"):
        raise InputError(f"--device {requested}: unknown device; use auto, cpu, cuda, cuda:N or mps")
    return requested, device_type


def gpu_of(local_rank, visible):
    """The GPU of the process with this local rank (torchrun's LOCAL_RANK), given how many GPUs it sees: its own of
    the machine's GPUs, or the only one it sees where the launcher gives each process one GPU (SLURM's
    --gpus-per-task=1 sets CUDA_VISIBLE_DEVICES per process, so every process's GPU is its cuda:0)."""
    if visible == 1:
        return "cuda:0"
    if local_rank >= visible:
        raise InputError(f"local rank {local_rank} has no GPU of its own: its process sees {visible} GPUs; start at "
                         f"most {visible} processes per machine (torchrun --nproc_per_node {visible})")
    return f"cuda:{local_rank}"


DTYPES = {"float32": None, "bfloat16": torch.bfloat16, "float16": torch.float16}  # --dtype: autocast's dtype


def autocast_choice(requested, device_type):
    """The dtype that matmuls run in under autocast (None: plain float32), and why, for the run to say. auto: bf16
    where the device has it natively, float16 (with a gradient scaler) on CUDA GPUs whose tensor cores do float16
    only, float32 elsewhere."""
    if requested != "auto":
        return DTYPES[requested], "as asked"
    if device_type == "cuda":
        # Native bf16 from compute capability 8.0 (A100, RTX 30xx) on; torch.cuda.is_bf16_supported() also says yes
        # where bf16 is emulated (V100, T4), slower than float32. Tensor cores from 7.0 on (V100, T4, RTX 20xx) do
        # float16, 8x float32's rate on a T4 (65 against 8 TFLOP/s, its datasheet).
        capability, name = torch.cuda.get_device_capability(), torch.cuda.get_device_name()
        has = f"{name}, compute capability {capability[0]}.{capability[1]}"
        if capability >= (8, 0):
            return torch.bfloat16, f"auto: {has}, has bf16 tensor cores"
        if capability >= (7, 0):
            return torch.float16, f"auto: {has}, has float16 tensor cores and no bf16 ones"
        return None, f"auto: {has}, has no tensor cores"
    if device_type == "cpu":
        # bf16 pays off only where the CPU has bf16 instructions (AVX512-BF16, AMX); elsewhere it is emulated and
        # slower than fp32 (BENCHMARKS.md).
        has_bf16 = getattr(torch.cpu, "_is_avx512_bf16_supported", lambda: False)()
        has_amx = getattr(torch.cpu, "_is_amx_tile_supported", lambda: False)()
        if has_bf16 or has_amx:
            return torch.bfloat16, f"auto: this CPU has {'AMX' if has_amx else 'AVX512-BF16'} instructions"
        return None, "auto: this CPU has no bf16 instructions (AVX512-BF16, AMX), and emulated bf16 is slower"
    return None, "auto: float32 on MPS"


def pick_autocast_dtype(requested, device_type):
    """The dtype that matmuls run in under autocast, or None for plain float32 (autocast_choice without the why)."""
    return autocast_choice(requested, device_type)[0]


def autocast(device_type, dtype):
    """Mixed precision for the forward pass and the loss: matmuls in dtype, precision-sensitive ops (softmax,
    LayerNorm, the loss) kept in float32 by autocast itself. Parameters and gradients stay float32."""
    if dtype is None:
        return contextlib.nullcontext()
    return torch.autocast(device_type=device_type, dtype=dtype)


@contextlib.contextmanager
def full_float32():
    """Float32 matmuls in full float32 inside, whatever torch.set_float32_matmul_precision says outside (train_gpt2.py
    asks for TF32 on CUDA, whose products keep 10 bits of mantissa where float32 keeps 23)."""
    precision = torch.get_float32_matmul_precision()
    torch.set_float32_matmul_precision("highest")
    try:
        yield
    finally:
        torch.set_float32_matmul_precision(precision)


def micro_batch_fits(model, B, T, device, amp_dtype, reserve_bytes):
    """Whether one forward and backward of B rows of T tokens runs on the GPU with reserve_bytes more set aside (the
    optimizer's state, made at the first step). Not a training step: random tokens from a generator of its own, no
    gradient all-reduce, the gradients dropped, so the weights, the optimizer, the data and the RNG are as they were."""
    reserve = tokens = loss = None
    try:
        reserve = torch.empty(reserve_bytes, dtype=torch.uint8, device=device)
        generator = torch.Generator(device=device).manual_seed(0)
        tokens = torch.randint(50257, (B, T + 1), generator=generator, device=device)
        with model.no_sync() if hasattr(model, "no_sync") else contextlib.nullcontext(), autocast("cuda", amp_dtype):
            loss = model(tokens[:, :-1], tokens[:, 1:])[1]
        loss.backward()
        return True
    except torch.cuda.OutOfMemoryError:
        return False
    finally:
        del reserve, tokens, loss
        for p in model.parameters():
            p.grad = None
        torch.cuda.empty_cache()


def micro_batch_that_fits(model, B, T, device, amp_dtype, reserve_bytes, ddp, given):
    """The micro-batch to train with on a GPU: B if one forward and backward of it fits (micro_batch_fits), else the
    largest of B/2, B/4, ... that does, on every process (they agree on the smallest); the run says so. A B the
    command line gave is used as given, or refused if it does not fit. Every process must call it."""
    memory = f"{torch.cuda.get_device_properties(device).total_memory / 2**30:.0f} GB"
    tried = B
    while True:
        fits = torch.tensor(int(micro_batch_fits(model, B, T, device, amp_dtype, reserve_bytes)))
        if ddp:  # a CPU tensor: gloo carries it, whatever has filled the GPU
            dist.all_reduce(fits, op=dist.ReduceOp.MIN)
        if fits.item():
            break
        if given:
            raise InputError(f"--batch_size {B} does not fit in the GPU's {memory}: one forward and backward of {B} x "
                             f"{T} tokens ran out of memory. Lower --batch_size, or leave it out and the run takes the "
                             "largest that fits")
        if B == 1:
            raise InputError(f"not even one row of {T} tokens fits in the GPU's {memory}: lower --seq_len, or train a "
                             "smaller --model")
        B //= 2
    if B < tried and os.environ.get("RANK", "0") == "0":
        print(f"micro-batch {B} rows ({tried} did not fit in the GPU's {memory})", flush=True)
    return B


def use_compile(requested, device_type):
    """--compile / --no-compile, or by default on where it is measured to help (BENCHMARKS.md): CUDA, and CPUs but on
    Windows, which lacks the C++ toolchain that compiling for the CPU needs as often as not. MPS support is young."""
    if requested is not None:
        return requested
    return device_type == "cuda" or (device_type == "cpu" and sys.platform != "win32")


def synchronize(device_type):
    """Wait for queued GPU work, so that a timer measures the work and not just its launch."""
    if device_type == "cuda":
        torch.cuda.synchronize()
    elif device_type == "mps":
        torch.mps.synchronize()


# Dense tensor-core peaks in TFLOP/s, (float16, bf16) with float32 accumulation (what PyTorch's matmuls do), from
# NVIDIA's datasheets and architecture whitepapers, half their "with sparsity" figures; bf16 None where the GPU has
# no bf16 tensor cores. MFU is reported only for these: a wrong peak would make a wrong MFU look precise.
PEAK_TFLOPS = {
    "A100": (312, 312), "H100 SXM": (989, 989), "H100 PCIe": (756, 756), "H100 NVL": (835, 835),  # their datasheets
    "H200 SXM": (989, 989), "H200 NVL": (835, 835),
    "T4": (65, None),  # T4 datasheet: "Mixed-Precision (FP16/FP32) 65 TFLOPS"
    "V100 SXM2": (125, None), "V100 PCIe": (112, None), "V100S PCIe": (130, None),  # V100 datasheet, "Tensor"
    "A10": (125, 125),  # A10 datasheet: BF16 tensor core 125 TF (250 with sparsity)
    "A10G": (70, 70),  # NVIDIA's A10G datasheet (on AWS's site): 70 TF (140 with sparsity); not the A10's 125
    "L4": (121, 121),  # L4 datasheet: 242 TF with sparsity, "one-half lower without"
    "L40S": (362, 362),  # L40S datasheet: 362.05 TF (733 with sparsity)
    "RTX A6000": (154.8, 154.8),  # GA102 whitepaper, appendix C: with FP32 accumulate 154.8 (309.7 sparse)
    "RTX 3090": (71, 71),  # GA102 whitepaper, appendix A: FP16 with FP32 accumulate 71 (142 sparse)
    "RTX 4090": (165.2, 165.2),  # Ada whitepaper, appendix A: FP16 with FP32 accumulate 165.2 (330.4 sparse)
}
# The whole name torch.cuda.get_device_name() gives -> PEAK_TFLOPS's key. The whole name must match: "NVIDIA RTX
# A1000" is no A100, "NVIDIA A100" no A10, and a "Laptop GPU", "RTX 4090 D" or "RTX 3090 Ti" has peaks of its own.
GPU_NAMES = [(r"NVIDIA A100([- ].*)?", "A100"), (r"NVIDIA (H100|H200)( \d+GB)? (NVL|PCIe)", r"\1 \3"),
             (r"NVIDIA (H100|H200)( \d+GB HBM3e?)?", r"\1 SXM"), (r"Tesla T4", "T4"),
             (r"Tesla V100-SXM2-(16|32)GB", "V100 SXM2"), (r"Tesla V100-PCIE-(16|32)GB", "V100 PCIe"),
             (r"Tesla V100S-PCIE-32GB", "V100S PCIe"), (r"NVIDIA (A10|A10G|L4|L40S|RTX A6000)", r"\1"),
             (r"(NVIDIA )?GeForce RTX (3090|4090)", r"RTX \2")]


def gpu_model(name):
    """The PEAK_TFLOPS key of a name torch.cuda.get_device_name() gives ("NVIDIA H100 80GB HBM3" -> "H100 SXM",
    "Tesla T4" -> "T4"), or None."""
    for pattern, model in GPU_NAMES:
        if match := re.fullmatch(pattern, name):
            return match.expand(model)
    return None


def peak_flops(device_type, dtype=torch.bfloat16):
    """The dense tensor-core peak of this process's GPU in FLOP/s for a run under `dtype` autocast (float16's peak for
    float16; bf16's otherwise, or float16's where the GPU has no bf16), or None where it is not known."""
    if device_type != "cuda" or (model := gpu_model(torch.cuda.get_device_name())) is None:
        return None
    float16, bf16 = PEAK_TFLOPS[model]
    return 1e12 * (bf16 if dtype is not torch.float16 and bf16 else float16)


# ----------------------------------------------------------------------------------------------------------------------
# Model presets


# Shape and the recipe that goes with it. The GPT-3 rows are the GPT-3 paper's table 2.1 (context 2048). The GPT-2
# rows take OpenAI's GPT-2 shapes (context 1024) and the batch and learning rate of the GPT-3 model of nearest size,
# since the GPT-2 paper does not give them per size. The micro-batch B is this project's: see below.
#          name: (n_layer, n_head, n_embd, context, total_batch_size, max_lr, B)
MODEL_PRESETS = {
    "gpt2": (12, 12, 768, 1024, 2**19, 6e-4, 64),  # 124M, 59 GB by the estimate below
    "gpt2-medium": (24, 16, 1024, 1024, 2**19, 3e-4, 32),  # 350M, 55 GB
    "gpt2-large": (36, 20, 1280, 1024, 2**19, 2.5e-4, 16),  # 774M, 52 GB
    "gpt2-xl": (48, 25, 1600, 1024, 2**20, 2e-4, 8),  # 1558M, 57 GB
    "gpt3-small": (12, 12, 768, 2048, 2**19, 6e-4, 32),  # 125M, 59 GB
    "gpt3-medium": (24, 16, 1024, 2048, 2**19, 3e-4, 16),  # 350M, 55 GB
    "gpt3-large": (24, 16, 1536, 2048, 2**19, 2.5e-4, 8),  # 760M, 46 GB
    # The table gives GPT-3 XL 24 heads of 128 channels, which is 3072, not its d_model of 2048; we keep the head
    # size of 128 and d_model 2048, so 16 heads.
    "gpt3-xl": (24, 16, 2048, 2048, 2**20, 2e-4, 8),  # 1.3B, 64 GB
}
# Each micro-batch B is the largest power of two, up to 64K tokens (the 124M recipe's 64 x 1024), whose memory by
# training_memory() fits in 90% of an 80 GB GPU (the rest for the CUDA context and the allocator's fragmentation).
# An estimate until measured on the GPU: if a run still runs out of memory, halve --batch_size.
GPU_MEMORY = 80e9


def training_memory(n_layer, n_embd, context, tokens, vocab_size=50304):
    """Bytes one training process needs, estimated, for `tokens` = B * T tokens per micro-step under bf16 autocast with
    flash attention:
      18 per parameter: float32 weights, gradients and AdamW's two moments (4 + 4 + 8), and autocast's bf16 copy of
        the weights (2). Under DDP the gradients are its all-reduce buckets: with gradient_as_bucket_view=True each
        .grad is a view into them (PyTorch PR #41954 measured the saving as the size of the gradients); without it,
        DDP would keep the buckets beside the gradients, 4 more;
      40 * n_embd per token and layer, the activations kept for backward: Korthikanti et al. 2022 ("Reducing
        Activation Recomputation in Large Transformer Models", section 4.1) count 34 * n_embd in 16-bit, plus a
        5 * heads * T term for the attention matrix that flash attention never stores; the residual stream and the
        LayerNorms here are float32, hence 40;
      10 * vocab per token for the logits: bf16 logits, the float32 log-softmax the loss keeps, and its gradient."""
    n_params = n_layer * (12 * n_embd**2 + 13 * n_embd) + (vocab_size + context) * n_embd + 2 * n_embd
    return 18 * n_params + tokens * (40 * n_layer * n_embd + 10 * vocab_size)


WARMUP_TOKENS = 375e6  # GPT-3 paper, appendix B: linear warmup over the first 375M tokens
TRAIN_TOKENS = 10e9  # one pass over FineWeb-Edu sample-10BT


def preset_flags(name):
    """The flag values of the --model preset `name`, which parse_args makes the defaults of those flags (gpt2's for a
    name that is not a preset, which parse_args then refuses)."""
    n_layer, n_head, n_embd, context, total_batch_size, max_lr, B = MODEL_PRESETS.get(name, MODEL_PRESETS["gpt2"])
    return dict(n_layer=n_layer, n_head=n_head, n_embd=n_embd, block_size=context, seq_len=context, batch_size=B,
                total_batch_size=total_batch_size, max_lr=max_lr)


def derived_flags(total_batch_size, max_lr):
    """The values of the flags that follow others unless they are given: the run length and the warmup are 10B and
    375M tokens at the total batch, and min_lr is 0.1 * max_lr (GPT-3 paper, appendix B)."""
    return dict(max_steps=int(TRAIN_TOKENS // total_batch_size), warmup_steps=int(WARMUP_TOKENS // total_batch_size),
                min_lr=0.1 * max_lr)
