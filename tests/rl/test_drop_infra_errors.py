"""RL never trains on an infrastructure failure: a group any of whose rollouts met one is dropped whole."""

from pathlib import Path

from loopback import uvicorn_thread

from netgpt.agents import default_agents
from netgpt.core.episode import EpisodeConfig
from netgpt.core.policies import AlwaysPolicy
from netgpt.protocol import AgentRegistry, FaultConfig
from netgpt.protocol.http_client import HttpAgentClient
from netgpt.protocol.http_server import create_app
from netgpt.reward import RewardTerms
from netgpt.rl.config import BranchingConfig
from netgpt.rl.rollout import Rollout, collect_rollouts, drop_infra_errors, local_runner
from netgpt.tasks import load_tasks

DEV = {t.id: t for t in load_tasks(Path(__file__).resolve().parents[2] / "data" / "bench" / "dev.jsonl")[:12]}
PHY_TASK, CHANNEL_TASK = DEV["dev-00003"], DEV["dev-00001"]  # peak_rate calls phy; pathloss calls channel only
ZERO = RewardTerms(quality=0.0, coordination=0.0, resource=0.0, total=0.0)


def _registry_with_phy_behind_a_dead_server() -> AgentRegistry:
    """Every built-in agent in-process except ``phy``, whose agent server is gone by the time episodes run."""
    hosted = AgentRegistry(FaultConfig(simulate=False), offload_local=True)
    registry = AgentRegistry(FaultConfig(simulate=False))
    for agent in default_agents():
        (hosted if agent.name == "phy" else registry).register(agent)
    with uvicorn_thread(create_app(hosted, mcp=False)) as url:
        registry.add_endpoint(HttpAgentClient(url))
    hosted.close()
    return registry


def test_collect_rollouts_drops_the_groups_that_met_a_dead_agent_server():
    with _registry_with_phy_behind_a_dead_server() as registry:
        run = local_runner(AlwaysPolicy(), registry, EpisodeConfig(), lambda s: len(s) // 4)
        rollouts, _ = collect_rollouts([PHY_TASK, CHANNEL_TASK], run, 2, BranchingConfig(enabled=False), "rl0")
    assert [(r.group, r.result.task_id) for r in rollouts] == [(1, CHANNEL_TASK.id)] * 2
    assert all(r.result.finish_reason == "answer" for r in rollouts)


def test_one_failed_rollout_drops_its_whole_group_and_forks_keep_their_parents():
    with AgentRegistry(FaultConfig(simulate=False)) as registry:
        for agent in default_agents():
            registry.register(agent)
        run = local_runner(AlwaysPolicy(), registry, EpisodeConfig(), lambda s: len(s) // 4)
        results = run([PHY_TASK, PHY_TASK, CHANNEL_TASK, CHANNEL_TASK, PHY_TASK], "t")
    failed = results[1].model_copy(update={"finish_reason": "infra_error", "infra_error": "refused", "reward": ZERO})
    rollouts = [Rollout(group=0, result=results[0]), Rollout(group=0, result=failed),
                Rollout(group=1, result=results[2]), Rollout(group=1, result=results[3]),
                Rollout(group=2, result=results[4]),
                Rollout(group=1, result=results[3], parent=3, fork_turn=1),
                Rollout(group=2, result=results[4], parent=4, fork_turn=1)]
    kept = drop_infra_errors(rollouts)
    assert [r.group for r in kept] == [1, 1, 2, 1, 2]
    assert [r.parent for r in kept] == [None, None, None, 1, 2]
    assert all(kept[r.parent].result == r.result for r in kept if r.parent is not None)
    assert drop_infra_errors(rollouts[2:5]) == rollouts[2:5]
