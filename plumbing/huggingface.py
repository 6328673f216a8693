"""
HuggingFace in and out: a model that transformers cannot load, said plainly; a model exported as a GPT2LMHeadModel
directory.
"""
import os

from plumbing.cli import InputError, load_named_by
from plumbing.files import new_folder_problem, write_folder
from plumbing.processes import print0


def hf_load_error(name_or_path, e, openai_models):
    """An InputError for transformers' failure to load a model: no network, no weights in the directory, ..."""
    if name_or_path in openai_models:
        what = "could not get OpenAI's weights from the Hugging Face hub; it needs the network the first time, then " \
               "reads its cache"
    else:
        what = "could not be read as a directory written by GPT2LMHeadModel.save_pretrained"
    reason = str(e).strip().splitlines()[0][:300] if str(e).strip() else ""
    return InputError(f"{name_or_path}: {what} ({type(e).__name__}: {reason})")


def export_hf(load, init_from, out_dir):
    """--export_hf DIR: write the --init_from model (loaded by `load`, GPT.load) as a HuggingFace directory, and nothing
    else."""
    if int(os.environ.get("RANK", "0")) != 0:
        return  # under torchrun, one process writes
    if problem := new_folder_problem("--export_hf", out_dir):
        raise InputError(problem)
    model = load_named_by("--init_from", load, init_from)
    write_folder(out_dir, model.save_pretrained)
    print0(f"wrote {out_dir}/: load it with GPT2LMHeadModel.from_pretrained({out_dir!r})")
