"""Several machines, simulated on this one: torchrun nodes (static rendezvous on localhost), each working in a
directory of its own, which stands in for its own disk. Relative paths (--log_dir log, --data input.txt) then name
different files on different "machines", as they would without a shared file system."""
import json
import os
import shutil
import signal
import subprocess
import sys

import pytest
from helpers import ROOT, free_port, tiny_flags, write_hellaswag

import hellaswag
import plumbing

FAKES = os.path.join(ROOT, "tests", "fakes.py")


def tiny(**overrides):
    """The tiny run of helpers.tiny_flags, evaluated and checkpointed every 2 steps, into log/ of each machine."""
    return tiny_flags(**{"val_steps": 2, "eval_interval": 2, "checkpoint_interval": 2, "sample_interval": 100,
                         "log_dir": "log", **overrides})


def launch(machines, argv, nproc=1, env=None, timeout=240):
    """Run train_gpt2.py (through tests/fakes.py) as one torchrun node per directory in `machines`; return each
    node's (returncode, stdout + stderr). A run that does not end within `timeout` seconds hung: it fails the test."""
    port = free_port()
    env = dict(os.environ, OMP_NUM_THREADS="1", PYTHONPATH=ROOT, **(env or {}))
    procs = [subprocess.Popen([sys.executable, "-m", "torch.distributed.run", f"--nnodes={len(machines)}",
                               f"--node_rank={node}", f"--nproc_per_node={nproc}", "--master_addr=127.0.0.1",
                               f"--master_port={port}", FAKES, os.path.join(ROOT, "train_gpt2.py"), *argv],
                              cwd=cwd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                              start_new_session=True)
             for node, cwd in enumerate(machines)]
    try:
        outs = [p.communicate(timeout=timeout)[0] for p in procs]
    except subprocess.TimeoutExpired:
        for p in procs:
            os.killpg(p.pid, signal.SIGKILL)
        pytest.fail(f"the processes were still running after {timeout} s: they hung")
    return [(p.returncode, out) for p, out in zip(procs, outs)]


@pytest.fixture
def two_machines(tmp_path, shakespeare):
    machines = [tmp_path / "machine0", tmp_path / "machine1"]
    for m in machines:
        m.mkdir()
        shutil.copy(shakespeare, m / "input.txt")
    return machines


def test_resume_on_a_machine_without_the_checkpoint_stops_every_process_with_one_message(two_machines):
    argv = ["--data", "input.txt", *tiny(total_batch_size=128, max_steps=None)]
    first = launch(two_machines, [*argv, "--max_steps", "2"])
    assert all(rc == 0 for rc, _ in first), first
    assert os.listdir(two_machines[0] / "log") == ["log.txt", "model_00002.pt"] or \
        sorted(os.listdir(two_machines[0] / "log")) == ["log.txt", "model_00002.pt"]
    assert not (two_machines[1] / "log").exists()  # only rank 0 writes: machine 1 has no checkpoint

    # Rank 0 would resume at step 2 and rank 1 start at step 0: their collectives would not match.
    resumed = launch(two_machines, [*argv, "--max_steps", "4", "--resume", "auto"])
    assert all(rc != 0 for rc, _ in resumed)
    for rc, out in resumed:  # each machine says it, once
        assert out.count("--resume log/model_00002.pt: no such checkpoint here") == 1, out
        assert "copy log/model_00002.pt to the same path on every machine" in out
        assert "[on node 1 (" in out  # the machine that lacks it

    # Copied over, as the message says: now it resumes on both machines.
    (two_machines[1] / "log").mkdir()
    shutil.copy(two_machines[0] / "log" / "model_00002.pt", two_machines[1] / "log")
    resumed = launch(two_machines, [*argv, "--max_steps", "4", "--resume", "auto"])
    assert all(rc == 0 for rc, _ in resumed), resumed
    assert "resuming from log/model_00002.pt at step 2" in resumed[0][1]


def test_each_machine_downloads_its_data_once_before_training(tmp_path, shakespeare):
    # Two machines of two processes, with neither tiny Shakespeare nor HellaSwag on disk. Each machine's local rank 0
    # downloads both while the others wait: one download of each file per machine, none by the other process and
    # none during the evaluation.
    write_hellaswag(tmp_path / "served")
    urls = {plumbing.TINY_SHAKESPEARE_URL: shakespeare,
            hellaswag.DATA_URL.format(split="val"): str(tmp_path / "served" / "hellaswag_val.jsonl")}
    machines = [tmp_path / "machine0", tmp_path / "machine1"]
    for m in machines:
        m.mkdir()
    argv = ["--data", "input.txt", "--hellaswag_dir", "hellaswag", *tiny(hellaswag=True, total_batch_size=256)]
    runs = launch(machines, argv, nproc=2, env={"FAKE_URLS": json.dumps(urls)})
    assert all(rc == 0 for rc, _ in runs), runs
    assert "step     2 | HellaSwag acc_norm" in runs[0][1]
    for m in machines:
        assert sorted((m / "downloads.txt").read_text().splitlines()) == sorted(urls), m
        assert plumbing.sha256_of(m / "input.txt") == plumbing.TINY_SHAKESPEARE_SHA256
        assert os.listdir(m / "hellaswag") == ["hellaswag_val.jsonl"]  # no temporary file left


def test_a_download_that_fails_on_one_machine_stops_every_process(tmp_path, shakespeare):
    # The fake network serves HellaSwag from a file that only machine 0 has (a path relative to each machine's
    # folder): machine 1's download fails. Every process stops with that message, none waits for the others.
    machines = [tmp_path / "machine0", tmp_path / "machine1"]
    for m in machines:
        m.mkdir()
        shutil.copy(shakespeare, m / "input.txt")
    write_hellaswag(machines[0] / "served")
    urls = {hellaswag.DATA_URL.format(split="val"): os.path.join("served", "hellaswag_val.jsonl")}
    argv = ["--data", "input.txt", "--hellaswag_dir", "hellaswag", *tiny(hellaswag=True, total_batch_size=128)]
    runs = launch(machines, argv, env={"FAKE_URLS": json.dumps(urls)})
    assert all(rc != 0 for rc, _ in runs)
    for _, out in runs:
        assert out.count("could not download HellaSwag val from https://") == 1, out
        assert "[on node 1 (" in out
    assert os.listdir(machines[1] / "hellaswag") == []  # nothing half-written
    assert not (machines[0] / "log").exists()  # stopped before training


def test_damaged_hellaswag_data_on_one_machine_stops_every_process_with_its_message(two_machines):
    # The evaluation is not a collective: without a check, machine 1's process would stop with its error while
    # machine 0's waited for it in the next all-reduce.
    for m in two_machines:
        write_hellaswag(m / "hellaswag")
    with open(two_machines[1] / "hellaswag" / "hellaswag_val.jsonl", "a") as f:
        f.write('{"ind": 6, "ctx": "cut off in the mid\n')
    argv = ["--data", "input.txt", "--hellaswag_dir", "hellaswag", *tiny(hellaswag=True, total_batch_size=128)]
    runs = launch(two_machines, argv)
    assert all(rc != 0 for rc, _ in runs)
    for _, out in runs:
        assert out.count("hellaswag/hellaswag_val.jsonl, line 7: not valid JSON") == 1, out
        assert "[on node 1 (" in out
