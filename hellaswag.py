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
is appended to the context and the model is asked how likely the ending's tokens are. For each of the 4 rows
context + " " + ending we take the cross-entropy of the ending tokens only (the context is the same in all rows, so
it carries no information). Two accuracies come out:
    acc       the ending with the lowest *summed* loss wins (favours short endings: fewer tokens, less loss);
    acc_norm  the ending with the lowest *mean* per-token loss wins (corrects for length).
The rows of --batch_size examples (16 by default, so 64 rows) go through the model in one forward pass, right-padded to
the longest row; attention is causal, so the padding after an ending cannot change that ending's loss, and the picks
are those of one example at a time. Batching is for GPUs, which one example leaves mostly idle. On a CPU it is neutral
(BENCHMARKS.md: a 2-core CPU already runs one example at three quarters of its matmul peak); there bf16 is what pays,
2x on a CPU with bf16 instructions: --dtype auto.
The training loop in train_gpt2.py imports evaluate() from here, so there is one copy of this scoring code; this
file in turn takes the model, the device choice and autocast from train_gpt2.py (which imports this module only
inside the function that needs it, so the two never import each other in a circle).

Numbers to expect on the full validation split (10,042 examples), this script:
    gpt2     (124M)   acc 0.2859   acc_norm 0.2955
    gpt2-xl  (1558M)  acc 0.3842   acc_norm 0.4893
