"""modern_gpt.py: with --ideas none it is the lecture's GPT-2 (the same logits from the same weights, the same log from
the same seed); with ideas it trains, resumes exactly and refuses what it cannot do, saying why."""
import math
from dataclasses import asdict

import pytest
import torch
from helpers import tiny_flags, write_hellaswag
from torch.nn import functional as F

import hellaswag
import modern_gpt
import train_gpt2
from plumbing.cli import InputError
from train_gpt2 import GPT, GPTConfig

CONFIG = GPTConfig(block_size=32, vocab_size=96, n_layer=2, n_head=2, n_embd=32)
TINY = tiny_flags(n_layer=2, max_steps=4, warmup_steps=1, max_lr=3e-3, eval_interval=2, val_steps=2,
                  checkpoint_interval=2, sample_interval=2)


def read(path):
    with open(path) as f:
        return f.read()


def modern(*ideas, seed=0, **shape):
    torch.manual_seed(seed)
    return modern_gpt.ModernGPT(modern_gpt.ModernConfig(**{**asdict(CONFIG), **shape}, ideas=ideas))


def test_no_ideas_is_gpt2_the_same_weights_for_a_seed_and_the_same_logits():
    torch.manual_seed(0)
    gpt = GPT(CONFIG)
    model = modern(seed=0)
    assert model.state_dict().keys() == gpt.state_dict().keys()
    for name, tensor in gpt.state_dict().items():
        assert torch.equal(model.state_dict()[name], tensor), name
    gpt.transformer.h[0].mlp.c_fc.bias.data.normal_()  # weights a seed does not give: loaded, not drawn
    model.load_state_dict(gpt.state_dict())
    idx = torch.randint(0, CONFIG.vocab_size, (2, CONFIG.block_size))
    assert torch.equal(model(idx)[0], gpt(idx)[0])
    assert model.flops_per_token(32) == gpt.flops_per_token(32)


def test_ideas_none_writes_the_lecture_log_and_samples(shakespeare, tmp_path, capsys):
    train_gpt2.main(["--data", shakespeare, "--log_dir", str(tmp_path / "lecture"), *TINY])
    lecture = [line for line in capsys.readouterr().out.splitlines() if "sample:" in line]
    modern_gpt.main(["--data", shakespeare, "--log_dir", str(tmp_path / "modern"), *TINY, "--ideas", "none"])
    samples = [line for line in capsys.readouterr().out.splitlines() if "sample:" in line]
    assert read(tmp_path / "modern" / "log.txt") == read(tmp_path / "lecture" / "log.txt")
    assert samples == lecture and len(samples) == 2


@pytest.mark.parametrize("ideas, message", [("nonsense", "unknown idea 'nonsense'"), ("all,x", "unknown idea")])
def test_an_unknown_idea_is_refused_naming_the_choices(ideas, message, capsys):
    with pytest.raises(SystemExit):
        modern_gpt.main(["--ideas", ideas])
    err = capsys.readouterr().err
    assert message in err and "or all, or none" in err


def test_the_lecture_script_refuses_a_modern_checkpoint_naming_the_script_that_reads_it(tmp_path):
    path = str(tmp_path / "model_00001.pt")
    train_gpt2.save_checkpoint(path, modern(), step=1, val_loss=4.0, args=train_gpt2.parse_args([]))
    with pytest.raises(InputError, match="ideas in its config.*load it with modern_gpt.py"):
        GPT.from_checkpoint(path)
    model, checkpoint = modern_gpt.ModernGPT.from_checkpoint(path)  # and modern_gpt.py reads it
    assert checkpoint["step"] == 1 and model.config.ideas == ()


def test_a_lecture_checkpoint_loads_as_a_model_without_ideas(tmp_path):
    path = str(tmp_path / "model_00001.pt")
    torch.manual_seed(0)
    gpt = GPT(CONFIG)
    train_gpt2.save_checkpoint(path, gpt, step=1, val_loss=4.0, args=train_gpt2.parse_args([]))
    model = modern_gpt.ModernGPT.load(path)
    idx = torch.randint(0, CONFIG.vocab_size, (1, 8))
    assert model.config.ideas == () and torch.equal(model(idx)[0], gpt(idx)[0])


