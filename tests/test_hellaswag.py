"""
Tests for hellaswag.py: CPU only, offline, on a small file in the HellaSwag schema and a tiny random-init
GPT2LMHeadModel that the tests write themselves. The reference for the scores is a brute-force loop written here,
one unpadded sequence and one ending token at a time, with HF's model as the model. hellaswag.py scores with our GPT
loaded from the same directory, each example packed into one row.
"""
import argparse
import json
import os
import sys
import urllib.error

import pytest
import tiktoken
import torch
from helpers import run_command, tiny_flags
from torch.nn import functional as F

import hellaswag
import plumbing.checkpoints
import plumbing.cli
import plumbing.files
import plumbing.hardware

# Ten examples in the HellaSwag schema. The endings differ a lot in length (one word to a long sentence) so that
# the summed loss (acc) and the mean loss (acc_norm) pick different endings on some examples. The labels here are
# the sensible endings; the file that the scoring tests evaluate relabels them (see the `records` fixture).
EXAMPLES = [
    ("Making a sandwich", "A man lays two slices of bread on a cutting board.", "He",
     ["spreads peanut butter over one slice with a knife and then carefully adds a thin layer of jam.",
      "flies.", "throws the bread at the ceiling and leaves.", "sings."], 0),
    ("Washing a car", "A woman sprays the side of a red car with a hose.", "She",
     ["eats it.", "then scrubs the doors with a soapy sponge, working from the roof down to the tires.",
      "jumps.", "reads a long book about the history of the Roman empire while the car dries."], 1),
    ("Playing the piano", "A boy sits down at a piano in a bright room.", "The boy",
     ["melts.", "opens the lid.", "places his hands on the keys and begins to play a slow, quiet song.",
      "runs outside."], 2),
    ("Running a marathon", "Hundreds of runners wait behind a starting line on a city street.", "A horn sounds and",
     ["the runners start moving forward together down the wide street past cheering crowds.",
      "everyone sleeps.", "it rains fish.", "the street turns into a river of chocolate."], 0),
    ("Cleaning windows", "A man climbs a ladder with a bucket of water.", "He",
     ["cooks dinner.", "wipes the window with a cloth.", "vanishes into thin air without a trace.",
      "squeegees the glass from top to bottom, then wipes the edges dry with a towel."], 3),
    ("Baking cookies", "A girl mixes flour, sugar and butter in a large bowl.", "She",
     ["rolls the dough into small balls.", "paints the bowl.", "calls her friend on the phone to talk about a movie "
      "they watched together last weekend.", "swims."], 0),
    ("Brushing teeth", "A child stands in front of a bathroom mirror.", "The child",
     ["puts toothpaste on a brush and brushes.", "laughs.", "builds a house.",
      "climbs into the sink and takes a nap for several hours until dinner is ready."], 0),
    ("Walking the dog", "A man clips a leash onto a small brown dog.", "They",
     ["fly to the moon.", "walk.", "walk out the front door and down the sidewalk toward the park.",
      "argue about politics."], 2),
    ("Painting a fence", "A woman dips a wide brush into a can of white paint.", "She",
     ["drinks the paint.", "paints the fence.", "cries.",
      "drags the brush along the wooden boards of the fence in long, even strokes."], 3),
    ("Playing soccer", "Two teams line up on a grassy field.", "The referee",
     ["blows the whistle and the players chase the ball across the field.", "sneezes.",
      "orders a pizza for everyone in the stadium and the crowd cheers loudly.", "dances."], 0),
]


def make_record(ind, activity_label, ctx_a, ctx_b, endings, label):
    return {"ind": ind, "activity_label": activity_label, "ctx_a": ctx_a, "ctx_b": ctx_b,
            "ctx": ctx_a + " " + ctx_b, "split": "val", "split_type": "indomain", "label": label,
            "endings": endings, "source_id": f"test~{ind}"}


RECORDS = [make_record(i, *ex) for i, ex in enumerate(EXAMPLES)]


