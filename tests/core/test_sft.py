"""SFT on scripted traces: the token layout matches the LLM policy's, the loss sees only core tokens, it trains."""

import json
import re

import pytest
import torch

from netgpt.core.model import tiny_model
from netgpt.sft import SFTConfig, build_dataset, collate, masked_nll, train_sft


def test_teacher_traces_have_the_rollout_layout(tokenizer, registry):
    data = build_dataset(SFTConfig(n_tasks=24, seed=1), registry, tokenizer)
    assert 18 <= len(data) <= 24  # the oracle is right on (nearly) every task; wrong ones are dropped
    for tr in data:
        assert len(tr.completion_ids) == len(tr.env_mask)
        core = tokenizer.decode([t for t, m in zip(tr.completion_ids, tr.env_mask) if m])
        env = tokenizer.decode([t for t, m in zip(tr.completion_ids, tr.env_mask) if not m])
        assert "<answer>" in core and "<reply" not in core
        assert ("<reply" in env) == (len(env) > 0)
        assert tr.env_mask[-1] == 1  # the episode ends on the core's answer


def test_masked_nll_ignores_prompt_and_agent_tokens(tokenizer, registry):
    data = build_dataset(SFTConfig(n_tasks=6, seed=2), registry, tokenizer)
    model = tiny_model(tokenizer, seed=0)
    batch = collate(data[:2], tokenizer.pad_token_id, 4096)
    assert len(batch["prefix_ids"]) > 100  # the system turn is shared and encoded once
    loss = masked_nll(model, batch)
    # recompute by hand: one plain forward pass per trajectory, NLL over the core's tokens only
    picked = []
    for tr in data[:2]:
        ids = torch.tensor([tr.prompt_ids + tr.completion_ids])
        logp = model(ids).logits.log_softmax(-1)[0, :-1].gather(-1, ids[0, 1:, None]).squeeze(-1)
        mask = torch.tensor([0] * len(tr.prompt_ids) + tr.env_mask)[1:].bool()
        picked.append(logp[mask])
    assert torch.allclose(loss, -torch.cat(picked).mean(), atol=1e-5)
    # only the core's tokens are ever scored: the output projection sees exactly those positions
    seen = []
    hook = model.lm_head.register_forward_hook(lambda _m, inputs, _out: seen.append(inputs[0].shape[0]))
    masked_nll(model, batch)
    hook.remove()
    assert seen == [int(batch["loss_mask"].sum())]


@pytest.mark.slow
def test_bf16_falls_back_to_float32_where_it_is_emulated(tokenizer, registry, tmp_path, monkeypatch):
    """On a CPU without native bf16 the run trains in float32, says so, and records what it really used."""
    monkeypatch.setattr("netgpt.sft.fast_bf16", lambda device: False)
    config = SFTConfig(epochs=1, batch_size=8, mixed_precision="bf16", train="full", out=tmp_path / "sft")
    with pytest.warns(UserWarning, match="no native bfloat16 matmuls: training in float32"):
        _train_tiny(config, tokenizer, registry)
    assert json.loads((tmp_path / "sft" / "config.json").read_text())["mixed_precision"] == "no"
    assert json.loads((tmp_path / "sft" / "sft_run.json").read_text())["mixed_precision"] == "no"


def _train_tiny(config: SFTConfig, tokenizer, registry):
    """Train a tiny model on 8 oracle traces: (loss before, loss after, per-step metrics, the model)."""
    data = build_dataset(SFTConfig(n_tasks=8, seed=3), registry, tokenizer)
    model = tiny_model(tokenizer, seed=0)
    batch = collate(data, tokenizer.pad_token_id, 4096)
    with torch.no_grad():
        before = masked_nll(model, batch).item()
    metrics = train_sft(config, model, tokenizer, data)
    with torch.no_grad():
        after = masked_nll(model, batch).item()
    return before, after, metrics, model


