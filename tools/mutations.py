"""
Change each number of the recipe, one at a time, in a copy of this checkout, and check that some test fails: a number
that can change with every test passing is not pinned by any. Not a test itself (a full sweep takes about 15 minutes
on 2 cores); run it after adding a number to the recipe or changing a test that pins one.

    python tools/mutations.py              # every mutation below; prints which test caught each
    python tools/mutations.py clip preset  # only those whose label contains one of the words

Each mutation runs the tests that pin recipe numbers, in an order that fails fast, and stops at the first failure.
"""
import os
import shutil
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
T, P = "train_gpt2.py", "plumbing/presets.py"


def default(flag, value, other):
    """The mutation of a whole-number flag's default."""
    text = f'"{flag}", type=positive, default='
    return f"{flag} {value}", T, f"{text}{value}", f"{text}{other}"


# (label, file, text, changed into); each text must occur exactly once in its file.
MUTATIONS = [
    ("GPTConfig.block_size 1024", T, "block_size: int = 1024", "block_size: int = 512"),
    ("GPTConfig.vocab_size 50257", T, "vocab_size: int = 50257", "vocab_size: int = 50304"),
    ("GPTConfig.n_layer 12", T, "n_layer: int = 12", "n_layer: int = 6"),
    ("GPTConfig.n_head 12", T, "n_head: int = 12", "n_head: int = 6"),
    ("GPTConfig.n_embd 768", T, "n_embd: int = 768", "n_embd: int = 512"),
    ("GPT2_VOCAB_SIZE 50257", T, "GPT2_VOCAB_SIZE = 50257", "GPT2_VOCAB_SIZE = 50256"),
    ("EOT_TOKEN 50256", T, "EOT_TOKEN = 50256", "EOT_TOKEN = 50255"),
    ("MLP width 4 * n_embd", T, "self.c_fc = nn.Linear(config.n_embd, 4 * config.n_embd)",
     "self.c_fc = nn.Linear(config.n_embd, 2 * config.n_embd)"),
    ("GELU, tanh form", T, 'approximate="tanh"', 'approximate="none"'),
    ("causal attention", T, "is_causal=q.size(2) == k.size(2)", "is_causal=False"),
    ("init std 0.02 (linear)", T, "std = 0.02\n", "std = 0.03\n"),
    ("init std 0.02 (embeddings)", T, "mean=0.0, std=0.02)", "mean=0.0, std=0.01)"),
    ("residual init (2 * n_layer) ** -0.5", T, "(2 * self.config.n_layer) ** -0.5", "self.config.n_layer ** -0.5"),
    ("FLOPs 6 per parameter", T, "return 6 * n_params", "return 2 * n_params"),
    ("FLOPs 12 * n_layer * n_embd * T", T, "+ 12 * self.config.n_layer", "+ 6 * self.config.n_layer"),
    ("generate top_k 50", T, "max_new_tokens, top_k=50, generator", "max_new_tokens, top_k=40, generator"),
    ("generate temperature 1.0", T, "generator=None, temperature=1.0", "generator=None, temperature=0.8"),
    ("sample top_k 50", T, "seed, top_k=50, temperature=1.0", "seed, top_k=40, temperature=1.0"),
    ("sample temperature 1.0", T, "seed, top_k=50, temperature=1.0", "seed, top_k=50, temperature=0.8"),
    ("padded vocabulary never sampled", T, "logits[:, -1, :GPT2_VOCAB_SIZE]", "logits[:, -1, :]"),
    ("weight decay on dim >= 2", T, "if p.dim() >= 2]", "if p.dim() >= 1]"),
    ("no decay on dim < 2", T, "if p.dim() < 2]", "if p.dim() < 1]"),
    ("no-decay group's weight decay 0.0", T, '"weight_decay": 0.0}', '"weight_decay": 0.1}'),
    ("AdamW beta1 0.9", T, "betas=(0.9, 0.95)", "betas=(0.8, 0.95)"),
    ("AdamW beta2 0.95", T, "betas=(0.9, 0.95)", "betas=(0.9, 0.999)"),
    ("AdamW eps 1e-8", T, "eps=1e-8", "eps=1e-6"),
    ("val split: the last tenth", T, "n_val = len(tokens) // 10", "n_val = len(tokens) // 5"),
    ("warmup from step + 1", T, "max_lr * (step + 1) / warmup_steps", "max_lr * step / warmup_steps"),
    ("cosine 0.5 * (1 + cos)", T, "coeff = 0.5 * (1.0 +", "coeff = 0.4 * (1.0 +"),
    ("cosine over pi", T, "math.cos(math.pi * decay_ratio)", "math.cos(math.pi / 2 * decay_ratio)"),
    ("min_lr 0.1 * max_lr", T, "args.min_lr = 0.1 * args.max_lr", "args.min_lr = 0.2 * args.max_lr"),
    ("clip at 1.0 (to 100)", T, "model.parameters(), 1.0)", "model.parameters(), 100.0)"),
    ("clip at 1.0 (to 2)", T, "model.parameters(), 1.0)", "model.parameters(), 2.0)"),
    ("loss / grad_accum_steps", T, "loss = loss / grad_accum_steps", "loss = loss"),
    ("the lr set in the optimizer", T, 'group["lr"] = lr', 'pass'),
    ("the lr of this step", T, "lr = get_lr(step,", "lr = get_lr(step + 1,"),
    ("zero_grad", T, "    optimizer.zero_grad()\n", ""),
    ("float16: unscale before clipping", T, "    scaler.unscale_(optimizer)  #", "    pass  #"),
    ("the step itself", T, "        optimizer.step()\n    hardware", "        pass\n    hardware"),
    ("mean over processes", T, "        loss_accum /= world_size\n", ""),
    ("val batches follow the micro-batch", T, "val_steps = args.val_steps * args.batch_size // B",
     "val_steps = args.val_steps"),
    ("evaluate every --eval_interval", T, "if fresh and (step % args.eval_interval == 0 or last_step) or",
     "if fresh and (step % (args.eval_interval + 1) == 0 or last_step) or"),
    ("--vocab_size 50304", T, "default=50304,", "default=50432,"),
    ("--weight_decay 0.1", T, "above=False), default=0.1,", "above=False), default=0.01,"),
    ("--seed 42", T, "default=42,", "default=43,"),
    *(default(flag, value, other) for flag, value, other in [
        ("--n_layer", 12, 6), ("--n_head", 12, 6), ("--n_embd", 768, 512), ("--block_size", 1024, 512),
        ("--batch_size", 64, 32), ("--seq_len", 1024, 512), ("--eval_interval", 250, 200), ("--val_steps", 20, 10),
        ("--hellaswag_batch_size", 16, 8),
        ("--checkpoint_interval", 5000, 4000), ("--sample_interval", 250, 200), ("--num_samples", 4, 5)]),
    ("--max_new_tokens 32", T, "type=count, default=32", "type=count, default=30"),
    ("recipe: batch 2**19", T, "default=2**19,", "default=2**18,"),
    ("recipe: max_lr 6e-4", T, "default=6e-4,", "default=5e-4,"),
    ("recipe: warmup 715 steps", T, "default=715,", "default=700,"),
    ("recipe: 19073 steps", T, "default=19073,", "default=19000,"),
    ("preset gpt2-medium: heads 16", P, '"gpt2-medium": (24, 16,', '"gpt2-medium": (24, 8,'),
    ("preset gpt2-medium: max_lr 3e-4", P, "1024, 1024, 2**19, 3e-4", "1024, 1024, 2**19, 6e-4"),
    ("preset gpt2-large: heads 20", P, '"gpt2-large": (36, 20,', '"gpt2-large": (36, 16,'),
    ("preset gpt2-large: max_lr 2.5e-4", P, "1280, 1024, 2**19, 2.5e-4", "1280, 1024, 2**19, 3e-4"),
    ("preset gpt2-xl: heads 25", P, '"gpt2-xl": (48, 25,', '"gpt2-xl": (48, 16,'),
    ("preset gpt2-xl: batch 2**20", P, "1600, 1024, 2**20", "1600, 1024, 2**19"),
    ("preset gpt3-small: context 2048", P, '"gpt3-small": (12, 12, 768, 2048', '"gpt3-small": (12, 12, 768, 1024'),
    ("preset gpt3-small: max_lr 6e-4", P, "768, 2048, 2**19, 6e-4", "768, 2048, 2**19, 5e-4"),
    ("preset gpt3-medium: heads 16", P, '"gpt3-medium": (24, 16,', '"gpt3-medium": (24, 8,'),
    ("preset gpt3-medium: max_lr 3e-4", P, "1024, 2048, 2**19, 3e-4", "1024, 2048, 2**19, 2.5e-4"),
    ("preset gpt3-large: heads 16", P, '"gpt3-large": (24, 16,', '"gpt3-large": (24, 12,'),
    ("preset gpt3-large: max_lr 2.5e-4", P, "1536, 2048, 2**19, 2.5e-4", "1536, 2048, 2**19, 2e-4"),
    ("preset gpt3-xl: batch 2**20", P, "2048, 2048, 2**20", "2048, 2048, 2**19"),
    ("preset gpt3-xl: max_lr 2e-4", P, "2048, 2048, 2**20, 2e-4", "2048, 2048, 2**20, 1e-4"),
]
# Fast and most likely to fail first; the multi-process ones last.
TESTS = ["test_recipe", "test_model", "test_schedule", "test_optimizer", "test_presets", "test_pretrained",
         "test_sampling", "test_data", "test_train", "test_hellaswag", "test_export", "test_sample_cli", "test_float16",
         "test_cuda_paths", "test_ddp"]


