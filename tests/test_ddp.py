"""DDP for real: two CPU processes under torchrun print the same per-step losses as one process with twice the
gradient accumulation (the same 4 micro-batches per step, split 2 + 2 instead of 4), and log the same val losses
(the same val batches, shared out)."""
import os
import re
import sys

import pytest
from helpers import ROOT, run_command, tiny_flags

# This file's tiny run: helpers.tiny_flags with these changes.
TINY = dict(n_layer=2, total_batch_size=256, max_steps=4, warmup_steps=2, max_lr=1e-3, max_new_tokens=4,
            eval_interval=2, val_steps=3)


PEAK = 1e9  # a made-up GPU peak, FLOP/s, for the MFU printed (tests/fakes.py gives it to plumbing.hardware.peak_flops)


def run(launcher, data, log_dir):
    env = dict(os.environ, OMP_NUM_THREADS="1", PYTHONPATH=ROOT, FAKE_PEAK_FLOPS=str(PEAK))
    out = run_command([*launcher, os.path.join(ROOT, "tests", "fakes.py"), os.path.join(ROOT, "train_gpt2.py"),
                       "--data", data, "--log_dir", str(log_dir), *tiny_flags(**TINY)],
                      cwd=ROOT, env=env, timeout=300)
    assert out.returncode == 0, out.stderr[-3000:]
    return out.stdout


def val_losses(log_dir):
    with open(os.path.join(log_dir, "log.txt")) as f:
        return {int(step): float(v) for step, kind, v in (line.split() for line in f) if kind == "val"}


def losses(stdout):
    return [float(x) for x in re.findall(r"step +\d+ \| loss ([0-9.]+)", stdout)]


@pytest.mark.multiprocess
@pytest.mark.slow
def test_two_processes_match_one_process_with_twice_the_accumulation(shakespeare, tmp_path):
    single = run([sys.executable], shakespeare, tmp_path / "one")
    assert "4 micro-steps of 2 x 32 on each of 1 process(es)" in single
    double = run([sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2"], shakespeare,
                 tmp_path / "two")
    assert "2 micro-steps of 2 x 32 on each of 2 process(es)" in double
    a, b = losses(single), losses(double)
    assert len(a) == len(b) == 4  # only rank 0 prints: each step appears once
    assert double.count("| MFU ") == 4
    for x, y in zip(a, b):
        assert abs(x - y) <= 1e-4 * x
    assert a[-1] < a[0]  # and it is training
    # MFU: the step's FLOPs over the time, against the peak of all the GPUs (2 here), not of one.
    from train_gpt2 import GPT, GPTConfig
    flops_per_token = GPT(GPTConfig(vocab_size=50304, n_layer=2, n_head=2, n_embd=32)).flops_per_token(32)
    for out, processes in ((single, 1), (double, 2)):
        for tok_s, mfu in re.findall(r"tok/s ([\d,]+) \| MFU ([\d.]+)%", out):
            expected = flops_per_token * int(tok_s.replace(",", "")) / (PEAK * processes)
            assert abs(float(mfu) / 100 - expected) <= 0.0005 + 1e-3 * expected, (out, processes)
    val_a, val_b = val_losses(tmp_path / "one"), val_losses(tmp_path / "two")
    assert sorted(val_a) == sorted(val_b) == [0, 2, 4]
    for step in val_a:  # 3 val batches: 2 on rank 0, 1 on rank 1, the same 3 as the single process's
        assert abs(val_a[step] - val_b[step]) <= 1e-4 * val_a[step]


@pytest.mark.multiprocess
@pytest.mark.slow
def test_a_batch_the_world_size_cannot_divide_is_refused_before_any_work(shakespeare, tmp_path):
    bad = tiny_flags(**{**TINY, "total_batch_size": 192})  # 192 = 3 * 2 * 32: fine for one process, not for two
    env = dict(os.environ, OMP_NUM_THREADS="1")
    out = run_command([sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2",
                       os.path.join(ROOT, "train_gpt2.py"), "--data", shakespeare, "--log_dir", str(tmp_path),
                       *bad], cwd=ROOT, env=env, timeout=300)
    assert out.returncode != 0
    assert "is not a multiple of batch_size * seq_len * processes = 2 * 32 * 2 = 128" in out.stdout + out.stderr
    assert "using device" in out.stdout and "autocast dtype" not in out.stdout  # refused before building anything


def test_a_run_that_stops_with_a_message_leaves_no_process_group(shakespeare, tmp_path, one_process_torchrun):
    # A one-process group, as torchrun would set it up, and a run refused after it exists (the batch does not
    # divide): the process group must be gone when main() ends, or NCCL warns at exit that it was left behind.
    import torch.distributed as dist

    import train_gpt2
    bad = tiny_flags(**{**TINY, "total_batch_size": 100})
    try:
        with pytest.raises(SystemExit, match="is not a multiple of"):
            train_gpt2.main(["--data", shakespeare, "--log_dir", str(tmp_path), *bad])
        assert not dist.is_initialized()
    finally:
        if dist.is_initialized():
            dist.destroy_process_group()
