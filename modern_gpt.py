"""
After the lecture: the ideas of the modded-nanogpt speedrun, one at a time, on top of train_gpt2.py's GPT-2.

The lecture ends with GPT-2 (124M) trained on 10B tokens of FineWeb-Edu. The speedrun (github.com/KellerJordan/
modded-nanogpt) takes the same target, a FineWeb val loss of 3.28, from llm.c's 45 minutes on 8 H100s (its record 1,
05/28/24) down to minutes, with a table of records that names what each one changed. This file builds those ideas
one by one, each a name for --ideas with the record it came from (IDEAS below). Everything else is train_gpt2.py's,
unchanged: the data loader, the training loop, checkpoints and resume, HellaSwag, sampling. Only the model, its
optimizer and the learning-rate schedule are this file's.

    python modern_gpt.py --data input.txt ...                    # every flag of train_gpt2.py, and every idea
    python modern_gpt.py --data input.txt ... --ideas rmsnorm    # some of them, comma-separated
    python modern_gpt.py --data input.txt ... --ideas none       # the lecture's GPT-2 exactly: same logits, same log

What each idea gives on a CPU, measured, is in the README ("After the lecture").
"""
import argparse
from dataclasses import dataclass

import torch
import torch.nn as nn
from torch.nn import functional as F

import train_gpt2
from plumbing import cli
from plumbing.cli import print0
from train_gpt2 import GPT, GPTConfig

