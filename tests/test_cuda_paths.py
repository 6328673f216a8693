"""The CUDA-only branches, run on the CPU. The answers to what the code asks of CUDA are faked (tests/fakes.py: an
H100 whose tensors live on the CPU), so that every branch that asks for CUDA runs up to the point where a real GPU
would be needed. A fake-CUDA run must compute what a CPU run computes: the branches change where and how fast, not
what."""
import os
import sys

import fakes
import pytest
import torch
from helpers import ROOT, count_compiles_around_step_0, run_command, tiny_flags

import plumbing.cli
import plumbing.hardware
import plumbing.processes
import train_gpt2

TINY = tiny_flags(device=None, total_batch_size=128, max_steps=4, val_steps=2, eval_interval=2, checkpoint_interval=2,
                  sample_interval=100)


@pytest.fixture
def fake_cuda(monkeypatch):
    """Make this process look like it has one H100; returns the list of the CUDA calls made."""
    calls = fakes.fake_cuda(monkeypatch.setattr, 1)
    monkeypatch.setattr(train_gpt2, "DDP", torch.nn.parallel.DistributedDataParallel)  # the checking fake
    return calls


def read(path):
    with open(path) as f:
        return f.read()


def test_a_fake_cuda_run_computes_what_a_cpu_run_computes(fake_cuda, shakespeare, tmp_path, capsys):
    train_gpt2.main(["--data", shakespeare, "--log_dir", str(tmp_path / "cuda"), "--device", "cuda", *TINY])
    out = capsys.readouterr().out
    assert ("matmul_precision", "high") in fake_cuda  # TF32
    assert ("synchronize",) in fake_cuda and "MFU" in out  # timed to the GPU's end, against the H100's peak
    with pytest.MonkeyPatch.context() as undo:
        undo.setattr(plumbing.hardware, "pick_device", lambda requested="auto": ("cpu", "cpu"))
        train_gpt2.main(["--data", shakespeare, "--log_dir", str(tmp_path / "cpu"), "--device", "cpu", *TINY])
    assert read(tmp_path / "cuda" / "log.txt") == read(tmp_path / "cpu" / "log.txt")


def test_checkpoints_neither_save_nor_restore_a_gpu_rng_state(fake_cuda, shakespeare, tmp_path):
    # Rank 0 used to save the RNG states of every GPU it could see, and every rank restored them all: a resume that
    # sees fewer GPUs failed with an IndexError, and each rank took rank 0's states. Nothing in training draws from
    # a GPU's RNG, so none is saved (which also keeps a CPU run on a GPU machine from starting CUDA to save one),
    # and the states in older checkpoints are not restored. `refuse` stands for all of these.
    straight = tmp_path / "straight"
    train_gpt2.main(["--data", shakespeare, "--log_dir", str(straight), "--device", "cuda", *TINY])
    checkpoint = torch.load(straight / "model_00002.pt", weights_only=True)
    assert set(checkpoint["rng"]) == {"cpu"}
    # A checkpoint written before: rank 0's 8 GPUs' states. Resumed on this one-GPU machine, the same run.
    checkpoint["rng"]["cuda"] = [torch.zeros(16, dtype=torch.uint8)] * 8
    resumed = tmp_path / "resumed"
    resumed.mkdir()
    torch.save(checkpoint, resumed / "model_00002.pt")
    train_gpt2.main(["--data", shakespeare, "--log_dir", str(resumed), "--device", "cuda", *TINY, "--resume", "auto"])
    a = torch.load(straight / "model_00004.pt", weights_only=True)["model"]
    b = torch.load(resumed / "model_00004.pt", weights_only=True)["model"]
    assert all(torch.equal(a[name], b[name]) for name in a)
    assert os.path.exists(resumed / "log.txt")


@pytest.mark.parametrize("local_rank, visible, gpu", [(0, 8, "cuda:0"), (5, 8, "cuda:5"), (7, 8, "cuda:7"),
                                                      (5, 1, "cuda:0"), (0, 1, "cuda:0")])