def write_jsonl(path, lines):
    with open(path, "w", encoding="utf-8") as f:
        for line in lines:
            f.write((line if isinstance(line, str) else json.dumps(line)) + "\n")


@pytest.fixture(scope="module")
def hf_dir(tmp_path_factory):
    """A tiny random-init GPT2LMHeadModel, written with save_pretrained like a real local checkpoint."""
    from transformers import GPT2Config, GPT2LMHeadModel

    torch.manual_seed(1337)
    config = GPT2Config(n_layer=2, n_head=2, n_embd=32, vocab_size=50257, n_positions=128)
    model = GPT2LMHeadModel(config)
    d = tmp_path_factory.mktemp("tiny_gpt2")
    model.save_pretrained(d)
    return str(d)


@pytest.fixture(scope="module")
def hf_model(hf_dir):
    from transformers import GPT2LMHeadModel

    return GPT2LMHeadModel.from_pretrained(hf_dir).eval()


@pytest.fixture(scope="module")
def gpt(hf_dir):
    """The same weights in our GPT, as hellaswag.load_model gives them: what evaluate scores with."""
    return hellaswag.load_model(hf_dir, "cpu")


@pytest.fixture(scope="module")
def reference(hf_model):
    """
    Brute force: for each example and ending, run the model on the unpadded context+ending alone and add up the
    cross-entropy of each ending token, one token at a time. Returns, per example, (sum_losses, mean_losses) with
    one entry per ending.
    """
    enc = tiktoken.get_encoding("gpt2")
    results = []
    with torch.no_grad():
        for record in RECORDS:
            ctx = enc.encode(record["ctx"])
            sums, means = [], []
            for ending in record["endings"]:
                end = enc.encode(" " + ending)
                seq = torch.tensor([ctx + end])
                logits = hf_model(seq).logits[0]  # (T, V)
                token_losses = []
                for j in range(len(end)):
                    position = len(ctx) + j  # where ending token j sits; it is predicted from position - 1
                    token_losses.append(F.cross_entropy(logits[position - 1], seq[0, position]).item())
                sums.append(sum(token_losses))
                means.append(sum(token_losses) / len(token_losses))
            results.append((sums, means))
    return results


def argmin(values):
    return min(range(len(values)), key=values.__getitem__)


@pytest.fixture(scope="module")
def records(reference):
    """
    RECORDS relabelled so that the counts can catch mistakes. A random-init model picks nonsense, so with the
    sensible labels it might score 0 on everything, and a scorer that never gets anything right would pass. Instead
    each label is set from the brute-force picks: on examples where acc and acc_norm disagree it cycles through
    "acc is right", "acc_norm is right" and "neither is"; where they agree, through "both right" and "both wrong".
    Choosing the labels here, rather than typing them in, keeps that true if transformers ever initialises the
    test model differently.
    """
    labelled = []
    for i, (record, (sums, means)) in enumerate(zip(RECORDS, reference)):
        pred, pred_norm = argmin(sums), argmin(means)
        neither = min({0, 1, 2, 3} - {pred, pred_norm})
        labelled.append({**record, "label": [pred, pred_norm, neither][i % 3]})
    return labelled


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory, records):
    d = tmp_path_factory.mktemp("hellaswag")
    write_jsonl(d / "hellaswag_val.jsonl", records)  # already in place, so nothing is downloaded
    return str(d)


def reference_counts(reference, records, n=None):
    picks = [(argmin(sums), argmin(means)) for sums, means in reference[:n]]
    labels = [record["label"] for record in records[:n]]
    correct = sum(pred == label for (pred, _), label in zip(picks, labels))
    correct_norm = sum(pred_norm == label for (_, pred_norm), label in zip(picks, labels))
    return correct, correct_norm, len(picks)


