"""Stop and go on, with real processes: Ctrl-C (SIGINT), SIGTERM or SIGHUP in the middle of training stops at the next
micro-step (the step in progress dropped), writes the checkpoint, says how to go on and exits with the signal's status,
also where the terminal hung up, and --resume auto continues as if the run had never stopped; one run at a time in
a --log_dir (or fineweb.py --out_dir); a fresh run keeps an earlier run's files; fineweb.py stopped by Ctrl-C and run
again writes the same shards."""
import os
import pty
import re
import select
import signal
import subprocess
import sys
import tempfile
import threading
import time

import numpy as np
import pytest
from helpers import ROOT, kill_tree, tiny_flags

pytestmark = [pytest.mark.multiprocess, pytest.mark.slow,
              pytest.mark.skipif(sys.platform == "win32", reason="POSIX signals and file locks")]

TRAIN = os.path.join(ROOT, "train_gpt2.py")
TORCHRUN = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2"]
# 4 micro-steps a step (of 2 x 32 tokens on each process): a signal mostly lands in the middle of one.
LAUNCHERS = {"one process": ([sys.executable], 256), "torchrun, 2 processes": (TORCHRUN, 512)}


class Run:
    """A command started in the background in a session of its own, printing into a file (or into `output`)."""

    def __init__(self, command, cwd, output=None):
        self.output = tempfile.TemporaryFile("w+")
        self.process = subprocess.Popen(command, cwd=cwd, stdout=output or self.output, stderr=subprocess.STDOUT,
                                        start_new_session=True, env=dict(os.environ, OMP_NUM_THREADS="1"))

    def wait_until(self, ready, timeout=120):
        deadline = time.monotonic() + timeout
        while not ready():
            assert self.process.poll() is None, f"it ended first:\n{self.printed()[-3000:]}"
            assert time.monotonic() < deadline, "the moment to act never came"
            time.sleep(0.02)

    def finish(self, timeout=240):
        """(exit status, what it printed); a run still going after `timeout` seconds is killed and fails the test."""
        try:
            self.process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            kill_tree(self.process.pid)
            self.process.wait()
            pytest.fail(f"still running after {timeout} s:\n{self.printed()[-3000:]}")
        return self.process.returncode, self.printed()

    def printed(self):
        self.output.seek(0)
        return self.output.read()


def train(launcher, log_dir, *flags, data, total, output=None, script=TRAIN):
    command, _ = LAUNCHERS[launcher]
    return Run([*command, script, "--data", data, "--log_dir", str(log_dir),
                *tiny_flags(total_batch_size=total, max_steps=30, eval_interval=10, checkpoint_interval=1000,
                            sample_interval=1000), *flags], cwd=ROOT, output=output)


def lines(log_dir, kind):
    with open(os.path.join(log_dir, "log.txt")) as f:
        return [line for line in f if line.split()[1] == kind]


def trained_steps(log_dir):
    return len(lines(log_dir, "train")) if os.path.exists(os.path.join(log_dir, "log.txt")) else 0


@pytest.fixture(scope="module")
def uninterrupted(shakespeare, tmp_path_factory):
    """The log of each launcher's run straight through, the reference of the stopped and resumed ones."""
    logs = {}
    for launcher, (_, total) in LAUNCHERS.items():
        log_dir = tmp_path_factory.mktemp("straight")
        rc, out = train(launcher, log_dir, data=shakespeare, total=total).finish()
        assert rc == 0, out[-3000:]
        logs[launcher] = log_dir
    return logs


@pytest.mark.parametrize("launcher, signum", [(launcher, signum) for launcher in LAUNCHERS
                                              for signum in (signal.SIGINT, signal.SIGTERM)] +
                         [("torchrun, 2 processes", signal.SIGHUP)])
