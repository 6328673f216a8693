"""Fakes of what this machine lacks: a network, and CUDA GPUs.

Run a script as `python SCRIPT ARGS` would, with them: urllib's urlopen serves the files named in the JSON of
$FAKE_URLS ({url: local path}) in slow chunks, as a real download would arrive, and appends each URL it serves to
downloads.txt in the working directory. $FAKE_PEAK_FLOPS, if set, is the GPU peak that MFU is measured against.
$FAKE_CUDA, if set, makes the process see CUDA GPUs whose tensors live on the CPU (fake_cuda below): a number N
for N GPUs per machine, shared by its processes (each process sees all N), or "own" for one GPU per process, its
own (what SLURM's --gpus-per-task=1 gives), and $FAKE_GPU_ROWS the most rows a forward pass fits in the GPU's
memory ("16", or one number per local rank: "32,16"). $FAKE_FULL_LOG_AFTER=N makes the disk full for log.txt after
its first N lines. The tests launch it under torchrun, in place of the script:

    torchrun ... tests/fakes.py train_gpt2.py --data input.txt ...
"""
import json
import os
import runpy
import sys
import time
import types
import urllib.request


class Response:
    """What urlopen returns: serves `body`, announcing `length` bytes (its own length unless given)."""

    def __init__(self, url, body, length=None):
        self.url, self.body, self.headers = url, body, {"Content-Length": str(len(body) if length is None else length)}

    def geturl(self):
        return self.url

    def read(self, n=-1):
        time.sleep(0.05)  # slow enough that processes downloading at once would overlap
        n = len(self.body) if n < 0 else min(n, 256 * 1024)
        chunk, self.body = self.body[:n], self.body[n:]
        return chunk

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False


def urlopen(url, timeout=None):
    url = getattr(url, "full_url", url)
    files = json.loads(os.environ.get("FAKE_URLS", "{}"))
    if url not in files:
        raise OSError(f"no network (fake): {url}")
    with open("downloads.txt", "a") as f:
        f.write(url + "\n")
    with open(files[url], "rb") as f:
        return Response(url, f.read())


def refuse(*args, **kwargs):
    raise AssertionError("a real GPU would be needed here")


def fake_cuda(setattr, gpus, uuids=None, name="NVIDIA H100 80GB HBM3", capability=(9, 0), memory=80 * 2**30,
              rows_that_fit=None):
    """Make this process see `gpus` CUDA GPUs (of that name, compute capability, memory and uuids) whose tensors live
    on the CPU: GPU i is the device "cpu:i", a CPU device that keeps the index. It patches, with setattr (the
    builtin, or a pytest monkeypatch's), what the project's code asks: plumbing's device choice, torch.cuda's device
    count, current device and properties, synchronize, pinning, the process group's backend and DDP. It never patches
    what torch asks itself (torch.cuda.is_available), so torch's own code still sees the machine as it is. The
    process group gets gloo where NCCL is asked for, and DDP checks its device_ids as CUDA would: a GPU index this
    process does not see fails. rows_that_fit: attention over more rows than that runs out of the GPU's memory
    (torch.cuda.OutOfMemoryError), as a batch too large for the GPU would. Returns the list of calls made, in
    order."""
    import torch
    import torch.distributed as dist
    from torch.nn.parallel import DistributedDataParallel

    import plumbing.hardware
    import plumbing.processes
    uuids = uuids or [f"GPU-fake-{i}" for i in range(gpus)]
    calls, current = [], [0]
    real_gpu_of, real_init = plumbing.processes.gpu_of, dist.init_process_group

    def index(device):
        return 0 if device is None else device if isinstance(device, int) else torch.device(device).index or 0

    def set_device(device):
        calls.append(("set_device", str(device)))
        current[0] = index(device)

    def init_process_group(backend=None, **kwargs):
        calls.append(("init", backend, kwargs.get("timeout")))
        real_init("gloo", **kwargs)

    class DDP(DistributedDataParallel):
        def __init__(self, module, device_ids=None, **kwargs):
            calls.append(("DDP", device_ids and [index(d) for d in device_ids], kwargs))
            if device_ids and not 0 <= index(device_ids[0]) < gpus:  # what CUDA says of a GPU that is not there
                raise RuntimeError("CUDA error: invalid device ordinal")
            super().__init__(module, **kwargs)

    setattr(plumbing.hardware, "pick_device", lambda requested="auto": (
        "cpu" if requested in ("auto", "cuda") else requested.replace("cuda", "cpu"), "cuda"))
    setattr(plumbing.processes, "gpu_of",
            lambda local_rank, visible: real_gpu_of(local_rank, visible).replace("cuda", "cpu"))
    setattr(torch.cuda, "device_count", lambda: gpus)
    setattr(torch.cuda, "set_device", set_device)
    setattr(torch.cuda, "current_device", lambda: current[0])
    setattr(torch.cuda, "get_device_name", lambda device=None: name)
    setattr(torch.cuda, "get_device_capability", lambda device=None: capability)
    setattr(torch.cuda, "get_device_properties", lambda device=None: types.SimpleNamespace(
        name=name, uuid=uuids[index(device if device is not None else current[0])], total_memory=memory,
        major=capability[0], minor=capability[1]))
    setattr(torch.cuda, "synchronize", lambda device=None: calls.append(("synchronize",)))
    setattr(torch, "set_float32_matmul_precision", lambda precision: calls.append(("matmul_precision", precision)))
    setattr(torch.Tensor, "pin_memory", lambda self, *args, **kwargs: self)  # pinning needs a GPU
    for rng in ("get_rng_state", "get_rng_state_all", "set_rng_state", "set_rng_state_all"):
        setattr(torch.cuda, rng, refuse)
    setattr(dist, "init_process_group", init_process_group)
    setattr(torch.nn.parallel, "DistributedDataParallel", DDP)
    if rows_that_fit is not None:
        attention = torch.nn.functional.scaled_dot_product_attention

        def attention_that_runs_out_of_memory(q, *args, **kwargs):
            if q.size(0) > rows_that_fit:
                calls.append(("out of memory", q.size(0)))
                raise torch.cuda.OutOfMemoryError(f"CUDA out of memory (fake: more than {rows_that_fit} rows)")
            return attention(q, *args, **kwargs)
        setattr(torch.nn.functional, "scaled_dot_product_attention", attention_that_runs_out_of_memory)
    return calls