# Every idea alone, none and all: what train_gpt2.py's loop, sampling and HellaSwag need of a model.
needs_muon = pytest.mark.skipif(not hasattr(torch.optim, "Muon"), reason="torch.optim.Muon is in torch 2.9 and later")
EVERY = [(), *[pytest.param((name,), marks=needs_muon if name == "muon" else ()) for name in modern_gpt.IDEAS],
         modern_gpt.parse_ideas("all")]
EVERY_IDS = ["none", *modern_gpt.IDEAS, "all"]


def random_weights(model):
    # Every weight drawn at random, not as initialised: a layer initialised to zero would make the outputs compared
    # below equal whatever the code does with them.
    torch.manual_seed(1)
    with torch.no_grad():
        for p in model.parameters():
            p.normal_(0.0, 0.3)
    return model.eval()


@pytest.mark.parametrize("ideas", EVERY, ids=EVERY_IDS)
def test_the_kv_cache_gives_the_logits_of_the_whole_sequence(ideas):
    model = random_weights(modern(*ideas))
    idx = torch.randint(0, CONFIG.vocab_size, (2, 12))
    cache = [{} for _ in model.transformer.h]
    with torch.no_grad():
        whole = model(idx)[0]
        pieces = [model(idx[:, :8], kv_cache=cache)[0], *(model(idx[:, t:t + 1], kv_cache=cache)[0]
                                                          for t in range(8, 12))]
    torch.testing.assert_close(torch.cat(pieces, dim=1), whole)


@pytest.mark.parametrize("ideas", EVERY, ids=EVERY_IDS)
def test_sequences_packed_in_a_row_with_their_positions_and_a_mask_give_each_ones_states(ideas):
    # What HellaSwag's scoring does: several sequences in one row, each with its own positions, kept apart by a mask.
    model = random_weights(modern(*ideas))
    a, b = torch.randint(0, CONFIG.vocab_size, (1, 5)), torch.randint(0, CONFIG.vocab_size, (1, 7))
    pos = torch.cat((torch.arange(5), torch.arange(7))).unsqueeze(0)  # (1, 12)
    seq = torch.tensor([0] * 5 + [1] * 7)
    mask = (seq[:, None] == seq[None, :]) & torch.ones(12, 12, dtype=torch.bool).tril()  # (12, 12)
    with torch.no_grad():
        packed = model.hidden_states(torch.cat((a, b), dim=1), pos=pos, attn_mask=mask[None, None])
        torch.testing.assert_close(packed[:, :5], model.hidden_states(a))
        torch.testing.assert_close(packed[:, 5:], model.hidden_states(b))


@pytest.mark.parametrize("ideas", EVERY, ids=EVERY_IDS)
def test_each_idea_learns_a_batch_with_its_optimizer(ideas):
    model = modern(*ideas)
    optimizer = model.configure_optimizers(0.0, 1e-2, "cpu")
    x, y = torch.randint(0, CONFIG.vocab_size, (2, 2, 16))
    losses = []
    for _ in range(25):
        optimizer.zero_grad()
        loss = model(x, y)[1]
        loss.backward()
        for group in optimizer.param_groups:  # as train_gpt2.train_step sets it
            group["lr"] = 1e-2 * group.get("lr_scale", 1.0)
        optimizer.step()
        losses.append(loss.item())
    assert losses[-1] < losses[0] - 1.0, losses


def test_rmsnorm_leaves_no_gain_or_bias_and_divides_by_the_root_mean_square():
    model = modern("rmsnorm")
    assert all(p.dim() == 2 for p in model.parameters())  # matrices and embeddings only
    x = torch.randn(2, 5, 32) * 3 + 1
    expected = x / torch.sqrt(x.pow(2).mean(dim=-1, keepdim=True) + torch.finfo(x.dtype).eps)
    torch.testing.assert_close(model.transformer.ln_f(x), expected)
    torch.testing.assert_close(model.transformer.h[0].ln_1(x), torch.nn.RMSNorm(32, elementwise_affine=False)(x))


