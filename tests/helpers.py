"""What several test modules use: the command line of a tiny training run, a HellaSwag file in the real schema,
play.ipynb run in a kernel, a command run so that none of its processes outlives it, a free TCP port. (Fixtures are in
conftest.py.)"""
import json
import os
import random
import signal
import socket
import subprocess
import tempfile

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

# A training run that takes seconds on a CPU: 1 layer of 32 channels, 2 rows of 32 tokens, 2 steps, in float32,
# eager, without HellaSwag, sampling one continuation of 2 tokens.
TINY = dict(device="cpu", n_layer=1, n_head=2, n_embd=32, batch_size=2, seq_len=32, total_batch_size=64, max_steps=2,
            warmup_steps=1, val_steps=1, hellaswag=False, compile=False, dtype="float32", num_samples=1,
            max_new_tokens=2)


def tiny_flags(**overrides):
    """The command-line flags of the tiny run, changed by `overrides`: flag=value gives --flag value, flag=True
    --flag, flag=False --no-flag, and flag=None leaves the flag out."""
    argv = []
    for flag, value in {**TINY, **overrides}.items():
        if value is True:
            argv.append(f"--{flag}")
        elif value is False:
            argv.append(f"--no-{flag}")
        elif value is not None:
            argv += [f"--{flag}", str(value)]
    return argv


def write_hellaswag(data_dir):
    """data_dir/hellaswag_val.jsonl: 6 examples in the HellaSwag schema, every field of the real file."""
    os.makedirs(data_dir)
    with open(os.path.join(data_dir, "hellaswag_val.jsonl"), "w") as f:
        for i in range(6):
            f.write(json.dumps({"ind": i, "activity_label": "Test", "ctx_a": "A man opens a door.", "ctx_b": "He",
                                "ctx": "A man opens a door. He", "split": "val", "split_type": "indomain",
                                "label": i % 4, "source_id": f"test~{i}",
                                "endings": ["walks in.", "sings a song about the sea.", "sits.", "runs away fast."]})
                    + "\n")


def run_notebook(env):
    """play.ipynb executed top to bottom in a Jupyter kernel whose environment has `env` added; returns the notebook
    with its outputs."""
    import nbformat
    from nbclient import NotebookClient
    nb = nbformat.read(os.path.join(ROOT, "play.ipynb"), as_version=4)
    old = {k: os.environ.get(k) for k in env}
    os.environ.update(env)  # the kernel inherits this process's environment
    try:
        NotebookClient(nb, timeout=300, kernel_name="python3", resources={"metadata": {"path": ROOT}}).execute()
    finally:
        for k, v in old.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v
    return nb


def processes_under(pid):
    """The processes that `pid` started, and theirs, as found by their parent links in /proc (none where there is
    no /proc). A process whose parent ended is no longer under it: see conftest.py's subreaper."""
    children = {}
    for entry in os.listdir("/proc") if os.path.isdir("/proc") else []:
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as f:
                parent = int(f.read().rsplit(")", 1)[1].split()[1])  # the field after the command's name
        except (OSError, ValueError, IndexError):
            continue
        children.setdefault(parent, []).append(int(entry))
    tree, todo = [], list(children.get(pid, []))
    while todo:
        tree.append(todo.pop())
        todo += children.get(tree[-1], [])
    return tree


def kill_tree(pid):
    """Kill process `pid` and every process it started, and theirs. torchrun starts each worker in a session of its
    own, so killing the launcher's process group leaves the workers running; their parent links, read from /proc
    before anything is killed, find them. (Where there is no /proc, the process group is all that is killed.)"""
    for member in [pid, *processes_under(pid)]:
        try:
            os.kill(member, signal.SIGKILL)
        except ProcessLookupError:
            pass
    try:
        os.killpg(pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass


def run_command(command, timeout, **kwargs):
    """subprocess.run(command, capture_output=True, text=True, timeout=timeout, **kwargs), except that no process of
    it outlives the call: past `timeout` seconds the command and every process it started are killed and the test
    fails with what it printed (subprocess.run kills only the command, and torchrun's workers ran on after pytest
    ended); an exception or Ctrl-C in the test while it waits kills them too. The output goes to files, not pipes,
    which a worker still holding one open would keep from ending."""
    import pytest
    with tempfile.TemporaryFile("w+") as out, tempfile.TemporaryFile("w+") as err:
        process = subprocess.Popen(command, stdout=out, stderr=err, text=True, start_new_session=True, **kwargs)
        timed_out = False
        try:
            process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            timed_out = True
        finally:
            if process.poll() is None:
                kill_tree(process.pid)
                process.wait()
        out.seek(0)
        err.seek(0)
        printed = subprocess.CompletedProcess(command, process.returncode, out.read(), err.read())
    if timed_out:
        pytest.fail(f"{' '.join(map(str, command))[:300]}\nstill running after {timeout} s, killed; it printed:\n"
                    f"{(printed.stdout + printed.stderr)[-3000:]}")
    return printed


def free_port():
    """A TCP port on this machine that nothing listens on now, below the range the kernel hands out to outgoing
    connections (32768 and up on Linux). A port from that range can be given to a client's own end of a connection
    to it before its server listens: the client then connects to itself (TCP's simultaneous open), and a torchrun
    node that did so waited for a rendezvous server that was itself."""
    for port in random.Random().sample(range(20000, 32000), 200):
        with socket.socket() as s:
            try:
                s.bind(("127.0.0.1", port))
            except OSError:
                continue
            return port
    raise RuntimeError("no free TCP port between 20000 and 32000")
