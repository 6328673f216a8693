"""Export to HuggingFace: what huggingface.save_pretrained writes, transformers loads, with the same logits as ours."""
import os

import torch
from transformers import GPT2LMHeadModel

import train_gpt2
from plumbing.huggingface import save_pretrained
from train_gpt2 import GPT, GPT2_VOCAB_SIZE, GPTConfig


def trained_looking_model():
    torch.manual_seed(0)
    model = GPT(GPTConfig(block_size=64, vocab_size=50304, n_layer=2, n_head=4, n_embd=64)).eval()
    with torch.no_grad():  # biases and LayerNorms away from their init, so a missed copy would show
        for name, p in model.named_parameters():
            if p.dim() == 1:
                p.add_(torch.randn_like(p) * 0.1)
    return model


def test_export_loads_in_transformers_with_our_logits(tmp_path):
    model = trained_looking_model()
    save_pretrained(model, tmp_path / "hf", GPT2_VOCAB_SIZE)
    assert os.path.exists(tmp_path / "hf" / "model.safetensors")
    hf = GPT2LMHeadModel.from_pretrained(tmp_path / "hf").eval()
    assert hf.config.vocab_size == 50257  # the padding rows are cut
    assert hf.lm_head.weight.data_ptr() == hf.transformer.wte.weight.data_ptr()  # tied
    idx = torch.randint(0, 50257, (2, 48), generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        ours, _ = model(idx)
        theirs = hf(idx).logits
    assert (ours[..., :50257] - theirs).abs().max().item() < 1e-4


def test_export_round_trips_through_from_pretrained(tmp_path):
    model = trained_looking_model()
    save_pretrained(model, tmp_path / "hf", GPT2_VOCAB_SIZE)
    back = GPT.from_pretrained(str(tmp_path / "hf"))
    for name, tensor in back.state_dict().items():
        original = model.state_dict()[name]
        if name in ("transformer.wte.weight", "lm_head.weight"):
            original = original[:50257]
        assert torch.equal(tensor, original), name


def test_export_a_checkpoint_from_the_command_line(tmp_path):
    model = trained_looking_model()
    path = str(tmp_path / "model_00010.pt")
    train_gpt2.save_checkpoint(path, model, step=10, val_loss=5.0, args=train_gpt2.parse_args([]))
    train_gpt2.main(["--init_from", path, "--export_hf", str(tmp_path / "hf"), "--device", "cpu"])
    hf = GPT2LMHeadModel.from_pretrained(tmp_path / "hf")
    assert torch.equal(hf.transformer.wpe.weight, model.transformer.wpe.weight)
