"""Every flag of the four command lines, on the values a typo produces: each row runs the command line on one bad
value and must end with a non-zero exit status and a message that names the flag, never a Python traceback and
never a run that does nothing. Numbers are refused as they are parsed, paths before any work."""
import json
import os
import shutil
import sys
import traceback

import pytest
from helpers import ROOT, run_command, tiny_flags, write_hellaswag

import fineweb
import hellaswag
import sample
import train_gpt2

SCRIPTS = {"train_gpt2.py": train_gpt2, "fineweb.py": fineweb, "hellaswag.py": hellaswag, "sample.py": sample}
# A small run, so that a row whose check comes late would still end quickly (and show that it came late).
SMALL = tiny_flags()

POSITIVE = ["n_layer", "n_head", "n_embd", "block_size", "batch_size", "seq_len", "total_batch_size", "eval_interval",
            "val_steps", "hellaswag_limit", "hellaswag_batch_size", "checkpoint_interval", "sample_interval",
            "num_samples"]
COUNT = ["max_steps", "warmup_steps", "max_new_tokens"]
ROWS = (
    [("train_gpt2.py", [f"--{flag}", bad], f"--{flag}") for flag in POSITIVE for bad in ("0", "-3", "x", "2.5")]
    + [("train_gpt2.py", [f"--{flag}", bad], f"--{flag}") for flag in COUNT for bad in ("-3", "x")]
    + [("train_gpt2.py", [flag, bad], flag) for flag, values in [
        ("--vocab_size", ["50000", "0"]), ("--seed", ["-1", "x", str(2**64)]),
        ("--max_lr", ["0", "-1e-3", "nan", "inf", "x"]), ("--min_lr", ["-1e-5", "nan", "x"]),
        ("--weight_decay", ["-0.1", "inf"]), ("--device", ["tpu", "cuda:x"]), ("--dtype", ["float64"]),
        ("--model", ["gpt5"])] for bad in values]
    + [("train_gpt2.py", argv, flag) for argv, flag in [
        (["--n_embd", "100", "--n_head", "12"], "--n_embd"), (["--seq_len", "2048"], "--seq_len"),
        (["--max_steps", "10", "--warmup_steps", "20"], "--warmup_steps"),
        (["--min_lr", "1e-3", "--max_lr", "6e-4"], "--min_lr"),
        ([*SMALL, "--data", "{input}", "--total_batch_size", "100"], "--total_batch_size")]]
    + [("train_gpt2.py", [*SMALL, *argv], flag) for argv, flag in [
        (["--data", "{tmp}/missing.txt"], "--data"), (["--data", "{empty}"], "--data"),
        (["--data", "{input}", "--log_dir", "{file}"], "--log_dir"),
        (["--data", "{input}", "--log_dir", "{file}/log"], "--log_dir"),
        (["--data", "{input}", "--log_dir", "{read_only}/log"], "--log_dir"),
        (["--data", "{input}", "--hellaswag", "--hellaswag_dir", "{file}"], "--hellaswag_dir"),
        (["--data", "{input}", "--hellaswag", "--hellaswag_dir", "{read_only}"], "--hellaswag_dir"),
        (["--data", "{input}", "--resume", "{tmp}/model_00005.pt"], "--resume"),
        (["--data", "{input}", "--resume", "{empty}"], "--resume"),
        (["--data", "{input}", "--init_from", "{tmp}/model_00005.pt"], "--init_from"),
        (["--data", "{input}", "--init_from", "{empty}"], "--init_from"),
        (["--data", "{input}", "--init_from", "gpt3"], "--init_from"),
        (["--init_from", "{empty}", "--export_hf", "{tmp}/hf"], "--init_from"),
        (["--init_from", "{checkpoint}", "--export_hf", "{file}"], "--export_hf"),
        (["--init_from", "{checkpoint}", "--export_hf", "{not_empty}"], "--export_hf"),
        (["--init_from", "{checkpoint}", "--export_hf", "{read_only}/hf"], "--export_hf")]]
    + [("fineweb.py", [flag, bad], flag) for flag, values in [
        ("--shard_size", ["0", "-5", "x"]), ("--workers", ["0", "x"])] for bad in values]
    + [("fineweb.py", ["--dataset", "{docs}", *argv], flag) for argv, flag in [
        (["--dataset", "{tmp}/missing.jsonl"], "--dataset"), (["--out_dir", "{file}"], "--out_dir"),
        (["--out_dir", "{read_only}/shards"], "--out_dir"), (["--text_column", "body"], "--text_column")]]
    + [("hellaswag.py", ["-m", "{checkpoint}", "-d", "cpu", "--data_dir", "{hellaswag}", flag, bad], flag)
       for flag, values in [("--limit", ["0", "-1", "x"]), ("--batch_size", ["0", "x"]), ("--device", ["tpu"]),
                            ("--dtype", ["float64"]), ("--split", ["test"])] for bad in values]
    + [("hellaswag.py", ["-d", "cpu", *argv], flag) for argv, flag in [
        (["-m", "{checkpoint}", "--data_dir", "{file}"], "--data_dir"),
        (["-m", "{checkpoint}", "--data_dir", "{read_only}"], "--data_dir"),
        (["-m", "{tmp}/model_00005.pt", "--data_dir", "{hellaswag}"], "--model"),
        (["-m", "gpt3", "--data_dir", "{hellaswag}"], "--model")]]
    + [("sample.py", ["--init_from", "{checkpoint}", flag, bad], flag) for flag, values in [
        ("--num_samples", ["0", "x"]), ("--max_new_tokens", ["-1"]), ("--top_k", ["0", "-2"]),
        ("--temperature", ["0", "-1", "nan", "x"]), ("--seed", ["-1"]), ("--device", ["tpu", "gpu"])]
       for bad in values]
    + [("sample.py", ["--init_from", bad], "--init_from") for bad in ("{tmp}/model_00005.pt", "{empty}", "gpt3")]
)