def test_each_process_takes_its_own_gpu_or_the_only_one_it_sees(local_rank, visible, gpu):
    # visible == 1 with local rank 5: SLURM's --gpus-per-task=1 shows each process its own GPU as cuda:0.
    assert plumbing.processes.gpu_of(local_rank, visible) == gpu


def test_more_processes_than_gpus_is_refused():
    with pytest.raises(plumbing.cli.InputError,
                       match="local rank 8 has no GPU of its own: its process sees 8 GPUs; start at most"):
        plumbing.processes.gpu_of(8, 8)


def setup_on(monkeypatch, requested, visible, env):
    """setup_distributed on a fake machine: `visible` GPUs, torchrun's environment `env` (or none)."""
    calls = []
    for key in ("RANK", "LOCAL_RANK", "WORLD_SIZE"):
        monkeypatch.delenv(key, raising=False)
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: visible)
    monkeypatch.setattr(torch.cuda, "set_device", lambda device: calls.append(("set_device", str(device))))
    monkeypatch.setattr(train_gpt2.dist, "init_process_group",
                        lambda backend, timeout: calls.append(("init", backend)))
    monkeypatch.setattr(plumbing.processes, "check_own_gpus", lambda device: calls.append(("shared?", device)))
    return train_gpt2.setup_distributed(requested), calls


def test_torchrun_with_one_gpu_shown_per_process_uses_it(monkeypatch):
    # Rank 5 of 8 on a node where the launcher made one GPU visible to each process: cuda:5 does not exist there.
    facts, calls = setup_on(monkeypatch, "auto", 1, {"RANK": "5", "LOCAL_RANK": "5", "WORLD_SIZE": "8"})
    assert facts == (True, 5, 5, 8, "cuda:0", "cuda")
    assert calls == [("set_device", "cuda:0"), ("init", "cpu:gloo,cuda:nccl"), ("shared?", "cuda:0")]


def test_cuda_n_without_torchrun_becomes_the_current_gpu(monkeypatch):
    # Else synchronize(), the peak lookup and the bf16 check would look at GPU 0 while the model runs on GPU 1.
    facts, calls = setup_on(monkeypatch, "cuda:1", 2, {})
    assert facts == (False, 0, 0, 1, "cuda:1", "cuda")
    assert calls == [("set_device", "cuda:1")]


@pytest.mark.parametrize("name, capability, dtype, why", [
    ("Tesla P100-PCIE-16GB", (6, 0), None, "has no tensor cores"),
    ("Tesla V100-SXM2-16GB", (7, 0), torch.float16, "has float16 tensor cores and no bf16 ones"),
    ("Tesla T4", (7, 5), torch.float16, "has float16 tensor cores and no bf16 ones"),
    ("NVIDIA GeForce RTX 2080 Ti", (7, 5), torch.float16, "has float16 tensor cores and no bf16 ones"),
    ("NVIDIA A100-SXM4-80GB", (8, 0), torch.bfloat16, "has bf16 tensor cores"),
    ("NVIDIA GeForce RTX 4090", (8, 9), torch.bfloat16, "has bf16 tensor cores"),
    ("NVIDIA H100 80GB HBM3", (9, 0), torch.bfloat16, "has bf16 tensor cores")])
def test_dtype_auto_is_bf16_where_the_gpu_has_it_natively_else_float16_on_tensor_cores(monkeypatch, name, capability,
                                                                                       dtype, why):
    # V100 (7.0) and T4 (7.5) emulate bf16, and torch.cuda.is_bf16_supported() counts that: it says yes on both.
    # Their tensor cores do float16, with a gradient scaler; a GPU without tensor cores keeps float32.
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda including_emulation=True: True)
    monkeypatch.setattr(torch.cuda, "get_device_capability", lambda device=None: capability)
    monkeypatch.setattr(torch.cuda, "get_device_name", lambda device=None: name)
    assert plumbing.hardware.autocast_choice("auto", "cuda") == (dtype, f"auto: {name}, compute capability "
                                                                 f"{capability[0]}.{capability[1]}, {why}")
    assert plumbing.hardware.pick_autocast_dtype("bfloat16", "cuda") is torch.bfloat16  # asked for: given
    assert plumbing.hardware.pick_autocast_dtype("float16", "cuda") is torch.float16


