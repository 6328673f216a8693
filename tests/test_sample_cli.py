"""sample.py: the same samples with and without the KV cache, from every kind of model source it reads."""
import pytest
import torch
from transformers import GPT2Config, GPT2LMHeadModel

import sample
import train_gpt2


@pytest.fixture(scope="module")
def hf_dir(tmp_path_factory):
    torch.manual_seed(0)
    path = tmp_path_factory.mktemp("hf") / "model"
    GPT2LMHeadModel(GPT2Config(n_layer=2, n_head=2, n_embd=64, n_positions=64)).save_pretrained(path)
    return str(path)


def samples(capsys, *argv):
    sample.main(list(argv))
    captured = capsys.readouterr()
    assert "tokens/s" in captured.err
    return captured.out


def test_cache_and_no_cache_print_the_same_samples(hf_dir, capsys):
    args = ["--init_from", hf_dir, "--device", "cpu", "--num_samples", "3", "--max_new_tokens", "70",
            "--temperature", "0.9", "--top_k", "20", "--seed", "5"]  # 8 + 70 tokens: runs past block_size 64
    with_cache = samples(capsys, *args)
    assert with_cache.count("--- sample") == 3
    assert with_cache == samples(capsys, *args, "--no-cache")
    assert with_cache != samples(capsys, *[a if a != "5" else "6" for a in args])  # the seed matters


def test_samples_from_a_checkpoint_and_from_its_export_agree(hf_dir, capsys, tmp_path):
    model = train_gpt2.GPT.from_pretrained(hf_dir)
    path = str(tmp_path / "model_00001.pt")
    train_gpt2.save_checkpoint(path, model, step=1, val_loss=1.0, args=train_gpt2.parse_args([]))
    assert "saved" in capsys.readouterr().out
    common = ["--device", "cpu", "--num_samples", "2", "--max_new_tokens", "10", "--top_k", "1"]
    assert samples(capsys, "--init_from", path, *common) == samples(capsys, "--init_from", hf_dir, *common)


def test_bad_flags_are_refused(hf_dir, capsys):
    with pytest.raises(SystemExit):
        sample.main(["--init_from", hf_dir, "--temperature", "0"])
    assert "--top_k 1" in capsys.readouterr().err
