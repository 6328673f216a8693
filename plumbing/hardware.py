"""
The hardware: the device, the precision the matmuls run in, whether to compile, the micro-batch that fits a GPU, and
the GPUs' peak FLOP/s that MFU is measured against.
"""
import contextlib
import os
import platform
import re
import sys

import torch
import torch.distributed as dist

from plumbing.cli import InputError, print0


def pick_device(requested="auto"):
    """The device to run on and its type ("cuda", "mps" or "cpu"): the fastest one present unless one is asked for."""
    if requested == "auto":
        if torch.cuda.is_available():
            requested = "cuda"
        elif hasattr(torch.backends, "mps") and torch.backends.mps.is_available():
            requested = "mps"  # Apple silicon GPU
        else:
            requested = "cpu"
    device_type = requested.split(":")[0]
    if device_type == "cuda" and not torch.cuda.is_available():
        raise InputError(f"--device {requested}: this machine has no CUDA GPU (or torch was installed without CUDA); "
                         "use --device cpu, or leave --device out to pick the best device present")
    if device_type == "mps" and not (hasattr(torch.backends, "mps") and torch.backends.mps.is_available()):
        raise InputError(f"--device {requested}: MPS is not available here; use --device cpu")
    if device_type not in ("cuda", "mps", "cpu"):
        raise InputError(f"--device {requested}: unknown device; use auto, cpu, cuda, cuda:N or mps")
    return requested, device_type


DTYPES = {"float32": None, "bfloat16": torch.bfloat16, "float16": torch.float16}  # --dtype: autocast's dtype


def check_kernels(device):
    """Stop at start, with what to install, where this torch carries no kernels for the GPU: from 2.8 on, the wheels
    `pip install torch` picks are built for CUDA 12.8 or newer, without sm_70 (V100: pytorch/pytorch#172352), and an
    older wheel has none for the newest GPUs. Without this, the first operation fails with "no kernel image is
    available for execution on the device". A kernel built for sm_XY runs on X.Y and later minors of X; PTX
    (compute_XY) is compiled for any later GPU."""
    arch = torch.cuda.get_arch_list()
    if not arch:  # torch cannot ask CUDA (a CPU build): nothing to compare with
        return
    major, minor = torch.cuda.get_device_capability(device)
    built = [(kind, int(name[:-1]), int(name[-1])) for kind, _, name in (a.partition("_") for a in arch)
             if name[:-1].isdigit() and name[-1].isdigit()]
    if any((kind == "sm" and m == major and n <= minor) or (kind == "compute" and (m, n) <= (major, minor))
           for kind, m, n in built):
        return
    index = "cu126" if all((major, minor) < (m, n) for _, m, n in built) else "cu130"
    raise InputError(f"this torch ({torch.__version__}, CUDA {torch.version.cuda}) has no kernels for this GPU "
                     f"({torch.cuda.get_device_name(device)}, compute capability {major}.{minor}): it was built for "
                     f"{' '.join(arch)}. Install a build that has them: pip install torch --index-url "
                     f"https://download.pytorch.org/whl/{index}")


def autocast_choice(requested, device_type):
    """The dtype that matmuls run in under autocast (None: plain float32), and why, for the run to say. auto: bf16
    where the device has it natively, float16 (with a gradient scaler) on CUDA GPUs whose tensor cores do float16
    only, float32 elsewhere."""
    if requested != "auto":
        return DTYPES[requested], "as asked"
    if device_type == "cuda":
        # Native bf16 from compute capability 8.0 (A100, RTX 30xx) on; torch.cuda.is_bf16_supported() also says yes
        # where bf16 is emulated (V100, T4), slower than float32. Tensor cores from 7.0 on (V100, T4, RTX 20xx) do
        # float16, 8x float32's rate on a T4 (65 against 8 TFLOP/s, its datasheet).
        capability, name = torch.cuda.get_device_capability(), torch.cuda.get_device_name()
        has = f"{name}, compute capability {capability[0]}.{capability[1]}"
        if capability >= (8, 0):
            return torch.bfloat16, f"auto: {has}, has bf16 tensor cores"
        if capability >= (7, 0):
            return torch.float16, f"auto: {has}, has float16 tensor cores and no bf16 ones"
        return None, f"auto: {has}, has no tensor cores"
    if device_type == "cpu":
        # bf16 pays off only where the CPU has bf16 instructions (AVX512-BF16, AMX); elsewhere it is emulated and
        # slower than fp32 (BENCHMARKS.md).
        has_bf16 = getattr(torch.cpu, "_is_avx512_bf16_supported", lambda: False)()
        has_amx = getattr(torch.cpu, "_is_amx_tile_supported", lambda: False)()
        if has_bf16 or has_amx:
            return torch.bfloat16, f"auto: this CPU has {'AMX' if has_amx else 'AVX512-BF16'} instructions"
        return None, "auto: this CPU has no bf16 instructions (AVX512-BF16, AMX), and emulated bf16 is slower"
    return None, "auto: float32 on MPS"