@pytest.mark.parametrize("name, model", [
    ("NVIDIA A100-SXM4-80GB", "A100"), ("NVIDIA A100-PCIE-40GB", "A100"), ("NVIDIA A100 80GB PCIe", "A100"),
    ("NVIDIA H100 80GB HBM3", "H100 SXM"), ("NVIDIA H100 PCIe", "H100 PCIe"), ("NVIDIA H100 NVL", "H100 NVL"),
    ("NVIDIA H200", "H200 SXM"), ("NVIDIA H200 NVL", "H200 NVL"), ("Tesla T4", "T4"),
    ("Tesla V100-SXM2-16GB", "V100 SXM2"), ("Tesla V100-SXM2-32GB", "V100 SXM2"), ("Tesla V100-PCIE-32GB", "V100 PCIe"),
    ("Tesla V100S-PCIE-32GB", "V100S PCIe"), ("NVIDIA A10", "A10"), ("NVIDIA A10G", "A10G"), ("NVIDIA L4", "L4"),
    ("NVIDIA L40S", "L40S"), ("NVIDIA RTX A6000", "RTX A6000"), ("NVIDIA GeForce RTX 3090", "RTX 3090"),
    ("GeForce RTX 3090", "RTX 3090"), ("NVIDIA GeForce RTX 4090", "RTX 4090"),
    # Other GPUs whose names begin or end alike, with other peaks: none of the table's.
    ("NVIDIA RTX A1000", None), ("NVIDIA RTX A1000 6GB Laptop GPU", None), ("NVIDIA H100X", None), ("NVIDIA L40", None),
    ("NVIDIA GeForce RTX 4090 Laptop GPU", None), ("NVIDIA GeForce RTX 4090 D", None),
    ("NVIDIA GeForce RTX 3090 Ti", None), ("Quadro RTX 6000", None), ("NVIDIA RTX 6000 Ada Generation", None)])
def test_a_gpus_peak_is_looked_up_by_its_whole_model_name(name, model):
    assert plumbing.hardware.gpu_model(name) == model
    assert model is None or model in plumbing.hardware.PEAK_TFLOPS


@pytest.mark.parametrize("name, dtype, peak", [
    ("NVIDIA H100 PCIe", torch.bfloat16, 756e12), ("NVIDIA H100 PCIe", torch.float16, 756e12),
    ("Tesla T4", torch.float16, 65e12), ("Tesla T4", torch.bfloat16, 65e12),  # no bf16 tensor cores: float16's
    # float32: TF32 where the GPU has it (half the 16-bit peak), plain FP32 where not: not the bf16 peak.
    ("NVIDIA A100-SXM4-80GB", None, 156e12), ("NVIDIA H100 80GB HBM3", None, 494.5e12), ("Tesla T4", None, 8.1e12),
    ("Tesla V100-SXM2-16GB", None, 15.7e12),
    ("NVIDIA A10G", torch.float16, 70e12), ("NVIDIA GeForce RTX 4090", torch.bfloat16, 165.2e12)])
def test_peak_flops_of_the_current_gpu_for_the_runs_dtype(monkeypatch, name, dtype, peak):
    monkeypatch.setattr(torch.cuda, "get_device_name", lambda device=None: name)
    assert plumbing.hardware.peak_flops("cuda", dtype) == pytest.approx(peak)
    assert plumbing.hardware.peak_flops("cpu", dtype) is None


