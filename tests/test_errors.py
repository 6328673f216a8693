"""Bad input and faults: each gives one clear message that says what to do (a plumbing.cli.RunError from the library,
which the command lines print alone, without a traceback), and nothing already written is lost. The table in
RELIABILITY.md lists these cases."""
import os
import shutil

import numpy as np
import pytest
import torch
from helpers import run_command, tiny_flags

import plumbing.checkpoints
import plumbing.cli
import plumbing.files
import train_gpt2
from train_gpt2 import GPT, DataLoaderLite, GPTConfig, parse_args

TINY = tiny_flags(max_steps=None)


def shard_dir(tmp_path, train_tokens):
    np.save(tmp_path / "edufineweb_val_000000.npy", np.arange(200, dtype=np.uint16))
    np.save(tmp_path / "edufineweb_train_000001.npy", train_tokens)
    return str(tmp_path)


# --- data -----------------------------------------------------------------------------------------------------------

def test_a_shard_of_the_wrong_dtype(tmp_path):
    with pytest.raises(plumbing.cli.InputError, match="holds a 1-D array of uint16 token ids, this file holds int32"):
        DataLoaderLite(2, 8, data=shard_dir(tmp_path, np.arange(200, dtype=np.int32)))


def test_a_shard_that_is_not_npy(tmp_path):
    shard_dir(tmp_path, np.arange(200, dtype=np.uint16))
    (tmp_path / "edufineweb_train_000001.npy").write_bytes(b"\x00garbage" * 10)
    with pytest.raises(plumbing.cli.InputError, match="not a readable .npy shard.*python fineweb.py"):
        DataLoaderLite(2, 8, data=str(tmp_path))


def test_a_truncated_shard(tmp_path):
    shard_dir(tmp_path, np.arange(200, dtype=np.uint16))
    path = tmp_path / "edufineweb_train_000001.npy"
    path.write_bytes(path.read_bytes()[:150])
    with pytest.raises(plumbing.cli.InputError, match="not a readable .npy shard"):
        DataLoaderLite(2, 8, data=str(tmp_path))


@pytest.mark.parametrize("size", [0, 10])
def test_an_empty_or_too_short_split(tmp_path, size):
    with pytest.raises(plumbing.cli.InputError, match="fewer than one batch"):
        DataLoaderLite(2, 8, data=shard_dir(tmp_path, np.arange(size, dtype=np.uint16)))


def test_token_ids_past_the_vocabulary(tmp_path):
    data = shard_dir(tmp_path, np.full(200, 60000, dtype=np.uint16))
    with pytest.raises(plumbing.cli.InputError, match="token id 60000, past the model's vocabulary of 50304"):
        DataLoaderLite(2, 8, data=data, vocab_size=50304)


def test_data_that_is_a_binary_file(tmp_path):
    path = tmp_path / "model.bin"
    path.write_bytes(bytes(range(256)) * 10)
    with pytest.raises(plumbing.cli.InputError, match="not UTF-8 text"):
        DataLoaderLite(2, 8, data=str(path))


# --- flags ----------------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("argv, message", [
    (["--seq_len", "2048"], "--seq_len 2048 is longer than the model's context --block_size 1024"),
    (["--n_embd", "100", "--n_head", "12"], "--n_embd 100 is not divisible by --n_head 12"),
    (["--max_steps", "10", "--warmup_steps", "20"], "lower --warmup_steps"),
    (["--dtype", "float64"], "invalid choice"),
])
def test_flags_that_cannot_work(argv, message, capsys):
    with pytest.raises(SystemExit):
        parse_args(argv)
    assert message in capsys.readouterr().err


# --- checkpoints ----------------------------------------------------------------------------------------------------

def small_checkpoint(path):
    model = GPT(GPTConfig(block_size=32, vocab_size=64, n_layer=1, n_head=2, n_embd=16))
    train_gpt2.save_checkpoint(str(path), model, step=1, val_loss=4.0, args=parse_args([]))
    return model


