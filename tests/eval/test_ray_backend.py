"""The Ray backend reproduces the local backend episode for episode, and broadcasts weights to its workers."""

import json
import subprocess
import sys

import pytest

pytest.importorskip("ray")

from rollout_parity import assert_worker_rollouts_equal_local  # noqa: E402
from typer.testing import CliRunner  # noqa: E402

from netgpt.cli import app  # noqa: E402
from netgpt.core.episode import EpisodeConfig  # noqa: E402
from netgpt.distributed.ray_backend import RayRolloutPool, init_ray  # noqa: E402
from netgpt.distributed.worker import PolicySpec, RolloutWorker, WorkerSpec  # noqa: E402
from netgpt.eval.harness import SPLITS_DIR, evaluate, load_episodes  # noqa: E402
from netgpt.protocol.config import builtin_faults  # noqa: E402
from netgpt.tasks import load_tasks  # noqa: E402

pytestmark = pytest.mark.slow  # subprocesses or Ray workers: `make test-fast` leaves it out

FAULTS = builtin_faults().model_copy(update={"seed": 3})
EPISODE = EpisodeConfig(max_turns=3)


@pytest.fixture(scope="module")
def ray_session(tmp_path_factory):
    import ray

    # Ray's state (sockets, logs, session files) stays under pytest's temp dir; a short name keeps the socket paths
    # under the ~107-byte unix limit.
    assert init_ray(num_cpus=2, temp_dir=str(tmp_path_factory.mktemp("ray")))
    yield ray
    ray.shutdown()


@pytest.fixture(scope="module")
def dev_tasks():
    return load_tasks(SPLITS_DIR / "dev.jsonl")[:24]


def _local(tasks, spec: WorkerSpec):
    worker = RolloutWorker(spec)  # built exactly as a Ray worker builds itself, but in this process
    try:
        return evaluate(tasks, worker.policy, worker.registry, spec.episode, worker.count_tokens)
    finally:
        worker.close()


@pytest.mark.parametrize("policy", ["oracle", "random"])
def test_two_workers_reproduce_the_local_run(ray_session, dev_tasks, policy):
    # Batches of 5: 24 episodes make 5 batches shared by 2 workers, so sessions, fault draws and the random
    # policy's per-batch generators must all follow the global episode index.
    spec = WorkerSpec(policy=PolicySpec(name=policy, seed=7, batch_size=5), faults=FAULTS, episode=EPISODE)
    local, local_agg = _local(dev_tasks, spec)
    seen = []
    with RayRolloutPool(spec, workers=2) as pool:
        remote, remote_agg = pool.evaluate(dev_tasks, on_result=seen.append)
        with pytest.raises(ValueError, match="do not fit one batch of 5"):  # a group of 6 repeats
            pool.run([dev_tasks[0]] * 6)
    assert [r.task_id for r in remote] == [t.id for t in dev_tasks]
    assert sorted(r.task_id for r in seen) == sorted(t.id for t in dev_tasks)
    assert [r.model_dump() for r in remote] == [r.model_dump() for r in local]
    assert remote_agg == local_agg
    if policy == "oracle":  # the faults were on and did bite: failed calls that the oracle retried
        assert any(e.kind == "call" and not e.ok for r in remote for e in r.events)