def main(words):
    files = subprocess.run(["git", "ls-files"], cwd=ROOT, capture_output=True, text=True, check=True).stdout.split()
    chosen = [m for m in MUTATIONS if not words or any(w in m[0] for w in words)]
    missed = 0
    with tempfile.TemporaryDirectory() as copy:
        for name in files + ["input.txt"] * os.path.exists(os.path.join(ROOT, "input.txt")):
            os.makedirs(os.path.dirname(os.path.join(copy, name)), exist_ok=True)
            shutil.copy2(os.path.join(ROOT, name), os.path.join(copy, name))
        print("| number | the first test that fails without it |\n| --- | --- |")
        for label, name, text, changed in chosen:
            path = os.path.join(copy, name)
            with open(path) as f:
                original = f.read()
            assert original.count(text) == 1, f"{label}: {text!r} occurs {original.count(text)} times in {name}"
            with open(path, "w") as f:
                f.write(original.replace(text, changed))
            t0 = time.monotonic()
            out = subprocess.run([sys.executable, "-m", "pytest", "-q", "-x", "-p", "no:cacheprovider",
                                  *(f"tests/{t}.py" for t in TESTS)], cwd=copy, capture_output=True, text=True)
            with open(path, "w") as f:
                f.write(original)
            failed = [line.split(" - ")[0].split(" ", 1)[1] for line in out.stdout.splitlines()
                      if line.startswith(("FAILED ", "ERROR "))]
            missed += not failed
            print(f"| {label} | {f'`{failed[0]}`' if failed else '**none**'} ({time.monotonic() - t0:.0f} s) |",
                  flush=True)
    print(f"{len(chosen) - missed} of {len(chosen)} changes made a test fail")
    return 1 if missed else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
