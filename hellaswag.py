"""
HellaSwag evaluation for GPT-2 style language models.

HellaSwag (Zellers et al. 2019, "HellaSwag: Can a Machine Really Finish Your Sentence?") is a sentence-completion
benchmark: each example is a short context (from ActivityNet captions or WikiHow) and 4 candidate endings, of which
exactly one is right; the wrong ones were machine-generated and filtered to fool models while staying obvious to
people. The validation split has 10,042 examples; the test split's labels are not public.

The data comes from the authors' GitHub repository, downloaded on first use into --data_dir:
    https://raw.githubusercontent.com/rowanz/hellaswag/master/data/hellaswag_{train,val,test}.jsonl

Run:
    python hellaswag.py -m gpt2 -d cuda                 # OpenAI's GPT-2 124M (also gpt2-medium, -large, -xl)
    python hellaswag.py -m path/to/hf_dir -d cuda       # a directory written by GPT2LMHeadModel.save_pretrained
    python hellaswag.py -m log/model_19073.pt -d cuda   # a checkpoint written by train_gpt2.py

How it scores ("completion style"): a small base model cannot answer "which of A, B, C, D?", so instead each ending
is appended to the context and the model is asked how likely the ending's tokens are. For each of the 4 sequences
context + " " + ending we take the cross-entropy of the ending tokens only (the context is the same in all four, so
it carries no information). Two accuracies come out:
    acc       the ending with the lowest *summed* loss wins (favours short endings: fewer tokens, less loss);
    acc_norm  the ending with the lowest *mean* per-token loss wins (corrects for length).
The four sequences share their context, so an example goes into the model as one row, the context once and the 4
endings after it, with an attention mask that lets each ending see the context and itself only, as if it were
alone (render_example, attention_mask). The output head, a third of the forward pass at 124M, runs only at the
positions whose prediction is scored. Each example then costs about a third of the FLOPs of 4 separate rows, and
the picks are the same, up to float rounding. --batch_size examples (16 by default) share a forward pass.
The training loop in train_gpt2.py imports evaluate() from here, so there is one copy of this scoring code. The
scoring takes any model with GPT's hidden_states() and lm_head; only the command line imports train_gpt2, to load
one, so importing this file never imports the training script.

Numbers to expect on the full validation split (10,042 examples) with this scoring, as Karpathy's build-nanogpt
reports them for its hellaswag.py, in float32 (--dtype float32; not rerun here: the sessions that wrote this
had no network):
    gpt2     (124M)   acc 0.2859   acc_norm 0.2955
    gpt2-xl  (1558M)  acc 0.3842   acc_norm 0.4893
For comparison, EleutherAI's lm-evaluation-harness reports acc 0.2892, acc_norm 0.3114 for gpt2: its acc_norm
divides by the ending's length in characters/bytes rather than in tokens, so its numbers differ a little.
Random guessing gives 0.25.
"""
import argparse
import json
import os

import tiktoken
import torch
from torch.nn import functional as F

from plumbing import files
from plumbing.cli import InputError, RunError, command_line, device_name, named_by, whole_number
from plumbing.files import check_folder
from plumbing.hardware import autocast, full_float32, pick_autocast_dtype, pick_device

DATA_URL = "https://raw.githubusercontent.com/rowanz/hellaswag/master/data/hellaswag_{split}.jsonl"
SPLITS = ("train", "val", "test")
# Examples scored per forward pass, one row of ~140 tokens each (render_example). A GPU runs one such row in a few
# tiny kernels and sits idle between them, so batches of 16 give it work worth launching; even a 2-core CPU gains
# 16% (float32) to 40% (bf16) from them (BENCHMARKS.md). Logits are computed only at the ending tokens: about
# 16 x 80 x V floats, 260 MB in float32.
BATCH_SIZE = 16
CONTEXT, PADDING = -1, -2  # segment ids of context and padding tokens in a rendered row; ending i's tokens have i

