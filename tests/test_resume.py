"""Exact resume: a run stopped after its checkpoint at step 3 and resumed with --resume ends exactly where the same
run straight through ends: the same per-step losses, the same log.txt, the same final weights. The stop is simulated
in-process, and also done for real: a training process killed with SIGKILL, resumed by a new process."""
import json
import os
import shutil
import signal
import subprocess
import sys
import time

import pytest
import torch
from helpers import ROOT, kill_tree, run_command, tiny_flags

import plumbing.checkpoints
import train_gpt2

TINY = tiny_flags(n_layer=2, total_batch_size=128, max_steps=6, warmup_steps=2, max_lr=3e-3, eval_interval=3,
                  val_steps=2, checkpoint_interval=3, sample_interval=100)


def read(path):
    with open(path) as f:
        return f.read()


@pytest.fixture(scope="module")
def straight(tmp_path_factory, shakespeare):
    log_dir = tmp_path_factory.mktemp("straight")
    train_gpt2.main(["--data", shakespeare, "--log_dir", str(log_dir), *TINY])
    return log_dir


# What a machine that lost power can leave at the end of the log: a line cut short (in its kind, or in its step
# number, which then reads as an earlier step) or a tail of zero bytes.
@pytest.mark.parametrize("tail", ["", "5 tra", "1", "\0" * 64], ids=["clean", "cut-kind", "cut-step", "zeros"])
def test_stop_and_resume_gives_the_straight_run(straight, shakespeare, tmp_path, tail):
    # The killed run: its checkpoint at step 3, and a log that went on past it (steps 3 and 4 trained, then killed).
    shutil.copy(straight / "model_00003.pt", tmp_path)
    lines = read(straight / "log.txt").splitlines(keepends=True)
    killed_at = next(i for i, line in enumerate(lines) if line.startswith("5 train"))
    (tmp_path / "log.txt").write_text("".join(lines[:killed_at]) + tail)

    train_gpt2.main(["--data", shakespeare, "--log_dir", str(tmp_path), "--resume", "auto", *TINY])

    assert read(tmp_path / "log.txt") == read(straight / "log.txt")  # the losses of every step, to the 6th digit
    a = torch.load(straight / "model_00006.pt", weights_only=True)
    b = torch.load(tmp_path / "model_00006.pt", weights_only=True)
    for name, tensor in a["model"].items():
        assert torch.equal(tensor, b["model"][name]), name
    assert b["val_loss"] == a["val_loss"]


def test_run_json_records_what_each_start_of_the_run_ran_with(straight, shakespeare, tmp_path):
    # The straight run's record: every flag with the presets and defaults filled in, and what ran it.
    run = json.loads(read(straight / "run.json"))["runs"]
    assert len(run) == 1 and run[0]["start_step"] == 0
    flags = train_gpt2.parse_args(["--data", shakespeare, "--log_dir", str(straight), *TINY])
    assert {k: run[0]["flags"][k] for k in vars(flags)} == {k: v for k, v in vars(flags).items()}
    head = subprocess.run(["git", "rev-parse", "HEAD"], cwd=ROOT, capture_output=True, text=True)
    if head.returncode == 0:  # a copy of the code outside git records None
        assert run[0]["commit"] == head.stdout.strip() and isinstance(run[0]["uncommitted_changes"], bool)
    assert (run[0]["torch"], run[0]["cuda"], run[0]["processes"]) == (torch.__version__, torch.version.cuda, 1)
    assert run[0]["dtype"] in ("float32", "bfloat16") and run[0]["device"]
    # A resume keeps the first start's record as it was and adds its own; log.txt's format is not touched by it.
    for name in ("model_00003.pt", "run.json"):
        shutil.copy(straight / name, tmp_path)
    train_gpt2.main(["--data", shakespeare, "--log_dir", str(tmp_path), "--resume", "auto", *TINY])
    resumed = json.loads(read(tmp_path / "run.json"))["runs"]
    assert resumed[0] == run[0] and resumed[1]["start_step"] == 3 and len(resumed) == 2
    assert resumed[1]["flags"]["resume"] == "auto"
    assert all(len(line.split()) == 3 for line in read(tmp_path / "log.txt").splitlines())