def test_a_checkpoint_whose_weights_do_not_fit_its_config(tmp_path):
    path = tmp_path / "model_00001.pt"
    small_checkpoint(path)
    checkpoint = torch.load(path, weights_only=True)
    checkpoint["config"]["n_embd"] = 32  # say another shape than the weights have
    torch.save(checkpoint, path)
    with pytest.raises(ValueError, match=r"lm_head.weight: \(64, 16\) in the file, \(64, 32\) in the model.*more"):
        GPT.from_checkpoint(str(path))


def test_a_truncated_checkpoint(tmp_path):
    path = tmp_path / "model_00001.pt"
    small_checkpoint(path)
    path.write_bytes(path.read_bytes()[:1000])
    with pytest.raises(ValueError, match="cannot be read as a checkpoint.*use an earlier checkpoint"):
        GPT.from_checkpoint(str(path))


class Payload:
    """Anything that is not a tensor or plain data: unpickling it could run code."""


def test_a_checkpoint_holding_code_is_refused(tmp_path):
    path = tmp_path / "model_00001.pt"
    torch.save({"model": {}, "config": {}, "payload": Payload()}, path)
    with pytest.raises(ValueError, match="cannot be read as a checkpoint"):
        GPT.from_checkpoint(str(path))


def test_a_crash_while_saving_keeps_the_old_checkpoint(tmp_path, monkeypatch):
    path = tmp_path / "model_00001.pt"
    model = small_checkpoint(path)
    before = path.read_bytes()

    def crash(obj, f):
        f.write(b"half a file")
        raise OSError("No space left on device")
    monkeypatch.setattr(plumbing.checkpoints.torch, "save", crash)
    with pytest.raises(plumbing.cli.RunError,
                       match="could not write the checkpoint .*No space left on device.*--resume auto"):
        train_gpt2.save_checkpoint(str(path), model, step=1, val_loss=4.0, args=parse_args([]))
    assert path.read_bytes() == before  # the file that looks whole is whole
    assert plumbing.checkpoints.latest_checkpoint(str(tmp_path)) == str(path)  # a .tmp is never taken for a checkpoint


def test_a_checkpoint_reaches_the_disk_before_it_gets_its_name(tmp_path, monkeypatch):
    # After a power loss the rename can survive while data not yet synced does not; so the data is synced first.
    events = []
    real_fsync, real_replace = os.fsync, os.replace

    def fsync(fd):
        # Which file: on Linux, /proc names the file behind a descriptor.
        events.append(("fsync", os.path.realpath(f"/proc/self/fd/{fd}")))
        real_fsync(fd)

    def replace(src, dst):
        events.append(("replace", os.path.realpath(src)))
        real_replace(src, dst)

    monkeypatch.setattr(plumbing.files.os, "fsync", fsync)
    monkeypatch.setattr(plumbing.files.os, "replace", replace)
    path = tmp_path / "model_00001.pt"
    small_checkpoint(path)
    tmp = os.path.realpath(f"{path}.tmp")
    expected = [("fsync", tmp), ("replace", tmp)] if os.path.isdir("/proc/self/fd") else None
    assert [kind for kind, _ in events] == ["fsync", "replace"]
    assert expected is None or events == expected
    assert GPT.from_checkpoint(str(path))[1]["step"] == 1


def test_a_model_that_cannot_be_loaded_fails_clearly(tmp_path, monkeypatch, capsys):
    # GPT.load is what train_gpt2.py --init_from, sample.py and hellaswag.py -m call. It raises a ValueError for
    # library callers, which the command lines print as one message.
    with pytest.raises(ValueError, match="unknown model 'gpt3': use one of gpt2, "):
        GPT.load("gpt3")
    # A directory with no model in it, through the command lines that take one.
    not_a_model = r"could not be read as a directory written by GPT2LMHeadModel\.save_pretrained \(OSError: "
    with pytest.raises(SystemExit, match=not_a_model):
        train_gpt2.main(["--init_from", str(tmp_path), "--max_steps", "0", "--device", "cpu"])
    import sample
    with pytest.raises(SystemExit, match=not_a_model):
        sample.main(["--init_from", str(tmp_path), "--device", "cpu"])
    # An OpenAI name with no network and no cache. Simulated: where the network is up, the test must not download.
    import transformers

    def offline(*args, **kwargs):
        raise OSError("We couldn't connect to 'https://huggingface.co' to load the files.\nCheck your connection.")
    monkeypatch.setattr(transformers.GPT2LMHeadModel, "from_pretrained", offline)
    with pytest.raises(ValueError, match=r"gpt2: could not get OpenAI's weights from the Hugging Face hub; it needs "
                                         r"the network the first time.*\(OSError: We couldn't connect .*files\.\)$"):
        GPT.load("gpt2")