# ----------------------------------------------------------------------------------------------------------------------
# Data


def download(split, data_dir="hellaswag"):
    """Download hellaswag_{split}.jsonl into data_dir unless it is already there; return its path."""
    if split not in SPLITS:
        raise ValueError(f"unknown HellaSwag split {split!r}: use one of {', '.join(SPLITS)}")
    path = os.path.join(data_dir, f"hellaswag_{split}.jsonl")
    if os.path.exists(path):
        return path
    url = DATA_URL.format(split=split)
    try:
        files.download(url, path)
    except OSError as e:  # URLError, timeouts, refused connections, a download cut short
        raise RunError(f"could not download HellaSwag {split} from {url}: {e}\n"
                       f"If this machine is offline, download that file elsewhere and put it at {path}") from e
    return path


def _check_example(example, path, lineno):
    """Raise an InputError (a ValueError) naming the file and line if the example lacks what render_example needs."""
    where = f"{path}, line {lineno}"
    if not isinstance(example, dict):
        raise InputError(f"{where}: expected a JSON object, got {type(example).__name__}")
    if not isinstance(example.get("ctx"), str) or not example["ctx"]:
        # An empty context would leave the first ending token with nothing before it to predict it from.
        raise InputError(f"{where}: 'ctx' must be a non-empty string")
    endings = example.get("endings")
    if not isinstance(endings, list) or len(endings) != 4 or not all(isinstance(e, str) for e in endings):
        raise InputError(f"{where}: 'endings' must be a list of 4 strings")
    if "label" not in example:
        raise InputError(f"{where}: no 'label' (the test split's labels are not public: evaluate on 'val')")
    label = example["label"]
    # bool is a subclass of int in Python; True is not a valid answer index.
    if not isinstance(label, int) or isinstance(label, bool) or not 0 <= label < 4:
        raise InputError(f"{where}: 'label' must be an integer in 0..3, got {label!r}")


def iterate_examples(split, data_dir="hellaswag"):
    """Yield the examples of a split (dicts in the HellaSwag schema) in file order, downloading it if needed."""
    path = download(split, data_dir)
    with open(path, encoding="utf-8") as f:
        for lineno, line in enumerate(f, start=1):
            if not line.strip():
                continue
            try:
                example = json.loads(line)
            except json.JSONDecodeError as e:
                raise InputError(f"{path}, line {lineno}: not valid JSON ({e.msg}); if the file is damaged, "
                                 f"delete it and it will be downloaded again") from e
            _check_example(example, path, lineno)
            yield example


def render_example(example):
    """
    Turn one example into one packed row of model input. Returns (tokens, pos, segment, label), each tensor (L,):
      tokens   the context's tokens, then the tokens of " " + ending 0, " " + ending 1, ... (LongTensor);
      pos      each token's position in its own sequence, context + ending i: 0..C-1 over the C context tokens,
               and every ending again from C, as if it alone followed the context (LongTensor);
      segment  -1 over the context, i over ending i (LongTensor);
      label    int, the index of the right ending.
    The lecture puts context + ending i in row i, which runs the context 4 times; in one row, with the mask of
    attention_mask(), it runs once. An example is 40% as many tokens (about 140 against 4 x 86).
    """
    enc = tiktoken.get_encoding("gpt2")  # tiktoken builds it once per process and caches it
    # encode_ordinary: plain text, so a literal "<|endoftext|>" in the data could never become the special token.
    ctx_tokens = enc.encode_ordinary(example["ctx"])
    tokens, pos, segment = list(ctx_tokens), list(range(len(ctx_tokens))), [CONTEXT] * len(ctx_tokens)
    for i, ending in enumerate(example["endings"]):
        # The context has no trailing space; GPT-2's BPE glues a word's leading space to the word (" the" is one
        # token), so the space goes in front of the ending. Encoding context and ending separately keeps the
        # boundary exact: no token straddles the two, and every ending follows the same context tokens.
        end_tokens = enc.encode_ordinary(" " + ending)
        tokens += end_tokens
        pos += range(len(ctx_tokens), len(ctx_tokens) + len(end_tokens))
        segment += [i] * len(end_tokens)
    tokens, pos, segment = torch.tensor([tokens, pos, segment], dtype=torch.long)  # the 3 rows of a (3, L) tensor
    return tokens, pos, segment, example["label"]


