"""What several test modules use: the command line of a tiny training run, a HellaSwag file in the real schema,
play.ipynb run in a kernel, a command run so that none of its processes outlives it, a free TCP port, the memory
estimate behind the presets. (Fixtures are in conftest.py.)"""
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


# The memory estimate behind the presets' micro-batches (plumbing/presets.py): each B is the largest power of two, up
# to 64K tokens (the 124M recipe's 64 x 1024), whose memory by training_memory() fits in 90% of an 80 GB GPU (the
# rest for the CUDA context and the allocator's fragmentation).
GPU_MEMORY = 80e9


def training_memory(n_layer, n_embd, context, tokens, vocab_size=50304):
    """Bytes one training process needs, estimated, for `tokens` = B * T tokens per micro-step under bf16 autocast with
    flash attention:
      22 per parameter: float32 weights, gradients and AdamW's two moments (4 + 4 + 8), autocast's bf16 copy of
        the weights (2), and DDP's all-reduce buckets (4). gradient_as_bucket_view=True would make each .grad a view
        into the buckets (PyTorch PR #41954), but not under no_sync() accumulation: the micro-steps' gradients are
        fresh tensors, copied into the buckets only at the last micro-step, so both exist;
      40 * n_embd per token and layer, the activations kept for backward: Korthikanti et al. 2022 ("Reducing
        Activation Recomputation in Large Transformer Models", section 4.1) count 34 * n_embd in 16-bit, plus a
        5 * heads * T term for the attention matrix that flash attention never stores; the residual stream and the
        LayerNorms here are float32, hence 40;
      10 * vocab per token for the logits: bf16 logits, the float32 log-softmax the loss keeps, and its gradient."""
    n_params = n_layer * (12 * n_embd**2 + 13 * n_embd) + (vocab_size + context) * n_embd + 2 * n_embd
    return 22 * n_params + tokens * (40 * n_layer * n_embd + 10 * vocab_size)


def count_compiles_around_step_0(monkeypatch, backend):
    """Make torch.compile use `backend` (a torch._dynamo.testing CompileCounter or CompileCounterWithBackend) and
    return a dict that a run of main() then fills: the frames compiled once the micro-batch probe is done ("after the
    probe", absent where no probe ran) and those the first training step compiled ("the first step")."""
    import torch

    import plumbing.hardware
    import train_gpt2
    frames, compile_ = {}, torch.compile
    monkeypatch.setattr(torch, "compile", lambda model, **kwargs: compile_(model, **{**kwargs, "backend": backend}))
    step, probe = train_gpt2.train_step, plumbing.hardware.micro_batch_that_fits

    def micro_batch_that_fits(*args, **kwargs):
        B = probe(*args, **kwargs)
        frames["after the probe"] = backend.frame_count
        return B

    def train_step(*args, **kwargs):
        before = backend.frame_count
        result = step(*args, **kwargs)
        frames.setdefault("the first step", backend.frame_count - before)
        return result
    monkeypatch.setattr(plumbing.hardware, "micro_batch_that_fits", micro_batch_that_fits)
    monkeypatch.setattr(train_gpt2, "train_step", train_step)
    torch._dynamo.reset()
    return frames