# name: (record in the speedrun's table, its date, what the idea changes). In the order the speedrun took them.
IDEAS = {
    # The speedrun's first record after llm.c's (2, 06/06/24) made GPT-2 simpler before making it faster: no learned
    # gain or bias anywhere, and RMSNorm (Zhang & Sennrich 2019), which divides by the root mean square without first
    # subtracting the mean. The record's notes say it was done for simpler code and costs a little speed.
    "rmsnorm": (2, "06/06/24", "RMSNorm without gains instead of LayerNorm, and no biases"),
    # The same record replaced the table of learned positions by rotary embeddings (Su et al. 2021, RoFormer): q and
    # k are turned by angles proportional to their position, so that q . k depends only on how far apart they are.
    # A word's meaning does not depend on its absolute position; no table of block_size x n_embd to learn.
    "rotary": (2, "06/06/24", "rotary position embeddings instead of learned positions"),
    # And it raised the learning rate 3x (1.8e-3 for GPT-2 124M; its notes on an earlier version call the higher rate
    # "the main thing"), held it there, and decayed it linearly at the end: the warmup-stable-decay ("trapezoidal")
    # schedule of Hägele et al. 2024 (arXiv 2405.18392), who find a cooldown over the last 20% of the steps as good as
    # a cosine over all of them, without fixing the run's length in advance.
    "wsd": (2, "06/06/24", "3x the learning rate, held, then decayed linearly over the last 20% of the steps"),
    # Muon (Jordan et al. 2024, kellerjordan.github.io/posts/muon): SGD with Nesterov momentum whose update of each
    # weight matrix is replaced by the nearest orthogonal matrix (5 Newton-Schulz iterations), so that every direction
    # of the matrix moves by the same amount, instead of the few that dominate the gradient. For the matrices inside
    # the blocks; the embedding, the head and any gain or bias stay with AdamW. torch.optim.Muon (torch 2.9+) as it
    # ships, with the speedrun's settings: lr 0.02 (record 9's), the speedrun's scaling of it by sqrt(max(1, rows /
    # columns)) (adjust_lr_fn="original"), no weight decay, momentum warmed up from 0.85 to 0.95 over 500 steps
    # (record 9). As the speedrun, q, k and v are three matrices: Muon orthogonalises each.
    "muon": (3, "10/04/24", "Muon for the matrices inside the blocks, AdamW for the rest"),
    # QK-norm (Henry et al. 2020, arXiv 2010.04245; Dehghani et al. 2023 for ViT-22B): each head's q and k divided
    # by their root mean square before the dot product, so that no attention logit can grow without bound and
    # collapse a softmax onto one token, which lets the learning rate go higher.
    "qknorm": (5, "10/14/24", "q and k RMS-normalised per head"),
    # ReLU squared (So et al. 2021, Primer, arXiv 2109.08668) as the MLP's nonlinearity instead of GELU: found by a
    # search over transformer variants; zero for negative inputs (sparse), and cheaper than GELU's tanh.
    "relu2": (5, "10/14/24", "ReLU(x)^2 instead of GELU in the MLP"),
    # The layers that write into the residual stream (each attention's and MLP's c_proj) start at zero, instead of
    # GPT-2's small random values scaled by 1/sqrt(2 n_layer): every block starts as the identity and the stream
    # holds the embeddings alone, as in muP-style initialisations; the blocks are then grown by the optimizer.
    "zero_init": (5, "10/14/24", "the output projections of attention and MLP initialised to zero"),
    # The head gets a matrix of its own instead of reusing the token embedding (undoing GPT-2's tying), starting at
    # zero (all logits equal: the loss starts at ln V), with its own small learning rate, and the embedding gets a
    # large one (record 9's 0.002 and 0.3). The two jobs differ: an embedding is looked up one row at a time, the head
    # scores every token at once. As in the speedrun's code, the embedding is RMS-normalised before the first block,
    # so that its large learning rate turns its rows rather than grows them.
    "untied_head": (8, "11/03/24", "a head of its own, zero-initialised, with its own learning rate"),
    # The logits squashed into (-30, 30) by 30 tanh(logits / 30), as Gemma 2 does (Gemma Team 2024, arXiv
    # 2408.00118): small logits pass unchanged, and no logit can run away to make the model over-confident. Inside
    # the head, so that HellaSwag and sampling, which call the head themselves, see the logits training sees. (Record
    # 18, 01/04/25, lowered the cap to 15.)
    "softcap": (9, "11/06/24", "logits capped smoothly at +-30 by a tanh"),
    # Two shortcuts from the first layers to every block, each mixed in by learned weights: the value residual (Zhou
    # et al. 2024, arXiv 2410.17897), each attention's values mixed with the first block's, (1 - l) v + l v_1, l
    # starting at 0.5, which keeps later layers from attending to ever fewer tokens; and the embedding shortcut, each
    # block's input a x + b x_0 with x_0 the embedding, starting at a = 1, b = 0, so that what a token is stays at
    # hand however deep.
    "shortcuts": (9, "11/06/24", "value residual and embedding shortcut, with learned weights"),
    # U-net skips (Ronneberger et al. 2015's pattern): the first half of the blocks is an encoder whose outputs are
    # kept, and each block of the second half adds the output of its mirror image (the last encoder block's to the
    # first decoder block's input, and so on outwards), weighted by a learned weight starting at 1. Deep layers get
    # the early layers' features back directly. (Record 11 also doubled the learning rates; not here.)
    "unet": (11, "11/10/24", "U-net skips from the first half of the blocks to the second, with learned weights"),
    # Value embeddings: tables of their own, looked up with the tokens like the token embedding, mixed into the
    # attention's values, a v + b ve, (a, b) learned from (0.5, 0.5): each token brings a value of its own to every
    # attention that reads it, however deep. Record 14 gave every block a table; record 15 (12/08/24) shared 3
    # tables in a U-net pattern (the first 3 blocks and the last 3, the middle ones none), which is what is built
    # here (fewer tables for fewer than 6 blocks). Learned at the embedding's rate (EMBED_LR), as in the speedrun.
    "value_embeds": (14, "12/04/24", "embedding tables mixed into the attention's values (U-net pattern)"),
}
WSD_LR_SCALE = 3.0  # the peak learning rate of wsd, as a multiple of --max_lr (record 2: 1.8e-3 = 3 x 6e-4)
WSD_COOLDOWN = 0.2  # the fraction of the steps over which wsd decays (Hägele et al.; record 2: 2,000 of 9,500)
MUON_LR = 0.02  # Muon's peak learning rate, whatever --max_lr (record 9, 11/06/24)
MUON_MOMENTUM = (0.85, 0.95, 500)  # from, to, over this many steps (record 9's momentum warmup)
EMBED_LR, HEAD_LR = 0.3, 0.002  # untied_head's Adam learning rates of the embedding and the head (record 9)
SOFTCAP = 30.0  # softcap's bound on the logits (record 9)


