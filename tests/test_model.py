"""The model: its module tree matches OpenAI's GPT-2 checkpoint, name for name and shape for shape."""
import torch
from transformers import GPT2Config, GPT2LMHeadModel

from train_gpt2 import GPT, GPTConfig


def test_state_dict_matches_huggingface_gpt2_names_and_shapes():
    config = GPTConfig(block_size=64, vocab_size=1000, n_layer=3, n_head=4, n_embd=32)
    ours = GPT(config).state_dict()
    hf = GPT2LMHeadModel(GPT2Config(n_positions=64, vocab_size=1000, n_layer=3, n_head=4, n_embd=32)).state_dict()
    hf = {k: v for k, v in hf.items() if not k.endswith((".attn.bias", ".attn.masked_bias"))}
    assert set(ours) == set(hf)
    # HF stores the four attention/MLP matmul weights as Conv1D, i.e. transposed relative to nn.Linear.
    transposed = ("attn.c_attn.weight", "attn.c_proj.weight", "mlp.c_fc.weight", "mlp.c_proj.weight")
    for name, tensor in ours.items():
        expected = hf[name].shape
        if name.endswith(transposed):
            expected = expected[::-1]
        assert tensor.shape == expected, name


def test_attention_is_causal():
    torch.manual_seed(0)
    config = GPTConfig(block_size=16, vocab_size=10, n_layer=1, n_head=2, n_embd=8)
    attn = GPT(config).transformer.h[0].attn
    x = torch.randn(1, 8, 8)
    y = attn(x)
    x2 = x.clone()
    x2[:, 5:] = torch.randn(1, 3, 8)  # change the future only
    y2 = attn(x2)
    assert torch.allclose(y[:, :5], y2[:, :5])
    assert not torch.allclose(y[:, 5:], y2[:, 5:])


def test_gpt2_124m_parameter_count_and_tied_embeddings():
    model = GPT(GPTConfig())
    # parameters() yields a shared tensor once, so the tied embedding is counted once.
    assert sum(p.numel() for p in model.parameters()) == 124_439_808
    assert model.transformer.wte.weight is model.lm_head.weight
    assert model.transformer.wte.weight.data_ptr() == model.lm_head.weight.data_ptr()
