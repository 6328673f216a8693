"""
GPT-2 (124M) from scratch, in one file: the model, the data loader, the learning-rate schedule and the training loop.

Read it top to bottom: model -> data -> learning rate -> training step -> evaluation -> distributed set-up -> main().
What is not the recipe (checkpoint files, resume, input checks, device probes, presets) is in plumbing/.
"""
import argparse
import contextlib
import inspect
import math
import os
import time
from dataclasses import asdict, dataclass

import numpy as np
import tiktoken
import torch
import torch.distributed as dist
import torch.nn as nn
from torch.nn import functional as F
from torch.nn.parallel import DistributedDataParallel as DDP

import hellaswag
from plumbing import checkpoints, cli, datafiles, files, hardware, huggingface, nonfinite, presets, processes, runlog
from plumbing.cli import print0  # print, from rank 0 only

# Shape letters used in the comments below: B batch, T time (sequence position), C channels (n_embd),
# nh number of heads, hs head size (C // nh), V vocabulary size.

# ----------------------------------------------------------------------------------------------------------------------
# The model

GPT2_VOCAB_SIZE = 50257  # tokens the GPT-2 tokenizer can decode; a padded vocab_size adds rows past this
EOT_TOKEN = 50256  # <|endoftext|>, which fineweb.py puts before every document


@dataclass
class GPTConfig:
    block_size: int = 1024  # longest sequence the model sees; sets the size of the position embedding table
    vocab_size: int = 50257  # GPT-2's BPE: 50,000 merges + 256 byte tokens + <|endoftext|>
    n_layer: int = 12  # number of transformer blocks
    n_head: int = 12  # attention heads per block
    n_embd: int = 768  # width of the residual stream


