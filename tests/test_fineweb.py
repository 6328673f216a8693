"""fineweb.py: the shards hold exactly the documents' GPT-2 tokens, cut at exact sizes, whatever the worker count,
and a re-run after an interruption rebuilds the same bytes without touching the complete shards.

The data is a small local dataset each test writes itself; the reference token counts come from tiktoken directly.
"""
import json
import os
import random
import shutil
import sys

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import tiktoken
from helpers import run_command

import fineweb

SHARD_SIZE = 500
ENC = tiktoken.get_encoding("gpt2")
EOT = ENC.eot_token  # 50256


@pytest.fixture(scope="session", autouse=True)
def datasets_cache(tmp_path_factory):
    """Keep the Arrow cache that `datasets` builds from local files out of the user's home folder."""
    import datasets

    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(datasets.config, "HF_DATASETS_CACHE", str(tmp_path_factory.mktemp("hf_cache")))
        yield


def make_docs(n=50, seed=0):
    """n documents of 0 to ~300 words, with accents, CJK, emoji, newlines and a literal '<|endoftext|>'."""
    rng = random.Random(seed)
    words = ["the", "cat", "sat", "on", "a", "mat", "naïve", "café", "Straße", "日本語", "🙂", "Ω≈ç√", "—", "x²",
             "learning", "GPT-2", "tokens", "\n", "  ", "42", "3.14159", "don't", "élève"]
    docs = [" ".join(rng.choice(words) for _ in range(rng.randint(0, 300))) for _ in range(n)]
    if n < 9:
        return docs
    docs[7] = "a literal <|endoftext|> in web text is plain text, not the delimiter"
    docs[8] = ""  # an empty page still becomes one <|endoftext|>
    return docs


def expected_lengths(docs):
    return [1 + len(ENC.encode_ordinary(d)) for d in docs]


def write_jsonl(path, docs):
    with open(path, "w", encoding="utf-8") as f:
        for i, d in enumerate(docs):
            f.write(json.dumps({"id": i, "text": d}, ensure_ascii=False) + "\n")
    return str(path)


def shard_files(out_dir):
    """Shard file names in shard order (by the number: 'train' sorts before 'val' as text)."""
    return sorted((f for f in os.listdir(out_dir) if f.endswith(".npy")), key=lambda f: f[-10:])


def read_all(out_dir):
    return np.concatenate([np.load(os.path.join(out_dir, f)) for f in shard_files(out_dir)])


def decode_documents(tokens):
    """Split a token stream on <|endoftext|> (each document starts with one) and decode each document."""
    starts = np.flatnonzero(tokens == EOT)
    assert starts[0] == 0, "the stream must open with <|endoftext|>"
    return [ENC.decode(piece[1:].tolist()) for piece in np.split(tokens, starts[1:])]


def file_ids(out_dir):
    """(inode, mtime_ns) per shard: a rewrite through a .tmp file and a rename changes the inode."""
    return {f: (os.stat(os.path.join(out_dir, f)).st_ino, os.stat(os.path.join(out_dir, f)).st_mtime_ns)
            for f in shard_files(out_dir)}


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    """The test documents as jsonl, tokenized once with 2 workers; returns (docs, data path, out dir)."""
    root = tmp_path_factory.mktemp("corpus")
    docs = make_docs()
    data = write_jsonl(root / "docs.jsonl", docs)
    out = str(root / "shards")
    fineweb.main(["--dataset", data, "--out_dir", out, "--shard_size", str(SHARD_SIZE), "--workers", "2"])
    return docs, data, out


