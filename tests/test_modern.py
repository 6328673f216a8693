"""modern_gpt.py: with --ideas none it is the lecture's GPT-2 (the same logits from the same weights, the same log from
the same seed); with ideas it trains, resumes exactly and refuses what it cannot do, saying why."""
from dataclasses import asdict

import pytest
import torch
from helpers import tiny_flags

import modern_gpt
import train_gpt2
from plumbing.cli import InputError
from train_gpt2 import GPT, GPTConfig

CONFIG = GPTConfig(block_size=32, vocab_size=96, n_layer=2, n_head=2, n_embd=32)
TINY = tiny_flags(n_layer=2, max_steps=4, warmup_steps=1, max_lr=3e-3, eval_interval=2, val_steps=2,
                  checkpoint_interval=2, sample_interval=2)


def read(path):
    with open(path) as f:
        return f.read()


def modern(*ideas, seed=0, **shape):
    torch.manual_seed(seed)
    return modern_gpt.ModernGPT(modern_gpt.ModernConfig(**{**asdict(CONFIG), **shape}, ideas=ideas))


def test_no_ideas_is_gpt2_the_same_weights_for_a_seed_and_the_same_logits():
    torch.manual_seed(0)
    gpt = GPT(CONFIG)
    model = modern(seed=0)
    assert model.state_dict().keys() == gpt.state_dict().keys()
    for name, tensor in gpt.state_dict().items():
        assert torch.equal(model.state_dict()[name], tensor), name
    gpt.transformer.h[0].mlp.c_fc.bias.data.normal_()  # weights a seed does not give: loaded, not drawn
    model.load_state_dict(gpt.state_dict())
    idx = torch.randint(0, CONFIG.vocab_size, (2, CONFIG.block_size))
    assert torch.equal(model(idx)[0], gpt(idx)[0])
    assert model.flops_per_token(32) == gpt.flops_per_token(32)


def test_ideas_none_writes_the_lecture_log_and_samples(shakespeare, tmp_path, capsys):
    train_gpt2.main(["--data", shakespeare, "--log_dir", str(tmp_path / "lecture"), *TINY])
    lecture = [line for line in capsys.readouterr().out.splitlines() if "sample:" in line]
    modern_gpt.main(["--data", shakespeare, "--log_dir", str(tmp_path / "modern"), *TINY, "--ideas", "none"])
    samples = [line for line in capsys.readouterr().out.splitlines() if "sample:" in line]
    assert read(tmp_path / "modern" / "log.txt") == read(tmp_path / "lecture" / "log.txt")
    assert samples == lecture and len(samples) == 2


@pytest.mark.parametrize("ideas, message", [("nonsense", "unknown idea 'nonsense'"), ("all,x", "unknown idea")])
def test_an_unknown_idea_is_refused_naming_the_choices(ideas, message, capsys):
    with pytest.raises(SystemExit):
        modern_gpt.main(["--ideas", ideas])
    err = capsys.readouterr().err
    assert message in err and "or all, or none" in err


def test_the_lecture_script_refuses_a_modern_checkpoint_naming_the_script_that_reads_it(tmp_path):
    path = str(tmp_path / "model_00001.pt")
    train_gpt2.save_checkpoint(path, modern(), step=1, val_loss=4.0, args=train_gpt2.parse_args([]))
    with pytest.raises(InputError, match="ideas in its config.*load it with modern_gpt.py"):
        GPT.from_checkpoint(path)
    model, checkpoint = modern_gpt.ModernGPT.from_checkpoint(path)  # and modern_gpt.py reads it
    assert checkpoint["step"] == 1 and model.config.ideas == ()


def test_a_lecture_checkpoint_loads_as_a_model_without_ideas(tmp_path):
    path = str(tmp_path / "model_00001.pt")
    torch.manual_seed(0)
    gpt = GPT(CONFIG)
    train_gpt2.save_checkpoint(path, gpt, step=1, val_loss=4.0, args=train_gpt2.parse_args([]))
    model = modern_gpt.ModernGPT.load(path)
    idx = torch.randint(0, CONFIG.vocab_size, (1, 8))
    assert model.config.ideas == () and torch.equal(model(idx)[0], gpt(idx)[0])
