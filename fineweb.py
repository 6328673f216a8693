"""
FineWeb-Edu, tokenized with GPT-2's BPE and cut into shards for train_gpt2.py.

The data: FineWeb-Edu (https://huggingface.co/datasets/HuggingFaceFW/fineweb-edu) is HuggingFace's set of
English web pages from Common Crawl, filtered by a classifier that scores how educational a page is. We use its
config `sample-10BT`, a sample of about 10 billion GPT-2 tokens (hence the name), which is what a GPT-2
124M run of ~10B tokens needs.

Run (from the folder you will train in; the shards go to ./edu_fineweb10B/):

    python fineweb.py

What it does: downloads the dataset through HuggingFace `datasets` (into its cache, HF_DATASETS_CACHE; the cache
holds the text itself, which takes more disk than the shards because an English GPT-2 token is a few bytes of
text but only 2 bytes in a shard), turns every document into [<|endoftext|>] + its GPT-2 tokens, and cuts that
one stream, in dataset order, into shards of exactly --shard_size tokens (a document may straddle two shards):

    edu_fineweb10B/edufineweb_val_000000.npy     the first shard is held out for validation
    edu_fineweb10B/edufineweb_train_000001.npy   the rest are for training; the last one holds the remainder
    edu_fineweb10B/edufineweb_train_000002.npy
    ...

Each shard is a numpy .npy file of dtype uint16 (GPT-2's 50,257 token ids fit in 16 bits), so with the default
--shard_size of 100M tokens each full shard is 200 MB, and ~10B tokens make about 100 shards, ~20 GB in all.
Tokenizing uses every CPU core; the shards are written under a temporary name and renamed, and re-running after an
interruption keeps every shard already on disk with the right tokens, so the result is the same as one clean run.

It also runs on your own data: --dataset takes a local parquet, json/jsonl or .txt file, or a folder of them, e.g.
`python fineweb.py --dataset input.txt --out_dir shakespeare --shard_size 100000`.
"""
import argparse
import glob
import multiprocessing as mp
import os
import re
import signal

import numpy as np
import tiktoken
from tqdm import tqdm

from plumbing.cli import InputError, RunError, Stopped, command_line, whole_number
from plumbing.files import check_folder, lock_folder, write_atomically

# ----------------------------------------------------------------------------------------------------------------------
# Tokenizing one document

# Created on first use, once per process: each worker process builds its own copy (with the spawn start method a
# worker re-imports this module, and a tokenizer built at import time would make `import fineweb` do work).
_enc = None


def encoder():
    global _enc
    if _enc is None:
        _enc = tiktoken.get_encoding("gpt2")
    return _enc


def tokenize(text):
    """One document's text -> uint16 array of GPT-2 tokens, starting with <|endoftext|>.

    The <|endoftext|> token goes *before* each document, so every document in a shard is delimited by it, the first
    one included. encode_ordinary treats a literal "<|endoftext|>" inside web text as plain text, not as the special
    token, so only our delimiters carry id 50256.
    """
    enc = encoder()
    tokens = np.array([enc.eot_token] + enc.encode_ordinary(text), dtype=np.int64)
    # GPT-2's 50,257 ids always fit in uint16; a tokenizer with a larger vocabulary would silently wrap around.
    if tokens.max() >= 2**16:
        raise ValueError(f"token id {tokens.max()} does not fit in uint16: the shards only hold ids below 65,536")
    return tokens.astype(np.uint16)


# ----------------------------------------------------------------------------------------------------------------------
# Reading the documents

# File extension -> the `datasets` builder that reads it.
BUILDERS = {".parquet": "parquet", ".json": "json", ".jsonl": "json", ".txt": "text"}


def looks_like_hub_name(name):
    """'HuggingFaceFW/fineweb-edu' or 'wikitext': at most one slash, no path prefix and no data-file extension."""
    return re.fullmatch(r"[\w.-]+(/[\w.-]+)?", name) is not None and os.path.splitext(name)[1] not in BUILDERS


def local_data_files(path):
    """A local file or folder -> (builder, sorted list of files). Raises an InputError when nothing there is
    readable."""
    if os.path.isdir(path):
        files = sorted(f for f in glob.glob(os.path.join(path, "*")) if os.path.splitext(f)[1] in BUILDERS)
        if not files:
            raise InputError(f"no data files in {path}/: put .parquet, .json, .jsonl or .txt files there (this "
                             f"folder is not searched recursively), or pass one file with --dataset")
    else:
        files = [path]
    kinds = sorted({BUILDERS.get(os.path.splitext(f)[1]) for f in files}, key=str)
    if kinds == [None]:
        raise InputError(f"cannot tell the format of {path}: name it .parquet, .json, .jsonl or .txt")
    if len(kinds) > 1:
        raise InputError(f"{path}/ mixes formats ({', '.join(kinds)}): keep one format per folder")
    return kinds[0], files


