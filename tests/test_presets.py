"""Model presets: the shapes give the published parameter counts, the recipe follows, and flags override."""
import pytest
import torch
from helpers import GPU_MEMORY, training_memory

import plumbing.presets
from train_gpt2 import GPT, GPTConfig, parse_args


def n_params(args):
    config = GPTConfig(block_size=args.block_size, vocab_size=50257, n_layer=args.n_layer, n_head=args.n_head,
                       n_embd=args.n_embd)
    with torch.device("meta"):  # shapes only: no memory for the 1.5B-parameter models
        return sum(p.numel() for p in GPT(config).parameters())


# OpenAI's GPT-2 checkpoints: (n_layer, n_head, n_embd) from their config.json on the HuggingFace hub
# (openai-community/gpt2, -medium, -large, -xl), and the parameter count of transformers' GPT2LMHeadModel of each
# (tied embeddings counted once).
GPT2 = {"gpt2": ((12, 12, 768), 124_439_808), "gpt2-medium": ((24, 16, 1024), 354_823_168),
        "gpt2-large": ((36, 20, 1280), 774_030_080), "gpt2-xl": ((48, 25, 1600), 1_557_611_200)}

# The GPT-3 paper's table 2.1 as printed: n_params, n_layers, d_model, n_heads, d_head, batch size (tokens),
# learning rate; the context is 2048 tokens for every model.
GPT3 = {"gpt3-small": (125e6, 12, 768, 12, 64, 0.5e6, 6.0e-4), "gpt3-medium": (350e6, 24, 1024, 16, 64, 0.5e6, 3.0e-4),
        "gpt3-large": (760e6, 24, 1536, 16, 96, 0.5e6, 2.5e-4), "gpt3-xl": (1.3e9, 24, 2048, 24, 128, 1e6, 2.0e-4)}


SIZES = ["gpt2", *plumbing.presets.MODEL_PRESETS]  # gpt2: the recipe itself, train_gpt2.py's defaults


def test_the_presets_are_gpt2s_and_gpt3s_sizes():
    assert sorted(SIZES) == sorted([*GPT2, *GPT3])


@pytest.mark.parametrize("name", list(GPT2))
def test_gpt2_presets_are_openais_shapes_with_the_recipe_of_the_gpt3_model_nearest_in_size(name):
    args = parse_args(["--model", name])
    shape, count = GPT2[name]
    assert (args.n_layer, args.n_head, args.n_embd, args.block_size, args.seq_len) == (*shape, 1024, 1024)
    assert n_params(args) == count
    # The GPT-2 paper gives no batch or learning rate per size: those of the GPT-3 model nearest in size.
    nearest = min(GPT3.values(), key=lambda row: abs(row[0] / count - 1))
    assert args.max_lr == nearest[6] and abs(args.total_batch_size / nearest[5] - 1) < 0.05  # 2**19 for "0.5M"