def test_a_fake_cuda_run_under_torchrun_asks_for_nccl_and_its_gpu(fake_cuda, one_process_torchrun, shakespeare,
                                                                  tmp_path, monkeypatch):
    # One process as torchrun starts it, on the fake GPU: NCCL is asked for (gloo stands in for it), and DDP is
    # given the process's GPU (the fake DDP takes the ids and runs on the CPU). The run logs what the plain CPU run
    # logs.
    import torch.distributed as dist
    train_gpt2.main(["--data", shakespeare, "--log_dir", str(tmp_path / "cuda"), "--device", "cuda", *TINY])
    asked = {call[0]: call[1:] for call in fake_cuda if call[0] in ("init", "DDP")}
    # NCCL for CUDA tensors, gloo for CPU ones (the checks' messages), and a timeout that outlasts a long checkpoint
    assert asked["init"] == ("cpu:gloo,cuda:nccl", plumbing.processes.COLLECTIVE_TIMEOUT)
    assert plumbing.processes.COLLECTIVE_TIMEOUT.total_seconds() >= 20 * 60
    assert asked["DDP"] == ([0], {"gradient_as_bucket_view": True})  # .grad: views into DDP's buckets, no copy
    assert not dist.is_initialized()
    for key in ("RANK", "LOCAL_RANK", "WORLD_SIZE"):
        monkeypatch.delenv(key)
    monkeypatch.setattr(plumbing.hardware, "pick_device", lambda requested="auto": ("cpu", "cpu"))
    train_gpt2.main(["--data", shakespeare, "--log_dir", str(tmp_path / "cpu"), "--device", "cpu", *TINY])
    assert read(tmp_path / "cuda" / "log.txt") == read(tmp_path / "cpu" / "log.txt")


def test_compile_is_on_by_default_on_cuda():
    assert plumbing.hardware.use_compile(None, "cuda") and not plumbing.hardware.use_compile(False, "cuda")
    assert not plumbing.hardware.use_compile(None, "mps")


def torchrun(log_dir, data, nproc, fake_cuda=None):
    """train_gpt2.py under torchrun on this machine, through tests/fakes.py: (exit status, what it printed)."""
    env = dict(os.environ, OMP_NUM_THREADS="1", PYTHONPATH=ROOT, **({"FAKE_CUDA": fake_cuda} if fake_cuda else {}))
    device = "cuda" if fake_cuda else "cpu"
    out = run_command([sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc_per_node={nproc}",
                       os.path.join(ROOT, "tests", "fakes.py"), os.path.join(ROOT, "train_gpt2.py"),
                       "--data", data, "--log_dir", str(log_dir), *TINY, "--device", device],
                      cwd=ROOT, env=env, timeout=300)
    return out.returncode, out.stdout + out.stderr


@pytest.mark.multiprocess
@pytest.mark.slow
def test_each_process_that_is_shown_one_gpu_trains_on_it(shakespeare, tmp_path):
    # Two processes, each shown one GPU of its own, as its cuda:0 (SLURM's --gpus-per-task=1). Local rank 1 must run
    # on its cuda:0 and DDP must be given that GPU: DDP(device_ids=[LOCAL_RANK]) named a cuda:1 that this process does
    # not have, and failed at the first forward ("invalid device ordinal"). The run logs what two CPU processes log.
    rc, out = torchrun(tmp_path / "cuda", shakespeare, 2, fake_cuda="own")
    assert rc == 0, out[-3000:]
    rc, out = torchrun(tmp_path / "cpu", shakespeare, 2)
    assert rc == 0, out[-3000:]
    assert read(tmp_path / "cuda" / "log.txt") == read(tmp_path / "cpu" / "log.txt")


@pytest.mark.multiprocess
@pytest.mark.slow
def test_two_processes_on_one_gpu_are_refused_with_how_many_the_machine_can_run(shakespeare, tmp_path):
    # torchrun --nproc_per_node=2 on a machine with one GPU: both processes get its cuda:0, and NCCL would stop them
    # at the first collective ("Duplicate GPU detected") with tracebacks. Refused first, each machine saying it once.
    rc, out = torchrun(tmp_path / "log", shakespeare, 2, fake_cuda="1")
    assert rc != 0
    message = "2 processes on this machine share 1 GPU(s), and each needs one of its own: start at most 1 here " \
              "(torchrun --nproc_per_node 1) [on node 0 ("
    assert out.count(message) == 1, out[-3000:]
    assert "]: Traceback" not in out and not (tmp_path / "log").exists()  # no worker's traceback (torchrun's own: yes)
    rc, out = torchrun(tmp_path / "two", shakespeare, 2, fake_cuda="2")  # a GPU each: fine
    assert rc == 0, out[-3000:]


