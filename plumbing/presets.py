"""
The --model presets: GPT-2's and GPT-3's sizes other than the lecture's GPT-2 (124M), whose recipe is the default of
train_gpt2.py's flags; each with the recipe that goes with it, which replaces those defaults.
"""


# Shape and the recipe that goes with it. The GPT-3 rows are the GPT-3 paper's table 2.1 (context 2048). The GPT-2
# rows take OpenAI's GPT-2 shapes (context 1024) and the batch and learning rate of the GPT-3 model of nearest size,
# since the GPT-2 paper does not give them per size. The micro-batch B is this project's: see below. "gpt2", the
# lecture's 124M model, has no row: its recipe is train_gpt2.py's defaults, which the rows replace.
#          name: (n_layer, n_head, n_embd, context, total_batch_size, max_lr, B)
MODEL_PRESETS = {
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


def preset_flags(name):
    """The flag values of the --model preset `name`, which parse_args makes the defaults of those flags; none for gpt2,
    whose values are the defaults themselves (and for a name that is not a preset, which parse_args then refuses)."""
    if name not in MODEL_PRESETS:
        return {}
    n_layer, n_head, n_embd, context, total_batch_size, max_lr, B = MODEL_PRESETS[name]
    return dict(n_layer=n_layer, n_head=n_head, n_embd=n_embd, block_size=context, seq_len=context, batch_size=B,
                total_batch_size=total_batch_size, max_lr=max_lr)