def test_test_data_tells_acc_from_acc_norm(reference, records):
    outcomes = set()
    for (sums, means), record in zip(reference, records):
        outcomes.add((argmin(sums) == record["label"], argmin(means) == record["label"]))
        # Each winner must win by more than float noise (batched vs unbatched matmuls), or the comparisons below
        # would be flaky rather than wrong.
        for losses in (sums, means):
            best, second = sorted(losses)[:2]
            assert second - best > 1e-4, "two endings are tied within float noise: change the test data"
    # Examples where only acc is right and where only acc_norm is right: the data the tests evaluate contains
    # examples on which the two scores pick different endings, so swapping sum and mean cannot go unnoticed.
    assert {(True, False), (False, True), (True, True), (False, False)} <= outcomes, (
        f"the test model's picks cover only {outcomes}: add examples with endings of more varied lengths")


def test_render_example_packs_context_and_endings():
    enc = tiktoken.get_encoding("gpt2")
    record = RECORDS[0]
    tokens, pos, segment, label = hellaswag.render_example(record)
    ctx = enc.encode(record["ctx"])
    ends = [enc.encode(" " + e) for e in record["endings"]]
    assert tokens.shape == pos.shape == segment.shape == (len(ctx) + sum(len(e) for e in ends),)
    assert tokens.dtype == pos.dtype == segment.dtype == torch.long
    assert label == record["label"]
    assert len({len(e) for e in ends}) > 1, "the example should have endings of different token lengths"
    # The context comes first, once, at positions 0..C-1.
    assert enc.decode(tokens[segment == -1].tolist()) == record["ctx"]
    assert segment[:len(ctx)].eq(-1).all() and pos[:len(ctx)].equal(torch.arange(len(ctx)))
    # Then each ending in order, decoding back to " " + ending, its positions continuing from the context's.
    start = len(ctx)
    for i, ending in enumerate(record["endings"]):
        n = len(ends[i])
        assert segment[start:start + n].eq(i).all()
        assert enc.decode(tokens[start:start + n].tolist()) == " " + ending
        assert pos[start:start + n].equal(torch.arange(len(ctx), len(ctx) + n))
        start += n


def test_attention_mask_lets_each_ending_see_the_context_and_itself():
    # Row: context c c, ending 0 (2 tokens), ending 1 (1 token), one padding token.
    segment = torch.tensor([[-1, -1, 0, 0, 1, -2]])
    allowed = hellaswag.attention_mask(segment)[0, 0]  # (L, L): query, key
    expected = torch.tensor([
        [1, 0, 0, 0, 0, 0],  # context attends causally to the context
        [1, 1, 0, 0, 0, 0],
        [1, 1, 1, 0, 0, 0],  # ending 0: the context and ending 0 up to itself
        [1, 1, 1, 1, 0, 0],
        [1, 1, 0, 0, 1, 0],  # ending 1: the context and itself, not ending 0
        [1, 1, 0, 0, 0, 1],  # padding: context and padding (never an empty row); nothing real attends to it
    ], dtype=torch.bool)
    assert allowed.equal(expected)


def test_score_matches_brute_force_per_example(gpt, reference):
    for record, (sums, means) in zip(RECORDS, reference):
        tokens, pos, segment, _ = hellaswag.collate([hellaswag.render_example(record)])
        with torch.no_grad():
            assert hellaswag.score(gpt, tokens, pos, segment) == ([argmin(sums)], [argmin(means)])


def test_score_matches_brute_force_on_a_padded_batch(gpt, reference, records):
    # All ten examples in one forward pass: rows of short examples are padded far past their own end.
    rendered = [hellaswag.render_example(record) for record in records]
    tokens, pos, segment, labels = hellaswag.collate(rendered)
    assert tokens.shape == pos.shape == segment.shape == (len(records), max(t.size(0) for t, *_ in rendered))
    assert labels == [record["label"] for record in records]
    for i, (t, p, g, _) in enumerate(rendered):  # each example's row unchanged, then padding
        n = t.size(0)
        assert tokens[i, :n].equal(t) and pos[i, :n].equal(p) and segment[i, :n].equal(g)
        assert tokens[i, n:].eq(0).all() and pos[i, n:].eq(0).all() and segment[i, n:].eq(hellaswag.PADDING).all()
    with torch.no_grad():
        pred, pred_norm = hellaswag.score(gpt, tokens, pos, segment)
    assert pred == [argmin(sums) for sums, _ in reference]
    assert pred_norm == [argmin(means) for _, means in reference]