@pytest.fixture(scope="module")
def paths(tmp_path_factory, shakespeare, read_only_dir):
    """The files and folders the rows name: a file, an empty folder, a read-only one, tiny Shakespeare, a checkpoint,
    a HellaSwag folder, a jsonl of documents."""
    tmp = tmp_path_factory.mktemp("flags")
    (tmp / "file").write_text("a file, not a folder")
    (tmp / "empty").mkdir()
    (tmp / "not_empty").mkdir()
    (tmp / "not_empty" / "keep.txt").write_text("mine")
    shutil.copy(shakespeare, tmp / "input.txt")
    model = train_gpt2.GPT(train_gpt2.GPTConfig(block_size=64, vocab_size=50304, n_layer=1, n_head=2, n_embd=16))
    train_gpt2.save_checkpoint(str(tmp / "model_00001.pt"), model, 1, 5.0, train_gpt2.parse_args([]))
    write_hellaswag(tmp / "hellaswag")
    (tmp / "docs.jsonl").write_text(json.dumps({"text": "Some text."}) + "\n")
    return {"tmp": str(tmp), "file": str(tmp / "file"), "empty": str(tmp / "empty"),
            "not_empty": str(tmp / "not_empty"), "read_only": read_only_dir, "input": str(tmp / "input.txt"),
            "checkpoint": str(tmp / "model_00001.pt"), "hellaswag": str(tmp / "hellaswag"),
            "docs": str(tmp / "docs.jsonl")}


def run_cli(script, argv, capsys):
    """What `python SCRIPT ARGV` does, in this process: (exit status, everything printed). An exception other than
    SystemExit is what Python would print as a traceback: it is returned as printed text, not raised."""
    try:
        SCRIPTS[script].main(argv)
        status, message = 0, ""
    except SystemExit as e:
        status, message = (e.code, "") if isinstance(e.code, int) or e.code is None else (1, str(e.code))
    except Exception:
        status, message = 1, traceback.format_exc()
    captured = capsys.readouterr()
    return status or 0, captured.out + captured.err + message


@pytest.mark.parametrize("script, argv, flag", ROWS, ids=[f"{s} {' '.join(a[-2:])}" for s, a, _ in ROWS])
def test_a_bad_value_is_refused_with_a_message_naming_its_flag(script, argv, flag, paths, capsys, tmp_path,
                                                               monkeypatch):
    if any("{read_only}" in a for a in argv) and paths["read_only"] is None:
        pytest.skip("no folder that this process cannot write in can be made here")
    monkeypatch.chdir(tmp_path)  # whatever a row would write by mistake lands here
    status, printed = run_cli(script, [a.format(**paths) for a in argv], capsys)
    assert status != 0, printed
    assert "Traceback" not in printed, printed
    assert flag in printed, printed
    assert os.listdir(paths["not_empty"]) == ["keep.txt"]


@pytest.mark.multiprocess
@pytest.mark.parametrize("script", list(SCRIPTS))
def test_the_scripts_themselves_exit_with_the_message_alone(script, paths):
    # The rows above run main() in this process; here each script runs as a user runs it, on one bad value.
    argv = {"train_gpt2.py": ["--batch_size", "0"], "fineweb.py": ["--workers", "0"],
            "hellaswag.py": ["-m", paths["checkpoint"], "--limit", "0"], "sample.py": ["--temperature", "0"]}[script]
    out = run_command([sys.executable, os.path.join(ROOT, script), *argv],
                      cwd=paths["tmp"], timeout=120)
    assert out.returncode == 2
    assert f"error: argument {argv[-2]}: 0 is not a " in out.stderr
    assert "Traceback" not in out.stderr