@pytest.mark.parametrize("positions", ["shared", "per row"])
def test_rotary_turns_q_and_k_as_transformers_llama_does(positions):
    from transformers import LlamaConfig
    from transformers.models.llama.modeling_llama import LlamaRotaryEmbedding, apply_rotary_pos_emb

    B, nh, T, hs = 2, 3, 9, 16
    q, k = torch.randn(2, B, nh, T, hs)
    pos = torch.arange(T) + 5 if positions == "shared" else torch.randint(0, 64, (B, T))
    llama = LlamaRotaryEmbedding(config=LlamaConfig(hidden_size=nh * hs, num_attention_heads=nh,
                                                    max_position_embeddings=64))
    cos, sin = llama(q, pos.expand(B, T))  # (B, T, hs)
    q_llama, k_llama = apply_rotary_pos_emb(q, k, cos, sin)
    rotary = modern_gpt.rotary_cos_sin(pos, hs)
    torch.testing.assert_close(modern_gpt.rotate(q, *rotary), q_llama)
    torch.testing.assert_close(modern_gpt.rotate(k, *rotary), k_llama)


def test_rotary_makes_attention_scores_depend_on_the_distance_only():
    hs = 16
    q, k = torch.randn(2, hs)

    def score(i, j):  # q at position i against k at position j
        qi = modern_gpt.rotate(q.view(1, 1, 1, hs), *modern_gpt.rotary_cos_sin(torch.tensor([i]), hs))
        kj = modern_gpt.rotate(k.view(1, 1, 1, hs), *modern_gpt.rotary_cos_sin(torch.tensor([j]), hs))
        return (qi * kj).sum()
    torch.testing.assert_close(score(7, 3), score(104, 100))
    assert not torch.allclose(score(7, 3), score(7, 4))
    assert "wpe" not in modern("rotary").transformer  # no table of learned positions


def test_wsd_warms_up_as_the_lecture_holds_the_peak_then_decays_linearly_to_min_lr():
    max_lr, min_lr, warmup, steps = 1.0, 0.1, 10, 100
    lrs = [modern_gpt.wsd_lr(step, max_lr, min_lr, warmup, steps) for step in range(steps + 1)]
    assert lrs[:warmup] == [train_gpt2.get_lr(step, max_lr, min_lr, warmup, steps) for step in range(warmup)]
    assert set(lrs[warmup:80]) == {max_lr}  # held until the last 20% of the steps
    decay = lrs[80:]
    assert decay[0] == max_lr and decay[-1] == min_lr
    assert all(abs((a - b) - (max_lr - min_lr) / 20) < 1e-12 for a, b in zip(decay, decay[1:]))  # a straight line


def test_wsd_trains_at_three_times_the_learning_rate(shakespeare, tmp_path):
    modern_gpt.main(["--data", shakespeare, "--log_dir", str(tmp_path), *TINY, "--ideas", "wsd"])
    lrs = [float(line.split()[2]) for line in read(tmp_path / "log.txt").splitlines() if " lr " in line]
    expected = [modern_gpt.WSD_LR_SCALE * modern_gpt.wsd_lr(step, 3e-3, 3e-4, 1, 4) for step in range(4)]
    assert lrs == pytest.approx(expected)


@needs_muon
def test_muon_updates_each_hidden_matrix_by_an_orthogonal_matrix_at_its_learning_rate():
    model = modern("rmsnorm", "muon")
    optimizer = model.configure_optimizers(0.1, 1e-3, "cpu")
    hidden = {id(p) for p in model.transformer.h.parameters()}
    assert {id(p) for p in optimizer.muon.param_groups[0]["params"]} == hidden  # every matrix of the blocks
    assert not hidden & {id(p) for group in optimizer.adamw.param_groups for p in group["params"]}
    assert [id(p) for group in optimizer.param_groups for p in group["params"]].count(id(model.lm_head.weight)) == 1
    x, y = torch.randint(0, CONFIG.vocab_size, (2, 16, 32))  # 512 tokens: a gradient of full rank
    before = {name: p.detach().clone() for name, p in model.named_parameters()}
    model(x, y)[1].backward()
    for group in optimizer.param_groups:
        group["lr"] = 1e-3 * group.get("lr_scale", 1.0)
    optimizer.step()
    for name, p in model.transformer.h.named_parameters():
        rows, cols = p.shape
        update = (before["transformer.h." + name] - p.detach()) / (modern_gpt.MUON_LR * max(1, rows / cols) ** 0.5)
        # Newton-Schulz's quintic takes the singular values of the update to about 0.7-1.1, not exactly 1 (the
        # speedrun's README), all but the gradient's tiniest; a gradient step's would spread over decades.
        s = torch.linalg.svdvals(update)
        assert s.max() < 1.3 and (s > 0.5).float().mean() > 0.9, (name, s)
    assert optimizer.muon.param_groups[0]["momentum"] == modern_gpt.MUON_MOMENTUM[0]