def brute_force_predictions(reference, records):
    return [(argmin(sums), argmin(means), record["label"]) for (sums, means), record in zip(reference, records)]


@pytest.mark.parametrize("batch_size", [1, 3, 4, 10, 16])
def test_predictions_do_not_depend_on_batch_size(gpt, reference, records, data_dir, batch_size):
    # Per example, not just the counts. 3 and 4 do not divide the 10 examples, so the last batch is partial; 16 is
    # more than there are.
    got = list(hellaswag.predictions(gpt, data_dir=data_dir, batch_size=batch_size))
    assert got == brute_force_predictions(reference, records)
    if batch_size != 1:
        assert got == list(hellaswag.predictions(gpt, data_dir=data_dir, batch_size=1))


def test_batches_hold_this_ranks_examples(gpt, reference, records, data_dir):
    # Batching happens after dealing: rank r's batches hold examples r, r + world_size, ... of the first `limit`.
    expected = brute_force_predictions(reference, records)
    for limit in (None, 7):
        for rank in range(3):
            got = list(hellaswag.predictions(gpt, data_dir=data_dir, rank=rank, world_size=3, limit=limit,
                                             batch_size=2))
            assert got == expected[:limit][rank::3], f"limit {limit}, rank {rank}"


def test_batches_are_made_of_examples_of_similar_length_and_the_head_runs_at_endings_only(gpt, records, data_dir):
    # Padding costs as much to run as real tokens: examples are sorted by length before being cut into batches
    # (all ten fit in one window of 8 batches of 2), so each batch is padded only up to its neighbour's length.
    # The output head sees one position per ending token, no more.
    inputs, head_rows = [], []
    hooks = [gpt.transformer.wte.register_forward_hook(lambda m, args, out: inputs.append(tuple(args[0].shape))),
             gpt.lm_head.register_forward_hook(lambda m, args, out: head_rows.append(args[0].size(0)))]
    try:
        list(hellaswag.predictions(gpt, data_dir=data_dir, batch_size=2))
    finally:
        for hook in hooks:
            hook.remove()
    rendered = sorted((hellaswag.render_example(record) for record in records), key=lambda r: r[0].size(0))
    lengths = [tokens.size(0) for tokens, *_ in rendered]
    ending_tokens = [int((segment >= 0).sum()) for _, _, segment, _ in rendered]
    assert inputs == [(2, max(lengths[i:i + 2])) for i in range(0, len(lengths), 2)]
    assert head_rows == [sum(ending_tokens[i:i + 2]) for i in range(0, len(lengths), 2)]


def test_batch_size_must_be_positive(gpt, data_dir):
    # (The command line's --batch_size 0 is in tests/test_flags.py.)
    with pytest.raises(ValueError, match="batch_size must be >= 1 example, got 0"):
        hellaswag.evaluate(gpt, data_dir=data_dir, batch_size=0)


def test_training_uses_the_same_batch_size_by_default(capsys):
    import train_gpt2
    assert train_gpt2.parse_args([]).hellaswag_batch_size == hellaswag.BATCH_SIZE
    with pytest.raises(SystemExit):
        train_gpt2.parse_args(["--hellaswag_batch_size", "0"])
    assert "--hellaswag_batch_size: 0 is not a whole number from 1 up" in capsys.readouterr().err


def test_evaluate_matches_brute_force(gpt, reference, records, data_dir):
    model = gpt
    assert hellaswag.evaluate(model, data_dir=data_dir) == reference_counts(reference, records)
    # Totals can agree by accident; check each example's outcome too. With world_size = number of examples,
    # rank i is dealt example i alone.
    n = len(RECORDS)
    for i in range(n):
        counts = hellaswag.evaluate(model, data_dir=data_dir, rank=i, world_size=n)
        assert counts == reference_counts(reference[i:i + 1], records[i:i + 1]), f"example {i}"