def parse_ideas(text):
    """--ideas: all, none, or names from IDEAS separated by commas; the names in IDEAS' order."""
    if text == "none":
        return ()
    names = list(IDEAS) if text == "all" else [name.strip() for name in text.split(",")]
    unknown = [name for name in names if name not in IDEAS]
    if unknown:
        raise argparse.ArgumentTypeError(f"unknown idea {', '.join(map(repr, unknown))}: choose from "
                                         f"{', '.join(IDEAS) or '(none yet)'}, or all, or none")
    if "muon" in names and not hasattr(torch.optim, "Muon"):
        why = f"muon needs torch.optim.Muon, which torch has since 2.9 (this is torch {torch.__version__})"
        if text != "all":
            raise argparse.ArgumentTypeError(f"{why}: pip install 'torch>=2.9', or leave muon out")
        print0(f"--ideas all: without muon, which {why.removeprefix('muon ')}")
        names.remove("muon")
    return tuple(name for name in IDEAS if name in names)


def add_ideas_flag(parser):
    parser.add_argument("--ideas", type=parse_ideas, default=tuple(IDEAS), metavar="LIST",
                        help=f"the speedrun's ideas to use, comma-separated: {', '.join(IDEAS) or '(none yet)'}; all "
                             "(the default) or none (the lecture's GPT-2 exactly)")


def wsd_lr(step, max_lr, min_lr, warmup_steps, max_steps):
    """The warmup-stable-decay schedule (wsd): the lecture's linear warmup to max_lr, max_lr until the last
    WSD_COOLDOWN of the steps, then a straight line down to min_lr at max_steps. The optimizer's groups scale it by
    WSD_LR_SCALE (ModernGPT.configure_optimizers)."""
    if step < warmup_steps:
        return max_lr * (step + 1) / warmup_steps
    if step >= max_steps:
        return min_lr
    cooldown_steps = max(1, round(WSD_COOLDOWN * max_steps))
    if step < max_steps - cooldown_steps:
        return max_lr
    return min_lr + (max_lr - min_lr) * (max_steps - step) / cooldown_steps  # from max_lr down to min_lr


@dataclass
class ModernConfig(GPTConfig):
    ideas: tuple = ()  # names from IDEAS: what this model changes of GPT-2 (none: it is GPT-2)


class RMSNorm(nn.Module):
    """x / sqrt(mean(x**2) + eps) over the channels: no learned gain, no bias (rmsnorm)."""
    def forward(self, x):
        return F.rms_norm(x, (x.size(-1),))


def rotary_cos_sin(pos, head_size, base=10000.0):
    """The cos and sin of the angles pos * base**(-2i / hs) by which rotary embeddings turn each pair of channels
    (i, i + hs/2) of q and k (the pairing of LLaMA and transformers): (T, hs) for pos (T,), (B, 1, T, hs) for (B, T)."""
    inv_freq = base ** (-torch.arange(0, head_size, 2, device=pos.device, dtype=torch.float32) / head_size)  # (hs/2,)
    angles = pos.float().unsqueeze(-1) * inv_freq  # (..., T, hs/2): slow turns for the last pairs, fast for the first
    angles = torch.cat((angles, angles), dim=-1)  # (..., T, hs)
    if angles.dim() == 3:
        angles = angles.unsqueeze(1)  # (B, 1, T, hs): the same angles for every head
    return angles.cos(), angles.sin()


