"""Several machines, simulated on this one: torchrun nodes (static rendezvous on localhost), each working in a
directory of its own, which stands in for its own disk. Relative paths (--log_dir log, --data input.txt) then name
different files on different "machines", as they would without a shared file system."""
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time

import pytest
from helpers import ROOT, free_port, kill_tree, tiny_flags, write_hellaswag

import hellaswag
import plumbing.files

pytestmark = [pytest.mark.multiprocess, pytest.mark.slow]

FAKES = os.path.join(ROOT, "tests", "fakes.py")


def tiny(**overrides):
    """The tiny run of helpers.tiny_flags, evaluated and checkpointed every 2 steps, into log/ of each machine."""
    return tiny_flags(**{"val_steps": 2, "eval_interval": 2, "checkpoint_interval": 2, "sample_interval": 100,
                         "log_dir": "log", **overrides})


def launch(machines, argv, nproc=1, env=None, timeout=240):
    """Run train_gpt2.py (through tests/fakes.py) as one torchrun node per directory in `machines`; return each
    node's (returncode, stdout + stderr). A run that does not end within `timeout` seconds hung: it fails the test,
    with what each node printed, and every process of it is killed. (Each node prints into a file, not a pipe: a
    node blocked on a full pipe that nobody reads would hang the others waiting for it.)"""
    port = free_port()
    env = dict(os.environ, OMP_NUM_THREADS="1", PYTHONPATH=ROOT, **(env or {}))
    outputs = [tempfile.TemporaryFile("w+") for _ in machines]
    procs = [subprocess.Popen([sys.executable, "-m", "torch.distributed.run", f"--nnodes={len(machines)}",
                               f"--node_rank={node}", f"--nproc_per_node={nproc}", "--master_addr=127.0.0.1",
                               f"--master_port={port}", FAKES, os.path.join(ROOT, "train_gpt2.py"), *argv],
                              cwd=cwd, env=env, stdout=output, stderr=subprocess.STDOUT, start_new_session=True)
             for node, (cwd, output) in enumerate(zip(machines, outputs))]
    deadline = time.monotonic() + timeout
    try:
        for p in procs:
            p.wait(timeout=max(deadline - time.monotonic(), 0))
    except subprocess.TimeoutExpired:
        pass
    finally:
        for p in procs:  # each node's torchrun agent and its workers
            if p.poll() is None:
                kill_tree(p.pid)
                p.wait()
    printed = []
    for output in outputs:
        output.seek(0)
        printed.append(output.read())
        output.close()
    if any(p.returncode == -signal.SIGKILL for p in procs):
        pytest.fail(f"the processes were still running after {timeout} s: they hung. What each node printed:\n" +
                    "\n".join(f"--- node {node}\n{out[-3000:]}" for node, out in enumerate(printed)))
    return [(p.returncode, out) for p, out in zip(procs, printed)]


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
    assert sorted(os.listdir(two_machines[0] / "log")) == ["log.txt", "model_00002.pt", "run.json"]
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
    urls = {plumbing.files.TINY_SHAKESPEARE_URL: shakespeare,
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
        assert plumbing.files.sha256_of(m / "input.txt") == plumbing.files.TINY_SHAKESPEARE_SHA256
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


def each_says_once(runs, message, where):
    """Every machine's processes stopped (none left waiting), each machine printed `message` once, naming `where`,
    and no process printed a traceback of its own (torchrun's own report of a failed worker is not one)."""
    assert all(rc != 0 for rc, _ in runs)
    for _, out in runs:
        assert out.count(message) == 1, out[-3000:]
        assert f"[on {where} (" in out, out[-3000:]
        assert "]: Traceback" not in out, out[-3000:]  # a worker's traceback is printed as "[rankN]: Traceback"


def test_a_damaged_or_different_checkpoint_on_one_machine_stops_every_process(two_machines):
    # Every process loads the resume checkpoint from its own machine's disk. One that cannot read it used to stop
    # alone while the others waited for it; one that read another run's file of that name went on from other
    # optimizer and data states than rank 0's, silently.
    argv = ["--data", "input.txt", *tiny(total_batch_size=128, max_steps=2)]
    assert all(rc == 0 for rc, _ in launch(two_machines, argv))
    (two_machines[1] / "log").mkdir()
    rank0s = two_machines[0] / "log" / "model_00002.pt"
    (two_machines[1] / "log" / "model_00002.pt").write_bytes(rank0s.read_bytes()[:50_000])  # cut short
    resume = [*argv[:-2], "--max_steps", "4", "--resume", "auto"]
    each_says_once(launch(two_machines, resume), "--resume: log/model_00002.pt: cannot be read as a checkpoint",
                   "node 1")
    other = two_machines[1] / "other"  # another run's checkpoint of that step, with the same flags
    other.mkdir()
    shutil.copy(two_machines[1] / "input.txt", other)
    assert all(rc == 0 for rc, _ in launch([other], [*argv, "--seed", "7"]))
    shutil.copy(other / "log" / "model_00002.pt", two_machines[1] / "log")
    each_says_once(launch(two_machines, resume), "--resume log/model_00002.pt: not the file rank 0 resumes from",
                   "node 1")


def test_a_model_that_one_machine_cannot_load_stops_every_process(two_machines):
    # --init_from a directory that only machine 0 has (an offline machine cannot download OpenAI's weights either).
    from transformers import GPT2Config, GPT2LMHeadModel
    GPT2LMHeadModel(GPT2Config(n_layer=1, n_head=2, n_embd=32, n_positions=64)).save_pretrained(two_machines[0] / "hf")
    argv = ["--data", "input.txt", "--init_from", "hf", *tiny(total_batch_size=128, max_steps=2)]
    each_says_once(launch(two_machines, argv), "--init_from: unknown model 'hf'", "node 1")


def test_shards_that_differ_between_machines_stop_every_process(two_machines):
    # Each machine reads its own copy of the shards: machine 1's were cut at another size. The run would have read
    # other tokens on each machine (or stopped on one alone, where a split was too short there).
    import fineweb
    for machine, shard_size in zip(two_machines, (20_000, 30_000)):
        fineweb.main(["--dataset", str(machine / "input.txt"), "--out_dir", str(machine / "shards"), "--shard_size",
                      str(shard_size), "--workers", "1"])
    argv = ["--data", "shards", *tiny(total_batch_size=128, max_steps=2)]
    each_says_once(launch(two_machines, argv), "--data shards: not the same files as on rank 0's machine", "node 1")


def test_a_log_that_rank_0_cannot_write_stops_every_process(two_machines):
    # Rank 0's disk fills up after 3 lines of log.txt; the other machine's process must not go on without it.
    argv = ["--data", "input.txt", *tiny(total_batch_size=128, max_steps=4)]
    runs = launch(two_machines, argv, env={"FAKE_FULL_LOG_AFTER": "3"})
    each_says_once(runs, "could not add to log/log.txt ([Errno 28] No space left on device): the run stops here",
                   "node 0")
    assert (two_machines[0] / "log" / "log.txt").read_text().count("\n") == 3


@pytest.mark.parametrize("env, resolves_to, refused", [
    ({"WORLD_SIZE": "4", "LOCAL_WORLD_SIZE": "2", "MASTER_ADDR": "node0"}, "127.0.1.1", True),  # Debian's /etc/hosts
    ({"WORLD_SIZE": "4", "LOCAL_WORLD_SIZE": "2", "MASTER_ADDR": "node0", "GLOO_SOCKET_IFNAME": "eth0"}, "127.0.1.1",
     False),
    ({"WORLD_SIZE": "4", "LOCAL_WORLD_SIZE": "2", "MASTER_ADDR": "node0"}, "10.0.0.2", False),
    ({"WORLD_SIZE": "4", "LOCAL_WORLD_SIZE": "2", "MASTER_ADDR": "127.0.0.1"}, "127.0.1.1", False),  # one host
    ({"WORLD_SIZE": "2", "LOCAL_WORLD_SIZE": "2", "MASTER_ADDR": "node0"}, "127.0.1.1", False)])  # one machine
def test_machines_whose_host_name_resolves_to_loopback_are_told_to_set_gloo_socket_ifname(monkeypatch, env,
                                                                                          resolves_to, refused):
    import socket

    import plumbing.cli
    import plumbing.processes
    monkeypatch.delenv("GLOO_SOCKET_IFNAME", raising=False)
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    monkeypatch.setattr(socket, "gethostbyname", lambda name: resolves_to)
    if refused:
        with pytest.raises(plumbing.cli.InputError, match=r"resolves to 127\.0\.1\.1.*Set GLOO_SOCKET_IFNAME"):
            plumbing.processes.check_gloo_address()
    else:
        plumbing.processes.check_gloo_address()