def test_pushed_weights_reach_every_worker(ray_session, tmp_path, dev_tasks):
    import torch

    from netgpt.core.model import load_tokenizer, save_model, select_trainable, tiny_model

    tokenizer = load_tokenizer()
    learner = tiny_model(tokenizer, seed=4)
    save_model(learner, tokenizer, tmp_path / "ckpt")
    spec = WorkerSpec(policy=PolicySpec(name=str(tmp_path / "ckpt"), batch_size=2, max_new_tokens=12),
                      faults=FAULTS, episode=EpisodeConfig(max_turns=2))
    ids = [tokenizer("<call agent=\"phy\" skill=\"tbs\">{}</call>").input_ids]
    with RayRolloutPool(spec, workers=2) as pool:
        learner = select_trainable(learner, "top_layers", top_layers=1)
        with torch.no_grad():  # stands in for an optimizer step on the trained layers
            for p in learner.parameters():
                if p.requires_grad:
                    p.add_(0.05 * torch.randn_like(p))
        expected = learner(input_ids=torch.tensor(ids)).logits.detach()
        assert not any(torch.allclose(w, expected, atol=1e-4) for w in pool.logits(ids))
        pool.push_weights({n: p for n, p in learner.named_parameters() if p.requires_grad})
        for logits in pool.logits(ids):
            torch.testing.assert_close(logits, expected, rtol=1e-5, atol=1e-5)
        remote, _ = pool.evaluate(dev_tasks[:4])
    # The workers now generate what the learner generates.
    from netgpt.core.llm import LLMPolicy

    worker = RolloutWorker(spec)
    worker.policy = LLMPolicy(learner, tokenizer, name="ckpt", batch_size=2, max_new_tokens=12)
    local, _ = evaluate(dev_tasks[:4], worker.policy, worker.registry, spec.episode, worker.count_tokens)
    worker.close()
    assert [r.trajectory.completion_ids for r in remote] == [r.trajectory.completion_ids for r in local]


def test_importing_netgpt_does_not_import_ray():
    code = "import sys, netgpt, netgpt.cli, netgpt.distributed.ray_backend; assert 'ray' not in sys.modules"
    subprocess.run([sys.executable, "-c", code], check=True)


def test_eval_cli_ray_backend_matches_local(ray_session, tmp_path):
    runner = CliRunner()
    for backend in ("local", "ray"):
        out = runner.invoke(app, ["eval", "--policy", "random", "--limit", "12", "--seed", "5", "--backend", backend,
                                  "--workers", "2", "--out", str(tmp_path / backend)])
        assert out.exit_code == 0, out.output
    local, ray = ((json.loads((tmp_path / b / "results.json").read_text()), load_episodes(tmp_path / b))
                  for b in ("local", "ray"))
    assert ray == local
    assert json.loads((tmp_path / "ray" / "run.json").read_text())["backend"] == "ray"


def test_agents_as_ray_actors_answer_like_in_process_agents(ray_session, dev_tasks):
    from netgpt.agents import default_agents
    from netgpt.core.policies import OraclePolicy
    from netgpt.distributed.ray_backend import RayAgent
    from netgpt.protocol import AgentRegistry, Request

    def registry(remote: bool) -> AgentRegistry:
        reg = AgentRegistry(FAULTS)
        for agent in default_agents():
            reg.register(RayAgent(agent.name) if remote and agent.name in ("traffic", "kpi") else agent)
        return reg

    runs = []
    for remote in (False, True):
        with registry(remote) as reg:
            results, _ = evaluate(dev_tasks, OraclePolicy(), reg, EPISODE, lambda text: len(text.split()))
            reg.open_session("s", dev_tasks[0].state)
            bad = reg.call(Request(id="r", agent="kpi", skill="detect_anomalies", args={"cell_id": "cell-99"},
                                   session="s"))
        runs.append(([r.model_dump() for r in results], bad.model_dump()))
    assert runs[1] == runs[0]
    assert runs[1][1]["error"]["code"] == "invalid_args"
    assert any(e["agent"] in ("traffic", "kpi") for r in runs[1][0] for e in r["events"])  # the actors were used


@pytest.mark.parametrize("train", ["top_layers", "lora"])
def test_rl_rollouts_on_ray_workers_equal_local_ones(ray_session, tmp_path, train):
    """`netgpt train --backend ray`: two steps (rollouts, update, weights pushed, rollouts again) and forks give the
    episodes a local trainer samples, and the learner ends with the same parameters."""
    assert_worker_rollouts_equal_local(tmp_path, "ray", train)