def test_a_signal_stops_the_run_at_its_step_with_a_checkpoint_and_resume_goes_on_as_if_never_stopped(
        launcher, signum, uninterrupted, shakespeare, tmp_path):
    # Under torchrun the signal goes to torchrun, which passes it to every worker, as Ctrl-C in its terminal, a
    # scheduler's SIGTERM or a dropped ssh session's SIGHUP would; every process must stop at the same point. The step
    # the signal lands in is dropped (done again on resume), or if it lands after the step's last micro-step, kept.
    _, total = LAUNCHERS[launcher]
    run = train(launcher, tmp_path, data=shakespeare, total=total)
    run.wait_until(lambda: trained_steps(tmp_path) >= 6)
    run.process.send_signal(signum)
    rc, out = run.finish()
    name = signal.Signals(signum).name
    stops = re.findall(rf"stopped by {name} after step (\d+); checkpoint (\S+): continue with --resume auto", out)
    assert len(stops) == 1, out[-3000:]  # said once, by rank 0
    step, checkpoint = int(stops[0][0]), stops[0][1]
    assert checkpoint == str(tmp_path / f"model_{step + 1:05d}.pt") and os.path.exists(checkpoint)
    assert trained_steps(tmp_path) == step + 1 < 30  # no step after it was begun
    # One process exits with the signal's conventional status; torchrun reports its workers' failure its own way.
    assert rc == 128 + signum if launcher == "one process" else rc != 0
    assert "]: Traceback" not in out and ".in_use" not in os.listdir(tmp_path)

    rc, out = train(launcher, tmp_path, "--resume", "auto", data=shakespeare, total=total).finish()
    assert rc == 0, out[-3000:]
    assert lines(tmp_path, "train") == lines(uninterrupted[launcher], "train")  # every step's loss, to the 6th digit
    assert lines(tmp_path, "val") == lines(uninterrupted[launcher], "val")  # the stop evaluated nothing of its own


def test_ctrl_c_stops_a_run_with_every_modern_idea_and_resume_goes_on_as_if_never_stopped(shakespeare, tmp_path):
    # modern_gpt.py runs train_gpt2.py's loop: its stop keeps Muon's momentum and the WSD schedule's place too.
    modern = dict(data=shakespeare, total=256, script=os.path.join(ROOT, "modern_gpt.py"))
    rc, out = train("one process", tmp_path / "straight", "--ideas", "all", **modern).finish()
    assert rc == 0, out[-3000:]
    run = train("one process", tmp_path / "stopped", "--ideas", "all", **modern)
    run.wait_until(lambda: trained_steps(tmp_path / "stopped") >= 6)
    run.process.send_signal(signal.SIGINT)
    rc, out = run.finish()
    assert rc == 128 + signal.SIGINT and "stopped by SIGINT after step" in out, out[-3000:]
    assert trained_steps(tmp_path / "stopped") < 30
    rc, out = train("one process", tmp_path / "stopped", "--ideas", "all", "--resume", "auto", **modern).finish()
    assert rc == 0, out[-3000:]
    assert lines(tmp_path / "stopped", "train") == lines(tmp_path / "straight", "train")


def test_a_hang_up_stops_the_run_with_a_checkpoint_though_its_terminal_is_gone(uninterrupted, shakespeare, tmp_path):
    # ssh drops: the terminal hangs up and the run gets SIGHUP. Its output went to that terminal, where every write now
    # fails (EIO): a print there would end the run before its checkpoint.
    main_end, terminal = pty.openpty()
    run = train("one process", tmp_path, data=shakespeare, total=256, output=terminal)
    os.close(terminal)
    hung_up = threading.Event()

    def terminal_reads():  # what a terminal does: take what the run prints (it would block once the pty is full)
        while not hung_up.is_set():
            if select.select([main_end], [], [], 0.05)[0]:
                os.read(main_end, 4096)
    reader = threading.Thread(target=terminal_reads)
    reader.start()
    run.wait_until(lambda: trained_steps(tmp_path) >= 6)
    hung_up.set()
    reader.join()
    os.close(main_end)  # the hang-up: from now on, writing to the terminal fails (EIO)
    run.process.send_signal(signal.SIGHUP)
    rc, _ = run.finish()
    assert rc == 128 + signal.SIGHUP
    step = trained_steps(tmp_path)
    assert os.path.exists(tmp_path / f"model_{step:05d}.pt")
    rc, out = train("one process", tmp_path, "--resume", "auto", data=shakespeare, total=256).finish()
    assert rc == 0, out[-3000:]
    assert lines(tmp_path, "train") == lines(uninterrupted["one process"], "train")


def test_a_second_run_in_the_same_folder_is_refused_while_the_first_runs(shakespeare, tmp_path):
    first = train("one process", tmp_path, "--max_steps", "300", data=shakespeare, total=64)
    first.wait_until(lambda: trained_steps(tmp_path) >= 1)
    rc, out = train("one process", tmp_path, data=shakespeare, total=64).finish()
    assert rc == 1
    assert f"--log_dir {tmp_path} is in use by another run (pid {first.process.pid} on " in out
    assert trained_steps(tmp_path) >= 1 and not os.path.isdir(tmp_path / "log")  # the first run's files untouched
    # SIGKILL gives the first run no time to clean up: the OS lets go of its lock, and a run can start there again.
    first.process.send_signal(signal.SIGKILL)
    first.finish()
    rc, out = train("one process", tmp_path, "--resume", "auto", data=shakespeare, total=64).finish()
    assert rc == 0, out[-3000:]
    assert ".in_use" not in os.listdir(tmp_path)