def autocast_dtype(requested, device_type):
    """The dtype that matmuls run in under autocast (None: plain float32), which the run says, with why."""
    dtype, why = autocast_choice(requested, device_type)
    print0(f"autocast dtype: {str(dtype or 'none (float32)').removeprefix('torch.')}"
           f"{' with a gradient scaler' if dtype is torch.float16 else ''} ({why})")
    return dtype


def pick_autocast_dtype(requested, device_type):
    """The dtype that matmuls run in under autocast, or None for plain float32 (autocast_choice without the why)."""
    return autocast_choice(requested, device_type)[0]


def autocast(device_type, dtype):
    """Mixed precision for the forward pass and the loss: matmuls in dtype, precision-sensitive ops (softmax,
    LayerNorm, the loss) kept in float32 by autocast itself. Parameters and gradients stay float32."""
    if dtype is None:
        return contextlib.nullcontext()
    return torch.autocast(device_type=device_type, dtype=dtype)


@contextlib.contextmanager
def full_float32():
    """Float32 matmuls in full float32 inside, whatever torch.set_float32_matmul_precision says outside (train_gpt2.py
    asks for TF32 on CUDA, whose products keep 10 bits of mantissa where float32 keeps 23)."""
    precision = torch.get_float32_matmul_precision()
    torch.set_float32_matmul_precision("highest")
    try:
        yield
    finally:
        torch.set_float32_matmul_precision(precision)


# What running out of GPU memory can look like besides torch.cuda.OutOfMemoryError: Inductor's autotuning turns one
# into "No valid triton configs ... OutOfMemoryError", and cuBLAS's handle, made at the first matmul, fails to allocate.
OUT_OF_MEMORY = ("out of memory", "OutOfMemoryError", "CUBLAS_STATUS_ALLOC_FAILED")


def out_of_memory(error):
    """Whether `error` says the GPU ran out of memory, however torch's layers word it."""
    return isinstance(error, torch.cuda.OutOfMemoryError) or any(words in str(error) for words in OUT_OF_MEMORY)


def micro_batch_fits(model, B, T, device, amp_dtype, reserve_bytes):
    """Whether one forward and backward of B rows of T tokens runs on the GPU with reserve_bytes more set aside (what
    the first steps add: the optimizer's state, DDP's buckets, a margin). Not a training step: random tokens from a
    generator of its own, no gradient all-reduce, the gradients dropped, so the weights, the optimizer, the data and
    the RNG are as they were."""
    reserve = x = y = loss = None
    try:
        reserve = torch.empty(reserve_bytes, dtype=torch.uint8, device=device)
        generator = torch.Generator(device=device).manual_seed(0)
        # Two contiguous (B, T) tensors, as the data loader gives: a compiled model guards on strides, and views of
        # one (B, T + 1) tensor would compile a graph that the training steps then compile again.
        x, y = (torch.randint(50257, (B, T), generator=generator, device=device) for _ in range(2))
        with model.no_sync() if hasattr(model, "no_sync") else contextlib.nullcontext(), autocast("cuda", amp_dtype):
            loss = model(x, y)[1]
        loss.backward()
        return True
    except RuntimeError as e:  # torch.cuda.OutOfMemoryError is one
        if out_of_memory(e):
            return False
        raise
    finally:
        del reserve, x, y, loss
        for p in model.parameters():
            p.grad = None
        torch.cuda.empty_cache()