# --- numerics -------------------------------------------------------------------------------------------------------

def test_a_nonfinite_loss_stops_the_run_and_keeps_the_checkpoints(shakespeare, tmp_path):
    # A learning rate of 1e30 turns the weights to garbage in one step; the next losses are NaN.
    argv = ["--data", shakespeare, "--log_dir", str(tmp_path), *TINY, "--max_steps", "6", "--max_lr", "1e30",
            "--eval_interval", "100", "--checkpoint_interval", "100"]
    with pytest.raises(SystemExit, match="step 1: loss nan.*--resume auto"):
        train_gpt2.main(argv)
    assert sorted(os.listdir(tmp_path)) == ["log.txt", "run.json"]  # no checkpoint of the poisoned weights


def test_skip_nonfinite_logs_the_skipped_steps(shakespeare, tmp_path):
    argv = ["--data", shakespeare, "--log_dir", str(tmp_path), *TINY, "--max_steps", "3", "--max_lr", "1e30",
            "--eval_interval", "100", "--checkpoint_interval", "100", "--skip_nonfinite"]
    with pytest.raises(SystemExit, match="step 3: val loss nan"):  # the weights went bad at step 0: val says so
        train_gpt2.main(argv)
    with open(tmp_path / "log.txt") as f:
        kinds = [line.split()[:2] for line in f]
    assert kinds[:3] == [["0", "val"], ["0", "train"], ["0", "lr"]]
    assert kinds[3:] == [["1", "skipped"], ["2", "skipped"]]


@pytest.mark.multiprocess
def test_a_full_disk_stops_the_run_and_keeps_the_earlier_checkpoint_and_log(shakespeare, tmp_path, small_disk,
                                                                            monkeypatch):
    # A checkpoint of this model, with its AdamW state, is about 19.6 MB: a 30 MB disk holds the one of step 2 and
    # the log, and the one of step 4 cannot be written. Where no small file system can be mounted, the second
    # checkpoint's write fails as a full disk would (ENOSPC) after half a file.
    disk = small_disk(30 * 2**20)
    if disk is None:
        import errno
        disk, real_save, calls = str(tmp_path / "log"), torch.save, []

        def save(obj, f):
            calls.append(1)
            if len(calls) == 2:
                f.write(b"half a checkpoint")
                raise OSError(errno.ENOSPC, "No space left on device")
            real_save(obj, f)
        monkeypatch.setattr(plumbing.checkpoints.torch, "save", save)
    argv = ["--data", shakespeare, "--log_dir", disk, *TINY, "--max_steps", "6", "--eval_interval", "2",
            "--checkpoint_interval", "2"]
    with pytest.raises(SystemExit, match=r"could not write the checkpoint .*model_00004\.pt \(.*No space left on "
                                         r"device.*\): the run stops here.*intact.*--resume auto"):
        train_gpt2.main(argv)
    assert sorted(os.listdir(disk)) == ["log.txt", "model_00002.pt", "run.json"]  # and no .tmp
    assert GPT.from_checkpoint(os.path.join(disk, "model_00002.pt"))[1]["step"] == 2
    with open(os.path.join(disk, "log.txt")) as f:
        lines = [line.split()[:2] for line in f]
    assert lines == [["0", "val"], ["0", "train"], ["0", "lr"], ["1", "train"], ["1", "lr"], ["2", "val"],
                     ["2", "train"], ["2", "lr"], ["3", "train"], ["3", "lr"], ["4", "val"]]
    # Once there is room again, the run goes on from the checkpoint that was kept.
    roomy = tmp_path / "roomy"
    shutil.copytree(disk, roomy)
    monkeypatch.undo()
    train_gpt2.main([*argv[:3], str(roomy), *argv[4:], "--resume", "auto"])
    assert "model_00006.pt" in os.listdir(roomy)


