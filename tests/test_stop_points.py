"""Where a stop lands, in one process, at an exact point: a signal in the middle of a step drops that step (the data
loader back where the step began, the weights untouched), a signal during a val eval drops the eval, and either way
the run writes its checkpoint without a val eval of its own, and --resume goes on as if it had never stopped: the same
log, line for line. A repeated SIGTERM changes nothing; a second Ctrl-C stops at once. (test_stop.py sends the signals
from outside, to real processes and to torchrun.)"""
import os
import signal
import sys

import pytest
import torch
from helpers import tiny_flags

import train_gpt2
from plumbing import checkpoints

pytestmark = pytest.mark.skipif(sys.platform == "win32", reason="POSIX signals")

# 4 micro-steps of 2 x 32 tokens a step; a val eval of 3 batches at steps 0, 2, 4 and 6.
FLAGS = tiny_flags(total_batch_size=256, max_steps=6, eval_interval=2, val_steps=3, checkpoint_interval=1000,
                   sample_interval=1000)


def train(shakespeare, log_dir, *flags):
    """main() in this process; its exit status (0: it ran to the end)."""
    try:
        train_gpt2.main(["--data", shakespeare, "--log_dir", str(log_dir), *FLAGS, *flags])
    except SystemExit as e:
        return e.code
    return 0


def log_lines(log_dir):
    with open(os.path.join(log_dir, "log.txt")) as f:
        return f.read().splitlines()


def signal_at(monkeypatch, split, batch, *signums):
    """Send this process each of `signums` as the loader of `split` hands out its batch number `batch` (from 1)."""
    class Loader(train_gpt2.DataLoaderLite):
        given = 0

        def next_batch(self):
            if self.split == split:
                Loader.given += 1
                if Loader.given == batch:
                    for signum in signums:
                        os.kill(os.getpid(), signum)
            return super().next_batch()

    def make(*args, split="train", **kwargs):
        loader = Loader(*args, split=split, **kwargs)
        loader.split = split
        return loader
    monkeypatch.setattr(train_gpt2, "DataLoaderLite", make)


@pytest.fixture(scope="module")
def straight(shakespeare, tmp_path_factory):
    log_dir = tmp_path_factory.mktemp("straight")
    assert train(shakespeare, log_dir) == 0
    return log_lines(log_dir)


@pytest.mark.slow  # each runs main(), a few seconds
@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM, signal.SIGHUP], ids=["SIGINT", "SIGTERM", "SIGHUP"])
def test_a_signal_in_the_middle_of_a_step_drops_it_and_resume_does_it_again(
        signum, straight, shakespeare, tmp_path, monkeypatch, capsys):
    signal_at(monkeypatch, "train", 4 * 3 + 2, signum)  # the 2nd micro-step of step 3
    assert train(shakespeare, tmp_path) == 128 + signum
    out = capsys.readouterr().out
    assert f"stopped by {signal.Signals(signum).name} after step 2; checkpoint {tmp_path / 'model_00003.pt'}" in out
    assert "step     3 | loss" not in out  # step 3 was dropped, not finished
    checkpoint = checkpoints.read_checkpoint(str(tmp_path / "model_00003.pt"))
    assert checkpoint["step"] == 3 and checkpoint["val_loss"] is None  # no val eval of its own
    # The loader is where step 3 begins: 3 steps of 4 micro-steps of 2 x 32 tokens in.
    assert checkpoint["train_loader"]["round_start"] == 3 * 4 * 2 * 32
    assert log_lines(tmp_path) == [line for line in straight if int(line.split()[0]) < 3]

    monkeypatch.undo()
    assert train(shakespeare, tmp_path, "--resume", "auto") == 0
    assert log_lines(tmp_path) == straight


