"""Training in float16 with a gradient scaler (--dtype float16), on the CPU: autocast float16 and GradScaler("cpu")
run there for real, fused AdamW included. It tracks float32; a step whose gradients overflow is skipped by the scaler,
counted and logged while the run goes on; and a resumed run logs what the straight run logs, the scaler's state
included."""
import functools
import shutil

import pytest
import torch
from helpers import tiny_flags

import train_gpt2


def log_lines(log_dir):
    with open(log_dir / "log.txt") as f:
        return [line.split() for line in f]


def train(shakespeare, log_dir, *flags):
    train_gpt2.main(["--data", shakespeare, "--log_dir", str(log_dir), *flags])
    return log_lines(log_dir)


@pytest.fixture
def scale_from(monkeypatch):
    """scale_from(s): the gradient scaler starts at scale s instead of 65536 (2**20: the tiny models' gradients
    overflow float16 at the first 3 steps, until the scale is halved to 131072)."""
    def start(scale):
        monkeypatch.setattr(torch.amp, "GradScaler", functools.partial(torch.amp.GradScaler, init_scale=scale))
    return start


def test_a_loss_scale_below_1_stops_the_run_or_with_skip_nonfinite_its_steps_are_logged(shakespeare, tmp_path,
                                                                                        scale_from):
    # At a scale of 0.5 nothing overflows and the scaler applies every step. Without --skip_nonfinite the run stops
    # (the scale collapsed: something is wrong); with it, each step was logged "not finite: step skipped" and its
    # train line dropped, although the weights moved.
    scale_from(0.5)
    with pytest.raises(SystemExit, match="loss scale fell to 0.5"):
        train(shakespeare, tmp_path / "stops", *tiny_flags(dtype="float16", max_steps=3, eval_interval=100))
    lines = train(shakespeare, tmp_path / "goes_on", *tiny_flags(dtype="float16", max_steps=3, eval_interval=100),
                  "--skip_nonfinite")
    assert [(step, kind) for step, kind, _ in lines if kind in ("train", "scale", "skipped")] == \
        [(str(s), kind) for s in range(3) for kind in ("train", "scale")]
    assert [value for _, kind, value in lines if kind == "scale"] == ["0.5"] * 3


@pytest.mark.slow
def test_a_float16_run_tracks_the_float32_run(shakespeare, tmp_path):
    # 100 steps of the same model, data and seed; float16 rounds every matmul to 11 significant bits.
    flags = tiny_flags(max_steps=100, warmup_steps=10, max_lr=3e-3, eval_interval=100, sample_interval=1000)
    losses = {}
    for dtype in ("float32", "float16"):
        lines = train(shakespeare, tmp_path / dtype, *flags, "--dtype", dtype)
        losses[dtype] = [float(value) for step, kind, value in lines if kind == "train"]
        assert len(losses[dtype]) == 100  # no step skipped
    last = {dtype: sum(values[-10:]) / 10 for dtype, values in losses.items()}
    assert last["float32"] < losses["float32"][0] - 1.0  # it learned
    assert abs(last["float16"] / last["float32"] - 1) < 0.02, last


def test_an_overflowing_step_is_skipped_counted_and_logged_while_the_run_goes_on(shakespeare, tmp_path, scale_from,
                                                                                 capsys):
    scale_from(2.0 ** 20)
    lines = train(shakespeare, tmp_path, *tiny_flags(dtype="float16", max_steps=8, eval_interval=100))
    out = capsys.readouterr().out
    steps = [(int(step), kind, value) for step, kind, value in lines if kind in ("overflow", "train", "scale")]
    assert steps[:3] == [(0, "overflow", "524288"), (1, "overflow", "262144"),
                         (2, "overflow", "131072")]  # skipped, and the scale halved each time
    assert steps[3:] == [(s, kind, value) for s in range(3, 8) for kind, value in
                         (("train", steps[3 + 2 * (s - 3)][2]), ("scale", "131072"))]  # then training goes on
    assert "loss scale now 131072 (3 skipped in all)" in out and "| scale 131072 |" in out
    # The skipped steps did not move the weights: the step after them starts from the initial loss.
    assert abs(float(steps[3][2]) - 10.8) < 0.2


def test_a_resumed_float16_run_logs_what_the_straight_run_logs(shakespeare, tmp_path, scale_from):
    # The checkpoint at step 3 holds the scaler's state (scale 131072 after 3 overflows): a resume that started from
    # the initial scale again would overflow 3 times more and log otherwise.
    scale_from(2.0 ** 20)
    flags = tiny_flags(dtype="float16", max_steps=8, eval_interval=3, checkpoint_interval=3, n_layer=2)
    straight = train(shakespeare, tmp_path / "straight", *flags)
    assert ["2", "overflow", "131072"] in straight and ["3", "scale", "131072"] in straight
    resumed = tmp_path / "resumed"
    resumed.mkdir()
    for name in ("model_00003.pt", "log.txt"):
        shutil.copy(tmp_path / "straight" / name, resumed)
    assert train(shakespeare, resumed, *flags, "--resume", "auto") == straight


def test_a_float16_checkpoint_is_not_resumed_in_another_dtype(shakespeare, tmp_path):
    train(shakespeare, tmp_path, *tiny_flags(dtype="float16", max_steps=2, eval_interval=100))
    with pytest.raises(SystemExit, match="that run trained in float16, this one would train in bfloat16 or float32"):
        train(shakespeare, tmp_path, *tiny_flags(dtype="float32", max_steps=4), "--resume", "auto")
