"""
HuggingFace in and out: a model that transformers cannot load, said plainly; a model exported as a GPT2LMHeadModel
directory.
"""
import os

from plumbing.cli import InputError, load_named_by
from plumbing.files import check_new_folder, write_folder
from plumbing.processes import print0


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


def export_hf(load, init_from, out_dir):
    """--export_hf DIR: write the --init_from model (loaded by `load`, GPT.load) as a HuggingFace directory, and nothing
    else."""
    if int(os.environ.get("RANK", "0")) != 0:
        return  # under torchrun, one process writes
    check_new_folder("--export_hf", out_dir)
    model = load_named_by("--init_from", load, init_from)
    write_folder(out_dir, model.save_pretrained)
    print0(f"wrote {out_dir}/: load it with GPT2LMHeadModel.from_pretrained({out_dir!r})")
