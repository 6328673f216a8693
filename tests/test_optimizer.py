"""configure_optimizers: which parameters are decayed, and the AdamW settings."""
import torch

from train_gpt2 import GPT, GPTConfig


def test_weight_decay_groups_of_gpt2_124m():
    model = GPT(GPTConfig(vocab_size=50304))
    optimizer = model.configure_optimizers(weight_decay=0.1, learning_rate=6e-4, device_type="cpu")
    decay, no_decay = optimizer.param_groups
    assert (len(decay["params"]), sum(p.numel() for p in decay["params"])) == (50, 124_354_560)
    assert (len(no_decay["params"]), sum(p.numel() for p in no_decay["params"])) == (98, 121_344)
    assert decay["weight_decay"] == 0.1 and no_decay["weight_decay"] == 0.0
    assert decay["betas"] == (0.9, 0.95) and decay["eps"] == 1e-8
    names = {id(p): n for n, p in model.named_parameters()}
    assert all(names[id(p)].endswith(".bias") or ".ln_" in names[id(p)] for p in no_decay["params"])


def test_steps_match_torch_adamw_with_hand_built_groups():
    torch.manual_seed(0)
    config = GPTConfig(block_size=16, vocab_size=64, n_layer=1, n_head=2, n_embd=16)
    a, b = GPT(config), GPT(config)
    b.load_state_dict(a.state_dict())
    opt_a = a.configure_optimizers(weight_decay=0.1, learning_rate=1e-2, device_type="cpu")
    params_b = list(b.parameters())
    opt_b = torch.optim.AdamW([{"params": [p for p in params_b if p.dim() >= 2], "weight_decay": 0.1},
                               {"params": [p for p in params_b if p.dim() < 2], "weight_decay": 0.0}],
                              lr=1e-2, betas=(0.9, 0.95), eps=1e-8, fused=True)
    x = torch.randint(0, 64, (2, 16))
    for model, opt in ((a, opt_a), (b, opt_b)):
        for _ in range(3):
            opt.zero_grad()
            model(x, x)[1].backward()
            opt.step()
    for (name, pa), pb in zip(a.named_parameters(), b.parameters()):
        assert torch.equal(pa, pb), name


def test_gradient_accumulation_equals_one_big_batch(tmp_path):
    from train_gpt2 import DataLoaderLite, forward_backward
    path = tmp_path / "text.txt"
    path.write_text("It was the best of times, it was the worst of times, it was the age of wisdom. " * 30)
    torch.manual_seed(0)
    model = GPT(GPTConfig(block_size=32, vocab_size=50257, n_layer=2, n_head=2, n_embd=32))
    K, B, T = 4, 2, 16
    loss = forward_backward(model, DataLoaderLite(B, T, data=str(path)), K, "cpu", "cpu", None)
    accumulated = {n: p.grad.clone() for n, p in model.named_parameters()}

    model.zero_grad()
    x, y = DataLoaderLite(K * B, T, data=str(path)).next_batch()  # the same K*B rows in one batch
    _, big_loss = model(x, y)
    big_loss.backward()
    assert abs(loss.item() - big_loss.item()) < 1e-6
    for name, p in model.named_parameters():
        assert torch.allclose(accumulated[name], p.grad, rtol=1e-5, atol=1e-7), name


def test_a_total_batch_that_micro_batches_cannot_fill_is_refused():
    import pytest
    from train_gpt2 import grad_accum_steps_for
    assert grad_accum_steps_for(524288, 64, 1024, 8) == 1
    assert grad_accum_steps_for(524288, 16, 1024, 1) == 32
    with pytest.raises(SystemExit, match="multiple of 3,072"):
        grad_accum_steps_for(524288, 3, 1024, 1)
    with pytest.raises(SystemExit, match=r"64 \* 1024 \* 3"):
        grad_accum_steps_for(524288, 64, 1024, 3)