if __name__ == "__main__":
    urllib.request.urlopen = urlopen
    if os.environ.get("FAKE_PEAK_FLOPS"):
        import plumbing.hardware
        plumbing.hardware.peak_flops = lambda device_type, dtype=None: float(os.environ["FAKE_PEAK_FLOPS"])
    if os.environ.get("FAKE_FULL_LOG_AFTER"):  # a disk that is full after that many lines of log.txt
        import builtins
        import errno

        import plumbing.runlog
        appended = []

        def open_(path, mode="r", *args, **kwargs):
            if str(path).endswith("log.txt") and mode == "a":
                appended.append(path)
                if len(appended) > int(os.environ["FAKE_FULL_LOG_AFTER"]):
                    raise OSError(errno.ENOSPC, "No space left on device")
            return builtins.open(path, mode, *args, **kwargs)
        plumbing.runlog.open = open_  # the name plumbing's code finds before the builtin
    rows = os.environ.get("FAKE_GPU_ROWS")  # "16", or one number per local rank: "32,16"
    rows = int(rows.split(",")[int(os.environ["LOCAL_RANK"]) % len(rows.split(","))]) if rows else None
    if os.environ.get("FAKE_CUDA") == "own":
        fake_cuda(setattr, 1, uuids=[f"GPU-fake-{os.environ['LOCAL_RANK']}"], rows_that_fit=rows)
    elif os.environ.get("FAKE_CUDA"):
        fake_cuda(setattr, int(os.environ["FAKE_CUDA"]), rows_that_fit=rows)
    sys.argv = sys.argv[1:]
    if os.path.isdir("/proc/self/task"):  # Linux: the threads of this process, as the kernel counts them
        # destroy_process_group() must free the group, which joins the threads it started (gloo's): one still running
        # as the interpreter shuts down can abort the process (plumbing.processes.import_what_holds_the_group).
        # Counted: the threads that Python did not start (tqdm's monitor is one it did).
        import threading

        import torch.distributed as dist
        threads, init, destroy = [], dist.init_process_group, dist.destroy_process_group

        def native_threads():
            return len(os.listdir("/proc/self/task")) - threading.active_count()

        def init_process_group(*args, **kwargs):
            threads.append(native_threads())
            init(*args, **kwargs)

        def destroy_process_group(*args, **kwargs):
            destroy(*args, **kwargs)
            left = native_threads() - threads[-1]
            if left > 0 and not dist.is_initialized():
                raise AssertionError(f"{left} thread(s) of the process group still run after destroy_process_group(): "
                                     "something still holds the group")
        dist.init_process_group, dist.destroy_process_group = init_process_group, destroy_process_group
    runpy.run_path(sys.argv[0], run_name="__main__")