@pytest.mark.slow  # each runs main(), a few seconds
def test_a_signal_during_a_val_eval_drops_it_and_resume_evaluates_that_step(
        straight, shakespeare, tmp_path, monkeypatch, capsys):
    signal_at(monkeypatch, "val", 3 * 2 + 2, signal.SIGTERM)  # the 2nd batch of step 4's val eval (the third eval)
    assert train(shakespeare, tmp_path) == 128 + signal.SIGTERM
    assert f"stopped by SIGTERM after step 3; checkpoint {tmp_path / 'model_00004.pt'}" in capsys.readouterr().out
    assert checkpoints.read_checkpoint(str(tmp_path / "model_00004.pt"))["val_loss"] is None
    assert log_lines(tmp_path) == [line for line in straight if int(line.split()[0]) < 4]

    monkeypatch.undo()
    assert train(shakespeare, tmp_path, "--resume", "auto") == 0
    assert log_lines(tmp_path) == straight  # step 4's val line written once, by the resumed run


@pytest.mark.slow  # each runs main(), a few seconds
def test_a_signal_before_the_first_step_keeps_nothing_and_says_so(shakespeare, tmp_path, monkeypatch, capsys):
    signal_at(monkeypatch, "val", 1, signal.SIGTERM)
    assert train(shakespeare, tmp_path) == 128 + signal.SIGTERM
    assert "stopped by SIGTERM before its first step: nothing to keep" in capsys.readouterr().out
    assert not any(name.endswith(".pt") for name in os.listdir(tmp_path))


@pytest.mark.slow  # each runs main(), a few seconds
def test_sigterm_twice_still_stops_with_a_checkpoint(straight, shakespeare, tmp_path, monkeypatch, capsys):
    # Under SLURM a worker can get the job step's SIGTERM and torchrun's: the second must not mean "at once".
    signal_at(monkeypatch, "train", 4 * 3 + 2, signal.SIGTERM, signal.SIGTERM)
    assert train(shakespeare, tmp_path) == 128 + signal.SIGTERM
    assert "stopped by SIGTERM after step 2" in capsys.readouterr().out
    assert checkpoints.read_checkpoint(str(tmp_path / "model_00003.pt"))["step"] == 3


@pytest.mark.slow  # each runs main(), a few seconds
def test_a_second_ctrl_c_stops_at_once(shakespeare, tmp_path, monkeypatch):
    before = [signal.getsignal(s) for s in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)]
    signal_at(monkeypatch, "train", 4 * 3 + 2, signal.SIGTERM, signal.SIGINT)
    with pytest.raises(KeyboardInterrupt):
        train(shakespeare, tmp_path)
    assert not any(name.endswith(".pt") for name in os.listdir(tmp_path))
    assert [signal.getsignal(s) for s in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)] == before  # put back


def test_a_dropped_step_leaves_the_weights_the_optimizer_and_the_loader_as_they_were(shakespeare):
    torch.manual_seed(0)
    model = train_gpt2.GPT(train_gpt2.GPTConfig(block_size=32, n_layer=1, n_head=2, n_embd=16))
    optimizer = model.configure_optimizers(0.1, 1e-3, "cpu")
    loader = train_gpt2.DataLoaderLite(2, 32, data=shakespeare)
    scaler = torch.amp.GradScaler("cpu", enabled=False)
    step = (model, optimizer, scaler, loader, 4, 1e-3, 1, "cpu", "cpu", None)
    train_gpt2.train_step(*step)  # one whole step, so that AdamW has state to keep
    weights = {k: v.clone() for k, v in model.state_dict().items()}
    moments = [s["exp_avg"].clone() for s in optimizer.state.values()]
    where = loader.state_dict()

    class StopAtTheSecondCheck:
        checks = 0

        def check(self):
            self.checks += 1
            return signal.SIGTERM if self.checks == 2 else None
    stop = StopAtTheSecondCheck()
    assert train_gpt2.train_step(*step, stop) == (None, None)
    assert stop.checks == 2  # after the first and the second micro-step, and no more
    assert loader.state_dict() == where
    assert all(torch.equal(v, weights[k]) for k, v in model.state_dict().items())
    assert all(torch.equal(s["exp_avg"], m) for s, m in zip(optimizer.state.values(), moments))
