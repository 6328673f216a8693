"""Sampling: seeded draws are reproducible, and top_k limits the choice."""
import torch

from train_gpt2 import GPT, GPTConfig


def tiny_model(seed=0):
    torch.manual_seed(seed)
    return GPT(GPTConfig(block_size=32, vocab_size=100, n_layer=2, n_head=2, n_embd=32)).eval()


def test_seeded_sampling_is_reproducible():
    model = tiny_model()
    idx = torch.zeros((4, 3), dtype=torch.long)
    a = model.generate(idx, 40, generator=torch.Generator().manual_seed(7))
    b = model.generate(idx, 40, generator=torch.Generator().manual_seed(7))
    c = model.generate(idx, 40, generator=torch.Generator().manual_seed(8))
    assert torch.equal(a, b)
    assert not torch.equal(a, c)
    assert a.shape == (4, 43)


def test_generation_runs_past_block_size():
    model = tiny_model()
    out = model.generate(torch.zeros((1, 1), dtype=torch.long), 50, generator=torch.Generator().manual_seed(0))
    assert out.shape == (1, 51)  # the context is cropped to the last 32 tokens, generation goes on


def test_top_k_restricts_the_choice():
    model = tiny_model()
    idx = torch.zeros((64, 5), dtype=torch.long)
    logits, _ = model(idx[:1])
    allowed = set(torch.topk(logits[0, -1], 3).indices.tolist())
    out = model.generate(idx, 1, top_k=3, generator=torch.Generator().manual_seed(0))
    drawn = set(out[:, -1].tolist())
    assert drawn <= allowed
    assert len(drawn) > 1  # 64 draws from 3 choices: not all the same


def test_padded_vocabulary_is_never_sampled():
    import tiktoken
    from train_gpt2 import GPT2_VOCAB_SIZE
    torch.manual_seed(0)
    model = GPT(GPTConfig(block_size=64, vocab_size=50304, n_layer=1, n_head=2, n_embd=32)).eval()
    enc = tiktoken.get_encoding("gpt2")
    idx = torch.zeros((8, 1), dtype=torch.long)
    out = model.generate(idx, 60, top_k=50304, generator=torch.Generator().manual_seed(0))  # the whole vocab
    assert out.max().item() < GPT2_VOCAB_SIZE
    [enc.decode(row.tolist()) for row in out]  # decoding never fails
    # Even a model that puts almost all its mass on the padding rows never produces them.
    with torch.no_grad():
        model.lm_head.weight[GPT2_VOCAB_SIZE:] = 10.0
        model.transformer.ln_f.bias.fill_(10.0)
    logits, _ = model(idx)
    assert logits[0, -1].argmax().item() >= GPT2_VOCAB_SIZE  # the trap is set
    out = model.generate(idx, 20, top_k=50, generator=torch.Generator().manual_seed(0))
    assert out.max().item() < GPT2_VOCAB_SIZE


def test_kv_cache_gives_the_uncached_tokens():
    model = tiny_model()  # block_size 32: the second case runs past it, where the cache must give way
    for prompt_len, new in ((5, 20), (5, 40)):
        idx = torch.randint(0, 100, (3, prompt_len), generator=torch.Generator().manual_seed(prompt_len))
        greedy = [model.generate(idx, new, top_k=1, use_cache=c) for c in (True, False)]
        assert torch.equal(*greedy)
        sampled = [model.generate(idx, new, top_k=10, temperature=0.8, use_cache=c,
                                  generator=torch.Generator().manual_seed(1)) for c in (True, False)]
        assert torch.equal(*sampled)


def test_cached_logits_match_a_full_forward_pass():
    model = tiny_model()
    idx = torch.randint(0, 100, (2, 12), generator=torch.Generator().manual_seed(0))
    full, _ = model(idx)
    cache = [{} for _ in model.transformer.h]
    first, _ = model(idx[:, :8], kv_cache=cache)
    steps = [model(idx[:, t:t + 1], kv_cache=cache)[0] for t in range(8, 12)]
    assert torch.allclose(torch.cat([first, *steps], dim=1), full, atol=1e-5)
