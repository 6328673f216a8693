"""
The --model presets: GPT-2's and GPT-3's sizes, each with the recipe that goes with it, which become the defaults of
train_gpt2.py's flags.
"""


# Shape and the recipe that goes with it. The GPT-3 rows are the GPT-3 paper's table 2.1 (context 2048). The GPT-2
# rows take OpenAI's GPT-2 shapes (context 1024) and the batch and learning rate of the GPT-3 model of nearest size,
# since the GPT-2 paper does not give them per size. The micro-batch B is this project's: see below.
#          name: (n_layer, n_head, n_embd, context, total_batch_size, max_lr, B)
MODEL_PRESETS = {
    "gpt2": (12, 12, 768, 1024, 2**19, 6e-4, 64),  # 124M, 59 GB by the estimate below
    "gpt2-medium": (24, 16, 1024, 1024, 2**19, 3e-4, 32),  # 350M, 55 GB
    "gpt2-large": (36, 20, 1280, 1024, 2**19, 2.5e-4, 16),  # 774M, 52 GB
    "gpt2-xl": (48, 25, 1600, 1024, 2**20, 2e-4, 8),  # 1558M, 57 GB
    "gpt3-small": (12, 12, 768, 2048, 2**19, 6e-4, 32),  # 125M, 59 GB
    "gpt3-medium": (24, 16, 1024, 2048, 2**19, 3e-4, 16),  # 350M, 55 GB
    "gpt3-large": (24, 16, 1536, 2048, 2**19, 2.5e-4, 8),  # 760M, 46 GB
    # The table gives GPT-3 XL 24 heads of 128 channels, which is 3072, not its d_model of 2048; we keep the head
    # size of 128 and d_model 2048, so 16 heads.
    "gpt3-xl": (24, 16, 2048, 2048, 2**20, 2e-4, 8),  # 1.3B, 64 GB
}
# Each micro-batch B is the largest power of two, up to 64K tokens (the 124M recipe's 64 x 1024), whose memory by
# training_memory() fits in 90% of an 80 GB GPU (the rest for the CUDA context and the allocator's fragmentation).
# An estimate until measured on the GPU: if a run still runs out of memory, halve --batch_size.
GPU_MEMORY = 80e9


def training_memory(n_layer, n_embd, context, tokens, vocab_size=50304):
    """Bytes one training process needs, estimated, for `tokens` = B * T tokens per micro-step under bf16 autocast with
    flash attention:
      18 per parameter: float32 weights, gradients and AdamW's two moments (4 + 4 + 8), and autocast's bf16 copy of
        the weights (2). Under DDP the gradients are its all-reduce buckets: with gradient_as_bucket_view=True each
        .grad is a view into them (PyTorch PR #41954 measured the saving as the size of the gradients); without it,
        DDP would keep the buckets beside the gradients, 4 more;
      40 * n_embd per token and layer, the activations kept for backward: Korthikanti et al. 2022 ("Reducing
        Activation Recomputation in Large Transformer Models", section 4.1) count 34 * n_embd in 16-bit, plus a
        5 * heads * T term for the attention matrix that flash attention never stores; the residual stream and the
        LayerNorms here are float32, hence 40;
      10 * vocab per token for the logits: bf16 logits, the float32 log-softmax the loss keeps, and its gradient."""
    n_params = n_layer * (12 * n_embd**2 + 13 * n_embd) + (vocab_size + context) * n_embd + 2 * n_embd
    return 18 * n_params + tokens * (40 * n_layer * n_embd + 10 * vocab_size)


WARMUP_TOKENS = 375e6  # GPT-3 paper, appendix B: linear warmup over the first 375M tokens
TRAIN_TOKENS = 10e9  # one pass over FineWeb-Edu sample-10BT


def preset_flags(name):
    """The flag values of the --model preset `name`, which parse_args makes the defaults of those flags (gpt2's for a
    name that is not a preset, which parse_args then refuses)."""
    n_layer, n_head, n_embd, context, total_batch_size, max_lr, B = MODEL_PRESETS.get(name, MODEL_PRESETS["gpt2"])
    return dict(n_layer=n_layer, n_head=n_head, n_embd=n_embd, block_size=context, seq_len=context, batch_size=B,
                total_batch_size=total_batch_size, max_lr=max_lr)


def derived_flags(total_batch_size, max_lr):
    """The values of the flags that follow others unless they are given: the run length and the warmup are 10B and
    375M tokens at the total batch, and min_lr is 0.1 * max_lr (GPT-3 paper, appendix B)."""
    return dict(max_steps=int(TRAIN_TOKENS // total_batch_size), warmup_steps=int(WARMUP_TOKENS // total_batch_size),
                min_lr=0.1 * max_lr)