def micro_batch_that_fits(model, B, T, device, device_type, amp_dtype, ddp, given):
    """The micro-batch to train with: B, except on a GPU where one forward and backward of it does not fit with
    AdamW's state beside it (micro_batch_fits): then the largest of B/2, B/4, ... that does, on every process (they
    agree on the smallest); the run says so. A B the command line gave is used as given, or refused if it does not
    fit. Every process must call it."""
    if device_type != "cuda":
        return B
    total = torch.cuda.get_device_properties(device).total_memory
    # Set aside what comes after the probe: AdamW's two moments (8 bytes a parameter), under DDP its buckets beside the
    # gradients (4; gradient_as_bucket_view saves nothing under no_sync), and a margin for NCCL's buffers, the
    # allocator's fragmentation and the evaluation's graph: 5% of the GPU, at least 1 GiB.
    reserve_bytes = (8 + 4 * ddp) * sum(p.numel() for p in model.parameters()) + max(2**30, total // 20)
    memory = f"{total / 2**30:.0f} GB"
    tried = B
    while True:
        fits = torch.tensor(int(micro_batch_fits(model, B, T, device, amp_dtype, reserve_bytes)))
        if ddp:  # a CPU tensor: gloo carries it, whatever has filled the GPU
            dist.all_reduce(fits, op=dist.ReduceOp.MIN)
        if fits.item():
            break
        if given:
            raise InputError(f"--batch_size {B} does not fit in the GPU's {memory}: one forward and backward of {B} x "
                             f"{T} tokens ran out of memory. Lower --batch_size, or leave it out and the run takes the "
                             "largest that fits")
        if B == 1:
            raise InputError(f"not even one row of {T} tokens fits in the GPU's {memory}: lower --seq_len, or train a "
                             "smaller --model")
        B //= 2
    if B < tried and os.environ.get("RANK", "0") == "0":
        print(f"micro-batch {B} rows ({tried} did not fit in the GPU's {memory})", flush=True)
    return B


def use_compile(requested, device_type):
    """--compile / --no-compile, or by default on where it is measured to help (BENCHMARKS.md): CUDA, and CPUs but on
    Windows, which lacks the C++ toolchain that compiling for the CPU needs as often as not. MPS support is young."""
    if requested is not None:
        return requested
    return device_type == "cuda" or (device_type == "cpu" and sys.platform != "win32")


def synchronize(device_type):
    """Wait for queued GPU work, so that a timer measures the work and not just its launch."""
    if device_type == "cuda":
        torch.cuda.synchronize()
    elif device_type == "mps":
        torch.mps.synchronize()


# Dense tensor-core peaks in TFLOP/s, (float16, bf16) with float32 accumulation (what PyTorch's matmuls do), from
# NVIDIA's datasheets and architecture whitepapers, half their "with sparsity" figures; bf16 None where the GPU has
# no bf16 tensor cores. MFU is reported only for these: a wrong peak would make a wrong MFU look precise.
PEAK_TFLOPS = {
    "A100": (312, 312), "H100 SXM": (989, 989), "H100 PCIe": (756, 756), "H100 NVL": (835, 835),  # their datasheets
    "H200 SXM": (989, 989), "H200 NVL": (835, 835),
    "T4": (65, None),  # T4 datasheet: "Mixed-Precision (FP16/FP32) 65 TFLOPS"
    "V100 SXM2": (125, None), "V100 PCIe": (112, None), "V100S PCIe": (130, None),  # V100 datasheet, "Tensor"
    "A10": (125, 125),  # A10 datasheet: BF16 tensor core 125 TF (250 with sparsity)
    "A10G": (70, 70),  # NVIDIA's A10G datasheet (on AWS's site): 70 TF (140 with sparsity); not the A10's 125
    "L4": (121, 121),  # L4 datasheet: 242 TF with sparsity, "one-half lower without"
    "L40S": (362, 362),  # L40S datasheet: 362.05 TF (733 with sparsity)
    "RTX A6000": (154.8, 154.8),  # GA102 whitepaper, appendix C: with FP32 accumulate 154.8 (309.7 sparse)
    "RTX 3090": (71, 71),  # GA102 whitepaper, appendix A: FP16 with FP32 accumulate 71 (142 sparse)
    "RTX 4090": (165.2, 165.2),  # Ada whitepaper, appendix A: FP16 with FP32 accumulate 165.2 (330.4 sparse)
}
# float32 matmuls as a run computes them. Where the GPU has bf16 tensor cores it also has TF32 ones, which run
# float32 matmuls (torch.set_float32_matmul_precision("high"), set in main()) at half the 16-bit rate: the A100
# datasheet's 156 TF32 against 312 BF16, and the same ratio in the others' datasheets. The T4 and V100 have no TF32:
# plain FP32 on the CUDA cores, their datasheets' "single-precision" figures, 8 to 20 times below their float16 peak.
FP32_TFLOPS = {"T4": 8.1, "V100 SXM2": 15.7, "V100 PCIe": 14, "V100S PCIe": 16.4}
# The whole name torch.cuda.get_device_name() gives -> PEAK_TFLOPS's key. The whole name must match: "NVIDIA RTX
# A1000" is no A100, "NVIDIA A100" no A10, and a "Laptop GPU", "RTX 4090 D" or "RTX 3090 Ti" has peaks of its own.
GPU_NAMES = [(r"NVIDIA A100([- ].*)?", "A100"), (r"NVIDIA (H100|H200)( \d+GB)? (NVL|PCIe)", r"\1 \3"),
             (r"NVIDIA (H100|H200)( \d+GB HBM3e?)?", r"\1 SXM"), (r"Tesla T4", "T4"),
             (r"Tesla V100-SXM2-(16|32)GB", "V100 SXM2"), (r"Tesla V100-PCIE-(16|32)GB", "V100 PCIe"),
             (r"Tesla V100S-PCIE-32GB", "V100S PCIe"), (r"NVIDIA (A10|A10G|L4|L40S|RTX A6000)", r"\1"),
             (r"(NVIDIA )?GeForce RTX (3090|4090)", r"RTX \2")]


def device_name(device):
    """What the device is, for a run's record: the GPU's name, or the CPU's model as the system names it."""
    if torch.device(device).type == "cuda":
        return torch.cuda.get_device_name(device)
    if torch.device(device).type == "mps":
        return "Apple GPU (mps)"
    try:
        with open("/proc/cpuinfo") as f:
            return next(line.split(":", 1)[1].strip() for line in f if line.startswith("model name"))
    except (OSError, StopIteration):
        return platform.processor() or platform.machine()


def gpu_model(name):
    """The PEAK_TFLOPS key of a name torch.cuda.get_device_name() gives ("NVIDIA H100 80GB HBM3" -> "H100 SXM",
    "Tesla T4" -> "T4"), or None."""
    for pattern, model in GPU_NAMES:
        if match := re.fullmatch(pattern, name):
            return match.expand(model)
    return None


def peak_flops(device_type, dtype=torch.bfloat16):
    """The dense peak of this process's GPU in FLOP/s for a run under `dtype` autocast: float16's for float16, bf16's
    for bf16, and for float32 (dtype None) TF32's or, without TF32, plain FP32's (FP32_TFLOPS); None where the GPU
    is not known. Counted against a 16-bit peak, a float32 run's MFU read 2 to 8 times too low."""
    if device_type != "cuda" or (model := gpu_model(torch.cuda.get_device_name())) is None:
        return None
    float16, bf16 = PEAK_TFLOPS[model]
    if dtype is None:
        return 1e12 * (bf16 / 2 if bf16 else FP32_TFLOPS[model])
    return 1e12 * (bf16 if dtype is not torch.float16 and bf16 else float16)


class Speed:
    """A training step's time as the run prints it: dt, tokens per second and, where the GPU's peak is known, the
    model FLOPs utilisation (MFU) of all the GPUs together."""

    def __init__(self, flops_per_token, tokens_per_step, device_type, dtype, world_size):
        peak = peak_flops(device_type, dtype)  # the tensor cores' peak for the dtype the run computes in
        self.tokens, self.flops = tokens_per_step, flops_per_token * tokens_per_step
        self.peak = peak and peak * world_size

    def __call__(self, dt):
        mfu = f" | MFU {self.flops / dt / self.peak:.1%}" if self.peak else ""
        return f"dt {dt * 1000:.1f}ms | tok/s {self.tokens / dt:,.0f}{mfu}"