@pytest.mark.slow
def test_a_micro_batch_left_out_is_halved_until_a_step_fits_the_gpu(shakespeare, tmp_path, monkeypatch, capsys):
    # A 15 GB GPU where more than 16 rows run out of memory: the preset's 64 is tried, then 32, then 16, and the run
    # keeps its total batch with 4 micro-steps of 16 (and 4 val batches of 16 for its 1 of 64). It trains and logs
    # exactly what a run given --batch_size 16 (and --val_steps 4) does.
    calls = fakes.fake_cuda(monkeypatch.setattr, 1, memory=15 * 2**30, rows_that_fit=16)
    monkeypatch.setattr(train_gpt2, "DDP", torch.nn.parallel.DistributedDataParallel)
    flags = [*tiny_flags(device="cuda", batch_size=None, total_batch_size=64 * 32, max_steps=4, eval_interval=2,
                         checkpoint_interval=2), "--data", shakespeare]
    train_gpt2.main([*flags, "--log_dir", str(tmp_path / "auto")])
    out = capsys.readouterr().out
    assert "micro-batch 16 rows (64 did not fit in the GPU's 15 GB)" in out
    assert "total batch 2,048 tokens = 4 micro-steps of 16 x 32 on each of 1 process(es)" in out
    assert [call for call in calls if call[0] == "out of memory"] == [("out of memory", 64), ("out of memory", 32)]
    train_gpt2.main([*flags, "--log_dir", str(tmp_path / "given"), "--batch_size", "16", "--val_steps", "4"])
    assert read(tmp_path / "auto" / "log.txt") == read(tmp_path / "given" / "log.txt")
    # Resumed, the run takes the micro-batch its checkpoint found to fit, and still measures the val loss on the
    # tokens of the batch asked for: 4 batches of 16, not 1 (a val curve that changed at every resume).
    train_gpt2.main([*flags, "--log_dir", str(tmp_path / "resumed"), "--resume",
                     str(tmp_path / "auto" / "model_00002.pt")])
    val = [line for line in read(tmp_path / "auto" / "log.txt").splitlines() if line.startswith("4 val")]
    assert val and [line for line in read(tmp_path / "resumed" / "log.txt").splitlines() if " val " in line] == val
    # A --batch_size given on the command line is used as given: it does not fit, and the run says how to go on.
    with pytest.raises(SystemExit, match=r"--batch_size 32 does not fit in the GPU's 15 GB: one forward and backward "
                                         r"of 32 x 32 tokens ran out of memory\. Lower --batch_size, or leave it out"):
        train_gpt2.main([*flags, "--log_dir", str(tmp_path / "too_big"), "--batch_size", "32"])


@pytest.mark.multiprocess
@pytest.mark.slow
def test_two_processes_agree_on_the_smaller_micro_batch_that_fits(shakespeare, tmp_path):
    # Local rank 0's GPU fits 32 rows, local rank 1's 16: both take 16, and the run logs what two CPU processes
    # given --batch_size 16 (and --val_steps 4) log.
    flags = tiny_flags(device="cuda", batch_size=None, total_batch_size=64 * 32 * 2)
    env = dict(os.environ, OMP_NUM_THREADS="1", PYTHONPATH=ROOT, FAKE_CUDA="own", FAKE_GPU_ROWS="32,16")
    out = run_command([sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2",
                       os.path.join(ROOT, "tests", "fakes.py"), os.path.join(ROOT, "train_gpt2.py"), "--data",
                       shakespeare, "--log_dir", str(tmp_path / "auto"), *flags],
                      cwd=ROOT, env=env, timeout=300)
    assert out.returncode == 0, out.stderr[-3000:]
    assert out.stdout.count("micro-batch 16 rows (64 did not fit in the GPU's 80 GB)") == 1
    assert "4 micro-steps of 16 x 32 on each of 2 process(es)" in out.stdout
    cpu = tiny_flags(total_batch_size=64 * 32 * 2, batch_size=16, val_steps=4)
    out = run_command([sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2",
                       os.path.join(ROOT, "train_gpt2.py"), "--data", shakespeare, "--log_dir",
                       str(tmp_path / "cpu"), *cpu], cwd=ROOT, env=dict(os.environ, OMP_NUM_THREADS="1"), timeout=300)
    assert out.returncode == 0, out.stderr[-3000:]
    assert read(tmp_path / "auto" / "log.txt") == read(tmp_path / "cpu" / "log.txt")


