"""Data: tiny Shakespeare's checksum guard (no network is touched) and the data loader."""
import io
import os

import numpy as np
import pytest
import tiktoken
import torch

import plumbing.cli
import plumbing.files
import train_gpt2
from plumbing.files import fetch_tiny_shakespeare


def tokens_of(path):
    """The GPT-2 tokens of a text file, by tiktoken itself."""
    return torch.tensor(tiktoken.get_encoding("gpt2").encode_ordinary(path.read_text()), dtype=torch.long)


class FakeResponse(io.BytesIO):
    """Stands in for urlopen's response, so the download path runs without a network."""
    headers = {}

    def geturl(self):
        return plumbing.files.TINY_SHAKESPEARE_URL


def test_an_existing_wrong_file_is_refused_and_kept(tmp_path):
    path = tmp_path / "input.txt"
    path.write_text("not Shakespeare")
    with pytest.raises(plumbing.cli.InputError, match="is not tiny Shakespeare"):
        fetch_tiny_shakespeare(str(path))
    assert path.read_text() == "not Shakespeare"  # the user's file is left alone


def test_a_download_with_the_wrong_checksum_leaves_no_file(tmp_path, monkeypatch):
    monkeypatch.setattr(plumbing.files.urllib.request, "urlopen", lambda url, timeout: FakeResponse(b"tampered"))
    path = tmp_path / "input.txt"
    with pytest.raises(plumbing.cli.RunError, match="wrong sha256"):
        fetch_tiny_shakespeare(str(path))
    assert os.listdir(tmp_path) == []


def test_a_failed_download_leaves_no_file(tmp_path, monkeypatch):
    def offline(url, timeout):
        raise OSError("network is unreachable")
    monkeypatch.setattr(plumbing.files.urllib.request, "urlopen", offline)
    with pytest.raises(plumbing.cli.RunError, match="download it by hand"):
        fetch_tiny_shakespeare(str(tmp_path / "input.txt"))
    assert os.listdir(tmp_path) == []


def test_a_good_download_is_kept(tmp_path, monkeypatch, shakespeare):
    with open(shakespeare, "rb") as f:
        real = f.read()
    monkeypatch.setattr(plumbing.files.urllib.request, "urlopen", lambda url, timeout: FakeResponse(real))
    path = tmp_path / "input.txt"
    fetch_tiny_shakespeare(str(path))
    assert path.read_bytes() == real
    assert os.listdir(tmp_path) == ["input.txt"]


