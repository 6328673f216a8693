"""
The training data: a text file, or the shards fineweb.py writes, read as one stream of tokens; checked before any
work, and the same on every machine.
"""
import hashlib
import os

import numpy as np
import torch

from plumbing.cli import InputError, check_total_batch
from plumbing.files import check_folder, fetch_tiny_shakespeare, lock_folder, sha256_of
from plumbing.processes import run_or_stop_all, stop_unless_same


def read_text(path):
    """The text of a --data file. A file named input.txt is tiny Shakespeare: fetched on first use and checked."""
    if os.path.basename(path) == "input.txt":
        fetch_tiny_shakespeare(path)
    check_data(path)
    try:
        with open(path, encoding="utf-8") as f:
            return f.read()
    except UnicodeDecodeError:
        raise InputError(f"--data {path}: not UTF-8 text (a binary file?); pass a text file, or a directory of "
                         "shards written by fineweb.py")


def shard_names(data, split):
    """The names of a split's shards in a directory written by fineweb.py, in name order."""
    return sorted(f for f in os.listdir(data) if f"_{split}_" in f and f.endswith(".npy"))


def shard_paths(data, split):
    """The shards of a split in a directory written by fineweb.py, as paths in name order."""
    check_data(data, splits=(split,))
    return [os.path.join(data, name) for name in shard_names(data, split)]


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


def documents(tokens, eot):
    """The documents of a shard, each opening with the token `eot`, as views of it (nothing is copied). The tokens
    before the first `eot`, the tail of a document that the shard before holds, are a piece of their own."""
    bounds = [0, *token_positions(tokens, eot), len(tokens)]
    return [tokens[a:b] for a, b in zip(bounds[:-1], bounds[1:]) if b > a]


def permutation(n, seed, *key):
    """A permutation of range(n) drawn for the run's seed and `key` (an epoch, a shard) alone: every rank draws the
    same one, so the ranks still read disjoint windows of one and the same stream. (sha256, not hash(): the same on
    every Python version.)"""
    digest = hashlib.sha256(repr((seed, *key)).encode()).digest()
    generator = torch.Generator().manual_seed(int.from_bytes(digest[:8], "little") % 2**63)
    return torch.randperm(n, generator=generator).tolist()


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


def check_data(data, splits=("train", "val")):
    """Raise an InputError unless what --data names is there: a folder with shards of each split, or a text file
    (input.txt is downloaded if missing: its folder must be writable)."""
    if os.path.isdir(data):
        for split in splits:
            if not shard_names(data, split):
                raise InputError(f"--data {data}: no shards matching '{split}' in it; run 'python fineweb.py' first, "
                                 "or pass --data input.txt")
    elif os.path.basename(data) == "input.txt" and not os.path.exists(data):
        check_folder("--data", os.path.dirname(data) or ".")  # tiny Shakespeare is downloaded there
    elif not os.path.isfile(data):
        raise InputError(f"--data {data}: no such file or shard directory; run 'python fineweb.py' to make the "
                         "FineWeb-Edu shards in edu_fineweb10B/, or pass --data input.txt")
    elif not os.access(data, os.R_OK):
        raise InputError(f"--data {data}: cannot be read; check its permissions")


def check_paths(data, log_dir=None, hellaswag_dir=None):
    """Raise an InputError for the first path a training run reads or writes that will not do: --data; --log_dir, on
    the process that writes it (None on the others); --hellaswag_dir, where the val file is downloaded if missing
    (None: no HellaSwag)."""
    check_data(data)
    if log_dir:
        check_folder("--log_dir", log_dir)
    if hellaswag_dir:
        missing = not os.path.exists(os.path.join(hellaswag_dir, "hellaswag_val.jsonl"))
        check_folder("--hellaswag_dir", hellaswag_dir, write=missing)


def check_same_data(data, ddp):
    """Under torchrun, stop every process unless every machine's --data holds the same files as rank 0's."""
    if ddp:
        stop_unless_same(data_fingerprint(data), f"--data {data}: not the same files as on rank 0's machine (another "
                         "shard, or one of another size); make every machine's copy the same", ddp)


def prepare_files(args, local_rank, master_process, world_size, ddp, download_hellaswag):
    """Before any work, so that a wrong path costs seconds: check the batch and the paths the run reads and writes,
    fetch tiny Shakespeare and HellaSwag's val set (download_hellaswag: hellaswag.py's download) once per machine (by
    its local rank 0, while the others wait), check that every machine holds the same data, then lock --log_dir for
    this run. A problem on any process stops them all."""
    check_total_batch(args.total_batch_size, args.batch_size, args.seq_len, world_size)  # a batch the GPUs split
    run_or_stop_all(ddp, check_paths, args.data, args.log_dir if master_process else None,
                    args.hellaswag_dir if args.hellaswag else None)
    if os.path.basename(args.data) == "input.txt":
        run_or_stop_all(ddp, fetch_tiny_shakespeare, args.data, where=local_rank == 0)
    if args.hellaswag:
        run_or_stop_all(ddp, download_hellaswag, "val", args.hellaswag_dir, where=local_rank == 0)
    check_same_data(args.data, ddp)  # each machine reads its own copy
    run_or_stop_all(ddp, lock_folder, "--log_dir", args.log_dir, where=master_process)
