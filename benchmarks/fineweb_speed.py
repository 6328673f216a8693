"""
Benchmark fineweb.py: tokens per second with 1 worker and with all cores, on a local corpus.

FineWeb-Edu cannot be downloaded everywhere, so the corpus is made from tiny Shakespeare (input.txt, the lecture's
first dataset): its paragraphs, shuffled with a fixed seed, are packed into documents of a few KB (about the size of
a web page) until the corpus reaches --mb megabytes, and written as jsonl. Each timing is one full
`python fineweb.py` run in a fresh process, so it includes starting Python, loading the dataset from datasets'
cache and writing the shards; a first run, not timed, builds that cache.

    python benchmarks/fineweb_speed.py --input input.txt

prints the median of --repeats runs per worker count, and tiktoken alone on one core as a reference point.
"""
import argparse
import json
import os
import random
import shutil
import statistics
import subprocess
import sys
import time

import tiktoken

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def make_corpus(input_path, path, mb, seed=0):
    """Shuffled Shakespeare paragraphs packed into ~1-8 KB documents, mb megabytes of jsonl; returns the texts."""
    with open(input_path, encoding="utf-8") as f:
        paragraphs = [p for p in f.read().split("\n\n") if p.strip()]
    rng = random.Random(seed)
    docs, size = [], 0
    while size < mb * 1e6:
        rng.shuffle(paragraphs)
        i = 0
        while i < len(paragraphs) and size < mb * 1e6:
            target, doc = rng.randint(1000, 8000), []
            while i < len(paragraphs) and sum(map(len, doc)) < target:
                doc.append(paragraphs[i])
                i += 1
            docs.append("\n\n".join(doc))
            size += len(docs[-1])
    with open(path + ".tmp", "w", encoding="utf-8") as f:
        for d in docs:
            f.write(json.dumps({"text": d}) + "\n")
    os.replace(path + ".tmp", path)
    return docs


def time_run(args, corpus, workers, env):
    """Wall-clock seconds of one fresh `python fineweb.py` run into an empty folder."""
    out = os.path.join(args.work_dir, "shards")
    shutil.rmtree(out, ignore_errors=True)
    cmd = [sys.executable, os.path.join(ROOT, "fineweb.py"), "--dataset", corpus, "--out_dir", out,
           "--shard_size", str(args.shard_size), "--workers", str(workers)]
    t0 = time.perf_counter()
    subprocess.run(cmd, env=env, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return time.perf_counter() - t0


def main(argv=None):
    parser = argparse.ArgumentParser(description="Time fineweb.py on a local corpus made from tiny Shakespeare.")
    parser.add_argument("--input", default="input.txt", help="tiny Shakespeare, the source of the corpus")
    parser.add_argument("--work_dir", default="/tmp/fineweb_bench", help="where the corpus, cache and shards go")
    parser.add_argument("--mb", type=float, default=30, help="corpus size in megabytes of text")
    parser.add_argument("--shard_size", type=int, default=1_000_000, help="tokens per shard (--shard_size of fineweb)")
    parser.add_argument("--workers", type=int, nargs="+", default=[1, os.cpu_count()], help="worker counts to time")
    parser.add_argument("--repeats", type=int, default=3, help="timed runs per worker count (the median is reported)")
    args = parser.parse_args(argv)

    os.makedirs(args.work_dir, exist_ok=True)
    corpus = os.path.join(args.work_dir, "corpus.jsonl")
    docs = make_corpus(args.input, corpus, args.mb)
    # datasets' cache of the corpus lives with the benchmark, not in the user's home folder.
    env = dict(os.environ, HF_DATASETS_CACHE=os.path.join(args.work_dir, "hf_cache"))

    enc = tiktoken.get_encoding("gpt2")
    t0 = time.perf_counter()
    total = sum(1 + len(enc.encode_ordinary(d)) for d in docs)
    ceiling = total / (time.perf_counter() - t0)
    print(f"corpus: {len(docs):,} documents, {sum(map(len, docs)) / 1e6:.1f} MB of text, {total:,} tokens")
    print(f"tiktoken encode_ordinary alone, one core, in process: {ceiling / 1e6:.2f} M tokens/s")

    time_run(args, corpus, 1, env)  # untimed: builds datasets' Arrow cache of the corpus
    for workers in args.workers:
        times = [time_run(args, corpus, workers, env) for _ in range(args.repeats)]
        median = statistics.median(times)
        print(f"--workers {workers}: median {median:.2f} s of {[round(t, 2) for t in times]} "
              f"-> {total / median / 1e6:.2f} M tokens/s end to end")


if __name__ == "__main__":
    main()