@pytest.mark.slow
def test_a_few_steps_lower_the_loss(tokenizer, registry, tmp_path):
    config = SFTConfig(epochs=12, batch_size=8, learning_rate=3e-3, lr_scheduler_type="constant", train="full",
                       out=tmp_path / "sft")
    before, after, metrics, _ = _train_tiny(config, tokenizer, registry)
    assert after < 0.8 * before and len(metrics) == 12
    assert (tmp_path / "sft" / "model" / "model.safetensors").exists()
    assert (tmp_path / "sft" / "metrics.jsonl").read_text().count("\n") == 12


@pytest.mark.slow
def test_bf16_mixed_precision_trains_with_a_linear_schedule(tokenizer, registry, tmp_path, monkeypatch):
    """bf16 autocast (the CPU config's setting) still lowers the loss; the learning rate warms up, then decays to 0
    on the last step; the saved weights stay float32."""
    monkeypatch.setattr("netgpt.sft.fast_bf16", lambda device: True)  # the autocast path even where it is emulated
    config = SFTConfig(epochs=20, batch_size=4, learning_rate=3e-3, warmup_ratio=0.1, mixed_precision="bf16",
                       train="full", out=tmp_path / "sft")
    before, after, metrics, model = _train_tiny(config, tokenizer, registry)
    lrs = [row["lr"] for row in metrics]
    peak = lrs.index(max(lrs))
    assert after < 0.8 * before
    assert 0 < peak < len(lrs) // 4 and lrs[-1] == 0.0
    assert all(a >= b for a, b in zip(lrs[peak:], lrs[peak + 1:]))
    assert all(p.dtype == torch.float32 for p in model.parameters())


def test_top_layers_freezes_the_rest(tokenizer):
    from netgpt.core.model import select_trainable

    model = select_trainable(tiny_model(tokenizer, layers=3), "top_layers", top_layers=1)
    trainable = {n.split(".")[2] for n, p in model.named_parameters() if p.requires_grad and ".layers." in n}
    assert trainable == {"2"} and not model.model.embed_tokens.weight.requires_grad


def test_sft_config_file_loads_with_overrides(tmp_path):
    from pathlib import Path

    cfg = SFTConfig.load(Path(__file__).resolve().parents[2] / "configs" / "sft-cpu.yaml", teacher="always",
                         n_tasks=None)
    assert cfg.teacher == "always" and cfg.n_tasks == 800 and cfg.train == "top_layers" and cfg.group_by_length


def test_length_grouped_batches_cover_the_epoch_with_less_padding():
    import random

    from netgpt.sft import epoch_batches

    lengths = [random.Random(i).randint(700, 1800) for i in range(200)]

    def padding(batches):
        return sum(max(lengths[i] for i in b) * len(b) for b in batches) - sum(lengths)

    ungrouped = epoch_batches(list(range(200)), lengths, 8, False, random.Random(0))
    grouped = epoch_batches(list(range(200)), lengths, 8, True, random.Random(0))
    for batches in (ungrouped, grouped):
        assert sorted(i for b in batches for i in b) == list(range(200)) and len(batches) == 25
    assert padding(grouped) < 0.3 * padding(ungrouped)
    assert grouped == epoch_batches(list(range(200)), lengths, 8, True, random.Random(0))
    # the batches are shuffled: not a walk from the longest rows to the shortest
    maxima = [max(lengths[i] for i in b) for b in grouped]
    assert maxima != sorted(maxima, reverse=True)


class _Killed(Exception):
    pass


