"""The benchmark scripts: what they do where they cannot measure."""
import os
import subprocess
import sys

import pytest
import torch

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


@pytest.mark.skipif(torch.cuda.is_available(), reason="needs a machine without a GPU")
def test_the_gpu_benchmark_says_clearly_that_there_is_no_gpu():
    out = subprocess.run([sys.executable, os.path.join(ROOT, "benchmarks", "gpu_speed.py")], cwd=ROOT,
                         capture_output=True, text=True, timeout=120)
    assert out.returncode == 1
    assert "torch sees none on this machine" in out.stderr and "benchmarks/cpu_speed.py" in out.stderr
    assert "Traceback" not in out.stderr