@needs_muon
def test_muons_momentum_warms_up_and_its_state_comes_back_from_a_checkpoint():
    model = modern("muon")
    optimizer = model.configure_optimizers(0.1, 1e-3, "cpu")
    start, end, steps = modern_gpt.MUON_MOMENTUM
    for _ in range(steps // 2 + 1):
        optimizer.step()  # no gradients: only the warmup moves
    assert optimizer.muon.param_groups[0]["momentum"] == pytest.approx((start + end) / 2)
    again = model.configure_optimizers(0.1, 1e-3, "cpu")
    again.load_state_dict(optimizer.state_dict())
    assert again.steps == steps // 2 + 1


def test_without_torch_optim_muon_the_idea_is_refused_naming_the_torch_that_has_it(monkeypatch, capsys):
    monkeypatch.delattr(torch.optim, "Muon", raising=False)
    with pytest.raises(SystemExit):
        modern_gpt.main(["--ideas", "rmsnorm,muon"])
    assert "muon needs torch.optim.Muon, which torch has since 2.9" in capsys.readouterr().err
    ideas = modern_gpt.parse_ideas("all")  # all: every idea but muon, saying so
    assert "muon" not in ideas and "rotary" in ideas
    assert "--ideas all: without muon" in capsys.readouterr().out


def query_weights(attention):  # the matrix that makes q, in either layout
    return attention.c_q.weight if hasattr(attention, "c_q") else attention.c_attn.weight[:attention.c_proj.in_features]


QKNORM = [("rmsnorm", "qknorm"), pytest.param(("rmsnorm", "muon", "qknorm"), marks=needs_muon)]


@pytest.mark.parametrize("ideas", QKNORM, ids=["fused", "split"])
def test_qknorm_makes_attention_blind_to_the_scale_of_q(ideas):  # (rmsnorm: no bias, which would not be scaled)
    for with_norm in (True, False):
        attention = random_weights(modern(*(ideas if with_norm else ideas[:-1]))).transformer.h[0].attn
        x = torch.randn(2, 8, 32)
        with torch.no_grad():
            before = attention(x)[0]
            query_weights(attention).mul_(10.0)
            after = attention(x)[0]
        assert torch.allclose(before, after, atol=1e-5) == with_norm


def test_relu2_squares_the_relu_in_the_mlp():
    mlp = random_weights(modern("relu2")).transformer.h[0].mlp
    x = torch.randn(2, 8, 32)
    with torch.no_grad():
        torch.testing.assert_close(mlp(x), mlp.c_proj(torch.relu(mlp.c_fc(x)) ** 2))
        assert not torch.allclose(mlp(x), mlp.c_proj(F.gelu(mlp.c_fc(x), approximate="tanh")))


def test_zero_init_starts_every_block_as_the_identity():
    model = modern("zero_init")
    projections = [layer for block in model.transformer.h for layer in (block.attn.c_proj, block.mlp.c_proj)]
    assert all(not p.weight.any() for p in projections)
    assert model.transformer.h[0].mlp.c_fc.weight.std() > 0.01  # the rest as GPT-2's
    x = torch.randn(2, 8, 32)
    with torch.no_grad():
        assert all(torch.equal(block(x, x, None)[0], x) for block in model.transformer.h)


def test_untied_head_starts_at_zero_with_learning_rates_of_its_own():
    model = modern("untied_head")
    assert model.lm_head.weight is not model.transformer.wte.weight and not model.lm_head.weight.any()
    idx = torch.randint(0, CONFIG.vocab_size, (2, 8))
    assert model(idx, idx)[1].item() == pytest.approx(math.log(CONFIG.vocab_size))  # every token equally likely
    optimizer = model.configure_optimizers(0.1, 1e-3, "cpu")
    lr_of = {id(p): 1e-3 * group.get("lr_scale", 1.0) for group in optimizer.param_groups for p in group["params"]}
    assert lr_of[id(model.lm_head.weight)] == pytest.approx(modern_gpt.HEAD_LR)
    assert lr_of[id(model.transformer.wte.weight)] == pytest.approx(modern_gpt.EMBED_LR)
    assert len(lr_of) == len(list(model.parameters()))  # every parameter in one group


def test_softcap_bounds_the_logits_smoothly_in_the_head_that_hellaswag_calls():
    model = random_weights(modern("softcap"))
    idx = torch.randint(0, CONFIG.vocab_size, (2, 8))
    with torch.no_grad():
        model.lm_head.weight.mul_(100.0)
        hidden = model.hidden_states(idx)
        raw = hidden @ model.lm_head.weight.t()  # (B, T, V), uncapped
        logits = model(idx)[0]
    assert raw.abs().max() > 100 and logits.abs().max() < modern_gpt.SOFTCAP
    torch.testing.assert_close(logits, modern_gpt.SOFTCAP * torch.tanh(raw / modern_gpt.SOFTCAP))
    torch.testing.assert_close(model.lm_head(hidden), logits)  # what HellaSwag's scoring computes


def test_shortcuts_give_every_block_the_embedding_and_the_first_blocks_values():
    idx = torch.randint(0, CONFIG.vocab_size, (2, 8))
    with torch.no_grad():
        # Embedding shortcut: a block whose input weights are (0, 1) sees the embedding, whatever came before it.
        model = random_weights(modern("rmsnorm", "shortcuts", n_layer=3))
        first, second, third = model.transformer.h
        third.input_mix.copy_(torch.tensor([0.0, 1.0]))
        before = model(idx)[0]
        second.mlp.c_fc.weight.normal_()
        assert torch.equal(model(idx)[0], before)
        # Value residual: with l = 1, a block's attention uses the first block's values, not its own.
        model = random_weights(modern("rmsnorm", "shortcuts", n_layer=3))
        first, second, third = model.transformer.h
        second.attn.value_mix.fill_(1.0)
        before = model(idx)[0]
        second.attn.c_attn.weight[2 * 32:].normal_()  # the rows that make v
        assert torch.equal(model(idx)[0], before)
        second.attn.c_attn.weight[:32].normal_()  # q still matters
        assert not torch.equal(model(idx)[0], before)


@pytest.mark.parametrize("n_layer", [4, 5])
def test_unet_adds_each_encoder_blocks_output_to_its_mirror_decoder_blocks_input(n_layer):
    model = random_weights(modern("unet", n_layer=n_layer))
    inputs, outputs = [], []

    def record(module, args, out):  # (returning None keeps the block's output)
        inputs.append(args[0])
        outputs.append(out[0])
    for block in model.transformer.h:
        block.register_forward_hook(record)
    with torch.no_grad():
        model(torch.randint(0, CONFIG.vocab_size, (2, 8)))
    w = model.skip_weights
    assert len(w) == 2
    torch.testing.assert_close(inputs[1], outputs[0])  # the encoder: a plain stack
    torch.testing.assert_close(inputs[2], outputs[1] + w[0] * outputs[1])  # block 1 mirrors block 2
    torch.testing.assert_close(inputs[3], outputs[2] + w[1] * outputs[0])  # block 0 mirrors block 3
    if n_layer == 5:
        torch.testing.assert_close(inputs[4], outputs[3])  # no mirror left for the odd block


def test_value_embeds_share_tables_in_a_unet_pattern_and_reach_the_values():
    assert [modern_gpt.value_embed_table(i, 12) for i in range(12)] == [0, 1, 2, *[None] * 6, 0, 1, 2]
    assert [modern_gpt.value_embed_table(i, 4) for i in range(4)] == [0, 1, 0, 1]
    model = random_weights(modern("rmsnorm", "value_embeds", n_layer=4))
    assert len(model.value_embeds) == 2
    idx = torch.arange(16).view(2, 8)  # every token once
    with torch.no_grad():
        before = model(idx)[0]
        model.value_embeds[1].weight[idx[0, 3]].normal_()  # one token's row of a table
        after = model(idx)[0]
    changed = (after - before).abs().amax(dim=-1) > 0  # (B, T): which positions' logits moved
    assert changed[0, 3:].all() and not changed[0, :3].any() and not changed[1].any()  # from that token on
    optimizer = model.configure_optimizers(0.1, 1e-3, "cpu")
    lr_of = {id(p): 1e-3 * group.get("lr_scale", 1.0) for group in optimizer.param_groups for p in group["params"]}
    assert all(lr_of[id(table.weight)] == pytest.approx(modern_gpt.EMBED_LR) for table in model.value_embeds)


def test_all_ideas_stop_and_resume_gives_the_straight_run(shakespeare, tmp_path):
    run = ["--data", shakespeare, *TINY, "--ideas", "all"]  # muon's momentum, wsd's schedule and every idea's tensor
    modern_gpt.main([*run, "--log_dir", str(tmp_path / "straight")])
    resumed = tmp_path / "resumed"
    resumed.mkdir()
    (resumed / "model_00002.pt").write_bytes((tmp_path / "straight" / "model_00002.pt").read_bytes())
    lines = read(tmp_path / "straight" / "log.txt").splitlines(keepends=True)
    (resumed / "log.txt").write_text("".join(lines[:next(i for i, line in enumerate(lines) if line[0] == "3")]))
    modern_gpt.main([*run, "--log_dir", str(resumed), "--resume", "auto"])
    assert read(resumed / "log.txt") == read(tmp_path / "straight" / "log.txt")
    a = torch.load(tmp_path / "straight" / "model_00004.pt", weights_only=True)["model"]
    b = torch.load(resumed / "model_00004.pt", weights_only=True)["model"]
    assert a.keys() == b.keys() and all(torch.equal(a[name], b[name]) for name in a)


def test_export_hf_writes_gpt2_for_ideas_none_and_refuses_ideas_saying_why(tmp_path):
    from transformers import GPT2LMHeadModel
    for ideas in [(), ("rotary",)]:
        path = str(tmp_path / f"model_{len(ideas)}.pt")
        train_gpt2.save_checkpoint(path, modern(*ideas, vocab_size=50257), step=1, val_loss=4.0,
                                   args=train_gpt2.parse_args([], modern_gpt.add_ideas_flag))
        out = tmp_path / f"hf_{len(ideas)}"
        if ideas:
            with pytest.raises(SystemExit, match="ideas rotary, which transformers' GPT2LMHeadModel cannot hold"):
                modern_gpt.main(["--init_from", path, "--export_hf", str(out), "--device", "cpu"])
            assert not out.exists()
            continue
        modern_gpt.main(["--init_from", path, "--export_hf", str(out), "--device", "cpu"])
        idx = torch.randint(0, 50257, (1, 16))
        expected = modern_gpt.ModernGPT.load(path)(idx)[0]
        torch.testing.assert_close(GPT2LMHeadModel.from_pretrained(out)(idx).logits, expected, rtol=1e-4, atol=1e-4)


def test_a_run_with_every_idea_scores_hellaswag_as_its_checkpoint_does_and_samples(shakespeare, tmp_path, capsys):
    write_hellaswag(tmp_path / "hellaswag")
    modern_gpt.main(["--data", shakespeare, "--log_dir", str(tmp_path / "log"), *TINY, "--ideas", "all",
                     "--hellaswag", "--hellaswag_dir", str(tmp_path / "hellaswag")])
    samples = [line for line in capsys.readouterr().out.splitlines() if "sample:" in line]
    logged = {line.split()[0]: float(line.split()[2]) for line in read(tmp_path / "log" / "log.txt").splitlines()
              if " hella " in line}
    model = modern_gpt.ModernGPT.load(str(tmp_path / "log" / "model_00004.pt")).eval()
    assert model.config.ideas == modern_gpt.parse_ideas("all")
    _, correct_norm, total = hellaswag.evaluate(model, data_dir=str(tmp_path / "hellaswag"))
    assert sorted(logged) == ["0", "2", "4"] and logged["4"] == round(correct_norm / total, 4) and total == 6
    assert len(samples) == 2  # at step 2 and at the end, from the KV cache