@pytest.mark.slow
def test_a_killed_run_resumes_to_the_same_weights(tokenizer, registry, tmp_path):
    """Checkpoint every 2 steps, kill after step 4, resume: the same metrics and bit-for-bit the same weights as a
    run never killed; a finished run leaves no checkpoints; resuming with another config is refused."""
    import pytest

    from netgpt.rl.checkpoint import list_checkpoints

    data = build_dataset(SFTConfig(n_tasks=8, seed=3), registry, tokenizer)

    def config(out, **kw):
        return SFTConfig(**{"epochs": 3, "batch_size": 4, "learning_rate": 3e-3, "train": "full", "save_steps": 2,
                            "group_by_length": True, "out": tmp_path / out, **kw})

    whole = tiny_model(tokenizer, seed=0)
    expected = train_sft(config("whole"), whole, tokenizer, data)

    def kill_after_step_4(row):  # step 4 is logged, but the last checkpoint is from before it: it is redone
        if row["step"] == 4:
            raise _Killed

    with pytest.raises(_Killed):
        train_sft(config("killed"), tiny_model(tokenizer, seed=0), tokenizer, data, progress=kill_after_step_4,
                  start_sha256="a" * 64)
    assert [c.name for c in list_checkpoints(tmp_path / "killed")] == ["checkpoint-000004"]
    with pytest.raises(ValueError, match="another config"):
        train_sft(config("killed", learning_rate=1e-3), tiny_model(tokenizer, seed=0), tokenizer, data, resume=True)
    with pytest.raises(ValueError, match="is not the one it was trained from"):  # its start was retrained since
        train_sft(config("killed"), tiny_model(tokenizer, seed=0), tokenizer, data, resume=True,
                  start_sha256="b" * 64)
    record = tmp_path / "killed" / "sft_run.json"  # as written before state_steps existed: it counts at its default
    record.write_text(json.dumps({k: v for k, v in json.loads(record.read_text()).items() if k != "state_steps"}))
    resumed = tiny_model(tokenizer, seed=0)
    metrics = train_sft(config("killed"), resumed, tokenizer, data, resume=True, start_sha256="a" * 64)
    assert [(r["step"], r["loss"], r["lr"]) for r in metrics] == [(r["step"], r["loss"], r["lr"]) for r in expected]
    logged = (tmp_path / "killed" / "metrics.jsonl").read_text().splitlines()
    assert [json.loads(line)["loss"] for line in logged] == [r["loss"] for r in expected]
    assert all(torch.equal(a, b) for a, b in zip(whole.state_dict().values(), resumed.state_dict().values()))
    assert not list_checkpoints(tmp_path / "killed") and not list_checkpoints(tmp_path / "whole")