def test_only_the_command_line_decorator_ends_the_process():
    # Library code (plumbing, GPT, DataLoaderLite, what hellaswag.py and fineweb.py offer) raises a RunError that a
    # notebook can catch; only plumbing.cli.command_line turns one into an exit. So every SystemExit, exit() or sys.exit
    # in the scripts' source must be inside command_line.
    import ast

    from helpers import ROOT

    def exits(node, function=None):
        """(outermost function, line) of each exit under node."""
        if isinstance(node, ast.FunctionDef):
            function = function or node.name
        if isinstance(node, ast.Name) and node.id in ("SystemExit", "exit", "quit") or \
                isinstance(node, ast.Attribute) and node.attr in ("exit", "_exit") and \
                getattr(node.value, "id", None) in ("sys", "os"):
            yield function, node.lineno
        for child in ast.iter_child_nodes(node):
            yield from exits(child, function)

    plumbing = sorted(os.path.join("plumbing", name) for name in os.listdir(os.path.join(ROOT, "plumbing"))
                      if name.endswith(".py"))
    for name in (*plumbing, "train_gpt2.py", "hellaswag.py", "fineweb.py", "sample.py"):
        with open(os.path.join(ROOT, name)) as f:
            found = list(exits(ast.parse(f.read())))
        assert all(function == "command_line" for function, _ in found), (name, found)
        assert bool(found) == (name == os.path.join("plumbing", "cli.py"))  # the one in command_line is seen


@pytest.mark.multiprocess
@pytest.mark.skipif(not os.path.exists("/proc/self/status"), reason="reads the process's memory from /proc (Linux)")
def test_reading_a_checkpoint_copies_none_of_it_into_the_processs_memory(tmp_path):
    # Every process of a resume reads the whole checkpoint: gpt2-xl's is 19 GB, so 8 processes each holding a copy
    # need 150 GB of a machine's memory at once. Memory-mapped, its tensors are the file's pages (page cache, shared
    # by the machine's processes) until they are used: reading it adds no anonymous memory to the process, however
    # many processes there are. Measured in a fresh process: RssAnon before and after reading it.
    import sys
    import types

    from helpers import ROOT
    torch.manual_seed(0)
    model = GPT(GPTConfig(block_size=64, vocab_size=50304, n_layer=2, n_head=4, n_embd=256))
    optimizer = model.configure_optimizers(0.1, 1e-3, "cpu")
    model(torch.zeros(1, 8, dtype=torch.long), torch.zeros(1, 8, dtype=torch.long))[1].backward()
    optimizer.step()  # AdamW's two moments: the checkpoint is 3x the weights, as a real one
    path = str(tmp_path / "model_00001.pt")
    train_gpt2.save_checkpoint(path, model, 1, 5.0, parse_args([]), optimizer,
                               types.SimpleNamespace(state_dict=dict))
    code = ("import sys, plumbing.checkpoints\n"
            "def anon():\n"
            "    with open('/proc/self/status') as f:\n"
            "        return next(int(line.split()[1]) * 1024 for line in f if line.startswith('RssAnon:'))\n"
            "before = anon()\n"
            "checkpoint = plumbing.checkpoints.read_checkpoint(sys.argv[1])\n"
            "print(anon() - before, sum(t.numel() for t in checkpoint['model'].values()))\n")
    out = run_command([sys.executable, "-c", code, path], cwd=ROOT, timeout=120)
    assert out.returncode == 0, out.stderr
    added, n_weights = (int(x) for x in out.stdout.split())
    assert n_weights == sum(p.numel() for p in model.state_dict().values())  # it did read the tensors
    size = os.path.getsize(path)
    assert size > 150e6 and added < size / 10, f"reading a {size / 1e6:.0f} MB checkpoint added {added / 1e6:.0f} MB"
