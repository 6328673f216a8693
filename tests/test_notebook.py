"""play.ipynb runs top to bottom (on a small random GPT-2 written by save_pretrained: OpenAI's is not offline)."""
import os

import nbformat
import pytest
import torch
from helpers import ROOT, run_notebook
from transformers import GPT2Config, GPT2LMHeadModel


def test_notebook_is_committed_without_outputs():
    nb = nbformat.read(os.path.join(ROOT, "play.ipynb"), as_version=4)
    assert all(not cell.get("outputs") for cell in nb.cells if cell.cell_type == "code")


@pytest.mark.multiprocess
@pytest.mark.slow
def test_notebook_runs_smoke(tmp_path):
    torch.manual_seed(0)
    GPT2LMHeadModel(GPT2Config(n_layer=1, n_head=4, n_embd=256, n_positions=128)).save_pretrained(tmp_path / "hf")
    log = tmp_path / "log.txt"  # the log section needs a run's log: a tiny hand-written one (test_e2e uses a real one)
    log.write_text("0 val 10.9000\n0 train 10.950000\n0 hella 0.2500\n1 train 9.500000\n1 val 9.4000\n")
    nb = run_notebook({"PLAY_MODEL": str(tmp_path / "hf"), "PLAY_LOG": str(log)})
    printed = "".join(o.get("text", "") for o in nb.cells[1].outputs)
    assert "transformer.wpe.weight" in printed and "(128, 256)" in printed
    printed = "".join(o.get("text", "") for o in nb.cells[-1].outputs if o.output_type == "stream")
    assert "min train loss: 9.5000" in printed and "max HellaSwag acc_norm: 0.2500" in printed