def test_a_second_run_is_accepted_once_the_first_has_ended(shakespeare, tmp_path):
    for _ in range(2):
        rc, out = train("one process", tmp_path, "--max_steps", "2", data=shakespeare, total=64).finish()
        assert rc == 0, out[-3000:]


def test_a_fresh_run_over_an_earlier_runs_folder_keeps_every_file_of_it(shakespeare, tmp_path):
    # Run twice (the README's quick start, say): the first run's log and checkpoints move into a folder of their own,
    # byte for byte, and the second run's are what --resume auto then finds.
    rc, out = train("one process", tmp_path, "--max_steps", "4", "--checkpoint_interval", "2", data=shakespeare,
                    total=64).finish()
    assert rc == 0, out[-3000:]
    earlier = {name: (tmp_path / name).read_bytes() for name in os.listdir(tmp_path)}
    assert sorted(earlier) == ["log.txt", "model_00002.pt", "model_00004.pt", "run.json"]
    rc, out = train("one process", tmp_path, "--max_steps", "3", data=shakespeare, total=64).finish()
    assert rc == 0, out[-3000:]
    moved = [name for name in os.listdir(tmp_path) if name.startswith("run_")]
    assert len(moved) == 1 and f"held an earlier run (log.txt, model_00002.pt, model_00004.pt, run.json): moved to " \
                               f"{tmp_path / moved[0]}/" in out
    assert {name: (tmp_path / moved[0] / name).read_bytes() for name in os.listdir(tmp_path / moved[0])} == earlier
    assert sorted(os.listdir(tmp_path)) == sorted(["log.txt", "model_00003.pt", "run.json", *moved])
    assert [line.split()[0] for line in lines(tmp_path, "train")] == ["0", "1", "2"]


def test_fineweb_stopped_by_ctrl_c_and_run_again_writes_the_same_shards(tmp_path):
    # Thousands of small shards, so that SIGINT lands while shards are still being written (a few seconds here).
    import json
    rng = np.random.default_rng(0)
    words = np.array("the cat sat on a mat while it rained over the quiet town and nobody came".split())
    with open(tmp_path / "docs.jsonl", "w") as f:
        for _ in range(3000):
            f.write(json.dumps({"text": " ".join(rng.choice(words, 400))}) + "\n")
    fineweb = [sys.executable, os.path.join(ROOT, "fineweb.py"), "--dataset", "docs.jsonl", "--shard_size", "500",
               "--workers", "1"]
    rc, out = Run([*fineweb, "--out_dir", "straight"], cwd=tmp_path).finish()
    assert rc == 0, out[-3000:]
    run = Run([*fineweb, "--out_dir", "stopped"], cwd=tmp_path)
    run.wait_until(lambda: (tmp_path / "stopped").exists() and len(list((tmp_path / "stopped").glob("*.npy"))) >= 10)
    # One fineweb.py per folder: a second one is refused while this one runs (in this process: at once).
    with pytest.raises(SystemExit, match=rf"--out_dir {tmp_path / 'stopped'} is in use by another run "
                                         rf"\(pid {run.process.pid} on "):
        import fineweb as this_fineweb
        this_fineweb.main(fineweb[2:] + ["--out_dir", str(tmp_path / "stopped")])
    run.process.send_signal(signal.SIGINT)
    rc, out = run.finish()
    assert rc == 130 and "complete shard(s) in stopped/ are kept" in out, out[-3000:]
    straight = sorted(os.listdir(tmp_path / "straight"))
    kept = sorted(os.listdir(tmp_path / "stopped"))
    assert 10 <= len(kept) < len(straight) and set(kept) <= set(straight)  # complete shards only: no .tmp
    rc, out = Run([*fineweb, "--out_dir", "stopped"], cwd=tmp_path).finish()
    assert rc == 0, out[-3000:]
    assert sorted(os.listdir(tmp_path / "stopped")) == straight
    for name in straight:
        assert (tmp_path / "stopped" / name).read_bytes() == (tmp_path / "straight" / name).read_bytes(), name
