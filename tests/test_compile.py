"""torch.compile changes speed, not results: the same loss and gradients as the eager model on the CPU."""
import pytest
import torch

from train_gpt2 import GPT, GPTConfig


def loss_and_grads(forward, model, x, y):
    model.zero_grad()
    _, loss = forward(x, y)
    loss.backward()
    return loss.item(), {name: p.grad.clone() for name, p in model.named_parameters()}


@pytest.mark.multiprocess
@pytest.mark.slow
def test_compiled_model_matches_eager():
    torch.manual_seed(0)
    eager = GPT(GPTConfig(block_size=64, vocab_size=256, n_layer=2, n_head=2, n_embd=32))
    x = torch.randint(0, 256, (4, 64))
    y = torch.randint(0, 256, (4, 64))
    eager_loss, eager_grads = loss_and_grads(eager, eager, x, y)
    compiled = torch.compile(eager)  # shares the parameters of `eager`
    compiled_loss, compiled_grads = loss_and_grads(compiled, eager, x, y)
    assert abs(compiled_loss - eager_loss) < 1e-5
    for name, g in eager_grads.items():
        assert torch.allclose(compiled_grads[name], g, rtol=1e-4, atol=1e-6), name