# ----------------------------------------------------------------------------------------------------------------------
# Scoring


def collate(rendered):
    """
    Stack rendered examples [(tokens, pos, segment, label), ...] into a batch: tokens, pos, segment LongTensors
    (N, L), row i being example i, right-padded up to the longest row with token 0, position 0 and segment PADDING;
    and the N labels.
    """
    L = max(tokens.size(0) for tokens, *_ in rendered)

    def stack(k, fill):  # field k of every example, right-padded with fill to length L: (N, L)
        return torch.stack([F.pad(example[k], (0, L - example[k].size(0)), value=fill) for example in rendered])

    return stack(0, 0), stack(1, 0), stack(2, PADDING), [label for *_, label in rendered]


def attention_mask(segment):
    """
    The bool mask (N, 1, L, L) for rows laid out by render_example and collate, True where a query token (dim 2) may
    attend to a key token (dim 3): earlier or same tokens that are context or of the query's own segment. So the
    context attends causally to itself, each ending to the context and causally to itself, as it would in a row of
    its own. Padding attends to the context and to padding, which keeps its softmax finite (a row with nothing to
    attend to is NaN, and NaN times a weight of 0 is still NaN); no real token attends to padding.
    """
    L = segment.size(1)
    causal = torch.ones(L, L, dtype=torch.bool, device=segment.device).tril()  # (L, L)
    query, key = segment[:, :, None], segment[:, None, :]  # (N, L, 1), (N, 1, L)
    return (causal & ((key == CONTEXT) | (key == query)))[:, None]  # (N, 1, L, L), broadcast over the heads


def score(model, tokens, pos, segment):
    """
    Run `model` (a GPT) on a batch laid out by collate and pick an ending for each of its N examples.
    Returns (pred, pred_norm), each a list of N ints: per example, the ending with the lowest summed loss over its
    tokens (acc) and the one with the lowest mean per-token loss (acc_norm).
    """
    hidden = model.hidden_states(tokens, pos=pos, attn_mask=attention_mask(segment))  # (N, L, C)
    rows, cols = (segment >= 0).nonzero(as_tuple=True)  # each ending token, (number of ending tokens,) each
    ending = segment[rows, cols]
    # An ending token is predicted from the token before it in its own sequence: the previous token of the row if
    # that is in the same ending, else (for the first token of an ending) the context's last token.
    context_len = (segment == CONTEXT).sum(dim=1)  # (N,)
    source = torch.where(segment[rows, cols - 1] == ending, cols - 1, context_len[rows] - 1)
    # The output head only where a prediction is scored (about 80 of an example's 140 positions), and in full float32
    # even under bf16 autocast or TF32 (which the training loop turns on): bf16 logits keep 3 significant digits, TF32
    # products about as few, and near-tied endings differ in the third decimal of the loss.
    with torch.autocast(device_type=tokens.device.type, enabled=False), full_float32():
        logits = model.lm_head(hidden[rows, source].float())  # (number of ending tokens, V)
    token_losses = F.cross_entropy(logits, tokens[rows, cols], reduction="none")
    sum_loss = torch.zeros(tokens.size(0), 4, device=tokens.device).index_put_((rows, ending), token_losses,
                                                                               accumulate=True)  # (N, 4)
    num_tokens = torch.zeros_like(sum_loss).index_put_((rows, ending), torch.ones_like(token_losses), accumulate=True)
    # argmin picks the first of tied endings, like the brute-force reference in the tests.
    return sum_loss.argmin(dim=1).tolist(), (sum_loss / num_tokens).argmin(dim=1).tolist()


