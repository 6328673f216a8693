"""The benchmark scripts: what they do where they cannot measure, and the GPU table's rows run on the CPU."""
import argparse
import os
import subprocess
import sys

import pytest
import torch
from helpers import ROOT, run_command


@pytest.mark.multiprocess
@pytest.mark.skipif(torch.cuda.is_available(), reason="needs a machine without a GPU")
def test_the_gpu_benchmark_says_clearly_that_there_is_no_gpu():
    out = run_command([sys.executable, os.path.join(ROOT, "benchmarks", "gpu_speed.py")], cwd=ROOT, timeout=120)
    assert out.returncode == 1
    assert "torch sees none on this machine" in out.stderr and "benchmarks/cpu_speed.py" in out.stderr
    assert "Traceback" not in out.stderr


@pytest.mark.multiprocess
@pytest.mark.slow
def test_every_row_of_the_gpu_benchmark_runs_and_writes_nothing_into_the_checkout(shakespeare, tmp_path):
    # The GPU table's rows, run on the CPU with a tiny model (gpu_speed.py's hidden --device cpu): each step's commit
    # in a worktree, then the newest at its larger micro-batch. Its last row used to be refused after every other had
    # run (tiny Shakespeare's val split was shorter than one batch of 64 x 1024), and wrote into the checkout's log/.
    # The text here is short enough that its last tenth is shorter than one batch of the tiny newest row (8 x 64).
    shallow = subprocess.run(["git", "rev-parse", "--is-shallow-repository"], cwd=ROOT, capture_output=True, text=True)
    if shallow.returncode != 0 or shallow.stdout.strip() == "true":
        pytest.skip("the rows check out commits of the history, which this checkout does not have")

    def worktrees():
        return subprocess.run(["git", "worktree", "list"], cwd=ROOT, capture_output=True, text=True).stdout
    before = sorted(os.listdir(ROOT)), worktrees()
    with open(shakespeare) as f:
        (tmp_path / "short.txt").write_text(f.read()[:12_000])  # about 3,000 tokens: a val tenth of about 300
    out = run_command([sys.executable, os.path.join(ROOT, "benchmarks", "gpu_speed.py"), "--device", "cpu",
                       "--quick", "--data", str(tmp_path / "short.txt")], cwd=ROOT,
                      timeout=600)
    assert out.returncode == 0, out.stderr[-3000:]
    rows = [line.split(" | ") for line in out.stdout.splitlines() if line.startswith("| ") and "---" not in line][1:]
    assert len(rows) == 9  # the 7 steps, the lecture's final script, the newest commit
    assert all(float(row[2].replace(",", "")) > 0 for row in rows)
    assert rows[-1][0] == "| newest commit, default settings" and rows[-1][1] == "8"  # twice the steps' micro-batch
    assert (sorted(os.listdir(ROOT)), worktrees()) == before  # no log/, no worktree left behind


@pytest.mark.multiprocess
@pytest.mark.slow
@pytest.mark.skipif(torch.cuda.is_available() or sys.platform == "win32", reason="needs a Unix machine without a GPU")
def test_the_gpu_check_script_refuses_a_machine_without_a_gpu_smoke(tmp_path):
    # A smoke test of benchmarks/gpu_check.sh: it runs, writes its output file, and fails where there is no GPU
    # rather than passing on skipped tests.
    out = run_command(["bash", os.path.join(ROOT, "benchmarks", "gpu_check.sh"), str(tmp_path / "check.txt")],
                      cwd=ROOT, env=dict(os.environ, PYTHON=sys.executable),
                      timeout=120)
    assert out.returncode == 1
    written = (tmp_path / "check.txt").read_text()
    assert "torch sees none here: nothing was run" in written and "tests/test_gpu.py" not in written


def test_the_modern_ladder_runs_each_idea_added_and_left_out_and_reads_its_curves(shakespeare):
    sys.path.insert(0, os.path.join(ROOT, "benchmarks"))
    import modern_ladder

    import modern_gpt
    ideas = modern_gpt.parse_ideas("all")
    configurations = dict((ideas_, label) for label, ideas_ in modern_ladder.configurations())
    assert len(configurations) == len(modern_ladder.configurations()) == 2 * len(ideas)  # each run once
    assert configurations["none"] == "none (the lecture)"
    assert configurations[",".join(ideas)] == f"+ {ideas[-1]} (= all)"
    for i, name in enumerate(ideas):
        assert configurations[",".join(ideas[:i + 1])].startswith(f"+ {name}")
        assert f"all but {name}" in configurations[",".join(ideas[:i] + ideas[i + 1:])]
    # The val loss falls from 5 to 3 between the evaluations at steps 10 and 20: 4 is reached half way, at step 15.
    assert modern_ladder.tokens_to_reach({0: 6.0, 10: 5.0, 20: 3.0}, 4.0, 100) == 1500
    assert modern_ladder.tokens_to_reach({0: 6.0, 10: 5.0}, 4.0, 100) is None
    args = argparse.Namespace(quick=True, steps=2, eval_interval=1)
    result = modern_ladder.run("rmsnorm", 0, args, shakespeare)  # one real run of the script's command line
    assert sorted(result["val"]) == [0, 1, 2] and result["ms"] > 0
    results = {"none": {"0": {"val": {1: 5.0, 2: 4.0}, "ms": 10.0}}, "rmsnorm": {"0": result}}
    rows = modern_ladder.table(results, [0], 64).splitlines()
    assert rows[2] == "| none (the lecture) | 4.000 (4.000-4.000) | 128 | 1.00x | 6,400 |"
    assert rows[3].startswith(f"| + rmsnorm | {result['val'][2]:.3f} (") and rows[3].endswith(
        f"| {result['ms'] / 10.0:.2f}x | {64 / result['ms'] * 1e3:,.0f} |") and len(rows) == 4
