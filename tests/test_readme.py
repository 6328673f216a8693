"""The README's lecture map stays true: every chapter of the video appears once, in order, each time link opens the
video at its own time, and every short commit hash in the README and in docs/HISTORY.md (the history and the errata)
names a commit of this repository; the table of torch versions starts at requirements.txt's floor and holds CI's."""
import os
import re
import subprocess

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
VIDEO = "https://youtu.be/l8pRSuU81PU"
# The chapters of "Let's reproduce GPT-2 (124M)", as the video's own description lists them.
CHAPTERS = [
    ("0:00:00", "intro: Let's reproduce GPT-2 (124M)"),
    ("0:03:39", "exploring the GPT-2 (124M) OpenAI checkpoint"),
    ("0:13:47", "SECTION 1: implementing the GPT-2 nn.Module"),
    ("0:28:08", "loading the huggingface/GPT-2 parameters"),
    ("0:31:00", "implementing the forward pass to get logits"),
    ("0:33:31", "sampling init, prefix tokens, tokenization"),
    ("0:37:02", "sampling loop"),
    ("0:41:47", "sample, auto-detect the device"),
    ("0:45:50", "let's train: data batches (B,T) → logits (B,T,C)"),
    ("0:52:53", "cross entropy loss"),
    ("0:56:42", "optimization loop: overfit a single batch"),
    ("1:02:00", "data loader lite"),
    ("1:06:14", "parameter sharing wte and lm_head"),
    ("1:13:47", "model initialization: std 0.02, residual init"),
    ("1:22:18", "SECTION 2: Let's make it fast. GPUs, mixed precision, 1000ms"),
    ("1:28:14", "Tensor Cores, timing the code, TF32 precision, 333ms"),
    ("1:39:38", "float16, gradient scalers, bfloat16, 300ms"),
    ("1:48:15", "torch.compile, Python overhead, kernel fusion, 130ms"),
    ("2:00:18", "flash attention, 96ms"),
    ("2:06:54", "nice/ugly numbers. vocab size 50257 → 50304, 93ms"),
    ("2:14:55", "SECTION 3: hyperparameters, AdamW, gradient clipping"),
    ("2:21:06", "learning rate scheduler: warmup + cosine decay"),
    ("2:26:21", "batch size schedule, weight decay, FusedAdamW, 90ms"),
    ("2:34:09", "gradient accumulation"),
    ("2:46:52", "distributed data parallel (DDP)"),
    ("3:10:21", "datasets used in GPT-2, GPT-3, FineWeb (EDU)"),
    ("3:23:10", "validation data split, validation loss, sampling revive"),
    ("3:28:23", "evaluation: HellaSwag, starting the run"),
    ("3:43:05", "SECTION 4: results in the morning! GPT-2, GPT-3 repro"),
    ("3:56:21", "shoutout to llm.c, equivalent but faster code in raw C/CUDA"),
    ("3:59:39", "summary, phew, build-nanogpt github repo"),
]
LINK = re.compile(r"\[(\d+):(\d\d):(\d\d)\]\(" + re.escape(VIDEO) + r"\?t=(\d+)\)")


def readme(name="README.md"):
    with open(os.path.join(ROOT, name), encoding="utf-8") as f:
        return f.read()


DOCS = ("README.md", os.path.join("docs", "HISTORY.md"))  # where commits are named


def map_rows():
    """(time, chapter, row) of each row of the lecture map: the table rows that open with a time link."""
    rows = []
    for line in readme().splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if line.startswith("|") and LINK.fullmatch(cells[0]):
            rows.append((cells[0].split("]")[0][1:], cells[1], line))
    return rows


def test_every_chapter_appears_once_in_order():
    assert [(time, chapter) for time, chapter, _ in map_rows()] == CHAPTERS


def test_each_time_link_opens_the_video_at_its_own_time():
    links = LINK.findall(readme())
    assert len(links) >= len(CHAPTERS)
    for h, m, s, seconds in links:
        assert int(seconds) == 3600 * int(h) + 60 * int(m) + int(s), f"{h}:{m}:{s} links to t={seconds}"


def test_each_chapter_row_points_to_code_or_to_the_readme():
    for time, chapter, row in map_rows():
        assert re.search(r"`[0-9a-f]{7}`|README|below", row), f"{time} {chapter}: no commit and no pointer"