def predictions(model, device="cpu", split="val", data_dir="hellaswag", rank=0, world_size=1, limit=None,
                autocast_dtype=None, batch_size=BATCH_SIZE):
    """
    Yield (pred, pred_norm, label) for each of this rank's examples in file order, scoring batch_size examples
    (one row each) per forward pass. The arguments are evaluate's.
    """
    if not 0 <= rank < world_size:
        raise ValueError(f"rank {rank} is not in 0..{world_size - 1}")
    if limit is not None and limit < 0:
        raise ValueError(f"limit must be >= 0, got {limit}")
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1 example, got {batch_size}")
    device_type = torch.device(device).type  # "cuda:1" -> "cuda": autocast wants the type, not the device
    # Every row of a batch is as long as its longest one, and padding costs as much to run as real tokens. In file
    # order, padding would be about a fifth of the work (BENCHMARKS.md); so examples are taken a window of 8
    # batches at a time and batched by length, shortest first. The predictions go back into file order.
    window_size = 8 * batch_size

    def run(window):
        by_length = sorted(range(len(window)), key=lambda j: window[j][0].size(0))
        results = [None] * len(window)
        for start in range(0, len(window), batch_size):
            batch = by_length[start:start + batch_size]  # indices into window
            tokens, pos, segment, labels = collate([window[j] for j in batch])
            tokens, pos, segment = tokens.to(device), pos.to(device), segment.to(device)
            with torch.no_grad(), autocast(device_type, autocast_dtype):
                picks = score(model, tokens, pos, segment)
            for j, pred, pred_norm, label in zip(batch, *picks, labels):
                results[j] = (pred, pred_norm, label)
        return results

    window = []
    for i, example in enumerate(iterate_examples(split, data_dir)):
        if limit is not None and i >= limit:
            break
        if i % world_size != rank:
            continue
        window.append(render_example(example))
        if len(window) == window_size:
            yield from run(window)
            window = []
    if window:  # the last, partial window
        yield from run(window)


def evaluate(model, device="cpu", split="val", data_dir="hellaswag", rank=0, world_size=1, limit=None,
             autocast_dtype=None, print_every=0, batch_size=BATCH_SIZE):
    """
    Score `model` on a HellaSwag split; return (num_correct, num_correct_norm, num_total) for this rank's share.

    model: a GPT of train_gpt2.py on `device`, in eval mode (load_model below gives one for an OpenAI name, a
        save_pretrained directory or a checkpoint). Scoring uses its hidden_states() and lm_head.
    rank, world_size: example i goes to rank i % world_size; sum the counts over ranks for the total.
    limit: look at only the first `limit` examples of the split (counted before dealing them out to ranks).
    autocast_dtype: e.g. torch.bfloat16 to run the model under torch.autocast; None runs it as it is.
    print_every: print running accuracies every this many examples of this rank (0: never).
    batch_size: examples per forward pass, one row of about 140 tokens each. The picks do not depend on it, up to
        float rounding. Larger keeps a GPU busier; a CPU gains little past a few (BENCHMARKS.md).
    """
    num_correct = num_correct_norm = num_total = 0
    for pred, pred_norm, label in predictions(model, device, split, data_dir, rank, world_size, limit,
                                              autocast_dtype, batch_size):
        num_total += 1
        num_correct += int(pred == label)
        num_correct_norm += int(pred_norm == label)
        if print_every and num_total % print_every == 0:
            print(f"  {num_total} examples: acc {num_correct / num_total:.4f} "
                  f"acc_norm {num_correct_norm / num_total:.4f}", flush=True)
    return num_correct, num_correct_norm, num_total


# ----------------------------------------------------------------------------------------------------------------------
# Models


