"""End to end on CPU: fineweb.py shards -> train_gpt2.py with torch.compile, validation, HellaSwag, sampling and
checkpoints -> log.txt, a checkpoint that reproduces its logged val loss, and play.ipynb plotting the log."""
import contextlib
import io
import json
import math
import os

import pytest
import torch
from helpers import run_notebook, tiny_flags, write_hellaswag

import fineweb
import train_gpt2

pytestmark = pytest.mark.slow  # the module's run compiles the model: about 15 s

MAX_STEPS, INTERVAL = 6, 3
TINY = tiny_flags(n_layer=2, max_steps=MAX_STEPS, warmup_steps=2, max_lr=3e-3, eval_interval=INTERVAL, val_steps=2,
                  sample_interval=INTERVAL, checkpoint_interval=INTERVAL, num_samples=2, max_new_tokens=5,
                  hellaswag=None, compile=True)


@pytest.fixture(scope="module")
def run(tmp_path_factory, shakespeare):
    """One short training run on shards that fineweb.py made from tiny Shakespeare's paragraphs."""
    root = tmp_path_factory.mktemp("e2e")
    with open(shakespeare) as f:
        paragraphs = [p for p in f.read().split("\n\n") if p.strip()][:600]
    docs = root / "docs.jsonl"
    docs.write_text("".join(json.dumps({"text": p}) + "\n" for p in paragraphs))
    shards = root / "shards"
    fineweb.main(["--dataset", str(docs), "--out_dir", str(shards), "--shard_size", "4000", "--workers", "1"])
    write_hellaswag(root / "hellaswag")
    log_dir = root / "log"
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        train_gpt2.main(["--data", str(shards), "--log_dir", str(log_dir), "--hellaswag",
                         "--hellaswag_dir", str(root / "hellaswag"), *TINY])
    return shards, log_dir, out.getvalue()


def read_log(log_dir):
    events = {}
    with open(os.path.join(log_dir, "log.txt")) as f:
        for line in f:
            step, kind, value = line.split()
            events.setdefault(kind, {})[int(step)] = float(value)
    return events


def test_log_has_every_event(run):
    _, log_dir, _ = run
    events = read_log(log_dir)
    assert sorted(events["train"]) == list(range(MAX_STEPS))
    assert sorted(events["val"]) == [0, 3, 6]  # step 6: the model after the last of the 6 updates
    assert sorted(events["hella"]) == [0, 3, 6]
    assert all(0.0 <= acc <= 1.0 for acc in events["hella"].values())
    assert events["val"][0] > 0.9 * math.log(50257)
    assert events["val"][6] < events["val"][0] - 0.1  # it learned something the val split shares


def test_samples_are_printed_during_and_after_training(run):
    *_, out = run
    for step in (3, 6):
        samples = [line for line in out.splitlines() if line.startswith(f"step {step:5d} | sample: ")]
        assert len(samples) == 2
        assert all("Hello, I'm a language model," in line for line in samples)


def test_checkpoints_are_complete_and_reproduce_the_logged_val_loss(run):
    shards, log_dir, _ = run
    assert sorted(os.listdir(log_dir)) == ["log.txt", "model_00003.pt", "model_00006.pt", "run.json"]  # no .tmp left
    events = read_log(log_dir)
    model, checkpoint = train_gpt2.GPT.from_checkpoint(os.path.join(log_dir, "model_00006.pt"))
    assert checkpoint["step"] == MAX_STEPS
    assert checkpoint["config"] == dict(block_size=1024, vocab_size=50304, n_layer=2, n_head=2, n_embd=32)
    assert checkpoint["args"]["max_lr"] == 3e-3 and checkpoint["args"]["data"] == str(shards)
    assert checkpoint["val_loss"] == pytest.approx(events["val"][6], abs=1e-4)
    loader = train_gpt2.DataLoaderLite(2, 32, split="val", data=str(shards))
    loss = train_gpt2.val_loss(model, loader, 2, "cpu", "cpu", None)
    assert loss == pytest.approx(events["val"][6], abs=1e-3)


def test_training_continues_from_a_checkpoint_with_init_from(run, tmp_path, capsys):
    shards, log_dir, _ = run
    events = read_log(log_dir)
    train_gpt2.main(["--data", str(shards), "--log_dir", str(tmp_path), "--no-hellaswag",
                     "--init_from", os.path.join(log_dir, "model_00006.pt"),
                     *TINY, "--max_steps", "1", "--warmup_steps", "1"])  # the later flags win
    first_val = read_log(tmp_path)["val"][0]
    assert first_val == pytest.approx(events["val"][6], abs=1e-3)  # it starts where the first run ended


@pytest.mark.multiprocess
@pytest.mark.slow
def test_notebook_plots_the_log(run, tmp_path):
    from transformers import GPT2Config, GPT2LMHeadModel
    _, log_dir, _ = run
    torch.manual_seed(0)
    GPT2LMHeadModel(GPT2Config(n_layer=1, n_head=4, n_embd=256, n_positions=128)).save_pretrained(tmp_path / "hf")
    nb = run_notebook({"PLAY_MODEL": str(tmp_path / "hf"), "PLAY_LOG": str(log_dir / "log.txt")})
    printed = "".join(o.get("text", "") for o in nb.cells[-1].outputs if o.output_type == "stream")
    events = read_log(log_dir)
    assert f"min train loss: {min(events['train'].values()):.4f}" in printed
    assert f"min val loss: {min(events['val'].values()):.4f}" in printed
    assert f"max HellaSwag acc_norm: {max(events['hella'].values()):.4f}" in printed
    assert any(o.output_type == "display_data" and "image/png" in o.data for o in nb.cells[-1].outputs)
    # Above the plots, what the run ran with (run.json beside log.txt).
    record = json.loads((log_dir / "run.json").read_text())["runs"][0]
    printed = "".join(o.get("text", "") for o in nb.cells[-2].outputs if o.output_type == "stream")
    assert f"from step 0 ({record['started']}): commit {record['commit']}" in printed
    assert f"--n_layer {record['flags']['n_layer']}, " in printed
