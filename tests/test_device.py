"""Device selection: auto-detection and clear refusals."""
import pytest
import torch

from train_gpt2 import pick_device


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
    with pytest.raises(SystemExit, match="no CUDA GPU"):
        pick_device("cuda")


def test_unknown_device_is_refused_clearly():
    with pytest.raises(SystemExit, match="unknown device"):
        pick_device("tpu")
