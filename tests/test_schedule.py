"""The learning-rate schedule: linear warmup, cosine decay, then flat at min_lr."""
import math

import pytest

from train_gpt2 import get_lr, parse_args

MAX_LR, MIN_LR, WARMUP, MAX_STEPS = 6e-4, 6e-5, 715, 19073


def lr(step):
    return get_lr(step, MAX_LR, MIN_LR, WARMUP, MAX_STEPS)


def test_warmup_is_linear_from_the_first_step():
    assert lr(0) == pytest.approx(MAX_LR / WARMUP)
    assert lr(99) == pytest.approx(MAX_LR * 100 / WARMUP)
    assert lr(WARMUP - 1) == pytest.approx(MAX_LR)  # the end of warmup reaches the peak
    assert lr(WARMUP) == pytest.approx(MAX_LR)  # the decay starts from it


def test_cosine_decay_to_min_lr():
    halfway = WARMUP + (MAX_STEPS - WARMUP) // 2
    assert lr(halfway) == pytest.approx((MAX_LR + MIN_LR) / 2, rel=1e-3)
    quarter = WARMUP + (MAX_STEPS - WARMUP) // 4
    assert lr(quarter) == pytest.approx(MIN_LR + (MAX_LR - MIN_LR) * (1 + math.cos(math.pi / 4)) / 2, rel=1e-3)
    assert MIN_LR < lr(MAX_STEPS - 1) < MIN_LR * 1.0001
    assert all(lr(s) >= lr(s + 1) for s in range(WARMUP, MAX_STEPS, 97))


def test_min_lr_after_max_steps():
    assert lr(MAX_STEPS) == MIN_LR
    assert lr(MAX_STEPS + 1000) == MIN_LR


def test_defaults_are_the_gpt3_125m_recipe():
    args = parse_args([])
    assert (args.max_lr, args.warmup_steps, args.max_steps) == (6e-4, 715, 19073)
    assert args.min_lr == pytest.approx(0.1 * args.max_lr)


def test_warmup_longer_than_the_run_is_refused(capsys):
    with pytest.raises(SystemExit):
        parse_args(["--max_steps", "100", "--warmup_steps", "200"])
    assert "lower --warmup_steps" in capsys.readouterr().err


def test_the_default_run_is_the_gpt2_124m_recipe():
    args = parse_args([])
    assert args.data == "edu_fineweb10B" and args.init_from == "scratch"
    assert (args.n_layer, args.n_head, args.n_embd, args.vocab_size) == (12, 12, 768, 50304)
    assert (args.total_batch_size, args.batch_size, args.seq_len) == (524288, 64, 1024)
    assert (args.weight_decay, args.eval_interval, args.val_steps, args.checkpoint_interval) == (0.1, 250, 20, 5000)
    assert args.hellaswag and args.compile is None and args.dtype == "auto"  # compile and bf16: on where they pay
    # The lecture's samples: 4 every 250 steps, 32 tokens long, drawn with a generator seeded with 42 (here the
    # one seed of the run: the initial weights too).
    assert (args.sample_interval, args.num_samples, args.max_new_tokens, args.seed) == (250, 4, 32, 42)


def test_missing_data_says_what_to_run(tmp_path):
    import plumbing.cli
    import train_gpt2
    with pytest.raises(plumbing.cli.InputError, match="run 'python fineweb.py'"):
        train_gpt2.DataLoaderLite(2, 8, data=str(tmp_path / "edu_fineweb10B"))