For comparison, EleutherAI's lm-evaluation-harness reports acc 0.2892, acc_norm 0.3114 for gpt2: its acc_norm
divides by the ending's length in characters/bytes rather than in tokens, so its numbers differ a little.
Random guessing gives 0.25.
"""
import argparse
import http.client
import json
import os
import tempfile
import urllib.request

import tiktoken
import torch
from torch.nn import functional as F
from tqdm import tqdm

from train_gpt2 import GPT, autocast, pick_autocast_dtype, pick_device

DATA_URL = "https://raw.githubusercontent.com/rowanz/hellaswag/master/data/hellaswag_{split}.jsonl"
SPLITS = ("train", "val", "test")
# Examples scored per forward pass (4 rows each). One example is 4 rows of ~90 tokens: a GPU runs that in a few
# tiny kernels and sits idle between them, so batches of 16 give it work worth launching. (A CPU is already busy with
# one example; there batching neither helps nor hurts: BENCHMARKS.md.) The logits of a batch are 64 x ~100 x V
# floats, about 1.3 GB in float32.
BATCH_SIZE = 16

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
    os.makedirs(data_dir, exist_ok=True)
    # A unique temporary name in the same directory: os.replace is atomic only within one filesystem, and under
    # torchrun every rank may download at once; each then writes its own file and the renames cannot mix them.
    fd, tmp_path = tempfile.mkstemp(prefix=f".hellaswag_{split}.", suffix=".part", dir=data_dir)
    try:
        with os.fdopen(fd, "wb") as f, urllib.request.urlopen(url, timeout=60) as response:
            # urlopen follows redirects; make sure none of them took us off HTTPS.
            if not response.geturl().startswith("https://"):
                raise OSError(f"redirected to a non-HTTPS address: {response.geturl()}")
            expected = response.headers.get("Content-Length")
            expected = int(expected) if expected is not None else None
            written = 0
            with tqdm(total=expected, unit="iB", unit_scale=True, desc=os.path.basename(path)) as bar:
                while chunk := response.read(1 << 20):
                    f.write(chunk)
                    written += len(chunk)
                    bar.update(len(chunk))
            # A connection that closes early can look like a normal end of stream; check the length we were promised.
            if expected is not None and written != expected:
                raise OSError(f"download cut short: got {written:,} of {expected:,} bytes")
        os.chmod(tmp_path, 0o644)  # mkstemp makes the file private to us; a data file should be readable as usual
        os.replace(tmp_path, path)
    except (OSError, http.client.HTTPException) as e:  # URLError, timeouts and refused connections are OSErrors
        raise SystemExit(f"could not download HellaSwag {split} from {url}: {e}\n"
                         f"If this machine is offline, download that file elsewhere and put it at {path}") from e
    finally:
        # After a successful rename the temporary name is gone; after any failure (Ctrl-C included) drop it, so
        # no partial file is ever left behind.
        if os.path.exists(tmp_path):
            os.remove(tmp_path)
    return path


def _check_example(example, path, lineno):
    """Raise a ValueError naming the file and line if the example lacks what render_example needs."""
    where = f"{path}, line {lineno}"
    if not isinstance(example, dict):
        raise ValueError(f"{where}: expected a JSON object, got {type(example).__name__}")
    if not isinstance(example.get("ctx"), str) or not example["ctx"]:
        # An empty context would leave the first ending token with nothing before it to predict it from.
        raise ValueError(f"{where}: 'ctx' must be a non-empty string")
    endings = example.get("endings")
    if not isinstance(endings, list) or len(endings) != 4 or not all(isinstance(e, str) for e in endings):
        raise ValueError(f"{where}: 'endings' must be a list of 4 strings")
    if "label" not in example:
        raise ValueError(f"{where}: no 'label' (the test split's labels are not public: evaluate on 'val')")
    label = example["label"]
    # bool is a subclass of int in Python; True is not a valid answer index.
    if not isinstance(label, int) or isinstance(label, bool) or not 0 <= label < 4:
        raise ValueError(f"{where}: 'label' must be an integer in 0..3, got {label!r}")


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
                raise ValueError(f"{path}, line {lineno}: not valid JSON ({e.msg}); if the file is damaged, "
                                 f"delete it and it will be downloaded again") from e
            _check_example(example, path, lineno)
            yield example


def render_example(example):
    """
    Turn one example into model input. Returns (tokens, mask, label):
      tokens  LongTensor (4, L): row i is the context's tokens followed by the tokens of " " + ending i,
              right-padded with 0 up to the longest row;
      mask    LongTensor (4, L): 1 over the ending tokens, 0 over the context and the padding;
      label   int, the index of the right ending.
    """
    enc = tiktoken.get_encoding("gpt2")  # tiktoken builds it once per process and caches it
    # encode_ordinary: plain text, so a literal "<|endoftext|>" in the data could never become the special token.
    ctx_tokens = enc.encode_ordinary(example["ctx"])
    rows, masks = [], []
    for ending in example["endings"]:
        # The context has no trailing space; GPT-2's BPE glues a word's leading space to the word (" the" is one
        # token), so the space goes in front of the ending. Encoding context and ending separately keeps the
        # boundary exact: no token straddles the two, and the context tokens are identical in all 4 rows.
        end_tokens = enc.encode_ordinary(" " + ending)
        rows.append(ctx_tokens + end_tokens)
        masks.append([0] * len(ctx_tokens) + [1] * len(end_tokens))
    L = max(len(row) for row in rows)
    tokens = torch.zeros((4, L), dtype=torch.long)
    mask = torch.zeros((4, L), dtype=torch.long)
    for i, (row, row_mask) in enumerate(zip(rows, masks)):
        tokens[i, :len(row)] = torch.tensor(row)
        mask[i, :len(row_mask)] = torch.tensor(row_mask)
    return tokens, mask, example["label"]


# ----------------------------------------------------------------------------------------------------------------------
# Scoring


def collate(rendered):
    """
    Stack rendered examples [(tokens, mask, label), ...] into one batch: tokens, mask LongTensors (4N, L), rows
    4i..4i+3 being example i's endings, right-padded with 0 up to the longest row of the batch; and the N labels.
    """
    L = max(tokens.size(1) for tokens, _, _ in rendered)
    tokens = torch.cat([F.pad(tokens, (0, L - tokens.size(1))) for tokens, _, _ in rendered])  # (4N, L)
    mask = torch.cat([F.pad(mask, (0, L - mask.size(1))) for _, mask, _ in rendered])  # (4N, L)
    return tokens, mask, [label for _, _, label in rendered]


def score(logits, tokens, mask):
    """
    Pick an ending for each of N examples from the model's logits (4N, T, V) for the rows tokens, mask (4N, T),
    rows 4i..4i+3 being example i's 4 endings (as render_example or collate lays them out).
    Returns (pred, pred_norm), each a list of N ints: per example, the row with the lowest summed ending loss (acc)
    and the row with the lowest mean per-token ending loss (acc_norm).
    """
    # The logits at position t predict the token at t+1: drop the last prediction and the first target.
    shift_logits = logits[:, :-1, :]  # (4N, T-1, V)
    shift_tokens = tokens[:, 1:]  # (4N, T-1)
    shift_mask = mask[:, 1:]  # (4N, T-1), still 1 exactly where the target is an ending token
    # Take the loss at the ending tokens only. Most positions are context or padding, whose loss the mask would
    # throw away; computing it anyway, over all V logits, took 3x as long on the CPU of BENCHMARKS.md (1.1 s against
    # 0.35 s for a batch of 16 examples in bf16, whose forward pass takes 5 s).
    rows, cols = shift_mask.nonzero(as_tuple=True)  # (number of ending tokens,) each
    # In float32 even under bf16 autocast: near-tied endings differ in the third decimal of the loss.
    token_losses = F.cross_entropy(shift_logits[rows, cols].float(), shift_tokens[rows, cols], reduction="none")
    # Padding (token 0) sits after every ending and attention is causal, so it cannot change the loss of an ending
    # token, wherever in the batch the row is and however far it is padded.
    losses = torch.zeros(shift_mask.shape, dtype=torch.float32, device=logits.device)  # (4N, T-1)
    losses[rows, cols] = token_losses
    sum_loss = losses.sum(dim=1).view(-1, 4)  # (N, 4)
    avg_loss = sum_loss / shift_mask.sum(dim=1).view(-1, 4)  # (N, 4)
    # argmin picks the first of tied rows, like the brute-force reference in the tests.
    return sum_loss.argmin(dim=1).tolist(), avg_loss.argmin(dim=1).tolist()


def predictions(model, device="cpu", split="val", data_dir="hellaswag", rank=0, world_size=1, limit=None,
                autocast_dtype=None, batch_size=BATCH_SIZE):
    """
    Yield (pred, pred_norm, label) for each of this rank's examples in file order, scoring batch_size examples
    (4 * batch_size rows) per forward pass. The arguments are evaluate's.
    """
    if not 0 <= rank < world_size:
        raise ValueError(f"rank {rank} is not in 0..{world_size - 1}")
    if limit is not None and limit < 0:
        raise ValueError(f"limit must be >= 0, got {limit}")
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1 example, got {batch_size}")
    device_type = torch.device(device).type  # "cuda:1" -> "cuda": autocast wants the type, not the device
    # Every row of a batch is as long as its longest one, and padding costs as much to run as real tokens. Batches
    # of examples in file order are a fifth padding, which made batching 6-10% slower than one example at a time on
    # a CPU (BENCHMARKS.md). So examples are taken a window of 8 batches at a time and batched by length, shortest
    # first; the predictions go back into file order.
    window_size = 8 * batch_size

    def run(window):
        by_length = sorted(range(len(window)), key=lambda j: window[j][0].size(1))
        results = [None] * len(window)
        for start in range(0, len(window), batch_size):
            batch = by_length[start:start + batch_size]  # indices into window
            tokens, mask, labels = collate([window[j] for j in batch])
            tokens, mask = tokens.to(device), mask.to(device)
            with torch.no_grad(), autocast(device_type, autocast_dtype):
                logits = model(tokens)
            for j, pred, pred_norm, label in zip(batch, *score(logits, tokens, mask), labels):
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

    model: a callable taking a (B, L) LongTensor on `device` and returning logits (B, L, V); wrap HF models as
        `lambda x: hf(x).logits` and ours as `lambda x: m(x)[0]`, and put modules in eval mode first.
    rank, world_size: example i goes to rank i % world_size; sum the counts over ranks for the total.
    limit: look at only the first `limit` examples of the split (counted before dealing them out to ranks).
    autocast_dtype: e.g. torch.bfloat16 to run the model under torch.autocast; None runs it as it is.
    print_every: print running accuracies every this many examples of this rank (0: never).
    batch_size: examples per forward pass (B = 4 * batch_size rows). The picks do not depend on it, up to float
        rounding. Larger keeps a GPU busier (a CPU is busy already: BENCHMARKS.md); the logits take
        4 * batch_size * L * V floats.
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
    Return a callable tokens (B, T) -> logits (B, T, V) for an OpenAI name (gpt2, gpt2-medium, gpt2-large,
    gpt2-xl) or a directory written by save_pretrained, loaded with transformers' GPT2LMHeadModel, or for a
    model_STEP.pt checkpoint written by train_gpt2.py.
    """
    if os.path.isfile(name_or_path) and name_or_path.endswith(".pt"):
        model, _ = GPT.from_checkpoint(name_or_path)
        model.to(device).eval()
        return lambda x: model(x)[0]  # our GPT returns (logits, loss)
    if name_or_path in GPT.OPENAI_MODELS or os.path.isdir(name_or_path):
        from transformers import GPT2LMHeadModel  # imported here: it is slow to import and only this path needs it

        hf_model = GPT2LMHeadModel.from_pretrained(name_or_path)
        hf_model.to(device).eval()  # eval(): HF models come with dropout on
        return lambda x: hf_model(x).logits
    raise SystemExit(f"unknown model {name_or_path!r}: pass one of {', '.join(GPT.OPENAI_MODELS)}, a directory "
                     "written by GPT2LMHeadModel.save_pretrained, or a model_STEP.pt checkpoint of train_gpt2.py")