def load_docs(dataset, name, split, text_column="text"):
    """Load the documents as a `datasets.Dataset` holding only the text column.

    `dataset` is a local file/folder if it exists, else a HuggingFace hub name. Local .txt files are read whole:
    one file is one document (datasets' default of one document per line would put <|endoftext|> after every line).
    """
    # Imported here, not at the top: worker processes re-import this module and never need datasets (slow to import).
    import datasets

    if os.path.exists(dataset):
        builder, files = local_data_files(dataset)
        extra = {"sample_by": "document"} if builder == "text" else {}
        ds = datasets.load_dataset(builder, data_files=files, split="train", **extra)
    elif looks_like_hub_name(dataset):
        try:
            ds = datasets.load_dataset(dataset, name=name, split=split)
        except Exception as e:  # no network, a typo in the name or config: say so without a page of traceback
            raise RunError(f"could not load {dataset!r} (config {name!r}, split {split!r}) from the HuggingFace hub:"
                           f" {type(e).__name__}: {e}\ncheck the name, --name, --split and your network, or pass a "
                           f"local file with --dataset") from e
    else:
        raise InputError(f"--dataset {dataset}: no such file or folder (and not a hub name like "
                         "HuggingFaceFW/fineweb-edu): check the path")

    if text_column not in ds.column_names:
        raise InputError(f"no column {text_column!r} in {dataset}; its columns are {ds.column_names}: pass the one "
                         f"that holds the text with --text_column")
    feature = ds.features[text_column]
    if getattr(feature, "dtype", None) not in ("string", "large_string"):
        raise InputError(f"column {text_column!r} in {dataset} holds {feature}, not text: pass the column that holds "
                         f"the text with --text_column (columns: {ds.column_names})")
    return ds.select_columns([text_column])


def iter_texts(ds):
    """Yield the texts of a one-column Dataset in order (read from Arrow 1024 rows at a time, not row by row)."""
    (column,) = ds.column_names
    for batch in ds.iter(batch_size=1024):
        yield from batch[column]


# ----------------------------------------------------------------------------------------------------------------------
# Writing shards


def shard_path(out_dir, index):
    """Shard 0 is the validation shard, the others are for training."""
    split = "val" if index == 0 else "train"
    return os.path.join(out_dir, f"edufineweb_{split}_{index:06d}.npy")


def write_shard(path, tokens):
    """Write tokens to path, all or nothing (plumbing.files.write_atomically: a temporary name, synced, then renamed).
    np.save is given an open file because, given a file name, it appends '.npy' to one that lacks it."""
    try:
        write_atomically(path, lambda f: np.save(f, tokens, allow_pickle=False))
    except OSError as e:  # a full disk, say
        raise RunError(f"could not write {path} ({e}): the shards before it are complete and kept; free some space "
                       "and run fineweb.py again, which keeps them and writes the rest") from None


def already_written(path, tokens):
    """True if path is a readable shard that holds exactly these tokens (left there by an earlier run)."""
    try:
        on_disk = np.load(path, mmap_mode="r", allow_pickle=False)
    except (OSError, ValueError, EOFError):  # missing, truncated or not a .npy file
        return False
    return on_disk.dtype == np.uint16 and np.array_equal(on_disk, tokens)


def save_shard(out_dir, index, tokens):
    """Write one shard unless an earlier run already wrote the same one; returns True if it wrote."""
    path = shard_path(out_dir, index)
    if already_written(path, tokens):
        return False
    write_shard(path, tokens)
    return True


# ----------------------------------------------------------------------------------------------------------------------
# main


def parse_args(argv=None):

    parser = argparse.ArgumentParser(description="Tokenize FineWeb-Edu (or local text) with GPT-2's BPE into .npy "
                                                 "shards of uint16 tokens for train_gpt2.py.")
    parser.add_argument("--dataset", default="HuggingFaceFW/fineweb-edu",
                        help="a HuggingFace hub dataset, or a local .parquet/.json/.jsonl/.txt file or a folder of "
                             "them (one format, read in sorted order; a .txt file is one document)")
    parser.add_argument("--name", default="sample-10BT", help="config of the hub dataset (ignored for local files)")
    parser.add_argument("--split", default="train", help="split of the hub dataset (ignored for local files)")
    parser.add_argument("--out_dir", default="edu_fineweb10B",
                        help="folder for the shards, relative to the current directory (created if missing)")
    parser.add_argument("--shard_size", type=whole_number(1), default=100_000_000,
                        help="tokens per shard; the last shard holds the remainder")
    parser.add_argument("--workers", type=whole_number(1), default=os.cpu_count(),
                        help="tokenizer processes (default: all %(default)s cores here; 1 tokenizes in this process)")
    parser.add_argument("--text_column", default="text", help="the dataset column that holds each document's text")
    return parser.parse_args(argv)


