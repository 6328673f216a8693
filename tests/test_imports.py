"""Imports run one way: train_gpt2.py imports hellaswag.py and plumbing/, and neither imports the training script
back. With a circle, `python train_gpt2.py` would load the script twice (as __main__ and as train_gpt2), and two
different GPT classes would live in one process. And the training script stays the recipe: at most 800 lines, with a
main() of at most 80, and the recipe's numbers and the optimizer's step written in it."""
import ast
import os
import sys

import pytest
from helpers import ROOT, run_command, tiny_flags, write_hellaswag

TINY = tiny_flags(max_steps=1, hellaswag=None, hellaswag_limit=2)

# What `python train_gpt2.py ARGS` does (run the file as __main__), then a count of the GPT classes alive.
DRIVER = """
import runpy, sys, torch
sys.argv = sys.argv[1:]
script = runpy.run_path(sys.argv[0], run_name="__main__")  # keeps the script's globals, and its GPT, alive
gpts = [c for c in torch.nn.Module.__subclasses__() if c.__name__ == "GPT"]
print("GPT classes:", len(gpts), "| train_gpt2 imported:", "train_gpt2" in sys.modules)
"""


@pytest.mark.multiprocess
@pytest.mark.slow
def test_training_with_hellaswag_creates_one_gpt_class(shakespeare, tmp_path):
    write_hellaswag(tmp_path / "hellaswag")
    argv = [os.path.join(ROOT, "train_gpt2.py"), "--data", shakespeare, "--log_dir", str(tmp_path / "log"),
            "--hellaswag", "--hellaswag_dir", str(tmp_path / "hellaswag"), *TINY]
    env = dict(os.environ, PYTHONPATH=ROOT)
    out = run_command([sys.executable, "-c", DRIVER, *argv], cwd=tmp_path, env=env, timeout=300)
    assert out.returncode == 0, out.stderr[-3000:]
    assert "HellaSwag acc_norm" in out.stdout  # the evaluation ran
    assert out.stdout.splitlines()[-1] == "GPT classes: 1 | train_gpt2 imported: False"


@pytest.mark.multiprocess
def test_hellaswag_and_fineweb_import_without_the_training_script():
    code = "import sys, hellaswag, fineweb; print('train_gpt2' in sys.modules)"
    out = run_command([sys.executable, "-c", code], cwd=ROOT, timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "False"


def test_the_training_script_stays_the_recipe():
    # train_gpt2.py is what a learner reads beside the lecture: what is not the recipe goes to plumbing/. It grew
    # from 800 to 864 lines over four issues, and main() to 121, without anyone seeing it; this keeps the limits
    # in sight.
    with open(os.path.join(ROOT, "train_gpt2.py")) as f:
        source = f.read()
    assert len(source.splitlines()) <= 800
    main = next(node for node in ast.parse(source).body if getattr(node, "name", None) == "main")
    assert main.end_lineno - main.lineno + 1 <= 80
    # The lecture's numbers and calls, where the learner looks for them (issue 27 found them all gone from the file).
    for written in ["2**19", "6e-4", "715", "19073", "0.1", "1.0", "optimizer.step()", "optimizer.zero_grad()",
                    "no_sync()", "loss / grad_accum_steps", "torch.save(", "clip_grad_norm_(",
                    "betas=(0.9, 0.95), eps=1e-8"]:
        assert written in source, written