def test_shard_names_sizes_and_dtype(corpus):
    docs, _, out = corpus
    total = sum(expected_lengths(docs))
    num_shards = -(-total // SHARD_SIZE)  # ceil
    assert num_shards >= 3, "the test data should fill several shards"
    names = shard_files(out)
    assert names == ["edufineweb_val_000000.npy"] + [f"edufineweb_train_{i:06d}.npy" for i in range(1, num_shards)]
    shards = [np.load(os.path.join(out, name)) for name in names]
    assert all(s.dtype == np.uint16 and s.ndim == 1 for s in shards)
    assert all(len(s) == SHARD_SIZE for s in shards[:-1])
    assert len(shards[-1]) == total - SHARD_SIZE * (num_shards - 1)
    assert not [f for f in os.listdir(out) if f.endswith(".tmp")]


def test_round_trip_gives_back_the_documents_in_order(corpus):
    docs, _, out = corpus
    tokens = read_all(out)
    assert np.count_nonzero(tokens == EOT) == len(docs)  # the literal '<|endoftext|>' in docs[7] is not one
    assert decode_documents(tokens) == docs


def test_a_document_straddles_a_shard_boundary(corpus):
    docs, _, out = corpus
    starts = np.cumsum([0] + expected_lengths(docs))  # document i is tokens starts[i]:starts[i + 1]
    # (document, boundary) pairs where the boundary cuts the document's text, and the document fits in two shards.
    cuts = [(i, b) for i in range(len(docs)) for b in range(SHARD_SIZE, starts[-1], SHARD_SIZE)
            if b - SHARD_SIZE <= starts[i] and starts[i] + 1 < b < starts[i + 1] <= b + SHARD_SIZE]
    assert cuts, "the test data should put a document across a shard boundary"
    # Its text comes back whole from the tail of one shard and the head of the next.
    i, b = cuts[0]
    left = np.load(os.path.join(out, fineweb.shard_path("", b // SHARD_SIZE - 1)))
    right = np.load(os.path.join(out, fineweb.shard_path("", b // SHARD_SIZE)))
    piece = np.concatenate([left[starts[i] - (b - SHARD_SIZE):], right[:starts[i + 1] - b]])
    assert piece[0] == EOT and ENC.decode(piece[1:].tolist()) == docs[i]


def test_one_and_two_workers_write_identical_bytes(corpus, tmp_path):
    _, data, out2 = corpus
    out1 = str(tmp_path / "one_worker")
    fineweb.main(["--dataset", data, "--out_dir", out1, "--shard_size", str(SHARD_SIZE), "--workers", "1"])
    assert shard_files(out1) == shard_files(out2)
    for name in shard_files(out1):
        with open(os.path.join(out1, name), "rb") as a, open(os.path.join(out2, name), "rb") as b:
            assert a.read() == b.read(), name


def test_rerun_after_interruption_rebuilds_only_what_is_missing(corpus, tmp_path):
    _, data, reference = corpus
    out = str(tmp_path / "shards")
    shutil.copytree(reference, out)
    names = shard_files(out)
    # The damage an interruption can leave: the last shard missing, the one before cut short, and a stray .tmp
    # (next to a complete shard, so only the clean-up can remove it, not the rewrite of its shard).
    os.remove(os.path.join(out, names[-1]))
    cut = os.path.join(out, names[-2])
    with open(cut, "r+b") as f:
        f.truncate(os.path.getsize(cut) // 2)
    with open(os.path.join(out, names[1] + ".tmp"), "wb") as f:
        f.write(b"half a shard")
    complete = {name: ids for name, ids in file_ids(out).items() if name in names[:-2]}

    fineweb.main(["--dataset", data, "--out_dir", out, "--shard_size", str(SHARD_SIZE), "--workers", "2"])

    assert sorted(os.listdir(out)) == sorted(names)  # the .tmp is gone
    for name in names:
        with open(os.path.join(out, name), "rb") as a, open(os.path.join(reference, name), "rb") as b:
            assert a.read() == b.read(), name
    after = file_ids(out)
    assert {name: after[name] for name in complete} == complete, "complete shards must not be rewritten"
    assert after[names[-2]] != file_ids(reference)[names[-2]]


def test_ctrl_c_while_writing_keeps_the_complete_shards_and_removes_the_partial_one(corpus, tmp_path, monkeypatch,
                                                                                    capsys):
    docs, data, reference = corpus
    out = str(tmp_path / "shards")
    args = ["--dataset", data, "--out_dir", out, "--shard_size", str(SHARD_SIZE), "--workers", "1"]
    calls = []

    def ctrl_c_on_third_shard(fd):  # the third shard's bytes are in its .tmp, the rename has not happened yet
        calls.append(fd)
        if len(calls) == 3:
            raise KeyboardInterrupt

    monkeypatch.setattr(fineweb.os, "fsync", ctrl_c_on_third_shard)
    with pytest.raises(SystemExit) as stopped:
        fineweb.main(args)
    assert stopped.value.code == 130  # 128 + SIGINT
    assert "the 2 complete shard(s) in" in capsys.readouterr().out
    names = shard_files(reference)
    assert sorted(os.listdir(out)) == sorted(names[:2])  # no .tmp: no file that looks like a shard and is not whole

    monkeypatch.undo()
    fineweb.main(args)
    assert shard_files(out) == names and len(os.listdir(out)) == len(names)
    assert np.array_equal(read_all(out), read_all(reference))


def test_text_files_in_a_folder_are_one_document_each(tmp_path):
    folder = tmp_path / "txt"
    folder.mkdir()
    docs = make_docs(n=3, seed=1)
    for name, doc in zip(["b.txt", "a.txt", "c.txt"], docs):
        (folder / name).write_text(doc, encoding="utf-8")
    (folder / "notes.md").write_text("not a data file")  # skipped: not a format fineweb reads
    out = str(tmp_path / "shards")
    fineweb.main(["--dataset", str(folder), "--out_dir", out, "--shard_size", str(SHARD_SIZE), "--workers", "1"])
    assert decode_documents(read_all(out)) == [docs[1], docs[0], docs[2]]  # sorted by file name: a, b, c


def test_parquet_with_a_custom_text_column(tmp_path):
    docs = make_docs(n=20, seed=2)
    path = str(tmp_path / "docs.parquet")
    pq.write_table(pa.table({"url": [f"https://example.org/{i}" for i in range(20)], "content": docs}), path)
    out = str(tmp_path / "shards")
    fineweb.main(["--dataset", path, "--text_column", "content", "--out_dir", out, "--shard_size", "300",
                  "--workers", "2"])
    tokens = read_all(out)
    assert len(tokens) == sum(expected_lengths(docs))
    assert decode_documents(tokens) == docs


@pytest.mark.parametrize("make_args, message", [
    (lambda p: ["--dataset", str(p / "missing" / "docs.jsonl")], "check the path"),
    (lambda p: ["--dataset", str(p)], "no data files"),
    (lambda p: ["--dataset", write_jsonl(p / "d.jsonl", ["hi"]), "--text_column", "body"], "--text_column"),
    (lambda p: ["--dataset", write_jsonl(p / "d.jsonl", ["hi"]), "--text_column", "id"], "not text"),
], ids=["missing path", "empty folder", "missing column", "non-text column"])  # flags' ranges: tests/test_flags.py
def test_user_mistakes_give_a_clear_message(tmp_path, make_args, message):
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(SystemExit) as exc:
        fineweb.main(make_args(empty) + ["--out_dir", str(tmp_path / "out")])
    assert message in str(exc.value)
    if message == "--text_column":  # the message lists the columns that do exist
        assert "'id'" in str(exc.value) and "'text'" in str(exc.value)


@pytest.mark.multiprocess
def test_importing_does_nothing():
    # Nor does it load torch or datasets: each of the tokenizer processes imports it (spawn), and needs neither.
    code = "import sys, fineweb; assert fineweb._enc is None and not {'datasets', 'torch'} & set(sys.modules)"
    root = os.path.dirname(os.path.abspath(fineweb.__file__))
    result = run_command([sys.executable, "-c", code], cwd=root, timeout=120)
    assert result.returncode == 0, result.stderr
    assert result.stdout == "" and result.stderr == ""


def test_shards_left_from_another_run_are_pointed_out(corpus, tmp_path, capsys):
    _, data, _ = corpus
    out = str(tmp_path / "shards")
    fineweb.main(["--dataset", data, "--out_dir", out, "--shard_size", str(SHARD_SIZE), "--workers", "1"])
    capsys.readouterr()
    fineweb.main(["--dataset", data, "--out_dir", out, "--shard_size", str(4 * SHARD_SIZE), "--workers", "1"])
    printed = capsys.readouterr().out
    assert "not from this run" in printed and "delete them" in printed


@pytest.mark.multiprocess
def test_a_full_disk_stops_with_a_message_and_keeps_the_shards_written(tmp_path, small_disk, monkeypatch):
    # 129,060 tokens in shards of 20,000 tokens, 40 KB each: a 96 KB disk holds two, and the third cannot be written.
    # Where no small file system can be mounted, the third write fails as a full disk would (ENOSPC).
    data = write_jsonl(tmp_path / "docs.jsonl", make_docs(400, seed=1))
    whole = str(tmp_path / "whole")
    fineweb.main(["--dataset", data, "--out_dir", whole, "--shard_size", "20000", "--workers", "1"])
    assert len(shard_files(whole)) >= 3
    disk = small_disk(96 * 1024)
    if disk is None:
        import errno
        disk, real_save, calls = str(tmp_path / "disk"), np.save, []

        def save(f, tokens, **kwargs):
            calls.append(1)
            if len(calls) == 3:
                f.write(b"half a shard")
                raise OSError(errno.ENOSPC, "No space left on device")
            real_save(f, tokens, **kwargs)
        monkeypatch.setattr(fineweb.np, "save", save)
    out = os.path.join(disk, "shards")
    with pytest.raises(SystemExit, match=r"could not write .*edufineweb_train_000002\.npy \(.*\): the shards before it "
                                         r"are complete and kept; free some space and run fineweb.py again"):
        fineweb.main(["--dataset", data, "--out_dir", out, "--shard_size", "20000", "--workers", "1"])
    assert shard_files(out) == shard_files(whole)[:2]  # no .tmp left behind
    assert sorted(os.listdir(out)) == sorted(shard_files(out))
    for name in shard_files(out):
        assert np.array_equal(np.load(os.path.join(out, name)), np.load(os.path.join(whole, name)))