def test_main_prints_brute_force_accuracies(hf_dir, reference, records, data_dir, capsys):
    hellaswag.main(["-m", hf_dir, "-d", "cpu", "--data_dir", data_dir, "--dtype", "float32"])
    last = capsys.readouterr().out.strip().splitlines()[-1]
    correct, correct_norm, total = reference_counts(reference, records)
    assert last == f"{total} acc: {correct / total:.4f} acc_norm: {correct_norm / total:.4f}"


def test_main_limit(hf_dir, reference, records, data_dir, capsys):
    # --batch_size 2 with --limit 3: a full batch and a partial one.
    hellaswag.main(["-m", hf_dir, "-d", "cpu", "--data_dir", data_dir, "--limit", "3", "--batch_size", "2",
                    "--dtype", "float32"])
    last = capsys.readouterr().out.strip().splitlines()[-1]
    correct, correct_norm, total = reference_counts(reference, records, 3)
    assert last == f"3 acc: {correct / total:.4f} acc_norm: {correct_norm / total:.4f}"


@pytest.mark.parametrize("dtype", ["float32", "bfloat16", "auto", None])
def test_main_dtype_is_train_gpt2s_choice(hf_dir, data_dir, capsys, dtype):
    # auto, the default (None: no flag), resolves as in training: bfloat16 only on CPUs with bf16 instructions. The
    # header names what ran.
    ran = "float32" if plumbing.hardware.pick_autocast_dtype(dtype or "auto", "cpu") is None else "bfloat16"
    flag = ["--dtype", dtype] if dtype else []
    hellaswag.main(["-m", hf_dir, "-d", "cpu", "--data_dir", data_dir, "--limit", "1", *flag])
    assert capsys.readouterr().out.splitlines()[0] == f"HellaSwag val: {hf_dir} on cpu ({ran})"