@pytest.mark.slow
def test_the_first_training_step_compiles_nothing_after_the_micro_batch_probe(fake_cuda, shakespeare, tmp_path,
                                                                              monkeypatch):
    # The probe (a forward and backward of the micro-batch before training) must run the graph the training steps
    # run. Fed views with a stride of T + 1, it made step 0 compile a second graph (dynamo guards on strides): a
    # minute or more of Inductor on a GPU inside the first step, and a false dt. Halving B compiles one graph per B.
    from torch._dynamo.testing import CompileCounter
    frames = count_compiles_around_step_0(monkeypatch, CompileCounter())
    train_gpt2.main(["--data", shakespeare, "--log_dir", str(tmp_path), *TINY, "--compile", "--batch_size", "2"])
    assert frames == {"after the probe": 1, "the first step": 0}


ARCH = ["sm_75", "sm_80", "sm_86", "sm_90", "sm_100", "sm_120"]  # torch 2.9's CUDA 12.8 wheels: no sm_70


@pytest.mark.parametrize("arch, capability, index", [
    (ARCH, (7, 0), "cu126"),  # a V100: older than every kernel
    (["sm_50", "sm_60", "sm_70", "sm_75", "sm_80", "sm_86", "sm_90"], (12, 0), "cu130"),  # an RTX 5090, an old wheel
    (ARCH, (8, 9), None), (ARCH, (9, 0), None), (["sm_80", "compute_80"], (9, 0), None), ([], (7, 0), None)])
def test_a_gpu_this_torch_has_no_kernels_for_is_refused_at_start(monkeypatch, arch, capability, index):
    # sm_86 runs on an 8.9 (L4), PTX (compute_80) on anything newer; an empty list: torch cannot tell, no check.
    fakes.fake_cuda(monkeypatch.setattr, 1, name="Tesla V100-SXM2-16GB", capability=capability)
    monkeypatch.setattr(torch.cuda, "get_arch_list", lambda: arch)
    if index is None:
        assert plumbing.hardware.check_kernels("cuda:0") is None
        return
    with pytest.raises(plumbing.cli.InputError, match=rf"no kernels for this GPU \(Tesla V100-SXM2-16GB, compute "
                                                      rf"capability {capability[0]}\.{capability[1]}\).*whl/{index}"):
        plumbing.hardware.check_kernels("cuda:0")


@pytest.mark.parametrize("error, fits", [
    (torch.cuda.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB"), False),
    (RuntimeError("No valid triton configs. OutOfMemoryError: out of resource: triton_mm"), False),  # Inductor's
    (RuntimeError("CUDA error: CUBLAS_STATUS_ALLOC_FAILED when calling `cublasCreate(handle)`"), False),
    (RuntimeError("shape '[2, 32, 2, 16]' is invalid for input of size 100"), None)])  # a bug: raised, not halved
def test_the_probe_takes_every_form_of_out_of_memory_for_does_not_fit(error, fits):
    class Model(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.weight = torch.nn.Parameter(torch.ones(1))

        def forward(self, x, y):
            raise error
    if fits is None:
        with pytest.raises(RuntimeError, match="is invalid"):
            plumbing.hardware.micro_batch_fits(Model(), 2, 8, "cpu", None, 0)
    else:
        assert plumbing.hardware.micro_batch_fits(Model(), 2, 8, "cpu", None, 0) is fits
