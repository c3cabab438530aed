"""The process backend reproduces the local backend episode for episode, starts without torch for scripted
policies, and fails clearly when a worker cannot start or dies mid-run."""

import json
import subprocess
import sys

import pytest
from typer.testing import CliRunner

from netgpt.agents import AGENT_CLASSES
from netgpt.cli import app
from netgpt.core.episode import EpisodeConfig
from netgpt.distributed.processes import ProcessRolloutPool, WorkerDied
from netgpt.distributed.worker import PolicySpec, RolloutWorker, WorkerSpec
from netgpt.eval.harness import SPLITS_DIR, evaluate, load_episodes
from netgpt.protocol.config import builtin_faults
from netgpt.tasks import load_tasks

pytestmark = pytest.mark.slow  # subprocesses or Ray workers: `make test-fast` leaves it out

FAULTS = builtin_faults().model_copy(update={"seed": 3})
EPISODE = EpisodeConfig(max_turns=3)


@pytest.fixture(scope="module")
def dev_tasks():
    return load_tasks(SPLITS_DIR / "dev.jsonl")[:24]


@pytest.mark.parametrize("policy", ["oracle", "random"])
def test_two_processes_reproduce_the_local_run(dev_tasks, policy):
    # Batches of 5: 24 episodes make 5 batches shared by 2 processes, so sessions, fault draws and the random
    # policy's per-batch generators must all follow the global episode index.
    spec = WorkerSpec(policy=PolicySpec(name=policy, seed=7, batch_size=5), faults=FAULTS, episode=EPISODE)
    worker = RolloutWorker(spec)
    local, local_agg = evaluate(dev_tasks, worker.policy, worker.registry, spec.episode, worker.count_tokens)
    worker.close()
    seen = []
    with ProcessRolloutPool(spec, workers=2) as pool:
        assert (pool.policy_name, pool.batch_size) == (policy, 5)
        remote, remote_agg = pool.evaluate(dev_tasks, on_result=seen.append)
        with pytest.raises(ValueError, match="do not fit one batch of 5"):  # a group of 6 repeats
            pool.run([dev_tasks[0]] * 6)
    assert sorted(r.task_id for r in seen) == sorted(t.id for t in dev_tasks)
    assert [r.model_dump() for r in remote] == [r.model_dump() for r in local]
    assert remote_agg == local_agg
    if policy == "oracle":  # the faults were on and did bite: failed calls that the oracle retried
        assert any(e.kind == "call" and not e.ok for r in remote for e in r.events)


def test_an_llm_checkpoint_generates_the_same_tokens_in_worker_processes(tmp_path, dev_tasks):
    from netgpt.core.model import load_tokenizer, save_model, tiny_model

    tokenizer = load_tokenizer()
    save_model(tiny_model(tokenizer, seed=4), tokenizer, tmp_path / "ckpt")
    spec = WorkerSpec(policy=PolicySpec(name=str(tmp_path / "ckpt"), batch_size=2, max_new_tokens=12),
                      faults=FAULTS, episode=EpisodeConfig(max_turns=2))
    worker = RolloutWorker(spec)
    local, _ = evaluate(dev_tasks[:4], worker.policy, worker.registry, spec.episode, worker.count_tokens)
    worker.close()
    with ProcessRolloutPool(spec, workers=2, threads_per_worker=1) as pool:
        remote, _ = pool.evaluate(dev_tasks[:4])
    assert [r.trajectory.completion_ids for r in remote] == [r.trajectory.completion_ids for r in local]
    assert [r.reward for r in remote] == [r.reward for r in local]


def test_a_worker_killed_mid_run_fails_the_run_clearly(tmp_path, dev_tasks):
    agents = [{"kind": "local", "name": name} for name in AGENT_CLASSES if name != "traffic"]
    agents.append({"kind": "local", "name": "traffic", "factory": "crashing_agent:CrashingTraffic"})
    (tmp_path / "agents.json").write_text(json.dumps({"agents": agents}))
    spec = WorkerSpec(policy=PolicySpec(name="oracle", batch_size=4), agents=str(tmp_path / "agents.json"),
                      faults=FAULTS, episode=EPISODE)
    assert any(t.family == "load_forecast" for t in dev_tasks)  # the oracle will call traffic
    with ProcessRolloutPool(spec, workers=2) as pool:
        with pytest.raises(WorkerDied, match=r"died with \d+ of 24 episodes unfinished"):
            pool.evaluate(dev_tasks)


def test_a_worker_that_cannot_start_fails_the_pool_clearly(tmp_path):
    spec = WorkerSpec(policy=PolicySpec(name=str(tmp_path / "no-such-checkpoint")))
    with pytest.raises(WorkerDied, match="failed to start"):
        ProcessRolloutPool(spec, workers=2)


def test_a_scripted_worker_never_imports_torch():
    code = ("import sys; from netgpt.distributed.worker import PolicySpec, RolloutWorker, WorkerSpec; "
            "RolloutWorker(WorkerSpec(policy=PolicySpec(name='oracle'))); "
            "assert 'torch' not in sys.modules and 'transformers' not in sys.modules, 'heavy import'")
    subprocess.run([sys.executable, "-c", code], check=True)


def test_eval_cli_processes_backend_matches_local(tmp_path):
    runner = CliRunner()
    for backend in ("local", "processes"):
        out = runner.invoke(app, ["eval", "--policy", "random", "--limit", "12", "--seed", "5", "--backend", backend,
                                  "--workers", "2", "--out", str(tmp_path / backend)])
        assert out.exit_code == 0, out.output
    local, processes = ((json.loads((tmp_path / b / "results.json").read_text()), load_episodes(tmp_path / b))
                        for b in ("local", "processes"))
    assert processes == local
    run = json.loads((tmp_path / "processes" / "run.json").read_text())
    assert (run["backend"], run["workers"]) == ("processes", 2)
