"""
HuggingFace in and out: a model that transformers cannot load, said plainly; train_gpt2.py's GPT written as a
transformers GPT2LMHeadModel directory (GPT.from_pretrained reads one back).
"""
import os

import torch

from plumbing.cli import InputError, print0
from plumbing.files import write_folder


class CannotLoad(InputError):
    """transformers' failure `e` to load the model name_or_path (no network, no weights in the directory, ...), said
    plainly: OpenAI's (one of openai_models) or a save_pretrained directory."""

    def __init__(self, name_or_path, e, openai_models):
        if name_or_path in openai_models:
            what = "could not get OpenAI's weights from the Hugging Face hub; it needs the network the first time, " \
                   "then reads its cache"
        else:
            what = "could not be read as a directory written by GPT2LMHeadModel.save_pretrained"
        reason = str(e).strip().splitlines()[0][:300] if str(e).strip() else ""
        super().__init__(f"{name_or_path}: {what} ({type(e).__name__}: {reason})")


def save_pretrained(model, out_dir, vocab_size):
    """Write `model`, a GPT of train_gpt2.py, as a transformers GPT2LMHeadModel directory (safetensors, tied
    embeddings), the way GPT.from_pretrained reads one, so that it works with transformers' pipelines and
    lm-evaluation-harness. A padded vocabulary is cut back to the tokenizer's vocab_size rows (GPT-2's 50257): the
    others are never real tokens."""
    from transformers import GPT2Config, GPT2LMHeadModel  # imported here: training does not need transformers

    c = model.config
    vocab_size = min(c.vocab_size, vocab_size)
    hf_config = GPT2Config(vocab_size=vocab_size, n_positions=c.block_size, n_embd=c.n_embd, n_layer=c.n_layer,
                           n_head=c.n_head, activation_function="gelu_new", tie_word_embeddings=True)
    hf_model = GPT2LMHeadModel(hf_config)
    sd_hf = hf_model.state_dict()
    with torch.no_grad():
        for name, tensor in model.state_dict().items():
            if name in ("transformer.wte.weight", "lm_head.weight"):
                tensor = tensor[:vocab_size]
            if name.endswith(model.CONV1D_WEIGHTS):
                tensor = tensor.t()  # back to the checkpoint's (in, out) layout
            sd_hf[name].copy_(tensor)
    hf_model.save_pretrained(out_dir, safe_serialization=True)


def export(model, out_dir, vocab_size):
    """--export_hf DIR: save_pretrained into DIR, whole or not at all (parse_args checked that DIR is new or empty).
    Under torchrun one process writes."""
    if int(os.environ.get("RANK", "0")) != 0:
        return
    write_folder(out_dir, lambda folder: save_pretrained(model, folder, vocab_size))
    print0(f"wrote {out_dir}/: load it with GPT2LMHeadModel.from_pretrained({out_dir!r})")
