"""The training loop against a reference loop written here from plain torch and the papers: main() (the real command
line, one process) trains a tiny model for a few steps, with two micro-steps of gradient accumulation, the warmup and
the decay inside the run, and a gradient norm above 1 so that clipping acts; the reference trains the same initial
weights on the same token windows with torch.optim.AdamW. Every step's loss and learning rate must agree to the log's
digits, and the final weights bit for bit: a line of the recipe dropped or a number changed shows here."""
import math

import pytest
import tiktoken
import torch
from helpers import tiny_flags
from torch.nn import functional as F

import train_gpt2
from train_gpt2 import GPT, GPTConfig

STEPS, WARMUP, MAX_LR, ACCUM, B, T, SEED = 6, 2, 3e-3, 2, 2, 32, 5


def gpt3_lr(step):
    """GPT-3 paper, section 2.3 and appendix B: a linear warmup, then a cosine decay to 10% of the peak at the end of
    the run. (The warmup counts the step it is in, as the lecture's does: the first step already moves.)"""
    min_lr = 0.1 * MAX_LR
    if step < WARMUP:
        return MAX_LR * (step + 1) / WARMUP
    return min_lr + (MAX_LR - min_lr) * (1 + math.cos(math.pi * (step - WARMUP) / (STEPS - WARMUP))) / 2


def reference(text):
    """Losses, gradient norms (before clipping) and final weights of the reference loop."""
    tokens = torch.tensor(tiktoken.get_encoding("gpt2").encode_ordinary(text))
    tokens = tokens[:len(tokens) - len(tokens) // 10]  # the train split: all but the last tenth
    torch.manual_seed(SEED)  # the command line's seed: the same initial weights
    model = GPT(GPTConfig(block_size=1024, vocab_size=50304, n_layer=2, n_head=2, n_embd=32))
    # GPT-3 paper, appendix B: Adam with beta1 0.9, beta2 0.95, eps 1e-8, weight decay 0.1; decayed: the matmul
    # weights and embeddings (2 dimensions or more), not the biases and LayerNorm gains. torch's fused kernel, as the
    # recipe's on a CPU: the same arithmetic, so that the weights can be compared bit for bit. (With torch's default
    # kernel they differ by up to 2e-6 after 6 steps: the attention's key biases get gradients of pure rounding
    # noise, which Adam scales up to a step of the learning rate's size.)
    params = list(model.parameters())
    optimizer = torch.optim.AdamW([{"params": [p for p in params if p.dim() >= 2], "weight_decay": 0.1},
                                   {"params": [p for p in params if p.dim() < 2], "weight_decay": 0.0}],
                                  lr=MAX_LR, betas=(0.9, 0.95), eps=1e-8, fused=True)
    losses, norms, position = [], [], 0
    for step in range(STEPS):
        optimizer.zero_grad()
        mean = 0.0
        for _ in range(ACCUM):  # the mean loss over the micro-batches: each one's share of the gradient
            window = tokens[position:position + B * T + 1]
            position += B * T
            logits = model(window[:-1].view(B, T))[0]
            loss = F.cross_entropy(logits.view(-1, logits.size(-1)), window[1:]) / ACCUM
            loss.backward()
            mean += loss.item()
        norms.append(torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0).item())  # GPT-3 paper: clip at 1.0
        for group in optimizer.param_groups:
            group["lr"] = gpt3_lr(step)
        optimizer.step()
        losses.append(mean)
    return losses, norms, model.state_dict()


def test_the_training_loop_is_the_reference_loop(shakespeare, tmp_path):
    flags = tiny_flags(n_layer=2, batch_size=B, seq_len=T, total_batch_size=ACCUM * B * T, max_steps=STEPS,
                       warmup_steps=WARMUP, max_lr=MAX_LR, eval_interval=100, checkpoint_interval=100, seed=SEED)
    train_gpt2.main(["--data", shakespeare, "--log_dir", str(tmp_path), *flags])
    with open(tmp_path / "log.txt") as f:
        log = [line.split() for line in f]
    final = torch.load(tmp_path / f"model_{STEPS:05d}.pt", weights_only=True)["model"]
    with open(shakespeare) as f:
        losses, norms, weights = reference(f.read())
    assert min(norms) > 1.0  # clipping acted at every step
    assert [float(v) for _, kind, v in log if kind == "train"] == pytest.approx(losses, abs=1e-6)
    assert [float(v) for _, kind, v in log if kind == "lr"] == pytest.approx([gpt3_lr(s) for s in range(STEPS)],
                                                                             rel=1e-6)  # the lr the steps used
    assert set(final) == set(weights)
    for name, tensor in weights.items():
        assert torch.equal(final[name], tensor), name
