"""Training end to end through main(): a tiny model on tiny Shakespeare learns."""
import math
import re

import pytest
from helpers import tiny_flags

from train_gpt2 import main


def losses_printed(out):
    return [float(m) for m in re.findall(r"step +\d+ \| loss ([0-9.]+)", out)]


@pytest.mark.multiprocess
@pytest.mark.slow
def test_tiny_model_learns_tiny_shakespeare(shakespeare, capsys, tmp_path):
    main(["--data", shakespeare, "--log_dir", str(tmp_path),
          *tiny_flags(eval_interval=20, val_steps=4, n_layer=2, n_embd=64, batch_size=8, seq_len=64,
                      total_batch_size=512, max_steps=40, warmup_steps=5, max_lr=3e-3, max_new_tokens=8, dtype=None)])
    losses = losses_printed(capsys.readouterr().out)
    assert len(losses) == 40
    assert losses[0] > 0.9 * math.log(50257)  # a fresh model is about uniform over the vocabulary
    assert max(losses[-5:]) < math.log(50257) - 3.0  # ...and after 40 steps far better than uniform
    with open(tmp_path / "log.txt") as f:
        lines = [line.split() for line in f]
    train = {int(step): float(v) for step, kind, v in lines if kind == "train"}
    val = {int(step): float(v) for step, kind, v in lines if kind == "val"}
    assert sorted(train) == list(range(40))
    assert [train[s] for s in range(40)] == pytest.approx(losses, abs=1e-6)  # the log says what was printed
    assert sorted(val) == [0, 20, 40]
    assert val[40] < val[0] - 2.0  # held-out text, not only the training batches
