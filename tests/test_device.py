"""Device selection: auto-detection and clear refusals."""
import os

import pytest
import torch

from plumbing.cli import InputError
from plumbing.hardware import pick_autocast_dtype, pick_device


def test_auto_picks_an_available_device():
    device, device_type = pick_device("auto")
    if torch.cuda.is_available():
        assert device_type == "cuda"
    elif torch.backends.mps.is_available():
        assert device_type == "mps"
    else:
        assert (device, device_type) == ("cpu", "cpu")


def test_explicit_device_and_its_type():
    assert pick_device("cpu") == ("cpu", "cpu")


@pytest.mark.skipif(torch.cuda.is_available(), reason="needs a machine without CUDA")
def test_cuda_without_a_gpu_is_refused_clearly():
    with pytest.raises(InputError, match="no CUDA GPU"):
        pick_device("cuda")


def test_unknown_device_is_refused_clearly():
    with pytest.raises(InputError, match="unknown device"):
        pick_device("tpu")


def test_autocast_dtype_choice():
    assert pick_autocast_dtype("float32", "cpu") is None
    assert pick_autocast_dtype("bfloat16", "cpu") is torch.bfloat16
    assert pick_autocast_dtype("float16", "cpu") is torch.float16
    assert pick_autocast_dtype("auto", "mps") is None


def test_dtype_auto_on_this_cpu_follows_its_flags():
    # The kernel's list of this CPU's instructions is the reference, not torch's private checks that the code asks.
    if not os.path.exists("/proc/cpuinfo"):
        pytest.skip("no /proc/cpuinfo to read this CPU's flags from")
    with open("/proc/cpuinfo") as f:
        flags = {flag for line in f if line.startswith("flags") for flag in line.split(":", 1)[1].split()}
    native_bf16 = "avx512_bf16" in flags or "amx_tile" in flags
    assert pick_autocast_dtype("auto", "cpu") is (torch.bfloat16 if native_bf16 else None)


@pytest.mark.parametrize("avx512_bf16, amx, dtype", [(True, False, torch.bfloat16), (False, True, torch.bfloat16),
                                                     (False, False, None)])
def test_dtype_auto_on_each_kind_of_cpu(monkeypatch, avx512_bf16, amx, dtype):
    # bf16 where the CPU has bf16 instructions; float32 where bf16 would be emulated (slower); never float16 on a CPU.
    from plumbing.hardware import autocast_choice
    monkeypatch.setattr(torch.cpu, "_is_avx512_bf16_supported", lambda: avx512_bf16, raising=False)
    monkeypatch.setattr(torch.cpu, "_is_amx_tile_supported", lambda: amx, raising=False)
    chosen, why = autocast_choice("auto", "cpu")
    assert chosen is dtype
    assert why.startswith("auto: this CPU has " + ("AMX" if amx else "AVX512-BF16" if avx512_bf16 else "no bf16"))


def test_bf16_autocast_loss_is_close_to_float32():
    from plumbing.hardware import autocast
    from train_gpt2 import GPT, GPTConfig
    torch.manual_seed(0)
    model = GPT(GPTConfig(block_size=64, vocab_size=512, n_layer=2, n_head=2, n_embd=64))
    x = torch.randint(0, 512, (4, 64))
    _, fp32 = model(x, x)
    with autocast("cpu", torch.bfloat16):
        logits, bf16 = model(x, x)
    assert logits.dtype == torch.bfloat16  # the matmuls really ran in bf16
    assert abs(bf16.item() - fp32.item()) < 1e-2 * fp32.item()