def load_model(name_or_path, device):
    """
    Our GPT, in eval mode on `device`, for an OpenAI name (gpt2, gpt2-medium, gpt2-large, gpt2-xl), a directory
    written by save_pretrained (loaded with transformers, then copied into our module tree) or a model_STEP.pt
    checkpoint written by train_gpt2.py.
    """
    # Imported here, not at the top: the training loop imports this file, and this file alone needs no model.
    from train_gpt2 import GPT

    is_checkpoint = os.path.isfile(name_or_path) and name_or_path.endswith(".pt")
    if not (is_checkpoint or name_or_path in GPT.OPENAI_MODELS or os.path.isdir(name_or_path)):
        raise InputError(f"unknown model {name_or_path!r}: pass one of {', '.join(GPT.OPENAI_MODELS)}, a directory "
                         "written by GPT2LMHeadModel.save_pretrained, or a model_STEP.pt checkpoint of train_gpt2.py")
    return GPT.load(name_or_path).to(device).eval()


# ----------------------------------------------------------------------------------------------------------------------
# Main


@command_line
def main(argv=None):
    parser = argparse.ArgumentParser(description="Evaluate a GPT-2 style model on HellaSwag (completion style).")
    parser.add_argument("-m", "--model", default="gpt2",
                        help="gpt2, gpt2-medium, gpt2-large, gpt2-xl, a save_pretrained directory, or a model_STEP.pt "
                             "checkpoint written by train_gpt2.py (default: gpt2)")
    parser.add_argument("-d", "--device", default="auto", type=device_name,
                        help="auto (cuda, then mps, then cpu), cpu, cuda, cuda:N or mps")
    parser.add_argument("--split", default="val", choices=("train", "val"),
                        help="which split to score; the test split's labels are not public (default: val)")
    parser.add_argument("--data_dir", default="hellaswag",
                        help="directory holding hellaswag_{split}.jsonl; downloaded there if missing "
                             "(default: hellaswag)")
    parser.add_argument("--limit", type=whole_number(1), default=None,
                        help="score only the first N examples, for a quick check (default: all)")
    parser.add_argument("--batch_size", type=whole_number(1), default=BATCH_SIZE,
                        help=f"examples per forward pass, 4 rows each; lower it if the device runs out of memory "
                             f"(default: {BATCH_SIZE})")
    parser.add_argument("--dtype", default="auto", choices=("auto", "float32", "bfloat16", "float16"),
                        help="auto runs the model under autocast where that is fast, as train_gpt2.py does: bfloat16 "
                             "on GPUs and CPUs that have it, float16 on older GPUs (T4, V100), float32 elsewhere. A "
                             "near-tie may go the other way in 16 bits: the numbers above are float32's "
                             "(default: auto)")
    args = parser.parse_args(argv)
    device, device_type = pick_device(args.device)
    autocast_dtype = pick_autocast_dtype(args.dtype, device_type)

    dtype = str(autocast_dtype or "float32").removeprefix("torch.")
    print(f"HellaSwag {args.split}: {args.model} on {device} ({dtype})", flush=True)
    path = os.path.join(args.data_dir, f"hellaswag_{args.split}.jsonl")
    check_folder("--data_dir", args.data_dir, write=not os.path.exists(path))
    download(args.split, args.data_dir)  # before loading the model: offline, fail in a second, not after gpt2-xl
    with named_by("--model"):
        model = load_model(args.model, device)
    num_correct, num_correct_norm, num_total = evaluate(
        model, device=device, split=args.split, data_dir=args.data_dir, limit=args.limit,
        autocast_dtype=autocast_dtype, print_every=1000, batch_size=args.batch_size)
    if num_total == 0:
        raise InputError(f"no examples found in {os.path.join(args.data_dir, f'hellaswag_{args.split}.jsonl')}")
    print(f"{num_total} acc: {num_correct / num_total:.4f} acc_norm: {num_correct_norm / num_total:.4f}")


if __name__ == "__main__":
    main()
