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


def test_the_default_config_is_gpt2_124m_as_huggingface_defines_it():
    # transformers' GPT2Config() is the 124M model; GPTConfig() must be too, its head count included (which no
    # parameter count can see).
    hf, ours = GPT2Config(), GPTConfig()
    assert (ours.block_size, ours.vocab_size, ours.n_layer, ours.n_head, ours.n_embd) == \
        (hf.n_positions, hf.vocab_size, hf.n_layer, hf.n_head, hf.n_embd)


def test_the_token_constants_are_the_tokenizers():
    import tiktoken

    import train_gpt2
    enc = tiktoken.get_encoding("gpt2")
    assert train_gpt2.EOT_TOKEN == enc.eot_token == enc.encode("<|endoftext|>", allowed_special="all")[0]
    assert train_gpt2.GPT2_VOCAB_SIZE == enc.n_vocab


def test_gpt2_124m_parameter_count_and_tied_embeddings():
    model = GPT(GPTConfig())
    # parameters() yields a shared tensor once, so the tied embedding is counted once.
    assert sum(p.numel() for p in model.parameters()) == 124_439_808
    assert model.transformer.wte.weight is model.lm_head.weight
    assert model.transformer.wte.weight.data_ptr() == model.lm_head.weight.data_ptr()


def test_gpt2_initialisation():
    torch.manual_seed(0)
    n_layer = 6
    model = GPT(GPTConfig(block_size=256, vocab_size=5000, n_layer=n_layer, n_head=8, n_embd=512))
    scaled = 0.02 / (2 * n_layer) ** 0.5
    for block in model.transformer.h:
        for proj in (block.attn.c_proj, block.mlp.c_proj):
            assert abs(proj.weight.std().item() / scaled - 1) < 0.03
            assert proj.weight.mean().abs().item() < scaled * 0.05
        for fc in (block.attn.c_attn, block.mlp.c_fc):
            assert abs(fc.weight.std().item() / 0.02 - 1) < 0.03
    for name, p in model.named_parameters():
        if name.endswith(".bias") and "ln_" not in name:
            assert torch.count_nonzero(p) == 0, name
    assert abs(model.transformer.wpe.weight.std().item() / 0.02 - 1) < 0.03
    assert abs(model.lm_head.weight.std().item() / 0.02 - 1) < 0.03


def test_initialisation_is_seeded():
    config = GPTConfig(block_size=32, vocab_size=100, n_layer=2, n_head=2, n_embd=32)
    torch.manual_seed(3)
    a = GPT(config).state_dict()
    torch.manual_seed(3)
    b = GPT(config).state_dict()
    torch.manual_seed(4)
    c = GPT(config).state_dict()
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert not torch.equal(a["transformer.h.0.mlp.c_fc.weight"], c["transformer.h.0.mlp.c_fc.weight"])


def test_flops_per_token_follows_the_palm_formula():
    config = GPTConfig(block_size=64, vocab_size=1000, n_layer=3, n_head=4, n_embd=32)
    model = GPT(config)
    # Counted by hand from the shapes: per block 4 weight matrices + biases + 2 LayerNorms; then wte and ln_f.
    per_block = (32 * 96 + 96) + (32 * 32 + 32) + (32 * 128 + 128) + (128 * 32 + 32) + 2 * (2 * 32)
    non_embedding_pos = 3 * per_block + 1000 * 32 + 2 * 32
    assert model.flops_per_token(64) == 6 * non_embedding_pos + 12 * 3 * 32 * 64


def explicit_attention(attn, x):
    """The attention of the lecture's first version, written out: masked softmax(q k^T / sqrt(hs)) v."""
    B, T, C = x.shape
    nh = attn.n_head
    q, k, v = attn.c_attn(x).split(C, dim=2)
    q, k, v = (t.view(B, T, nh, C // nh).transpose(1, 2) for t in (q, k, v))  # (B, nh, T, hs)
    att = q @ k.transpose(-2, -1) / (C // nh) ** 0.5  # (B, nh, T, T)
    mask = torch.tril(torch.ones(T, T, dtype=torch.bool))
    att = att.masked_fill(~mask, float("-inf")).softmax(dim=-1)
    y = (att @ v).transpose(1, 2).reshape(B, T, C)
    return attn.c_proj(y)


def test_flash_attention_matches_explicit_attention():
    torch.manual_seed(0)
    config = GPTConfig(block_size=128, vocab_size=10, n_layer=1, n_head=4, n_embd=64)
    attn = GPT(config).transformer.h[0].attn
    x = torch.randn(3, 100, 64)
    with torch.no_grad():
        assert (attn(x) - explicit_attention(attn, x)).abs().max().item() < 1e-5