def rotate(x, cos, sin):
    """x (B, nh, T, hs) with channels i and i + hs/2 turned together by their angle: a 2-D rotation of each pair."""
    x1, x2 = x.chunk(2, dim=-1)  # each (B, nh, T, hs/2)
    return (x * cos + torch.cat((-x2, x1), dim=-1) * sin).type_as(x)  # in x's dtype under autocast too


class SoftCappedHead(nn.Linear):
    """The output head with its logits squashed into (-SOFTCAP, SOFTCAP) (softcap)."""
    def forward(self, x):
        return SOFTCAP * torch.tanh(super().forward(x) / SOFTCAP)


def value_embed_table(layer, n_layer):
    """The value embedding table that block `layer` of n_layer reads (value_embeds), or None: table i for the i-th
    block from the start and the i-th of the last ones, min(3, n_layer // 2) tables."""
    k = min(3, n_layer // 2)
    if layer < k:
        return layer
    if layer >= n_layer - k:
        return layer - (n_layer - k)
    return None


def norm(config):
    return RMSNorm() if "rmsnorm" in config.ideas else nn.LayerNorm(config.n_embd)


class Attention(nn.Module):
    def __init__(self, config, value_embed=False):
        super().__init__()
        bias = "rmsnorm" not in config.ideas
        if "muon" in config.ideas:  # Muon orthogonalises each matrix it updates: q, k and v as three
            self.c_q, self.c_k, self.c_v = (nn.Linear(config.n_embd, config.n_embd, bias=bias) for _ in range(3))
        else:
            self.c_attn = nn.Linear(config.n_embd, 3 * config.n_embd, bias=bias)  # q, k, v, as in GPT-2
        self.c_proj = nn.Linear(config.n_embd, config.n_embd, bias=bias)
        self.c_proj.is_residual_projection = True  # scaled at init, as in GPT-2 (GPT._init_weights)
        self.n_head = config.n_head
        self.qknorm = "qknorm" in config.ideas
        self.value_mix = nn.Parameter(torch.tensor(0.5)) if "shortcuts" in config.ideas else None  # l
        self.value_embed_mix = nn.Parameter(torch.tensor([0.5, 0.5])) if value_embed else None  # (a, b)

    def forward(self, x, kv_cache=None, attn_mask=None, rotary=None, v_1=None, ve=None):
        """The attention's output, and the first block's values (this block's, if v_1 is None). ve (B, T, C): this
        block's value embeddings of the tokens, if it has a table."""
        B, T, C = x.size()
        qkv = (self.c_q(x), self.c_k(x), self.c_v(x)) if hasattr(self, "c_q") else self.c_attn(x).split(C, dim=2)
        q, k, v = (t.view(B, T, self.n_head, C // self.n_head).transpose(1, 2) for t in qkv)  # each (B, nh, T, hs)
        if self.value_mix is not None:  # the value residual: (1 - l) v + l v_1; the first block's v_1 is its v
            v_1 = v if v_1 is None else v_1
            v = (1 - self.value_mix) * v + self.value_mix * v_1
        if self.value_embed_mix is not None:  # a v + b ve
            ve = ve.view(B, T, self.n_head, C // self.n_head).transpose(1, 2)  # (B, nh, T, hs)
            v = self.value_embed_mix[0] * v + self.value_embed_mix[1] * ve
        if self.qknorm:
            q, k = F.rms_norm(q, (q.size(-1),)), F.rms_norm(k, (k.size(-1),))  # over hs, for each head and token
        if rotary is not None:  # (cos, sin) of this row's positions; the cache keeps keys already turned
            q, k = rotate(q, *rotary), rotate(k, *rotary)
        if kv_cache is not None:  # generation: as in train_gpt2.py
            if kv_cache:
                k, v = torch.cat((kv_cache["k"], k), dim=2), torch.cat((kv_cache["v"], v), dim=2)  # (B, nh, T', hs)
            kv_cache["k"], kv_cache["v"] = k, v
        if attn_mask is None:  # causal, unless one new token follows a filled cache
            y = F.scaled_dot_product_attention(q, k, v, is_causal=q.size(2) == k.size(2))  # (B, nh, T, hs)
        else:
            y = F.scaled_dot_product_attention(q, k, v, attn_mask=attn_mask)
        return self.c_proj(y.transpose(1, 2).contiguous().view(B, T, C)), v_1  # heads side by side again: (B, T, C)


class MLP(nn.Module):
    def __init__(self, config):
        super().__init__()
        bias = "rmsnorm" not in config.ideas
        self.c_fc = nn.Linear(config.n_embd, 4 * config.n_embd, bias=bias)
        self.c_proj = nn.Linear(4 * config.n_embd, config.n_embd, bias=bias)
        self.c_proj.is_residual_projection = True
        self.relu2 = "relu2" in config.ideas

    def forward(self, x):
        if self.relu2:
            return self.c_proj(F.relu(self.c_fc(x)).square())
        return self.c_proj(F.gelu(self.c_fc(x), approximate="tanh"))


class Block(nn.Module):
    def __init__(self, config, layer):
        super().__init__()
        self.ln_1 = norm(config)
        value_embed = "value_embeds" in config.ideas and value_embed_table(layer, config.n_layer) is not None
        self.attn = Attention(config, value_embed)
        self.ln_2 = norm(config)
        self.mlp = MLP(config)
        # The embedding shortcut's (a, b): the block's input is a x + b x_0.
        self.input_mix = nn.Parameter(torch.tensor([1.0, 0.0])) if "shortcuts" in config.ideas else None

    def forward(self, x, x_0, v_1, kv_cache=None, attn_mask=None, rotary=None, ve=None):
        """The block's output, and the first block's values (see Attention.forward). x_0: the embedding."""
        if self.input_mix is not None:
            x = self.input_mix[0] * x + self.input_mix[1] * x_0
        y, v_1 = self.attn(self.ln_1(x), kv_cache, attn_mask, rotary, v_1, ve)
        x = x + y
        return x + self.mlp(self.ln_2(x)), v_1


class ModernGPT(GPT):
    """GPT-2 with the ideas config.ideas names. Its modules have GPT's names, so that with no ideas its state_dict is
    GPT-2's and OpenAI's weights or a train_gpt2.py checkpoint load into it; generate(), from_pretrained(), load() and
    the rest are GPT's."""
    config_class = ModernConfig

    def __init__(self, config):
        nn.Module.__init__(self)  # not GPT.__init__: the blocks are this file's
        self.config = config
        self.transformer = nn.ModuleDict(dict(
            wte=nn.Embedding(config.vocab_size, config.n_embd),
            **({} if "rotary" in config.ideas else {"wpe": nn.Embedding(config.block_size, config.n_embd)}),
            h=nn.ModuleList([Block(config, layer) for layer in range(config.n_layer)]),
            ln_f=norm(config),
        ))
        head = SoftCappedHead if "softcap" in config.ideas else nn.Linear
        self.lm_head = head(config.n_embd, config.vocab_size, bias=False)
        if "untied_head" not in config.ideas:
            self.transformer.wte.weight = self.lm_head.weight  # tied, as in GPT-2
        if "value_embeds" in config.ideas:
            self.value_embeds = nn.ModuleList([nn.Embedding(config.vocab_size, config.n_embd)
                                               for _ in range(min(3, config.n_layer // 2))])
        if "unet" in config.ideas:  # one weight per decoder block that has an encoder block to mirror
            self.skip_weights = nn.Parameter(torch.ones(config.n_layer // 2))
        self.apply(self._init_weights)  # GPT-2's initialisation: with no ideas, the same weights for the same seed
        if "untied_head" in config.ideas:
            torch.nn.init.zeros_(self.lm_head.weight)

    def _init_weights(self, module):
        super()._init_weights(module)  # GPT-2's
        if "zero_init" in self.config.ideas and getattr(module, "is_residual_projection", False):
            torch.nn.init.zeros_(module.weight)

    @classmethod
    def from_flags(cls, args):
        print0(f"ideas: {', '.join(args.ideas) or 'none: the lecture GPT-2'}")
        return super().from_flags(args, ideas=args.ideas)

    def hidden_states(self, idx, kv_cache=None, pos=None, attn_mask=None):
        """As GPT.hidden_states: the last normalisation's output (B, T, C), for the positions pos (default: after
        the tokens already in kv_cache)."""
        B, T = idx.size()
        if pos is None:
            past = kv_cache[0]["k"].size(2) if kv_cache and kv_cache[0] else 0
            pos = torch.arange(past, past + T, device=idx.device)  # (T,)
        assert int(pos.max()) < self.config.block_size, \
            f"position {int(pos.max())} is past the model's block_size {self.config.block_size}"
        x = self.transformer.wte(idx)  # (B, T, C)
        if "untied_head" in self.config.ideas:
            x = F.rms_norm(x, (x.size(-1),))
        rotary = None
        if "rotary" in self.config.ideas:
            rotary = rotary_cos_sin(pos, self.config.n_embd // self.config.n_head)
        else:
            x = x + self.transformer.wpe(pos)
        x_0, v_1 = x, None  # the embedding, and the first block's values (shortcuts)
        unet = "unet" in self.config.ideas
        encoder, skips = self.config.n_layer // 2 if unet else self.config.n_layer, []  # encoder blocks, outputs
        ves = [table(idx) for table in self.value_embeds] if "value_embeds" in self.config.ideas else []  # (B, T, C)
        for i, block in enumerate(self.transformer.h):
            if i >= encoder and skips:  # a decoder block: its mirror image's output, last in first out
                x = x + self.skip_weights[i - encoder] * skips.pop()
            table = value_embed_table(i, self.config.n_layer) if ves else None
            x, v_1 = block(x, x_0, v_1, kv_cache[i] if kv_cache is not None else None, attn_mask, rotary,
                           ves[table] if table is not None else None)
            if i < encoder and unet:
                skips.append(x)
        return self.transformer.ln_f(x)

    def flops_per_token(self, T):
        """As GPT.flops_per_token: 6 per parameter of a matmul (an embedding table other than the head's is a lookup)
        plus the attention's 12 * n_layer * n_embd * T."""
        head = self.lm_head.weight
        tables = [m.weight for m in self.modules() if isinstance(m, nn.Embedding) and m.weight is not head]
        n_params = sum(p.numel() for p in self.parameters()) - sum(t.numel() for t in tables)
        return 6 * n_params + 12 * self.config.n_layer * self.config.n_embd * T

    def configure_optimizers(self, weight_decay, learning_rate, device_type):
        """GPT's AdamW. With muon, Muon for the matrices inside the blocks; with untied_head, the embedding and the
        head in AdamW groups of their own, at their own learning rates; with wsd, the other AdamW groups at
        WSD_LR_SCALE times the schedule's learning rate. Each group's lr_scale is the multiple of the schedule's lr
        it runs at (train_gpt2.train_step)."""
        ideas = self.config.ideas
        if not {"muon", "untied_head", "value_embeds"} & set(ideas):
            optimizer = adamw = super().configure_optimizers(weight_decay, learning_rate, device_type)
        else:
            hidden = [p for p in self.transformer.h.parameters() if p.dim() == 2] if "muon" in ideas else []
            own = [(self.transformer.wte.weight, EMBED_LR), (self.lm_head.weight, HEAD_LR)] \
                if "untied_head" in ideas else []
            if "value_embeds" in ideas:
                own += [(table.weight, EMBED_LR) for table in self.value_embeds]
            taken = hidden + [p for p, _ in own]
            rest = [p for p in self.parameters() if all(p is not q for q in taken)]
            groups = [{"params": [p for p in rest if p.dim() >= 2], "weight_decay": weight_decay},
                      {"params": [p for p in rest if p.dim() < 2], "weight_decay": 0.0}]  # as GPT's
            # The speedrun's learning rates are its own, whatever --max_lr; no weight decay, as in the speedrun.
            groups += [{"params": [p], "weight_decay": 0.0, "lr_scale": lr / learning_rate} for p, lr in own]
            adamw = torch.optim.AdamW([group for group in groups if group["params"]], lr=learning_rate,
                                      betas=(0.9, 0.95), eps=1e-8, fused=device_type in ("cuda", "cpu"))
            optimizer = adamw
            if hidden:
                muon = torch.optim.Muon(hidden, lr=MUON_LR, weight_decay=0.0, momentum=MUON_MOMENTUM[1],
                                        nesterov=True, adjust_lr_fn="original")
                muon.param_groups[0]["lr_scale"] = MUON_LR / learning_rate
                optimizer = MuonWithAdamW(adamw, muon)
            print0(f"Muon: {len(hidden)} matrices, {sum(p.numel() for p in hidden):,} parameters; AdamW: "
                   f"{len(rest) + len(own)} tensors, {sum(p.numel() for p in rest + [p for p, _ in own]):,} parameters")
        if "wsd" in ideas:
            for group in adamw.param_groups:
                group.setdefault("lr_scale", WSD_LR_SCALE)  # not the groups with a learning rate of their own
        return optimizer

    def export_hf(self, out_dir):
        """transformers' GPT2LMHeadModel is the lecture's architecture: a model with ideas does not fit in it."""
        if self.config.ideas:
            raise cli.InputError(f"--export_hf: this model has the ideas {', '.join(self.config.ideas)}, which "
                                 "transformers' GPT2LMHeadModel cannot hold (it is GPT-2's architecture, with "
                                 "learned positions, LayerNorm, GELU and a tied head); only a model trained with "
                                 "--ideas none exports. Sample from this one with: python modern_gpt.py --init_from "
                                 "CHECKPOINT --max_steps 0")
        super().export_hf(out_dir)


class MuonWithAdamW:
    """AdamW and Muon stepped as one optimizer: what train_gpt2.py's loop, float16's GradScaler and the checkpoints
    use of one (param_groups, AdamW's first; zero_grad, step, state_dict, load_state_dict). Its step also warms up
    Muon's momentum."""
    def __init__(self, adamw, muon):
        self.adamw, self.muon = adamw, muon
        self.defaults = {}  # not one fused kernel: plumbing/nonfinite.py then checks for NaN before step()
        self.steps = 0  # steps taken, for the momentum warmup; in the checkpoint, for an exact resume

    @property
    def param_groups(self):
        return self.adamw.param_groups + self.muon.param_groups

    def zero_grad(self, set_to_none=True):
        self.adamw.zero_grad(set_to_none)
        self.muon.zero_grad(set_to_none)

    def step(self):
        start, end, steps = MUON_MOMENTUM
        warm = min(self.steps / steps, 1.0)
        self.muon.param_groups[0]["momentum"] = (1 - warm) * start + warm * end
        self.adamw.step()
        self.muon.step()
        self.steps += 1

    def state_dict(self):
        return {"adamw": self.adamw.state_dict(), "muon": self.muon.state_dict(), "steps": self.steps}

    def load_state_dict(self, state):
        self.adamw.load_state_dict(state["adamw"])
        self.muon.load_state_dict(state["muon"])
        self.steps = state["steps"]


def main(argv=None):
    """train_gpt2.py's main(), with this file's model, --ideas and learning-rate schedule."""
    # The schedule is picked before main() parses the flags; main() refuses a --ideas that names no idea, and a
    # --resume whose run had other ideas.
    ideas_flag = argparse.ArgumentParser(add_help=False)
    ideas_flag.add_argument("--ideas", default="all")
    text = ideas_flag.parse_known_args(argv)[0].ideas
    lr_schedule = wsd_lr if "wsd" in (IDEAS if text == "all" else text.split(",")) else train_gpt2.get_lr
    return train_gpt2.main(argv, model_class=ModernGPT, lr_schedule=lr_schedule, more_flags=add_ideas_flag)


if __name__ == "__main__":
    main()