@pytest.mark.parametrize("name", list(GPT3))
def test_gpt3_presets_follow_table_2_1(name):
    args = parse_args(["--model", name])
    count, n_layer, d_model, n_heads, d_head, batch, lr = GPT3[name]
    assert (args.n_layer, args.n_embd, args.n_embd // args.n_head) == (n_layer, d_model, d_head)
    # The table's XL has 24 heads of 128 channels, 3072 in all, which is not its d_model of 2048: the preset keeps
    # the head size and d_model (16 heads). The others agree with themselves, and the preset with them.
    assert args.n_head == (n_heads if n_heads * d_head == d_model else d_model // d_head)
    assert (args.block_size, args.seq_len, args.max_lr) == (2048, 2048, lr)
    assert abs(args.total_batch_size / batch - 1) < 0.05  # 2**19 and 2**20 for the table's "0.5M" and "1M"
    assert abs(n_params(args) / count - 1) < 0.05  # the table rounds its counts; ours use GPT-2's vocabulary


def test_preset_recipe_and_derived_steps():
    xl = parse_args(["--model", "gpt3-xl"])
    assert (xl.block_size, xl.seq_len, xl.batch_size) == (2048, 2048, 8)
    assert (xl.total_batch_size, xl.max_lr, xl.min_lr) == (2**20, 2e-4, pytest.approx(2e-5))
    assert xl.max_steps == int(10e9 // 2**20) and xl.warmup_steps == int(375e6 // 2**20)


def test_flags_override_the_preset():
    args = parse_args(["--model", "gpt2-medium", "--n_layer", "4", "--max_lr", "1e-3", "--seq_len", "256"])
    assert (args.n_layer, args.n_head, args.n_embd) == (4, 16, 1024)
    assert (args.max_lr, args.seq_len, args.block_size) == (1e-3, 256, 1024)


def test_help_shows_the_recipe_numbers(capsys):
    with pytest.raises(SystemExit):
        parse_args(["--help"])
    help_text = " ".join(capsys.readouterr().out.split("options:")[1].split())  # argparse wraps lines: undo it
    for flag, value in [("batch_size", "64"), ("max_steps", "19073"), ("warmup_steps", "715"), ("max_lr", "0.0006"),
                        ("total_batch_size", "524288"), ("n_layer", "12"), ("n_embd", "768")]:
        entry = help_text.split(f"--{flag} {flag.upper()}")[1].split(" --")[0]  # this flag's help
        assert f"(default: {value}" in entry, flag


def test_help_shows_the_chosen_presets_numbers(capsys):
    # The preset reaches --help through the parser's defaults: gpt2-xl's micro-batch, learning rate and run length.
    with pytest.raises(SystemExit):
        parse_args(["--model", "gpt2-xl", "--help"])
    help_text = " ".join(capsys.readouterr().out.split("options:")[1].split())
    xl = parse_args(["--model", "gpt2-xl"])
    for flag in ("batch_size", "max_lr", "n_layer", "total_batch_size", "max_steps", "warmup_steps", "min_lr"):
        entry = help_text.split(f"--{flag} {flag.upper()}")[1].split(" --")[0]
        value = getattr(xl, flag)
        shown = f"{value:g}" if isinstance(value, float) else str(value)
        assert f"(default: {shown}" in entry, (flag, entry)
    assert (xl.batch_size, xl.max_lr, xl.n_layer) == (8, 2e-4, 48)


def test_a_preset_sets_only_what_the_command_line_leaves_out():
    # A value typed out is kept even when it equals the default: gpt2-medium's max_lr is 3e-4, this one asks 6e-4.
    args = parse_args(["--model", "gpt2-medium", "--max_lr", "6e-4", "--batch_size", "64"])
    assert (args.n_layer, args.max_lr, args.min_lr, args.batch_size) == (24, 6e-4, pytest.approx(6e-5), 64)
    # The run length and warmup follow the total batch unless they are set.
    args = parse_args(["--total_batch_size", str(2**20)])
    assert (args.max_steps, args.warmup_steps) == (int(10e9 // 2**20), int(375e6 // 2**20))
    args = parse_args(["--total_batch_size", str(2**20), "--max_steps", "19073"])
    assert args.max_steps == 19073


@pytest.mark.parametrize("name", SIZES)
def test_each_presets_micro_batch_is_the_largest_that_the_memory_estimate_fits_on_an_80gb_gpu(name):
    # 64 rows of 1024 for every preset would run GPT-2 medium and larger out of memory on an 80 GB GPU.
    args = parse_args(["--model", name])
    T = args.seq_len

    def memory(B):
        return training_memory(args.n_layer, args.n_embd, args.block_size, B * T)
    assert memory(args.batch_size) <= 0.9 * GPU_MEMORY
    assert args.batch_size * T == 64 * 1024 or memory(2 * args.batch_size) > 0.9 * GPU_MEMORY
    assert args.total_batch_size % (args.batch_size * T * 8) == 0  # 8 GPUs can split the batch


def test_the_memory_estimate_counts_the_models_own_parameters():
    # training_memory counts parameters from the shape; GPT itself is the reference.
    for name in SIZES:
        args = parse_args(["--model", name])
        with_no_tokens = training_memory(args.n_layer, args.n_embd, args.block_size, 0,
                                         vocab_size=50257)
        assert with_no_tokens == 22 * n_params(args), name
