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
    # train_step over K micro-batches of B rows, at a learning rate of 0 so that the weights stay where they were:
    # the loss, the gradient norm and the clipped gradients left in .grad are those of one batch of K * B rows.
    from train_gpt2 import DataLoaderLite, train_step
    path = tmp_path / "text.txt"
    path.write_text("It was the best of times, it was the worst of times, it was the age of wisdom. " * 30)
    torch.manual_seed(0)
    model = GPT(GPTConfig(block_size=32, vocab_size=50257, n_layer=2, n_head=2, n_embd=32))
    before = {n: p.detach().clone() for n, p in model.named_parameters()}
    K, B, T = 4, 2, 16
    optimizer = model.configure_optimizers(weight_decay=0.1, learning_rate=0.0, device_type="cpu")
    scaler = torch.amp.GradScaler("cpu", enabled=False)
    loss, norm = train_step(model, optimizer, scaler, DataLoaderLite(B, T, data=str(path)), K, 0.0, 1, "cpu", "cpu",
                            None)
    accumulated = {n: p.grad.clone() for n, p in model.named_parameters()}
    assert all(torch.equal(p, before[n]) for n, p in model.named_parameters())  # lr 0: the step changed nothing

    model.zero_grad()
    x, y = DataLoaderLite(K * B, T, data=str(path)).next_batch()  # the same K*B rows in one batch
    _, big_loss = model(x, y)
    big_loss.backward()
    big_norm = torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
    assert big_norm > 1.0  # clipping acted on both
    assert abs(loss - big_loss.item()) < 1e-6 and abs(norm - big_norm.item()) < 1e-4
    for name, p in model.named_parameters():
        assert torch.allclose(accumulated[name], p.grad, rtol=1e-5, atol=1e-7), name


def test_a_total_batch_that_micro_batches_cannot_fill_is_refused():
    import pytest

    from plumbing.cli import InputError
    from train_gpt2 import grad_accum_steps_for
    assert grad_accum_steps_for(524288, 64, 1024, 8) == 1
    assert grad_accum_steps_for(524288, 16, 1024, 1) == 32
    with pytest.raises(InputError, match="multiple of 3,072"):
        grad_accum_steps_for(524288, 3, 1024, 1)
    with pytest.raises(InputError, match=r"64 \* 1024 \* 3"):
        grad_accum_steps_for(524288, 64, 1024, 3)


def step_both_ways(last):
    """Two copies of a model take three steps with the same gradients, the last ones all `last`: one copy through
    torch's AdamW itself (skipping the last step if it is not finite), the other as train_step steps (may_step)."""
    import math

    import plumbing.nonfinite
    torch.manual_seed(0)
    config = GPTConfig(block_size=16, vocab_size=64, n_layer=1, n_head=2, n_embd=16)
    models = [GPT(config), GPT(config)]
    models[1].load_state_dict(models[0].state_dict())
    optimizers = [m.configure_optimizers(weight_decay=0.1, learning_rate=1e-2, device_type="cpu") for m in models]
    for step, value in enumerate([0.01, -0.02, last]):
        for model in models:
            for i, p in enumerate(model.parameters()):
                p.grad = torch.full_like(p, value * (i + 1))
        norm = torch.nn.utils.clip_grad_norm_(models[1].parameters(), 1.0)
        torch.nn.utils.clip_grad_norm_(models[0].parameters(), 1.0)
        if math.isfinite(value):
            optimizers[0].step()
        if plumbing.nonfinite.may_step(optimizers[1], torch.tensor(1.0 + value), norm):
            optimizers[1].step()
    return models, optimizers


def test_a_nonfinite_step_is_skipped_without_waiting_for_the_device(monkeypatch):
    # The fused kernel skips the update itself (found_inf), so may_step never asks for a value on the CPU:
    # .item(), which would wait for the GPU, is refused while it runs.
    def no_sync(self):
        raise AssertionError("waited for the device")
    real_item = torch.Tensor.item
    monkeypatch.setattr(torch.Tensor, "item", no_sync)
    (reference, model), (_, optimizer) = step_both_ways(float("nan"))
    monkeypatch.setattr(torch.Tensor, "item", real_item)
    for (name, p), q in zip(reference.named_parameters(), model.parameters()):
        assert torch.equal(p, q), name  # the NaN step changed no weight...
    assert all(real_item(state["step"]) == 2 for state in optimizer.state.values())  # ...nor the step count


def test_a_finite_step_through_may_step_is_adamws_own():
    (reference, model), _ = step_both_ways(0.03)
    for (name, p), q in zip(reference.named_parameters(), model.parameters()):
        assert torch.equal(p, q), name