def test_every_short_hash_in_the_readme_names_a_commit_of_this_repository():
    inside = subprocess.run(["git", "rev-parse", "--is-inside-work-tree"], cwd=ROOT, capture_output=True, text=True)
    shallow = subprocess.run(["git", "rev-parse", "--is-shallow-repository"], cwd=ROOT, capture_output=True,
                             text=True)
    if inside.returncode != 0 or shallow.stdout.strip() == "true":
        pytest.skip("this checkout has no git history (or only part of it) to look the hashes up in")
    # A short hash: 7 to 40 hex digits with at least one letter and one digit (not a number, not a word).
    hashes = {(h, name) for name in DOCS
              for h in re.findall(r"\b(?=[0-9a-f]*[a-f])(?=[0-9a-f]*[0-9])[0-9a-f]{7,40}\b", readme(name))}
    assert len({h for h, _ in hashes}) > 40  # the map and the history name many
    for h, name in sorted(hashes):
        # Reachable from HEAD, not merely present: a clone leaves out commits that a rebase orphaned here.
        mine = subprocess.run(["git", "merge-base", "--is-ancestor", h, "HEAD"], cwd=ROOT, capture_output=True)
        assert mine.returncode == 0, f"`{h}` in {name} is not a commit in this branch's history"


def test_the_readme_links_the_history_and_stays_short():
    # The README is the learner's guide; the history and the errata live in docs/HISTORY.md.
    text = readme()
    assert "(docs/HISTORY.md)" in text and "## Errata" not in text
    assert "## Errata" in readme(DOCS[1]) and "**Part 1:" in readme(DOCS[1])
    assert len(text.splitlines()) <= 310  # (the speedrun's table and map rows: issue 29)


def test_the_quick_start_is_one_command_that_train_gpt2_accepts():
    # The README's first block, its lines joined where they end in a backslash: pip, then train_gpt2.py with flags
    # that parse into the small run the README describes.
    import shlex

    from train_gpt2 import parse_args
    block = readme().split("```bash\n")[1].split("```")[0].replace("\\\n", " ")
    first, second = block.strip().splitlines()
    pip, train = first.split("&&")
    assert shlex.split(pip) == ["pip", "install", "-r", "requirements.txt"]
    assert shlex.split(second) == ["python", "-m", "pytest", "-q", "tests"]
    python, script, *argv = shlex.split(train)
    assert (python, script) == ("python", "train_gpt2.py")
    args = parse_args(argv)
    assert (args.data, args.hellaswag, args.n_layer, args.n_embd, args.max_steps) == ("input.txt", False, 4, 128, 500)
    assert args.total_batch_size == args.batch_size * args.seq_len  # one micro-step per optimizer step


def test_the_versions_table_names_the_floor_and_ci_s_torch():
    # The table of torch versions the suite passed on starts at the floor requirements.txt states and holds the
    # version .ci/run pins, so that raising either without measuring it again fails here.
    rows = re.findall(r"^\| (\d+\.\d+\.\d+) \| (CPU|CUDA [\d.]+) \|", readme(), re.MULTILINE)
    with open(os.path.join(ROOT, "requirements.txt")) as f:
        floor = re.search(r"^torch>=(\d+\.\d+)$", f.read(), re.MULTILINE).group(1)
    with open(os.path.join(ROOT, ".ci", "run")) as f:
        pinned = re.search(r"pip install --quiet torch==(\S+)$", f.read(), re.MULTILINE).group(1)
    versions = [version for version, _ in rows]
    assert versions[0] in (floor, floor + ".0")
    assert (pinned, "CPU") in rows
    assert versions == sorted(versions, key=lambda v: tuple(map(int, v.split("."))))


def test_the_map_goes_on_with_a_row_per_idea_of_modern_gpt_in_its_order_with_its_record_and_a_measured_effect():
    import modern_gpt
    rows = re.findall(r"^\| after the video \| `--ideas (\w+)` \(speedrun records? (\d+)[^|]*\| `[0-9a-f]{7}` [^|]+\|"
                      r"[^|]+\| added: val [+-]\d\.\d{3}, time \d\.\d\dx; left out of all: val [+-]\d\.\d{3} \|$",
                      readme(), re.MULTILINE)
    assert rows == [(name, str(record)) for name, (record, _, _) in modern_gpt.IDEAS.items()]
    # The ladder's table: the lecture, then each idea added, then each left out.
    table = re.findall(r"^\| (none \(the lecture\)|\+ \w+|all but \w+)[^|]*\| \d\.\d{3} \(", readme(), re.MULTILINE)
    ideas = list(modern_gpt.IDEAS)
    assert table == ["none (the lecture)", *[f"+ {n}" for n in ideas], *[f"all but {n}" for n in ideas[:-1]]]