class CausalSelfAttention(nn.Module):
    def __init__(self, config):
        super().__init__()
        assert config.n_embd % config.n_head == 0
        # query, key and value for all heads in one matmul (OpenAI's checkpoint stores them as one tensor)
        self.c_attn = nn.Linear(config.n_embd, 3 * config.n_embd)
        self.c_proj = nn.Linear(config.n_embd, config.n_embd)
        self.c_proj.is_residual_projection = True  # see GPT._init_weights
        self.n_head = config.n_head
        self.n_embd = config.n_embd

    def forward(self, x, kv_cache=None, attn_mask=None):
        """kv_cache: for generation, this layer's dict of the keys and values of the positions seen so far (empty at
        first); the new positions' keys and values are appended to it. attn_mask: a bool (B, 1, T, T) mask, True
        where a position may attend, used instead of the causal mask (HellaSwag packs several sequences in a row)."""
        B, T, C = x.size()
        q, k, v = self.c_attn(x).split(self.n_embd, dim=2)  # each (B, T, C)
        q = q.view(B, T, self.n_head, C // self.n_head).transpose(1, 2)  # (B, nh, T, hs)
        k = k.view(B, T, self.n_head, C // self.n_head).transpose(1, 2)  # (B, nh, T, hs)
        v = v.view(B, T, self.n_head, C // self.n_head).transpose(1, 2)  # (B, nh, T, hs)
        if kv_cache is not None:
            if kv_cache:
                k = torch.cat((kv_cache["k"], k), dim=2)  # (B, nh, T_past + T, hs)
                v = torch.cat((kv_cache["v"], v), dim=2)
            kv_cache["k"], kv_cache["v"] = k, v
        # softmax(q k^T / sqrt(hs) + causal mask) v, computed by a fused kernel (FlashAttention on recent GPUs, Dao
        # et al. 2022) that never writes the (T, T) attention matrix to memory. Same result, much less memory
        # traffic. is_causal=True is the mask: position t attends to positions <= t. A single new token after a
        # filled cache comes after every cached position, so it may see them all: no mask.
        if q.size(2) != k.size(2):
            assert q.size(2) == 1, "after the cache is filled, generation feeds one token at a time"
        if attn_mask is None:
            y = F.scaled_dot_product_attention(q, k, v, is_causal=q.size(2) == k.size(2))  # (B, nh, T, hs)
        else:  # FlashAttention takes no mask; the kernel that does is slower, so training never passes one
            y = F.scaled_dot_product_attention(q, k, v, attn_mask=attn_mask)
        y = y.transpose(1, 2).contiguous().view(B, T, C)  # (B, T, C): heads side by side again
        return self.c_proj(y)


class MLP(nn.Module):
    def __init__(self, config):
        super().__init__()
        self.c_fc = nn.Linear(config.n_embd, 4 * config.n_embd)
        # GPT-2 was trained with the tanh approximation of GELU; use it so OpenAI's weights give OpenAI's outputs.
        self.gelu = nn.GELU(approximate="tanh")
        self.c_proj = nn.Linear(4 * config.n_embd, config.n_embd)
        self.c_proj.is_residual_projection = True  # see GPT._init_weights

    def forward(self, x):
        return self.c_proj(self.gelu(self.c_fc(x)))


class Block(nn.Module):
    def __init__(self, config):
        super().__init__()
        self.ln_1 = nn.LayerNorm(config.n_embd)
        self.attn = CausalSelfAttention(config)
        self.ln_2 = nn.LayerNorm(config.n_embd)
        self.mlp = MLP(config)

    def forward(self, x, kv_cache=None, attn_mask=None):
        # Pre-LayerNorm (GPT-2 paper, section 2.3): the residual stream itself is never normalised, so gradients
        # flow straight from the loss to the embeddings through the additions.
        x = x + self.attn(self.ln_1(x), kv_cache, attn_mask)
        x = x + self.mlp(self.ln_2(x))
        return x


class GPT(nn.Module):
    config_class = GPTConfig  # what a checkpoint's config is read into (modern_gpt.py's model adds its ideas)

    def __init__(self, config):
        super().__init__()
        self.config = config
        self.transformer = nn.ModuleDict(dict(
            wte=nn.Embedding(config.vocab_size, config.n_embd),  # token embeddings
            wpe=nn.Embedding(config.block_size, config.n_embd),  # position embeddings
            h=nn.ModuleList([Block(config) for _ in range(config.n_layer)]),
            ln_f=nn.LayerNorm(config.n_embd),  # GPT-2 adds a final LayerNorm before the output head
        ))
        self.lm_head = nn.Linear(config.n_embd, config.vocab_size, bias=False)
        # Weight tying (Press & Wolf 2017, as in GPT-2): the output head reuses the token embedding matrix, which
        # saves 38.6M parameters of the 124M model.
        self.transformer.wte.weight = self.lm_head.weight
        self.apply(self._init_weights)

    def _init_weights(self, module):
        # GPT-2's initialisation (as in OpenAI's released code): normal(0, 0.02) weights and zero biases.
        if isinstance(module, nn.Linear):
            std = 0.02
            if getattr(module, "is_residual_projection", False):
                # GPT-2 paper, section 2.3: the residual stream's variance grows with every addition into it (2 per
                # block), so the layers that write into it are scaled by 1/sqrt(number of additions).
                std *= (2 * self.config.n_layer) ** -0.5
            torch.nn.init.normal_(module.weight, mean=0.0, std=std)
            if module.bias is not None:
                torch.nn.init.zeros_(module.bias)
        elif isinstance(module, nn.Embedding):
            torch.nn.init.normal_(module.weight, mean=0.0, std=0.02)

    def forward(self, idx, targets=None, kv_cache=None):
        """idx: (B, T) token ids. Returns the logits (B, T, V) and, when targets (B, T) are given, the mean
        cross-entropy of predicting each target from the tokens up to it. kv_cache (generation only): one dict per
        layer holding the keys and values of the tokens already fed in; idx then continues after them."""
        logits = self.lm_head(self.hidden_states(idx, kv_cache=kv_cache))  # (B, T, V)
        loss = None
        if targets is not None:
            loss = F.cross_entropy(logits.flatten(0, 1), targets.flatten())  # (B*T, V) against (B*T,)
        return logits, loss

    def hidden_states(self, idx, kv_cache=None, pos=None, attn_mask=None):
        """The final LayerNorm's output (B, T, C) for the tokens idx (B, T), which lm_head turns into logits; a caller
        can apply the head only where it needs logits. pos (B, T) and attn_mask (B, 1, T, T, bool, True = may attend)
        replace the positions 0..T-1 and the causal mask, so that one row can hold several sequences (HellaSwag packs
        a context and its 4 endings). kv_cache: as in forward."""
        B, T = idx.size()
        if pos is None:
            past = kv_cache[0]["k"].size(2) if kv_cache and kv_cache[0] else 0  # tokens already in the cache
            assert past + T <= self.config.block_size, \
                f"sequence of length {past + T} is longer than block_size {self.config.block_size}"
            pos = torch.arange(past, past + T, dtype=torch.long, device=idx.device)  # (T,), broadcasts over B
        else:
            assert int(pos.max()) < self.config.block_size, \
                f"position {int(pos.max())} is past the model's block_size {self.config.block_size}"
        x = self.transformer.wte(idx) + self.transformer.wpe(pos)  # (B, T, C)
        for i, block in enumerate(self.transformer.h):
            x = block(x, kv_cache[i] if kv_cache is not None else None, attn_mask)
        return self.transformer.ln_f(x)

    def flops_per_token(self, T):
        """Training FLOPs per token (forward + backward) at sequence length T, by the formula in the PaLM paper's
        appendix B: 6 per parameter for the matmuls (position embeddings are a lookup, not a matmul) plus the
        attention scores and their weighted sum, 12 * n_layer * n_embd * T."""
        n_params = sum(p.numel() for p in self.parameters()) - self.transformer.wpe.weight.numel()
        return 6 * n_params + 12 * self.config.n_layer * self.config.n_embd * T

    @torch.no_grad()
    def generate(self, idx, max_new_tokens, top_k=50, generator=None, temperature=1.0, use_cache=True):
        """Extend idx (B, T) by max_new_tokens tokens, each drawn from the top_k most likely next tokens (top_k=1 is
        greedy decoding) after dividing the logits by temperature. Pass a seeded torch.Generator on idx's device for
        reproducible samples.

        With use_cache, the keys and values of the tokens seen so far are kept, so each new token costs one position's
        work. Past block_size the oldest tokens drop out of the context, which changes every position: each step then
        runs the cropped context afresh, as without the cache."""
        kv_cache = None
        for _ in range(max_new_tokens):
            if use_cache and idx.size(1) <= self.config.block_size:
                if kv_cache is None:
                    kv_cache = [{} for _ in self.transformer.h]
                    logits, _ = self(idx, kv_cache=kv_cache)  # the whole prompt fills the cache
                else:
                    logits, _ = self(idx[:, -1:], kv_cache=kv_cache)  # only the token drawn last
            else:
                idx_cond = idx[:, -self.config.block_size:]  # the model cannot look further back than block_size
                logits, _ = self(idx_cond)
            # Only the last position predicts the next token. With a padded vocabulary (50304 for speed) the rows past
            # the tokenizer's 50257 are never real tokens: cut them off so they can never be drawn or fail to decode.
            logits = logits[:, -1, :GPT2_VOCAB_SIZE] / temperature  # (B, V) with V <= 50257
            # Sampling only among the top k keeps the model away from the long tail of unlikely tokens.
            topk_logits, topk_idx = torch.topk(logits, min(top_k, logits.size(-1)), dim=-1)  # (B, k)
            probs = F.softmax(topk_logits, dim=-1)  # (B, k)
            choice = torch.multinomial(probs, num_samples=1, generator=generator)  # (B, 1), a position in the top k
            idx = torch.cat((idx, torch.gather(topk_idx, -1, choice)), dim=1)  # (B, T + 1)
        return idx

    def configure_optimizers(self, weight_decay, learning_rate, device_type):
        """AdamW with weight decay on the matmul weights and embeddings (every parameter with 2 or more dimensions),
        and none on biases and LayerNorm gains: decaying those only limits what the model can express. Uses the fused
        kernel on CUDA and CPU. The two groups are in optimizer.param_groups, decayed first."""
        params = [p for p in self.parameters() if p.requires_grad]  # parameters() yields the tied weight once
        decay = [p for p in params if p.dim() >= 2]
        no_decay = [p for p in params if p.dim() < 2]
        groups = [{"params": decay, "weight_decay": weight_decay}, {"params": no_decay, "weight_decay": 0.0}]
        # One kernel updates every parameter instead of a few launches per tensor (on the CPU here 7x faster than
        # the default: BENCHMARKS.md).
        fused = "fused" in inspect.signature(torch.optim.AdamW).parameters and device_type in ("cuda", "cpu")
        for name, group in zip(("decayed", "not decayed"), groups):
            print0(f"{name}: {len(group['params'])} tensors, {sum(p.numel() for p in group['params']):,} parameters")
        # GPT-3's betas and eps (GPT-3 paper, appendix B): beta2 = 0.95 instead of 0.999 lets the second moment
        # follow the gradient scale faster, which keeps large-model training stable.
        return torch.optim.AdamW(groups, lr=learning_rate, betas=(0.9, 0.95), eps=1e-8, fused=fused)

    # OpenAI's checkpoint was written from TensorFlow with "Conv1D" layers that store a matmul weight as (in, out);
    # nn.Linear stores (out, in). These four are Conv1D in the checkpoint and must be transposed on the way in.
    CONV1D_WEIGHTS = ("attn.c_attn.weight", "attn.c_proj.weight", "mlp.c_fc.weight", "mlp.c_proj.weight")
    OPENAI_MODELS = ("gpt2", "gpt2-medium", "gpt2-large", "gpt2-xl")

    @classmethod
    def from_pretrained(cls, name_or_path):
        """OpenAI's weights (OPENAI_MODELS) or a directory written by transformers' GPT2LMHeadModel.save_pretrained, in
        our module tree; the shape comes from the checkpoint's config."""
        if name_or_path not in cls.OPENAI_MODELS and not os.path.isdir(name_or_path):
            raise cli.InputError(f"unknown model {name_or_path!r}: use one of {', '.join(cls.OPENAI_MODELS)} or "
                                 "a directory written by GPT2LMHeadModel.save_pretrained")
        from transformers import GPT2LMHeadModel  # imported here: training from scratch does not need transformers

        try:
            hf_model = GPT2LMHeadModel.from_pretrained(name_or_path)
        except Exception as e:  # no network, no weights in the directory, a damaged file, ...
            raise huggingface.CannotLoad(name_or_path, e, cls.OPENAI_MODELS) from None
        hf = hf_model.config
        config = cls.config_class(block_size=hf.n_positions, vocab_size=hf.vocab_size, n_layer=hf.n_layer,
                                  n_head=hf.n_head, n_embd=hf.n_embd)
        model = cls(config)
        sd = model.state_dict()
        # The HF model also carries the attention mask as a buffer in older versions; it is not a weight.
        sd_hf = {k: v for k, v in hf_model.state_dict().items() if not k.endswith((".attn.bias", ".attn.masked_bias"))}
        if set(sd) != set(sd_hf):
            raise cli.InputError(f"{name_or_path}: not a GPT-2 checkpoint; missing "
                                 f"{sorted(set(sd) - set(sd_hf))}, unexpected {sorted(set(sd_hf) - set(sd))}")
        with torch.no_grad():
            for name, tensor in sd_hf.items():
                if name.endswith(cls.CONV1D_WEIGHTS):
                    tensor = tensor.t()
                assert sd[name].shape == tensor.shape, f"{name}: {tuple(sd[name].shape)} vs {tuple(tensor.shape)}"
                sd[name].copy_(tensor)
        return model

    @classmethod
    def from_flags(cls, args, **more):
        """A new, randomly initialised model of the shape the flags give (more: other fields of cls.config_class)."""
        return cls(cls.config_class(block_size=args.block_size, vocab_size=args.vocab_size, n_layer=args.n_layer,
                                    n_head=args.n_head, n_embd=args.n_embd, **more))

    @classmethod
    def from_checkpoint(cls, path):
        """A model saved by save_checkpoint, and the checkpoint's other contents (step, val_loss, args)."""
        checkpoint = checkpoints.read_checkpoint(path)
        model = cls(checkpoints.config_of(path, checkpoint["config"], cls.config_class))
        checkpoints.check_weights_fit(path, checkpoint["config"], model.state_dict(), checkpoint["model"])
        model.load_state_dict(checkpoint["model"])
        return model, checkpoint

    @classmethod
    def load(cls, name_or_path):
        """A model_STEP.pt checkpoint of this script, an OpenAI model or a save_pretrained directory. What cannot be
        loaded raises a cli.InputError (a ValueError) that says why."""
        if name_or_path.endswith(".pt"):
            return cls.from_checkpoint(name_or_path)[0]
        return cls.from_pretrained(name_or_path)

    def export_hf(self, out_dir):
        """--export_hf: write this model as a transformers GPT2LMHeadModel directory, whole or not at all."""
        huggingface.export(self, out_dir, GPT2_VOCAB_SIZE)


# ----------------------------------------------------------------------------------------------------------------------
# Data


def load_tokens(path):
    """A shard written by fineweb.py, memory-mapped: its uint16 tokens stay on disk (and in the page cache, shared by
    the processes of a machine); only each batch's slice is read and turned into int64."""
    return datafiles.open_shard(path, mmap_mode="r")


class DataLoaderLite:
    """Serves (x, y) batches of B rows of T tokens of one split, in order, epoch after epoch; y is x shifted by one
    token, so at every position the model learns to predict the next token.

    `data` is a directory of shards written by fineweb.py (the files named `*_{split}_*.npy`, in name order), or a
    text file such as input.txt (its last 10% of tokens is the val split). Process `rank` of `world_size` reads every
    world_size-th window of B*T tokens, so together the processes read each window once. The shards are one stream:
    the tokens at a shard's end that cannot fill a round of windows start the next shard's first round."""

    def __init__(self, B, T, rank=0, world_size=1, split="train", data="input.txt", shuffle=False, seed=0,
                 vocab_size=None):
        assert split in ("train", "val")
        self.B, self.T = B, T
        self.rank, self.world_size = rank, world_size
        self.shuffle, self.seed = shuffle, seed
        self.vocab_size = vocab_size  # if given, every shard is checked against it as it is loaded
        if os.path.isdir(data):
            self.shards = datafiles.shard_paths(data, split)
            total = sum(len(load_tokens(path)) for path in self.shards)  # reads headers only
        else:
            enc = tiktoken.get_encoding("gpt2")
            tokens = np.array(enc.encode_ordinary(datafiles.read_text(data)), dtype=np.uint16)
            n_val = len(tokens) // 10
            self.shards = [tokens[:-n_val] if split == "train" else tokens[-n_val:]]  # one in-memory "shard"
            total = len(self.shards[0])
        datafiles.check_enough_tokens(total, B * T * world_size + 1, split, data)
        self.reset()

    def reset(self):
        """Back to the start of the split (the validation loss is always measured on the same batches)."""
        self.enter(0, 0, carry=np.empty(0, dtype=np.uint16))

    def enter(self, epoch, k, carry):
        """Start reading shard k of `epoch`, after the `carry` tokens left over from the shard before it."""
        self.epoch, self.shard, self.carry = epoch, k, len(carry)
        self.tokens = datafiles.TokenStream([carry, *self.shard_pieces(epoch, k)])
        self.position = self.B * self.T * self.rank

    def next_batch(self):
        B, T = self.B, self.T
        buf = torch.from_numpy(self.tokens[self.position:self.position + B * T + 1].astype(np.int64))  # +1: last target
        x = buf[:-1].view(B, T)  # inputs
        y = buf[1:].view(B, T)  # targets
        self.position += B * T * self.world_size  # skip the windows of the other processes
        # Move on when the next round of windows, of all processes together, would not fit. Deciding on the round
        # (not this process's own window) keeps every process in the same place, so their windows stay disjoint.
        round_start = self.position - B * T * self.rank
        while round_start + B * T * self.world_size + 1 > len(self.tokens):
            if self.shard + 1 < len(self.shards):  # the unread tail opens the next shard
                self.enter(self.epoch, self.shard + 1, carry=self.tokens[round_start:])
            else:  # the end of the epoch: a tail too short for a round is all that is ever skipped
                self.enter(self.epoch + 1, 0, carry=np.empty(0, dtype=np.uint16))
            round_start = 0
        return x, y

    # Beside the loader: the tokens of a shard, in a shuffled order with --shuffle, and the loader's position, which
    # a checkpoint saves so that a resumed run reads on where it stopped.

    def shard_pieces(self, epoch, k):
        """The k-th shard of `epoch` as a list of token arrays, read in turn: the shard itself, or with shuffle its
        documents (each opens with <|endoftext|>) in an order drawn for that shard and epoch, the shards themselves
        in an order drawn anew for each epoch. The arrays are views of the memory-mapped shard: nothing is copied."""
        i = datafiles.permutation(len(self.shards), self.seed, epoch)[k] if self.shuffle else k
        shard = self.shards[i]
        tokens = load_tokens(shard) if isinstance(shard, str) else shard
        datafiles.check_token_ids(tokens, self.vocab_size, shard if isinstance(shard, str) else "the data")
        if not self.shuffle:
            return [tokens]
        docs = datafiles.documents(tokens, EOT_TOKEN)
        return [docs[j] for j in datafiles.permutation(len(docs), self.seed, epoch, i)]

    def state_dict(self):
        """Where the loader is, the same on every rank: epoch, shard, tokens carried into it, start of the round."""
        return {"epoch": self.epoch, "shard": self.shard, "carry": self.carry,
                "round_start": self.position - self.B * self.T * self.rank}

    def load_state_dict(self, state):
        before = datafiles.TokenStream(self.shard_pieces(state["epoch"], state["shard"] - 1) if state["carry"] else [])
        self.enter(state["epoch"], state["shard"], carry=before[len(before) - state["carry"]:])
        self.position = state["round_start"] + self.B * self.T * self.rank


# ----------------------------------------------------------------------------------------------------------------------
# Learning-rate schedule


def get_lr(step, max_lr, min_lr, warmup_steps, max_steps):
    """GPT-3's schedule (GPT-3 paper, section 2.3 and appendix B): linear warmup from max_lr / warmup_steps to max_lr
    over the first warmup_steps steps, cosine decay to min_lr at max_steps, and min_lr after that."""
    if step < warmup_steps:
        return max_lr * (step + 1) / warmup_steps  # step + 1: the very first step already moves
    if step >= max_steps:
        return min_lr
    decay_ratio = (step - warmup_steps) / (max_steps - warmup_steps)  # 0 -> 1
    coeff = 0.5 * (1.0 + math.cos(math.pi * decay_ratio))  # 1 -> 0
    return min_lr + coeff * (max_lr - min_lr)


# ----------------------------------------------------------------------------------------------------------------------
# Training step


def grad_accum_steps_for(total_batch_size, B, T, world_size):
    """How many micro-batches of B x T tokens each of world_size processes runs per optimizer step."""
    cli.check_total_batch(total_batch_size, B, T, world_size)
    return total_batch_size // (B * T * world_size)


def train_step(model, optimizer, scaler, loader, grad_accum_steps, lr, world_size, device, device_type, amp_dtype,
               stop=None):
    """One optimizer step, as the lecture writes it, on grad_accum_steps micro-batches per process: the gradient of the
    mean loss, clipped to a norm of 1.0, and AdamW's update at learning rate lr. A big batch (0.5M tokens for GPT-2)
    runs as several small ones that fit in memory. Returns the mean loss over every process's micro-batches and the
    gradient's norm before clipping, read once the device is done. A stop asked for before the last micro-step (see
    processes.StopRequests) drops the step: (None, None), and the loader back where the step began."""
    optimizer.zero_grad()
    start = loader.state_dict()
    loss_accum = torch.zeros((), device=device)
    for micro_step in range(grad_accum_steps):
        x, y = loader.next_batch()
        if device_type == "cuda":  # copies from pinned (page-locked) memory run while the CPU goes on
            x, y = x.pin_memory(), y.pin_memory()
        x, y = x.to(device, non_blocking=True), y.to(device, non_blocking=True)
        # Under DDP, backward() averages the gradients over processes. That is needed once per optimizer step, not
        # once per micro-step: no_sync() skips it until the last micro-step, whose backward averages the sums.
        last = micro_step == grad_accum_steps - 1
        with model.no_sync() if isinstance(model, DDP) and not last else contextlib.nullcontext():
            with hardware.autocast(device_type, amp_dtype):
                loss = model(x, y)[1]  # not the (B, T, V) logits: kept through backward(), 6.6 GB at B = 64 in bf16
            # Each micro-step's loss is divided by grad_accum_steps: backward() *adds* into .grad, and we want the
            # gradient of the mean over the whole batch, not of the sum of the micro-batch means.
            loss = loss / grad_accum_steps
            loss_accum += loss.detach()
            scaler.scale(loss).backward()  # float16: the loss scaled up first, so that small gradients stay above 0
        if not last and stop is not None and stop.check():  # a stop fits a scheduler's grace: no more micro-steps
            loader.load_state_dict(start)
            return None, None
    if world_size > 1:  # the mean of the processes' losses, each over its share of the batch (gloo has no AVG)
        dist.all_reduce(loss_accum, op=dist.ReduceOp.SUM)
        loss_accum /= world_size
    scaler.unscale_(optimizer)  # float16: the true gradients back, so that the norm clipped is their true norm
    # Clip the gradient norm to 1.0 (GPT-3 paper, appendix B): one unlucky batch cannot throw the model far.
    norm = torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
    for group in optimizer.param_groups:  # modern_gpt.py's groups run at their own multiple of the schedule's lr
        group["lr"] = lr * group.get("lr_scale", 1.0)
    if scaler.is_enabled():  # float16: the scaler's step, skipped if the gradients overflowed, then a new loss scale
        scaler.step(optimizer)
        scaler.update()
    elif nonfinite.may_step(optimizer, loss_accum, norm):  # a NaN or inf must never reach the weights
        optimizer.step()
    hardware.synchronize(device_type)  # wait for the GPU: the step's time is its work, not just its launch
    return loss_accum.item(), norm.item()


# ----------------------------------------------------------------------------------------------------------------------
# Evaluation: validation loss, HellaSwag, samples


@torch.no_grad()
def val_loss(model, loader, steps, device, device_type, amp_dtype, rank=0, world_size=1, stop=None):
    """Mean loss over the first `steps` batches of the val split: always the same batches (the loader is reset), and
    the same ones whatever the number of processes, which share them out (batch i to process i % world_size) and
    add up their sums, so runs on different numbers of GPUs can be compared. `loader` reads the split as a single
    process would (rank 0 of 1). If a stop is asked for (`stop`: processes.StopRequests), None, at the next batch."""
    loader.reset()
    total = torch.zeros(2, device=device)  # (sum of losses, number of batches)
    for i in range(steps):
        if stop is not None and stop.check():  # every process checks at every batch, its own or not
            return None
        x, y = loader.next_batch()
        if i % world_size != rank:
            continue
        with hardware.autocast(device_type, amp_dtype):
            loss = model(x.to(device), y.to(device))[1]
        total += torch.stack((loss.float(), torch.ones((), device=device)))
    if world_size > 1:
        dist.all_reduce(total, op=dist.ReduceOp.SUM)
    return (total[0] / total[1]).item()


def hellaswag_accuracy(model, device, amp_dtype, rank, world_size, data_dir, limit, batch_size):
    """HellaSwag acc_norm on data_dir's val split (its first `limit` examples; None: all), the examples dealt out across
    processes and the counts summed, scored by hellaswag.py's evaluate(), as `python hellaswag.py` does. Pass the
    uncompiled model: every batch of examples has its own length, and a compiled one would recompile for each."""
    # Not a collective: a process that finds a damaged file must stop the others (processes.run_or_stop_all).
    counts = processes.run_or_stop_all(world_size > 1, hellaswag.evaluate, model, device=device, split="val",
                                       data_dir=data_dir, rank=rank, world_size=world_size, limit=limit,
                                       autocast_dtype=amp_dtype, batch_size=batch_size)
    counts = torch.tensor(counts, dtype=torch.long, device=device)  # (correct, correct_norm, total)
    if world_size > 1:
        dist.all_reduce(counts, op=dist.ReduceOp.SUM)
    _, correct_norm, total = counts.tolist()
    return correct_norm / total


def sample(model, prompt, num_samples, max_new_tokens, device, seed, top_k=50, temperature=1.0, use_cache=True,
           amp_dtype=None):
    """num_samples continuations of prompt, as strings, reproducible for a given seed (under amp_dtype autocast, if
    given). An empty prompt starts from <|endoftext|>, the token that opens every document the model was trained on."""
    enc = tiktoken.get_encoding("gpt2")  # GPT-2's tokenizer (cached: read once a process)
    tokens = torch.tensor(enc.encode_ordinary(prompt) or [enc.eot_token], dtype=torch.long, device=device)
    idx = tokens.unsqueeze(0).repeat(num_samples, 1)  # (num_samples, T)
    generator = torch.Generator(device=device).manual_seed(seed)
    with hardware.autocast(torch.device(device).type, amp_dtype):
        out = model.generate(idx, max_new_tokens, top_k=top_k, generator=generator, temperature=temperature,
                             use_cache=use_cache)
    return [enc.decode(row.tolist()) for row in out]


def save_checkpoint(path, model, step, val_loss, args, optimizer=None, train_loader=None, scaler=None):
    """Write log_dir/model_STEP.pt: the weights and their shape, what made them (the step, its val loss, the run's
    flags) and, given the optimizer and the data loader, what it takes to continue the run exactly."""
    checkpoint = {"model": model.state_dict(), "config": asdict(model.config), "step": step, "val_loss": val_loss,
                  "args": vars(args)}
    if optimizer is not None:
        checkpoint.update(checkpoints.run_state(optimizer, train_loader, scaler))
    checkpoints.write(path, lambda f: torch.save(checkpoint, f))  # to a temporary name, synced, then renamed
    print0(f"step {step:5d} | saved {path}")


def checkpoint_run(step, loss_val, args, model, optimizer, train_loader, scaler, ddp, master_process):
    """save_checkpoint by rank 0 while the others wait; if it cannot, every process stops. Returns the file's path."""
    path = checkpoints.checkpoint_path(args.log_dir, step)
    processes.run_or_stop_all(ddp, save_checkpoint, path, model, step, loss_val, args, optimizer, train_loader, scaler,
                              where=master_process)
    return path


# ----------------------------------------------------------------------------------------------------------------------
# Distributed set-up


def setup_distributed(requested_device):
    """The facts of this process: (ddp, rank, local_rank, world_size, device, device_type). torchrun sets RANK,
    LOCAL_RANK and WORLD_SIZE; without them this is the only process."""
    ddp = "RANK" in os.environ
    rank, local_rank, world_size = (int(os.environ.get(k, default)) for k, default in
                                    (("RANK", 0), ("LOCAL_RANK", 0), ("WORLD_SIZE", 1)))
    device, device_type = hardware.pick_device(requested_device)
    if ddp and device_type == "mps":
        raise cli.InputError("torchrun with MPS: PyTorch cannot run DDP on Apple GPUs; run one process, or "
                             "--device cpu")
    if ddp and device_type == "cuda":
        device = processes.gpu_of(local_rank, torch.cuda.device_count())  # one GPU per process
    if device_type == "cuda" and torch.device(device).index is not None:  # what torch.cuda's calls look at
        torch.cuda.set_device(device)
    if device_type == "cuda":
        hardware.check_kernels(device)  # a V100 with the CUDA 12.8+ wheels: stop now, saying which torch to install
    if ddp:  # NCCL moves CUDA tensors GPU to GPU; gloo moves CPU ones, such as the messages of plumbing's checks
        processes.import_what_holds_the_group()  # first: else the group outlives destroy_process_group()
        processes.check_gloo_address()  # across machines, a host name that resolves to 127.0.1.1 would hang it
        dist.init_process_group("cpu:gloo,cuda:nccl" if device_type == "cuda" else "gloo",
                                timeout=processes.COLLECTIVE_TIMEOUT)
        if device_type == "cuda":
            processes.check_own_gpus(device)
    print0(f"using device: {device}, {world_size} process(es)")
    return ddp, rank, local_rank, world_size, device, device_type


# ----------------------------------------------------------------------------------------------------------------------
# Main


def parse_args(argv=None, more_flags=None):
    parser = argparse.ArgumentParser(
        description="Train GPT-2 from scratch (or fine-tune OpenAI's), then sample. The defaults are the GPT-2 (124M) "
                    "recipe on FineWeb-Edu; see the README for a small run on a CPU.")
    # Numbers are checked as they are parsed: a value out of range is refused at once, naming the flag and the range.
    positive, count = cli.whole_number(1), cli.whole_number(0)
    parser.add_argument("--data", default="edu_fineweb10B",
                        help="a directory of shards written by fineweb.py, or a text file (its last 10%% of tokens "
                             "is the val split); input.txt is tiny Shakespeare, downloaded on first use")
    parser.add_argument("--init_from", default="scratch",
                        help="scratch (random init), an OpenAI model (gpt2, gpt2-medium, ...), a directory written by "
                             "save_pretrained, or a model_STEP.pt checkpoint (its weights; the step starts afresh)")
    # The recipe: GPT-2 (124M) trained with the hyperparameters of GPT-3 Small, the GPT-3 model of its size (GPT-3
    # paper, table 2.1 and appendix B; the GPT-2 paper gives none), on 10B tokens of FineWeb-Edu.
    parser.add_argument("--model", default="gpt2", choices=["gpt2", *presets.MODEL_PRESETS],
                        help="the size to train from scratch: another one's preset (plumbing/presets.py) replaces the "
                             "defaults below (see them with --model NAME --help)")
    parser.add_argument("--n_layer", type=positive, default=12, help="transformer blocks (default: %(default)s)")
    parser.add_argument("--n_head", type=positive, default=12, help="attention heads per block (default: %(default)s)")
    parser.add_argument("--n_embd", type=positive, default=768, help="residual stream width (default: %(default)s)")
    parser.add_argument("--block_size", type=positive, default=1024, help="context length (default: %(default)s)")
    parser.add_argument("--vocab_size", type=cli.whole_number(GPT2_VOCAB_SIZE), default=50304,
                        help="vocabulary size (scratch only): GPT-2's 50257 padded to a multiple of 128, which GPU "
                             "matmul kernels handle faster (default: %(default)s)")
    # 2**19 = 524,288 tokens per optimizer step, GPT-3 Small's "0.5M", as 64 rows of 1024 tokens per micro-step: 8 GPUs
    # take one micro-step each, fewer GPUs accumulate the gradients of more.
    parser.add_argument("--total_batch_size", type=positive, default=2**19,
                        help="tokens per optimizer step, reached by gradient accumulation (default: %(default)s)")
    parser.add_argument("--batch_size", type=positive, default=64,
                        help="B: rows per micro-step and process (default: %(default)s, halved on a GPU until a step "
                             "fits its memory)")
    parser.add_argument("--seq_len", type=positive, default=1024, help="T: tokens per row (default: %(default)s)")
    # The learning rate: a linear warmup to GPT-3 Small's 6e-4 over 375M tokens (715 steps of 2**19), then a cosine
    # decay to a tenth of it at the end of the 10B tokens (19,073 steps), one pass over FineWeb-Edu sample-10BT.
    parser.add_argument("--max_lr", type=cli.real_number(0), default=6e-4,
                        help="peak learning rate, after warmup (default: %(default)s)")
    parser.add_argument("--min_lr", type=cli.real_number(0, above=False),
                        help="learning rate at the end of the decay (default: %(default)g: a tenth of --max_lr)")
    parser.add_argument("--warmup_steps", type=count, default=715,
                        help="steps of linear learning-rate warmup (default: %(default)s)")
    parser.add_argument("--max_steps", type=count, default=19073,
                        help="optimizer steps; 0 only samples (default: %(default)s)")
    parser.add_argument("--weight_decay", type=cli.real_number(0, above=False), default=0.1,
                        help="AdamW weight decay of matmul weights and embeddings (default: %(default)s, as GPT-3)")
    parser.add_argument("--shuffle", action=argparse.BooleanOptionalAction, default=False,
                        help="read the train shards, and each one's documents, in a new seeded order each epoch")
    # Speed
    parser.add_argument("--device", default="auto", type=cli.device_name,
                        help="auto (cuda, then mps, then cpu), cpu, cuda, cuda:N or mps")
    parser.add_argument("--dtype", default="auto", choices=["auto", "float32", "bfloat16", "float16"],
                        help="autocast dtype of the forward pass (float16 with a gradient scaler); auto: bfloat16 "
                             "where the GPU or CPU has it natively, float16 on GPUs with float16 tensor cores only "
                             "(T4, V100, RTX 20xx), float32 elsewhere")
    parser.add_argument("--compile", action=argparse.BooleanOptionalAction, default=None,
                        help="torch.compile the model (default: on for CUDA and CPU, off for MPS and on Windows)")
    # Evaluation, sampling, checkpoints
    parser.add_argument("--seed", type=cli.whole_number(0, 2**64 - 1), default=42,
                        help="the run's random seed: the initial weights, the order of --shuffle, the samples")
    parser.add_argument("--log_dir", default="log", help="where log.txt (and checkpoints) are written")
    parser.add_argument("--eval_interval", type=positive, default=250,
                        help="measure the validation loss every this many steps (and at the last step)")
    parser.add_argument("--val_steps", type=positive, default=20,
                        help="batches of the val split per validation, in all (shared out among the processes)")
    parser.add_argument("--hellaswag", action=argparse.BooleanOptionalAction, default=True,
                        help="evaluate HellaSwag acc_norm at every validation (downloads the val set on first use)")
    parser.add_argument("--hellaswag_dir", default="hellaswag", help="where the HellaSwag files are kept")
    parser.add_argument("--hellaswag_limit", type=positive, default=None,
                        help="evaluate only the first N of the 10,042 val examples (default: all)")
    parser.add_argument("--hellaswag_batch_size", type=positive, default=16,
                        help="HellaSwag examples per forward pass; lower it if the evaluation runs out of memory")
    parser.add_argument("--checkpoint_interval", type=positive, default=5000,
                        help="write log_dir/model_STEP.pt every this many steps (and at the end)")
    parser.add_argument("--skip_nonfinite", action="store_true",
                        help="skip (and log) a step whose loss or gradient norm is NaN or inf, instead of stopping")
    parser.add_argument("--resume", default=None,
                        help="continue a run exactly from a model_STEP.pt checkpoint, or 'auto': the newest in "
                             "--log_dir (none yet: start from step 0)")
    parser.add_argument("--export_hf", default=None, metavar="DIR",
                        help="write the --init_from model as a HuggingFace GPT2LMHeadModel directory, and exit")
    parser.add_argument("--prompt", default="Hello, I'm a language model,", help="text that samples start from")
    parser.add_argument("--sample_interval", type=positive, default=250,
                        help="print samples every this many steps (and at the end)")
    parser.add_argument("--num_samples", type=positive, default=4, help="how many continuations to sample")
    parser.add_argument("--max_new_tokens", type=count, default=32, help="length of each continuation, in tokens")
    if more_flags is not None:  # modern_gpt.py's --ideas
        more_flags(parser)
    # --model is read first, alone: another size's preset replaces the recipe's numbers above, so that a flag left out
    # gets the preset's value and --help shows it. A run's length and warmup are counted in tokens, as in GPT-3: 10B
    # and 375M, the recipe's steps of 2**19 tokens; a preset's batch, or one of your own, keeps the tokens.
    recipe = {name: parser.get_default(name) for name in ("total_batch_size", "max_steps", "warmup_steps")}
    model_flag = argparse.ArgumentParser(add_help=False)
    model_flag.add_argument("--model", default="gpt2")
    parser.set_defaults(**presets.preset_flags(model_flag.parse_known_args(argv)[0].model))

    def keep_tokens(name, total_batch_size):  # the recipe's steps `name`, as steps of total_batch_size tokens
        return recipe[name] * recipe["total_batch_size"] // total_batch_size
    total_batch_size = parser.get_default("total_batch_size")
    parser.set_defaults(max_steps=keep_tokens("max_steps", total_batch_size), min_lr=0.1 * parser.get_default("max_lr"),
                        warmup_steps=keep_tokens("warmup_steps", total_batch_size))  # (for --help)
    left_out = argparse.Namespace(batch_size=None, min_lr=None, max_steps=None, warmup_steps=None)
    args = parser.parse_args(argv, left_out)  # a flag left out stays None here
    args.batch_size_left_out = args.batch_size is None  # a GPU may halve the micro-batch then (micro_batch_that_fits)
    args.batch_size = args.batch_size or parser.get_default("batch_size")
    if args.min_lr is None:
        args.min_lr = 0.1 * args.max_lr  # GPT-3 paper, appendix B: the cosine decays to 10% of the peak
    for name in ("max_steps", "warmup_steps"):
        if getattr(args, name) is None:
            setattr(args, name, keep_tokens(name, args.total_batch_size))
    try:
        cli.check_flags(args)  # flags that do not go together
        if args.export_hf:  # a folder that will not do is refused before the model is loaded
            files.check_new_folder("--export_hf", args.export_hf)
    except cli.InputError as e:
        parser.error(str(e))
    return args


def load_run(args, world_size, ddp, device, model_class=GPT):
    """The model_class to train (its shape from the flags, or --init_from's), on `device`, and with --resume the
    checkpoint to continue from (else None)."""
    args.world_size = world_size  # saved in checkpoints: a run resumes on as many processes
    path = checkpoints.checkpoint_to_resume(args.resume, args.log_dir, ddp) if args.resume else None
    if args.resume == "auto" and path is None:
        print0(f"--resume auto: no checkpoint in {args.log_dir}/ yet, starting from step 0")
    checkpoint = None
    # Every process loads the model from its own machine's files: if one cannot, every process stops.
    if path is not None:
        with cli.named_by("--resume"):
            model, checkpoint = processes.run_or_stop_all(ddp, model_class.from_checkpoint, path)
        checkpoints.check_same_checkpoint(path, checkpoint["step"], ddp)
        if args.batch_size_left_out:  # that run's, which it found to fit, and the val tokens of the batch asked for
            args.val_steps = args.val_steps * args.batch_size // checkpoint["args"]["batch_size"]
            args.batch_size = checkpoint["args"]["batch_size"]
        same = {name: getattr(args, name) for name in ("total_batch_size", "batch_size", "seq_len", "data", "shuffle",
                                                       "ideas") if hasattr(args, name)}  # ideas: modern_gpt.py's
        checkpoints.check_resumable(path, checkpoint, same, world_size)  # the flags that would change the batches
        print0(f"resuming from {path} at step {checkpoint['step']}")
    elif args.init_from != "scratch":
        with cli.named_by("--init_from"):
            model = processes.run_or_stop_all(ddp, model_class.load, args.init_from)
    else:
        model = model_class.from_flags(args)
    if args.max_steps > 0 and args.seq_len > model.config.block_size:  # a loaded model's context is known only now
        raise cli.InputError(f"--seq_len {args.seq_len} is longer than the model's context of "
                             f"{model.config.block_size} tokens; lower --seq_len")
    return model.to(device), checkpoint


# modern_gpt.py runs this same main() with its own model class, learning-rate schedule and flag (--ideas).
@cli.command_line  # on return, destroys the process group as the lecture does; an InputError ends with its message
def main(argv=None, model_class=GPT, lr_schedule=get_lr, more_flags=None):
    args = parse_args(argv, more_flags)
    if args.export_hf:  # write the --init_from model as a HuggingFace directory, and nothing else
        with cli.named_by("--init_from"):
            return model_class.load(args.init_from).export_hf(args.export_hf)
    ddp, rank, local_rank, world_size, device, device_type = setup_distributed(args.device)
    master_process = rank == 0  # the one process that prints, samples and writes files
    if args.max_steps > 0:  # before any work: a wrong path or batch costs seconds
        datafiles.prepare_files(args, local_rank, master_process, world_size, ddp, hellaswag.download)
    torch.manual_seed(args.seed)  # the same seed everywhere: every process builds the same initial model
    if device_type == "cuda":
        torch.set_float32_matmul_precision("high")  # TF32: fp32 matmuls on tensor cores, several times faster
    amp_dtype = hardware.autocast_dtype(args.dtype, device_type)  # bf16 where the device has it, and says why
    # float16 (the lecture's road not taken, 1:39:38) has 5 exponent bits: the scaler scales the loss up before
    # backward and the gradients back down, and skips a step that overflowed. bf16 needs none: disabled, it is a no-op.
    scaler = torch.amp.GradScaler(device_type, enabled=amp_dtype is torch.float16)
    model, resume = load_run(args, world_size, ddp, device, model_class)
    if args.max_steps == 0:  # nothing to train: sample (the lecture's demo, with --init_from gpt2)
        for text in sample(model, args.prompt, args.num_samples, args.max_new_tokens, device, args.seed):
            print0(">", text)
        return
    raw_model = model  # the plain module, for what must not go through the compiled graph
    if hardware.use_compile(args.compile, device_type):
        model = torch.compile(model, dynamic=False)  # fuses work between matmuls, skips Python; B, T fixed: static
    eval_model = model  # compiled but not DDP-wrapped: evaluation computes no gradients, so it needs no DDP
    if ddp:  # DDP averages the gradients over processes during backward(), overlapping the communication with it
        # gradient_as_bucket_view: each .grad a view into the all-reduce buckets (not under no_sync: tests/helpers.py)
        model = DDP(model, device_ids=[device] if device_type == "cuda" else None, gradient_as_bucket_view=True)
    T = args.seq_len
    B = hardware.micro_batch_that_fits(model, args.batch_size, T, device, device_type, amp_dtype, ddp,
                                       given=not args.batch_size_left_out or resume is not None)  # a GPU tries it
    val_steps = args.val_steps * args.batch_size // B  # a smaller micro-batch: more val batches, the same tokens
    args.batch_size = B  # saved in checkpoints
    grad_accum_steps = grad_accum_steps_for(args.total_batch_size, B, T, world_size)
    print0(f"total batch {args.total_batch_size:,} tokens = {grad_accum_steps} micro-steps of {B} x {T} "
           f"on each of {world_size} process(es)")
    train_loader = DataLoaderLite(B, T, rank=rank, world_size=world_size, split="train", data=args.data,
                                  shuffle=args.shuffle, seed=args.seed, vocab_size=raw_model.config.vocab_size)
    val_loader = DataLoaderLite(B, T, split="val", data=args.data, vocab_size=raw_model.config.vocab_size)  # all of it
    optimizer = raw_model.configure_optimizers(args.weight_decay, args.max_lr, device_type)
    start_step = checkpoints.restore_run(resume, optimizer, train_loader, scaler) if resume else 0
    log = runlog.Log(args, device, amp_dtype, start_step if resume else None, write=master_process, ddp=ddp)
    speed = hardware.Speed(raw_model.flops_per_token(T), args.total_batch_size, device_type, amp_dtype, world_size)
    stop, path = processes.StopRequests(ddp), None  # Ctrl-C, SIGTERM, SIGHUP: stop.agreed, once all processes know
    # One pass more than there are updates: the last one (step == max_steps) only evaluates the final model.
    for step in range(start_step, args.max_steps + 1):
        last_step = step == args.max_steps
        fresh = step > start_step or resume is None or resume["val_loss"] is None  # else the saving run evaluated it
        checkpoint_due = fresh and step > 0 and (step % args.checkpoint_interval == 0 or last_step)
        evaluate = not stop.agreed and (fresh and (step % args.eval_interval == 0 or last_step) or checkpoint_due)
        loss_val = val_loss(eval_model, val_loader, val_steps, device, device_type, amp_dtype, rank, world_size,
                            stop) if evaluate else None  # None also if a stop came during it: --resume evaluates it
        log.report(step, "val", "val loss", loss_val)  # a NaN or inf stops the run
        if checkpoint_due or stop.agreed and step > 0:
            path = checkpoint_run(step, loss_val, args, raw_model, optimizer, train_loader, scaler, ddp, master_process)
        if stop.agreed:  # asked to stop after the step before this one: with the checkpoint above, and nothing more
            raise processes.StoppedBySignal(stop.agreed, step - 1, path)
        if fresh and args.hellaswag and (step % args.eval_interval == 0 or last_step):
            acc_norm = hellaswag_accuracy(raw_model, device, amp_dtype, rank, world_size, args.hellaswag_dir,
                                          args.hellaswag_limit, args.hellaswag_batch_size)
            log.report(step, "hella", "HellaSwag acc_norm", acc_norm)
        if fresh and master_process and (step > 0 and step % args.sample_interval == 0 or last_step):
            for text in sample(raw_model, args.prompt, args.num_samples, args.max_new_tokens, device, args.seed,
                               amp_dtype=amp_dtype):  # the uncompiled model: the length changes at every token
                print0(f"step {step:5d} | sample: {text!r}")
        if last_step:
            break
        t0 = time.perf_counter()
        lr = lr_schedule(step, args.max_lr, args.min_lr, args.warmup_steps, args.max_steps)
        loss, norm = train_step(model, optimizer, scaler, train_loader, grad_accum_steps, lr, world_size, device,
                                device_type, amp_dtype, stop)  # as floats, once the device is done
        if loss is None:  # a stop came during the step: dropped, to be done again on --resume
            raise processes.StoppedBySignal(stop.agreed, step - 1, path if checkpoint_due else checkpoint_run(
                step, loss_val, args, raw_model, optimizer, train_loader, scaler, ddp, master_process))
        stop.check(log.error)  # a signal (the next pass stops), or a log not written (every process stops now)
        scale = scaler.get_scale() if scaler.is_enabled() else None  # float16's loss scale after this step
        if nonfinite.skipped_step(step, loss, norm, scale, args.skip_nonfinite, args.log_dir, log):  # or stops the run
            continue
        # The lr as the optimizer had it for this step: what was done, not recomputed. tok/s and MFU from dt.
        log.train_step(step, loss, optimizer.param_groups[0]["lr"], norm, scale, speed(time.perf_counter() - t0))


if __name__ == "__main__":
    main()