def test_loader_walks_the_tokens_in_order_and_wraps_around(tmp_path):
    path = tmp_path / "tiny.txt"
    path.write_text("The quick brown fox jumps over the lazy dog. " * 5)
    tokens = tokens_of(path)
    tokens = tokens[:-(len(tokens) // 10)]  # the train split: all but the last 10%
    B, T = 2, 8
    loader = train_gpt2.DataLoaderLite(B, T, data=str(path))
    batches_per_pass = (len(tokens) - 1) // (B * T)
    assert batches_per_pass >= 2
    for i in range(batches_per_pass):
        x, y = loader.next_batch()
        start = i * B * T
        assert x.shape == y.shape == (B, T)
        assert torch.equal(x.flatten(), tokens[start:start + B * T])
        assert torch.equal(y.flatten(), tokens[start + 1:start + B * T + 1])
    x, _ = loader.next_batch()  # the stream is exhausted: back to the start
    assert torch.equal(x.flatten(), tokens[:B * T])


def test_loader_refuses_text_shorter_than_one_batch(tmp_path):
    path = tmp_path / "short.txt"
    path.write_text("too short")
    with pytest.raises(plumbing.cli.InputError, match="fewer than one batch"):
        train_gpt2.DataLoaderLite(4, 64, data=str(path))


def test_two_ranks_read_interleaved_windows_that_together_cover_the_stream(tmp_path):
    path = tmp_path / "tiny.txt"
    path.write_text("The quick brown fox jumps over the lazy dog. " * 20)
    tokens = tokens_of(path)
    B, T = 2, 8
    ranks = [train_gpt2.DataLoaderLite(B, T, rank=r, world_size=2, data=str(path)) for r in (0, 1)]
    for i in range(3):
        for r, loader in enumerate(ranks):
            x, y = loader.next_batch()
            start = (2 * i + r) * B * T  # window 2i goes to rank 0, window 2i+1 to rank 1
            assert torch.equal(x.flatten(), tokens[start:start + B * T])
            assert torch.equal(y.flatten(), tokens[start + 1:start + B * T + 1])


def test_text_file_val_split_is_the_last_tenth(tmp_path):
    # Text that never repeats: in a repeated sentence the last tenth and, say, the last fifth start alike.
    path = tmp_path / "tiny.txt"
    path.write_text(" ".join(f"line {i} of {1000 - i}." for i in range(200)))
    tokens = tokens_of(path)
    n_val = len(tokens) // 10
    x, y = train_gpt2.DataLoaderLite(2, 8, split="val", data=str(path)).next_batch()
    assert torch.equal(x.flatten(), tokens[-n_val:][:16])
    assert torch.equal(y.flatten(), tokens[-n_val:][1:17])
    train = train_gpt2.DataLoaderLite(2, 8, split="train", data=str(path))
    rounds = (len(tokens) - n_val - 1) // 16  # the whole batches in the train split; then it starts over
    for _ in range(rounds):
        x, y = train.next_batch()
    assert y.flatten()[-1] == tokens[16 * rounds]  # the last batch's last target lies inside the train split
    assert torch.equal(train.next_batch()[0].flatten(), tokens[:16])


def write_shards(out_dir, sizes):
    """Shards like fineweb.py writes them (shard 0 is val), of the given sizes; token i of the stream is i % 50000."""
    import fineweb
    os.makedirs(out_dir, exist_ok=True)
    stream = np.arange(sum(sizes), dtype=np.int64) % 50000
    start = 0
    for index, size in enumerate(sizes):
        fineweb.write_shard(fineweb.shard_path(out_dir, index), stream[start:start + size].astype(np.uint16))
        start += size
    return stream


def test_shards_two_ranks_read_disjoint_adjacent_windows_across_shards(tmp_path):
    B, T = 2, 8
    sizes = [100, 70, 70, 45]  # val, then train shards whose ends do not fall on a round of 2 x 16 tokens
    stream = torch.from_numpy(write_shards(str(tmp_path), sizes))
    train = stream[100:]  # the train shards as one stream of 185 tokens: 5 rounds of 32 (+1), then a short tail
    loaders = [train_gpt2.DataLoaderLite(B, T, rank=r, world_size=2, split="train", data=str(tmp_path)) for r in (0, 1)]
    for epoch in range(2):
        for round_ in range(5):
            for r, loader in enumerate(loaders):
                x, y = loader.next_batch()
                start = (2 * round_ + r) * B * T  # rank 0 then rank 1: adjacent windows, across shard ends
                assert torch.equal(x.flatten(), train[start:start + B * T]), (epoch, round_, r)
                assert torch.equal(y.flatten(), train[start + 1:start + B * T + 1])
    # Every token but the epoch's last 185 - 5 * 32 = 25 (too few for a round) was read, none twice.


def test_loader_state_round_trips_mid_shard(tmp_path):
    write_shards(str(tmp_path), [100, 70, 70, 45])
    a = train_gpt2.DataLoaderLite(2, 8, rank=1, world_size=2, data=str(tmp_path))
    for _ in range(3):  # into the second train shard, with tokens carried over from the first
        a.next_batch()
    b = train_gpt2.DataLoaderLite(2, 8, rank=1, world_size=2, data=str(tmp_path))
    b.load_state_dict(a.state_dict())
    assert a.state_dict()["carry"] > 0
    for _ in range(6):
        assert torch.equal(a.next_batch()[0], b.next_batch()[0])


def test_val_split_reads_the_val_shard_and_reset_starts_over(tmp_path):
    stream = torch.from_numpy(write_shards(str(tmp_path), [50, 40]))
    loader = train_gpt2.DataLoaderLite(2, 8, split="val", data=str(tmp_path))
    first, _ = loader.next_batch()
    assert torch.equal(first.flatten(), stream[:16])
    loader.next_batch()
    loader.reset()
    again, _ = loader.next_batch()
    assert torch.equal(again, first)


def test_no_shards_of_the_split_is_a_clear_error(tmp_path):
    with pytest.raises(plumbing.cli.InputError, match="run 'python fineweb.py' first, or pass --data input.txt"):
        train_gpt2.DataLoaderLite(2, 8, split="train", data=str(tmp_path))


def write_documents(out_dir, n_docs=40, seed=0):
    """A val shard and three train shards cut from a stream of documents, each <|endoftext|> + 3..30 copies of its
    own number: which document a token belongs to can be read off the token."""
    import fineweb
    rng = np.random.default_rng(seed)
    stream = np.concatenate([np.r_[50256, np.full(rng.integers(3, 31), d + 1)] for d in range(n_docs)])
    os.makedirs(out_dir, exist_ok=True)
    cuts = [0, 60, 60 + (len(stream) - 60) // 3, 60 + 2 * (len(stream) - 60) // 3, len(stream)]
    for index, (a, b) in enumerate(zip(cuts[:-1], cuts[1:])):
        fineweb.write_shard(fineweb.shard_path(out_dir, index), stream[a:b].astype(np.uint16))
    return torch.from_numpy(stream[60:])  # the train tokens, in order


def read_epochs(data, epochs, seed, B=2, T=8):
    """What two ranks read, epoch by epoch, as one stream (round by round: rank 0's window, then rank 1's)."""
    loaders = [train_gpt2.DataLoaderLite(B, T, rank=r, world_size=2, data=data, shuffle=True, seed=seed)
               for r in (0, 1)]
    streams = []
    for epoch in range(epochs):
        pieces = []
        while loaders[0].epoch == epoch:
            pieces += [loader.next_batch()[0].flatten() for loader in loaders]
        streams.append(torch.cat(pieces))
    return streams


def test_shuffle_reads_every_document_once_per_epoch_in_a_new_order(tmp_path):
    from collections import Counter
    train = write_documents(str(tmp_path))
    first, second = read_epochs(str(tmp_path), 2, seed=1)
    for stream in (first, second):
        assert len(train) - 32 <= len(stream) <= len(train)  # all but a tail too short for a round
        assert not Counter(stream.tolist()) - Counter(train.tolist())  # nothing read twice
    assert not torch.equal(first, train[:len(first)])  # not the order on disk
    assert not torch.equal(first, second[:len(first)])  # and a new order each epoch
    # Documents stay whole: within the read stream each document's tokens are contiguous, except the (at most) two
    # documents that fineweb.py split across the two boundaries between train shards, whose pieces move apart.
    docs = [d for d in first.tolist() if d != 50256]
    runs = [d for i, d in enumerate(docs) if i == 0 or d != docs[i - 1]]
    assert len(runs) - len(set(runs)) <= 2


def test_shuffle_is_seeded(tmp_path):
    write_documents(str(tmp_path))
    assert torch.equal(read_epochs(str(tmp_path), 1, seed=1)[0], read_epochs(str(tmp_path), 1, seed=1)[0])
    assert not torch.equal(read_epochs(str(tmp_path), 1, seed=1)[0], read_epochs(str(tmp_path), 1, seed=2)[0])


@pytest.mark.parametrize("shuffle", [False, True])
def test_shards_stay_memory_mapped_and_only_each_batch_is_converted(tmp_path, shuffle):
    # A 100M-token shard is 200 MB of uint16 and 800 MB as int64. Every process used to turn whole shards into int64
    # (train, and val again at every evaluation); now they stay memory-mapped and only each batch's B*T+1 tokens are
    # converted. tracemalloc sees numpy's allocations: the peak must stay far below the shard's own size.
    import tracemalloc

    import fineweb
    rng = np.random.default_rng(0)
    n = 8_000_000  # a 16 MB train shard of documents of about 4,000 tokens
    train = rng.integers(0, 50000, n).astype(np.uint16)
    train[::4000] = 50256
    fineweb.write_shard(fineweb.shard_path(str(tmp_path), 0), train[:100_000])
    fineweb.write_shard(fineweb.shard_path(str(tmp_path), 1), train)
    tracemalloc.start()
    try:
        loader = train_gpt2.DataLoaderLite(8, 64, split="train", data=str(tmp_path), shuffle=shuffle, vocab_size=50304)
        val = train_gpt2.DataLoaderLite(8, 64, split="val", data=str(tmp_path), vocab_size=50304)
        for _ in range(20):
            x, y = loader.next_batch()
            val.reset()  # what each evaluation does
            val.next_batch()
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert x.dtype == y.dtype == torch.int64 and x.shape == (8, 64)
    assert peak < 2 * n / 4, f"{peak / 1e6:.1f} MB at the peak"  # a quarter of the shard's 16 MB