def test_stated_steps_spell_out_what_the_action_hides(registry):
    """With ``state_steps`` the teacher writes the peak_rate modulation order, the tbs allocation, the pathloss
    LOS/NLOS word and, before an observation_lookup answer, the asked cell's report copied verbatim from the prompt and
    the metric picked from it; nothing before an sla_check answer (phy.throughput compares the rate with the target).
    The statement agrees with the action it precedes, the parser still reads the action, and the episode stays
    right."""
    from itertools import islice

    from netgpt.core.episode import EpisodeConfig, run_episodes
    from netgpt.core.policies import AlwaysPolicy, OraclePolicy
    from netgpt.core.prompt import task_message
    from netgpt.tasks.generate import training_stream

    families = ["peak_rate", "sla_check", "tbs", "observation_lookup", "pathloss", "link_budget"]
    tasks = list(islice(training_stream(5, families=families), 48))
    results = run_episodes(tasks, OraclePolicy(state_steps=True), registry, EpisodeConfig(), lambda s: len(s.split()),
                           session_prefix="steps")
    lookups_from_observation, sla_verdicts, pathloss_words, ages = 0, set(), set(), set()
    for task, result in zip(tasks, results):
        assert result.reward.quality >= 0.99, task.family
        for event in result.events:
            thought, _, action = event.text.rpartition("\n")
            assert action.startswith(("<call", "<answer>"))
            if task.family == "sla_check" and event.kind == "answer":
                assert thought == ""
                sla_verdicts.add(result.answer)
            elif event.skill == "peak_rate":
                p = task.params
                modulation = {2: "QPSK", 4: "16QAM", 6: "64QAM", 8: "256QAM"}[p.qm]  # TS 38.211 §5.1
                assert thought == f"{modulation} is Q_m = {p.qm}."
                carrier = ("fr", "scs_khz", "bandwidth_mhz")
                assert {k: event.args[k] for k in carrier} == {k: getattr(p, k) for k in carrier}
                assert event.args["direction"] == p.variant
            elif task.family == "observation_lookup" and event.kind == "answer" and len(result.events) == 1:
                cell, metric = task.params.cell_id, task.params.metric
                report = next(r for r in task.observation.reports if r.kind == "kpi" and r.subject == cell)
                copied, _, picked = thought.partition(": ")
                assert copied.startswith('{"kind":"kpi","subject":"' + cell + '"') and copied in task_message(task)
                assert picked == f"{metric} is {report.values[metric]}."
                assert result.answer.split()[0] == str(report.values[metric])
                lookups_from_observation += 1
            elif task.family == "link_budget" and event.turn == 0:
                report = next((r for r in task.observation.reports if r.kind == "ue_measurement"), None)
                if report is None:
                    assert thought == ""
                    continue
                copied, _, judged = thought.partition(": ")
                age = "fresh" if report.age_min <= 15 else "stale"  # FRESH_REPORT_MAX_AGE_MIN
                assert copied in task_message(task) and judged == f"{report.age_min} min old, {age}."
                assert (event.kind == "answer") == (age == "fresh")  # a fresh report answers, a stale one does not
                ages.add(age)
            elif event.skill == "tbs":
                a, p = event.args, task.params
                assert (a["layers"], a["n_prb"], a["n_symb"]) == (p.layers, p.n_prb, p.n_symb)
                assert thought == (f"{p.layers} layer(s), {p.n_prb} PRBs, {p.n_symb} symbols, "
                                   f"{p.n_dmrs_per_prb} DMRS and {p.n_oh_per_prb} overhead REs per PRB.")
            elif event.skill == "pathloss":
                word = re.search(r"\b(N?LOS)\b", task.question)[1]  # the question's own word, not the parameter
                assert thought == f"{word} asked: los is {'true' if word == 'LOS' else 'false'}."
                assert event.args["los"] is (word == "LOS")
                pathloss_words.add(word)
            else:
                assert thought == ""  # only mappings, comparisons and selections are spelled out
    assert {t.family for t in tasks} == set(families)
    assert lookups_from_observation > 0 and sla_verdicts == {"yes", "no"}
    assert pathloss_words == {"LOS", "NLOS"} and ages == {"fresh", "stale"}
    plain = run_episodes(tasks[:6], OraclePolicy(), registry, EpisodeConfig(), lambda s: len(s.split()),
                         session_prefix="plain")
    assert all(e.text.startswith("<") for r in plain for e in r.events)  # off by default
    # the always teacher plans against a blank observation, so it states no reading of the reports it ignores
    readers = [t for t in tasks if t.family in ("link_budget", "observation_lookup") and t.observation.reports]
    ignoring = run_episodes(readers, AlwaysPolicy(state_steps=True), registry, EpisodeConfig(),
                            lambda s: len(s.split()), session_prefix="always")
    assert readers and all(e.text.startswith("<") for r in ignoring for e in r.events)


@pytest.mark.slow
def test_every_stated_teacher_turn_fits_the_tokens_the_core_may_write(registry):
    """A stated turn longer than the recipe's ``max_new_tokens`` would be cut before its tag at eval and in RL rollouts:
    the SFT core would learn a turn it can never finish. Checked with the real tokenizer on every family."""
    from itertools import islice
    from pathlib import Path

    from netgpt.core.episode import EpisodeConfig, run_episodes
    from netgpt.core.model import load_tokenizer
    from netgpt.core.policies import OraclePolicy
    from netgpt.rl.config import RLConfig
    from netgpt.tasks.generate import training_stream

    budget = RLConfig.load(Path(__file__).resolve().parents[2] / "configs" / "rl-cpu.yaml").max_new_tokens
    tokenizer = load_tokenizer()
    tasks = list(islice(training_stream(3), 240))
    results = run_episodes(tasks, OraclePolicy(state_steps=True), registry, EpisodeConfig(), lambda s: len(s.split()),
                           session_prefix="budget")
    longest = {}
    for task, result in zip(tasks, results):
        for event in result.events:
            if event.kind in ("call", "answer"):
                longest[task.family] = max(longest.get(task.family, 0), len(tokenizer(event.text).input_ids))
    assert len(longest) == 12
    assert max(longest.values()) + 1 <= budget, longest  # + the end-of-turn token

