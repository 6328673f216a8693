"""
The --model presets: GPT-2's and GPT-3's sizes, each with the recipe that goes with it, which become the defaults of
train_gpt2.py's flags.
"""


# Shape and the recipe that goes with it. The GPT-3 rows are the GPT-3 paper's table 2.1 (context 2048). The GPT-2
# rows take OpenAI's GPT-2 shapes (context 1024) and the batch and learning rate of the GPT-3 model of nearest size,
# since the GPT-2 paper does not give them per size. The micro-batch B is this project's: see below.
#          name: (n_layer, n_head, n_embd, context, total_batch_size, max_lr, B)
MODEL_PRESETS = {
    "gpt2": (12, 12, 768, 1024, 2**19, 6e-4, 64),  # 124M, 59 GB by the estimate
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
# Each micro-batch B is the largest power of two, up to 64K tokens (the 124M recipe's 64 x 1024), that fits in 90% of
# an 80 GB GPU by the memory estimate in tests/helpers.py (training_memory), which tests/test_presets.py checks. An
# estimate until measured on a GPU; a run halves a micro-batch left out until a step fits (hardware.py).


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