def test_ranks_deal_out_examples(gpt, data_dir):
    model = gpt
    for limit in (None, 7):
        whole = hellaswag.evaluate(model, data_dir=data_dir, limit=limit)
        parts = [hellaswag.evaluate(model, data_dir=data_dir, limit=limit, rank=r, world_size=2) for r in (0, 1)]
        assert tuple(a + b for a, b in zip(*parts)) == whole
        n = whole[2]
        assert (parts[0][2], parts[1][2]) == ((n + 1) // 2, n // 2)  # examples 0, 2, 4, ... go to rank 0


def test_smoke_bf16_autocast_on_cpu(gpt, data_dir):
    # Smoke test only: bf16 may legitimately change a near-tie, so check it runs and counts every example.
    counts = hellaswag.evaluate(gpt, data_dir=data_dir, autocast_dtype=torch.bfloat16)
    assert counts[2] == len(RECORDS)


def test_the_head_runs_in_float32_under_bf16_autocast(gpt, data_dir):
    # Under autocast lm_head would return bf16 logits, rounded to 3 significant digits before the float32 loss;
    # near-ties could flip. The scored logits must be the float32 head's, exactly.
    seen = []
    hook = gpt.lm_head.register_forward_hook(lambda module, args, out: seen.append((args[0], out)))
    try:
        hellaswag.evaluate(gpt, data_dir=data_dir, autocast_dtype=torch.bfloat16)
    finally:
        hook.remove()
    assert seen
    for hidden, logits in seen:
        assert logits.dtype == torch.float32
        assert torch.equal(logits, F.linear(hidden.float(), gpt.lm_head.weight))


def test_the_head_runs_in_full_float32_where_training_turned_tf32_on(gpt, data_dir):
    # The training loop sets torch.set_float32_matmul_precision("high") on CUDA: TF32 products, about as coarse as
    # bf16's. The evaluation during training must score as `python hellaswag.py` does: the head in full float32,
    # and the setting as it was afterwards.
    seen = []
    hook = gpt.lm_head.register_forward_pre_hook(lambda module, args: seen.append(torch.get_float32_matmul_precision()))
    before = torch.get_float32_matmul_precision()
    torch.set_float32_matmul_precision("high")
    try:
        hellaswag.evaluate(gpt, data_dir=data_dir)
        assert torch.get_float32_matmul_precision() == "high"
    finally:
        hook.remove()
        torch.set_float32_matmul_precision(before)
    assert seen and set(seen) == {"highest"}


def test_malformed_line_names_file_and_line(tmp_path):
    path = tmp_path / "hellaswag_val.jsonl"
    write_jsonl(path, [RECORDS[0], RECORDS[1], '{"ind": 2, "ctx": "cut off in the mid'])
    with pytest.raises(ValueError, match=r"hellaswag_val\.jsonl, line 3: not valid JSON"):
        list(hellaswag.iterate_examples("val", str(tmp_path)))


@pytest.mark.parametrize("change, message", [
    ({"endings": ["one", "two", "three"]}, "'endings' must be a list of 4 strings"),
    ({"label": 4}, "'label' must be an integer in 0..3"),
    ({"ctx": ""}, "'ctx' must be a non-empty string"),
])
def test_example_missing_fields_names_file_and_line(tmp_path, change, message):
    path = tmp_path / "hellaswag_val.jsonl"
    write_jsonl(path, [RECORDS[0], {**RECORDS[1], **change}])
    with pytest.raises(ValueError, match=r"hellaswag_val\.jsonl, line 2: " + message):
        list(hellaswag.iterate_examples("val", str(tmp_path)))


@pytest.mark.parametrize("damage, message", [
    ('{"ind": 2, "ctx": "cut off in the mid', "line 3: not valid JSON"),
    ({**RECORDS[2], "label": 7}, "line 3: 'label' must be an integer in 0..3, got 7"),
])
def test_damaged_data_ends_the_command_lines_with_one_message(hf_dir, tmp_path, shakespeare, damage, message,
                                                              capsys):
    # hellaswag.py, and train_gpt2.py's evaluation during training: the file and the line, no traceback.
    import train_gpt2
    write_jsonl(tmp_path / "hellaswag_val.jsonl", [RECORDS[0], RECORDS[1], damage])
    with pytest.raises(SystemExit) as exc:
        hellaswag.main(["-m", hf_dir, "-d", "cpu", "--data_dir", str(tmp_path)])
    assert str(exc.value).startswith(str(tmp_path / "hellaswag_val.jsonl")) and message in str(exc.value)
    with pytest.raises(SystemExit) as exc:
        train_gpt2.main(["--data", shakespeare, "--log_dir", str(tmp_path / "log"), "--hellaswag_dir", str(tmp_path),
                         *tiny_flags(hellaswag=True, max_steps=1, num_samples=None, max_new_tokens=None)])
    assert str(exc.value).startswith(str(tmp_path / "hellaswag_val.jsonl")) and message in str(exc.value)


def test_example_without_label_points_to_val(tmp_path):
    record = {k: v for k, v in RECORDS[0].items() if k != "label"}
    write_jsonl(tmp_path / "hellaswag_val.jsonl", [record])
    with pytest.raises(ValueError, match=r"line 1: no 'label'.*evaluate on 'val'"):
        list(hellaswag.iterate_examples("val", str(tmp_path)))


# ---------------------------------------------------------------------------------------------------------------------
# Download, with urlopen replaced so that no network is touched


def FakeResponse(body, length):
    """Stands in for urlopen's response: serves `body`, announcing `length` bytes in Content-Length."""
    from fakes import Response
    return Response(hellaswag.DATA_URL.format(split="val"), body, length)


def test_download_offline_fails_clearly_and_leaves_nothing(tmp_path, monkeypatch):
    def offline(*args, **kwargs):
        raise urllib.error.URLError("[Errno -3] Temporary failure in name resolution")

    monkeypatch.setattr(plumbing.files.urllib.request, "urlopen", offline)
    with pytest.raises(plumbing.cli.RunError, match=r"(?s)could not download.*put it at .*hellaswag_val\.jsonl"):
        hellaswag.download("val", str(tmp_path / "data"))
    assert os.listdir(tmp_path / "data") == []


def test_download_cut_short_leaves_nothing(tmp_path, monkeypatch):
    body = "\n".join(json.dumps(r) for r in RECORDS).encode()
    monkeypatch.setattr(plumbing.files.urllib.request, "urlopen",
                        lambda *args, **kwargs: FakeResponse(body[:100], len(body)))
    with pytest.raises(plumbing.cli.RunError, match="cut short: got 100 of"):
        hellaswag.download("val", str(tmp_path))
    assert os.listdir(tmp_path) == []


def test_download_writes_whole_file_then_skips(tmp_path, monkeypatch):
    body = ("\n".join(json.dumps(r) for r in RECORDS) + "\n").encode()
    monkeypatch.setattr(plumbing.files.urllib.request, "urlopen",
                        lambda *args, **kwargs: FakeResponse(body, len(body)))
    path = hellaswag.download("val", str(tmp_path))
    assert os.listdir(tmp_path) == ["hellaswag_val.jsonl"]
    assert open(path, "rb").read() == body
    assert [r["ind"] for r in hellaswag.iterate_examples("val", str(tmp_path))] == list(range(len(RECORDS)))

    # A file already there is used as it is: no download is attempted.
    def must_not_download(*args, **kwargs):
        raise AssertionError("downloaded a file that was already there")

    monkeypatch.setattr(plumbing.files.urllib.request, "urlopen", must_not_download)
    assert hellaswag.download("val", str(tmp_path)) == path


def test_load_model_unknown_name_fails_clearly():
    with pytest.raises(ValueError, match="unknown model 'gpt3'"):
        hellaswag.load_model("gpt3", "cpu")


@pytest.mark.multiprocess
def test_import_has_no_side_effects(tmp_path):
    # In a fresh interpreter, in an empty directory, with no tokenizer cache: importing must print nothing,
    # write nothing, and load neither the tokenizer, transformers nor the training script.
    env = {k: v for k, v in os.environ.items() if k != "TIKTOKEN_CACHE_DIR"}
    env["PYTHONPATH"] = os.path.dirname(os.path.abspath(hellaswag.__file__))
    code = ("import sys, hellaswag, tiktoken.registry; assert 'gpt2' not in tiktoken.registry.ENCODINGS; "
            "assert 'transformers' not in sys.modules and 'train_gpt2' not in sys.modules")
    result = run_command([sys.executable, "-c", code], cwd=tmp_path, env=env, timeout=120)
    assert result.returncode == 0, result.stderr
    assert result.stdout == "" and result.stderr == ""
    assert os.listdir(tmp_path) == []


# ---------------------------------------------------------------------------------------------------------------------
# Our checkpoints


def test_checkpoint_matches_direct_evaluation(tmp_path, data_dir, capsys):
    import train_gpt2
    config = dict(block_size=128, vocab_size=50304, n_layer=2, n_head=2, n_embd=32)
    torch.manual_seed(1337)
    model = train_gpt2.GPT(train_gpt2.GPTConfig(**config)).eval()
    path = tmp_path / "model_00010.pt"
    train_gpt2.save_checkpoint(str(path), model, step=10, val_loss=10.9, args=argparse.Namespace(seed=1337))

    correct, correct_norm, total = hellaswag.evaluate(model, data_dir=data_dir)
    hellaswag.main(["-m", str(path), "-d", "cpu", "--data_dir", data_dir, "--dtype", "float32"])
    last = capsys.readouterr().out.strip().splitlines()[-1]
    assert last == f"{total} acc: {correct / total:.4f} acc_norm: {correct_norm / total:.4f}"
    # Counts can agree by chance on a random model; the loaded model's logits cannot.
    loaded = hellaswag.load_model(str(path), "cpu")
    tokens = hellaswag.render_example(RECORDS[0])[0][None]  # (1, L)
    with torch.no_grad():
        torch.testing.assert_close(loaded(tokens)[0], model(tokens)[0], rtol=0, atol=0)