def test_resume_auto_without_a_checkpoint_starts_from_scratch(shakespeare, tmp_path, capsys):
    train_gpt2.main(["--data", shakespeare, "--log_dir", str(tmp_path), "--resume", "auto", *TINY,
                     "--max_steps", "1", "--warmup_steps", "1"])
    assert "no checkpoint in" in capsys.readouterr().out
    assert os.path.exists(tmp_path / "model_00001.pt")


def test_resume_with_another_batch_size_is_refused(straight, shakespeare, tmp_path):
    with pytest.raises(SystemExit, match="that run had --total_batch_size 128, this one 256"):
        train_gpt2.main(["--data", shakespeare, "--log_dir", str(tmp_path), *TINY,
                         "--resume", str(straight / "model_00003.pt"), "--total_batch_size", "256"])


@pytest.mark.multiprocess
@pytest.mark.slow
@pytest.mark.skipif(sys.platform == "win32", reason="SIGKILL is POSIX")
def test_a_run_killed_with_sigkill_resumes_in_a_new_process_to_the_straight_run(shakespeare, tmp_path):
    # SIGKILL gives the run no chance to clean up: whatever it was doing (a step, an evaluation, a checkpoint being
    # written) stops mid-way. A new process, which starts with fresh RNGs and nothing in memory, resumes from the
    # newest checkpoint on disk. 60 steps with checkpoints every 20 leave time to kill it between step 21 and the end.
    args = ["--data", shakespeare, *TINY, "--max_steps", "60", "--checkpoint_interval", "20"]
    killed = tmp_path / "killed"
    command = [sys.executable, os.path.join(ROOT, "train_gpt2.py"), "--log_dir", str(killed), *args]
    run = subprocess.Popen(command, cwd=tmp_path, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                           start_new_session=True)
    try:
        deadline = time.monotonic() + 300
        while run.poll() is None and time.monotonic() < deadline:
            # "21 train" is logged after the checkpoint at step 20 and one more step: the kill lands after a
            # checkpoint, with log lines past it that the resumed run must drop and redo.
            if os.path.exists(killed / "log.txt") and "\n21 train" in read(killed / "log.txt"):
                run.send_signal(signal.SIGKILL)
                break
            time.sleep(0.005)
    finally:  # the moment never came (or the test was stopped): the run must not go on without it
        if run.poll() is None:
            kill_tree(run.pid)
    _, stderr = run.communicate(timeout=60)
    assert run.returncode == -signal.SIGKILL, f"the run ended before it was killed (rc {run.returncode}): {stderr}"
    assert not os.path.exists(killed / "model_00060.pt")

    resumed = run_command([*command, "--resume", "auto"], cwd=tmp_path, timeout=300)
    assert resumed.returncode == 0, resumed.stderr
    assert "resum" in resumed.stdout.lower()

    straight_dir = tmp_path / "straight"
    train_gpt2.main(["--log_dir", str(straight_dir), *args])  # the reference: one run, in this process
    assert read(killed / "log.txt") == read(straight_dir / "log.txt")
    a = torch.load(straight_dir / "model_00060.pt", weights_only=True)
    b = torch.load(killed / "model_00060.pt", weights_only=True)
    for name, tensor in a["model"].items():
        assert torch.equal(tensor, b["model"][name]), name


def test_resume_auto_picks_the_highest_step_not_the_last_name(tmp_path):
    # Past step 99,999 the zero padding runs out: model_100000.pt sorts before model_99999.pt by name.
    for name in ("model_99999.pt", "model_100000.pt", "model_05000.pt", "model_final.pt", "model_100001.pt.tmp"):
        (tmp_path / name).write_bytes(b"")
    assert plumbing.checkpoints.latest_checkpoint(str(tmp_path)) == str(tmp_path / "model_100000.pt")