@command_line  # a RunError ends the command with its message
def main(argv=None):
    """What `python fineweb.py ARGV` does."""
    args = parse_args(argv)
    check_folder("--out_dir", args.out_dir)  # before the dataset is downloaded or read
    lock_folder("--out_dir", args.out_dir)  # one fineweb.py per folder: two would write the same shards
    ds = load_docs(args.dataset, args.name, args.split, args.text_column)
    os.makedirs(args.out_dir, exist_ok=True)
    # A .tmp file is a shard that an interrupted run had not finished: never to be trusted, always safe to drop.
    for tmp in glob.glob(os.path.join(args.out_dir, "edufineweb_*.npy.tmp")):
        os.remove(tmp)

    if args.workers == 1:
        pool, token_stream = None, map(tokenize, iter_texts(ds))
    else:
        # spawn on every OS (it is the only choice on Windows and the default on macOS), so Linux tests exercise the
        # same path; it also avoids forking a process that already runs Arrow's threads.
        pool = mp.get_context("spawn").Pool(args.workers)
        # imap keeps dataset order, which makes the shards the same whatever --workers is. It sends documents in
        # chunks of 64 (tens of ms of tokenizing each), so the fixed cost of every message between processes is
        # small, and the chunks are still small enough to keep every worker busy until the end.
        token_stream = pool.imap(tokenize, iter_texts(ds), chunksize=64)

    # One shard is filled in this preallocated buffer, document pieces copied in with numpy slices.
    buf = np.empty(args.shard_size, dtype=np.uint16)
    index, fill, total, written = 0, 0, 0, 0
    bar = None
    try:
        for tokens in token_stream:
            total += len(tokens)
            while len(tokens) > 0:
                if fill == 0:
                    bar = tqdm(total=args.shard_size, unit="tokens", desc=f"shard {index}")
                # A document longer than the room left is split: its head ends this shard, its tail opens the next.
                n = min(args.shard_size - fill, len(tokens))
                buf[fill:fill + n] = tokens[:n]
                fill += n
                bar.update(n)
                tokens = tokens[n:]
                if fill == args.shard_size:
                    written += save_shard(args.out_dir, index, buf)
                    bar.close()
                    index, fill = index + 1, 0
        if fill > 0:  # the remainder
            written += save_shard(args.out_dir, index, buf[:fill])
            index += 1
    except KeyboardInterrupt:  # Ctrl-C: the complete shards stay, the one being written was removed (write_shard)
        raise Stopped(signal.SIGINT, f"\nstopped by SIGINT: the {index} complete shard(s) in {args.out_dir}/ are kept, "
                      "the one being written was removed; run the same command again to write the rest (it keeps the "
                      "shards already there)") from None
    finally:
        if bar is not None:
            bar.close()
        if pool is not None:
            pool.terminate()  # on an exception, do not wait for workers still tokenizing; on success they are idle

    num_shards = index
    if num_shards == 0:
        raise InputError(f"{args.dataset} has no documents: check --dataset, --name and --split")
    print(f"{total:,} tokens in {num_shards} shards in {args.out_dir}/ ({written} written, "
          f"{num_shards - written} already there)")
    if num_shards == 1:
        print(f"warning: everything went to the validation shard and there is no training shard: lower --shard_size "
              f"below {total:,}")
    # Shards past the end would come from an earlier run on other data or with another --shard_size; a data loader
    # would read them as if they belonged to this run, so point them out (but never delete a user's files).
    stale = []
    for path in sorted(glob.glob(os.path.join(args.out_dir, "edufineweb_*.npy"))):
        match = re.search(r"edufineweb_(?:val|train)_(\d+)\.npy$", path)
        if match and int(match.group(1)) >= num_shards:
            stale.append(path)
    if stale:
        print(f"warning: {len(stale)} shard(s) in {args.out_dir}/ are not from this run (e.g. {stale[0]}): "
              f"delete them before training")


if __name__ == "__main__":
    main()