# ----------------------------------------------------------------------------------------------------------------------
# Main


def main(argv=None):
    parser = argparse.ArgumentParser(description="Evaluate a GPT-2 style model on HellaSwag (completion style).")
    parser.add_argument("-m", "--model", default="gpt2",
                        help="gpt2, gpt2-medium, gpt2-large, gpt2-xl, a save_pretrained directory, or a model_STEP.pt "
                             "checkpoint written by train_gpt2.py (default: gpt2)")
    parser.add_argument("-d", "--device", default="auto",
                        help="auto (cuda, then mps, then cpu), cpu, cuda, cuda:N or mps")
    parser.add_argument("--split", default="val", choices=("train", "val"),
                        help="which split to score; the test split's labels are not public (default: val)")
    parser.add_argument("--data_dir", default="hellaswag",
                        help="directory holding hellaswag_{split}.jsonl; downloaded there if missing "
                             "(default: hellaswag)")
    parser.add_argument("--limit", type=int, default=None,
                        help="score only the first N examples, for a quick check (default: all)")
    parser.add_argument("--batch_size", type=int, default=BATCH_SIZE,
                        help=f"examples per forward pass, 4 rows each; lower it if the device runs out of memory "
                             f"(default: {BATCH_SIZE})")
    parser.add_argument("--dtype", default="float32", choices=("auto", "float32", "bfloat16"),
                        help="bfloat16 runs the model under autocast: faster on GPUs and on CPUs with bf16 "
                             "instructions, but a near-tie may go the other way, so the numbers above are float32's; "
                             "auto picks bfloat16 where it is fast, as train_gpt2.py does (default: float32)")
    args = parser.parse_args(argv)
    device, device_type = pick_device(args.device)
    autocast_dtype = pick_autocast_dtype(args.dtype, device_type)
    if args.limit is not None and args.limit <= 0:
        raise SystemExit(f"--limit must be a positive number of examples, got {args.limit}")
    if args.batch_size <= 0:
        raise SystemExit(f"--batch_size must be a positive number of examples, got {args.batch_size}")

    print(f"HellaSwag {args.split}: {args.model} on {device} ({'float32' if autocast_dtype is None else 'bfloat16'})",
          flush=True)
    download(args.split, args.data_dir)  # before loading the model: offline, fail in a second, not after gpt2-xl
    model = load_model(args.model, device)
    num_correct, num_correct_norm, num_total = evaluate(
        model, device=device, split=args.split, data_dir=args.data_dir, limit=args.limit,
        autocast_dtype=autocast_dtype, print_every=1000, batch_size=args.batch_size)
    if num_total == 0:
        raise SystemExit(f"no examples found in {os.path.join(args.data_dir, f'hellaswag_{args.split}.jsonl')}")
    print(f"{num_total} acc: {num_correct / num_total:.4f} acc_norm: {num_correct_norm / num_total:.4f}")


if __name__ == "__main__":
    main()
