"""Sampling: seeded draws are reproducible, top_k limits the choice, and the defaults are the lecture's."""
import tiktoken
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


def with_logits(model, logits):
    """model, answering every input with `logits` (V,) at every position."""
    def forward(idx, targets=None, kv_cache=None):
        return logits.expand(idx.size(0), idx.size(1), -1), None
    model.forward = forward
    return model


def test_the_default_draw_is_the_top_50_at_temperature_1():
    # The lecture samples as HuggingFace's pipeline did by default: from the 50 most likely tokens, at temperature 1.
    # generate() with no top_k or temperature must draw each of those 50 as often as its softmax share among them,
    # and nothing else. The logits fall evenly from 0 to -4 over 100 tokens (in a shuffled order): at 200,000 draws a
    # top_k of 49 or 51 changes which tokens appear, and a temperature of 0.9 or 1.1 moves the frequencies by 0.024
    # and more in total variation, where sampling noise is about 0.006.
    V, N = 100, 200_000
    logits = -torch.linspace(0, 4, V)[torch.randperm(V, generator=torch.Generator().manual_seed(0))]
    model = with_logits(tiny_model(), logits)
    out = model.generate(torch.zeros((N, 1), dtype=torch.long), 1, generator=torch.Generator().manual_seed(1))
    top50 = torch.topk(logits, 50).indices
    assert set(out[:, -1].tolist()) == set(top50.tolist())
    expected = torch.zeros(V)
    expected[top50] = torch.softmax(logits[top50], dim=0)  # temperature 1: the logits as they are
    drawn = torch.bincount(out[:, -1], minlength=V).float() / N
    assert 0.5 * (drawn - expected).abs().sum() < 0.012


def test_the_training_runs_samples_use_generates_defaults():
    # sample(), which the training loop calls, must pass the same top 50 at temperature 1 on to generate().
    from train_gpt2 import sample
    enc = tiktoken.get_encoding("gpt2")
    model = tiny_model()
    model.config.vocab_size = enc.n_vocab  # decodable ids: the logits below cover the whole vocabulary
    logits = torch.full((enc.n_vocab,), -30.0)  # 100 likely tokens, from 0 down to -4, among unlikely ones
    logits[torch.randperm(enc.n_vocab, generator=torch.Generator().manual_seed(0))[:100]] = -torch.linspace(0, 4, 100)
    model = with_logits(model, logits)
    texts = sample(model, "Hello", num_samples=16, max_new_tokens=8, device="cpu", seed=3)
    prompt = torch.tensor([enc.encode_ordinary("Hello")] * 16)
    out = model.generate(prompt, 8, top_k=50, temperature=1.0, generator=torch.Generator().manual_seed(3))
    assert texts == [enc.decode(row.tolist()) for row in out]
    other = model.generate(prompt, 8, top_k=50, temperature=0.9, generator=torch.Generator().manual_seed(3))
    assert not torch.equal(out, other)  # a temperature of 0.9 would have drawn other tokens
