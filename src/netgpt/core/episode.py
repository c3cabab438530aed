"""The episode runtime: one task as a Gymnasium-style environment, and a batched loop driving many of them.

Data path of one episode::

    reset(task) → first user message
    loop: policy writes a turn → parse_turn → dispatch through the AgentRegistry (fault model, deadline)
          → the reply (or the parse issue) goes back to the core as a user turn
    until an answer, ``max_turns`` or the budget runs out → EpisodeResult (events, cost, reward terms)

With ``end_on_infra_error`` (evaluation, RL) a call whose transport failed (agent server refused, reset or gone;
see :class:`~netgpt.protocol.transport.TransportError`) ends the episode at once with ``finish_reason ==
"infra_error"``: it measures the infrastructure, not the core, so it is kept out of every score and re-run on
``--resume``. The agents' own failures, simulated ones included, stay replies the core must handle.

The token-level view (prompt ids, completion ids, env mask, log-probs) belongs to the policy that generated the
text; the runtime attaches it to the result as a :class:`Trajectory`.
"""

from __future__ import annotations

import hashlib
import json
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from netgpt.core.actions import Answer, Call, ParseIssue, parse_turn
from netgpt.core.prompt import render_issue, render_reply, system_prompt, task_message
from netgpt.protocol.messages import AgentCard, ErrorCode, Reply, Request
from netgpt.protocol.registry import AgentRegistry
from netgpt.protocol.transport import TransportError
from netgpt.reward import Budget, CallRecord, EpisodeCost, RewardTerms, RewardWeights, multi_objective_reward
from netgpt.tasks.schema import Task

FinishReason = Literal["answer", "max_turns", "budget", "infra_error"]


class EpisodeConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")
    max_turns: int = Field(4, ge=1)
    deadline_ms: float = Field(2000.0, gt=0, description="deadline of every agent request")
    budget: Budget = Field(default_factory=Budget)
    reward_weights: RewardWeights = Field(default_factory=RewardWeights)


class Event(BaseModel):
    """One turn of the episode as the reward and the reports see it."""

    turn: int
    kind: Literal["call", "answer", "issue"]
    text: str = Field(description="what the core wrote this turn")
    agent: str | None = None
    skill: str | None = None
    args: dict[str, Any] | None = None
    ok: bool | None = None
    result: dict[str, Any] | None = None
    error_code: str | None = None
    error: str | None = None
    latency_ms: float = 0.0
    bytes: int = 0
    cost: float = 0.0
    tokens: int = 0
    issues: list[ParseIssue] = Field(default_factory=list)
    reply: str | None = Field(None, description="what the environment answered (None after the final answer)")
    call_index: int | None = Field(None, description="this call's number among the episode's calls to its agent, "
                                                     "from 0 (injected faults are keyed by it); None when the call was "
                                                     "refused before it took one (unknown skill, invalid arguments)")


class Trajectory(BaseModel):
    """Token-level record of an episode, never re-tokenised: ``env_mask`` is 1 exactly on core-generated tokens.

    ``entropies`` is the entropy (nats) of the distribution each generated token was drawn from, 0.0 elsewhere.
    ``to_trl()`` gives TRL's ``rollout_func`` fields (prompt_ids, completion_ids, logprobs, env_mask)."""

    prompt_ids: list[int]
    completion_ids: list[int]
    env_mask: list[int]
    logprobs: list[float]
    entropies: list[float] = []

    def to_trl(self) -> dict[str, list]:
        return self.model_dump(exclude={"entropies"})


class EpisodeResult(BaseModel):
    task_id: str
    family: str
    policy: str
    answer: str | None
    finish_reason: FinishReason
    turns: int
    events: list[Event]
    cost: EpisodeCost
    reward: RewardTerms
    trajectory: Trajectory | None = None
    infra_error: str | None = Field(None, description="why the transport to an agent failed, in one line, when "
                                                      "finish_reason is infra_error (the reward terms are then 0 and "
                                                      "not the core's); None otherwise")


class StepResult(BaseModel):
    reply_text: str | None
    done: bool
    event: Event


class NetworkTaskEnv:
    """One episode of one task. ``reset`` opens the task's session on the registry; ``step`` consumes one turn.

    ``end_on_infra_error``: a failed transport ends the episode as ``infra_error`` instead of being answered to the
    core as ``unavailable`` (see the module docstring)."""

    def __init__(self, registry: AgentRegistry, config: EpisodeConfig, session_id: str,
                 count_tokens: Callable[[str], int], end_on_infra_error: bool = False):
        self.registry = registry
        self.config = config
        self.session_id = session_id
        self.count_tokens = count_tokens
        self.end_on_infra_error = end_on_infra_error
        self.cards: dict[str, AgentCard] = {c.name: c for c in registry.cards()}

    def reset(self, task: Task, agent_calls: Mapping[str, int] | None = None) -> str:
        """Open the task's session; ``agent_calls`` counts the calls each agent took in turns replayed by a fork."""
        self.task = task
        self.events: list[Event] = []
        self.cost = EpisodeCost()
        self.answer: str | None = None
        self.finish_reason: FinishReason | None = None
        self.infra_error: str | None = None
        self.registry.open_session(self.session_id, task.state, task.faults, calls=agent_calls)
        return task_message(task)

    def restore(self, task: Task, events: Sequence[Event]) -> str:
        """Start a fork of an episode after its first ``len(events)`` turns: those turns count (cost, reward) as if
        this episode had taken them, and the next turn is the fork's own. Used to branch partial rollouts.

        The session starts with the agents' call counts of those turns, so a fault injected on an agent's first call
        does not fire again on the fork's retry."""
        first = self.reset(task, agent_calls=Counter(e.agent for e in events if e.call_index is not None))
        for event in events:
            if event.kind == "answer":
                raise ValueError("cannot fork an episode after its final answer")
            self.events.append(event.model_copy(deep=True))
            self.cost.tokens += event.tokens
            self.cost.latency_ms += event.latency_ms
            self.cost.bytes += event.bytes
        return first

    @property
    def done(self) -> bool:
        return self.finish_reason is not None

    def step(self, text: str, tokens: int | None = None, truncated: bool = False) -> StepResult:
        if self.done:
            raise RuntimeError("step() after the episode ended; call reset()")
        turn = len(self.events)
        tokens = self.count_tokens(text) if tokens is None else tokens
        self.cost.tokens += tokens
        parsed = parse_turn(text, self.cards, truncated)
        if isinstance(parsed.action, Answer):
            event = Event(turn=turn, kind="answer", text=text, tokens=tokens, issues=parsed.issues)
            self.answer = parsed.action.text
            self.finish_reason = "answer"
            reply_text = None
        elif isinstance(parsed.action, Call):
            event, reply_text = self._dispatch(turn, text, tokens, parsed.action, parsed.issues)
        else:
            issue = parsed.issues[-1]
            event = Event(turn=turn, kind="issue", text=text, tokens=tokens, issues=parsed.issues)
            reply_text = render_issue(issue.kind, issue.message)
        event.reply = reply_text
        self.events.append(event)
        if not self.done:
            if len(self.events) >= self.config.max_turns:
                self.finish_reason = "max_turns"
            elif self._over_budget():
                self.finish_reason = "budget"
        return StepResult(reply_text=None if self.done else reply_text, done=self.done, event=event)

    def _dispatch(self, turn: int, text: str, tokens: int, call: Call, issues: list[ParseIssue]):
        request = Request(id=f"{self.session_id}-{turn}", agent=call.agent, skill=call.skill, args=call.args,
                          session=self.session_id, deadline_ms=self.config.deadline_ms)
        before = self.registry.calls_made(self.session_id).get(call.agent, 0)
        try:
            reply: Reply = self.registry.call(request, raise_transport_errors=self.end_on_infra_error)
        except TransportError as exc:
            self.infra_error = " ".join(str(exc).split()) or type(exc).__name__
            self.finish_reason = "infra_error"
            event = Event(turn=turn, kind="call", text=text, agent=call.agent, skill=call.skill, args=call.args,
                          ok=False, error_code=ErrorCode.UNAVAILABLE.value, error=self.infra_error, tokens=tokens,
                          issues=issues, call_index=before)
            return event, None
        counted = self.registry.calls_made(self.session_id).get(call.agent, 0) > before
        self.cost.latency_ms += reply.latency_ms
        self.cost.bytes += reply.bytes_sent + reply.bytes_received
        event = Event(turn=turn, kind="call", text=text, agent=call.agent, skill=call.skill, args=call.args,
                      ok=reply.ok, result=reply.result, error_code=reply.error.code if reply.error else None,
                      error=reply.error.message if reply.error else None, latency_ms=reply.latency_ms,
                      bytes=reply.bytes_sent + reply.bytes_received, cost=reply.cost, tokens=tokens, issues=issues,
                      call_index=before if counted else None)
        return event, render_reply(reply)

    def _over_budget(self) -> bool:
        b = self.config.budget
        return self.cost.latency_ms > b.latency_ms or self.cost.bytes > b.bytes or self.cost.tokens > b.tokens

    def result(self, policy: str, trajectory: Trajectory | None = None) -> EpisodeResult:
        """Score the finished episode and release its session. An ``infra_error`` episode is not scored: its
        reward terms are all 0, and :attr:`EpisodeResult.infra_error` says why."""
        self.registry.close_session(self.session_id)
        if self.finish_reason == "infra_error":
            reward = RewardTerms(quality=0.0, coordination=0.0, resource=0.0, total=0.0)
        else:
            calls = [_call_record(e) for e in self.events if e.kind != "answer"]
            reward = multi_objective_reward(self.task, self.answer, calls, self.cost,
                                            ran_out_of_turns=self.finish_reason == "max_turns",
                                            weights=self.config.reward_weights, budget=self.config.budget)
        return EpisodeResult(task_id=self.task.id, family=self.task.family, policy=policy, answer=self.answer,
                             finish_reason=self.finish_reason or "max_turns", turns=len(self.events),
                             events=self.events, cost=self.cost, reward=reward, trajectory=trajectory,
                             infra_error=self.infra_error)


_INVALID_CODES = {"invalid_args", "unknown_agent", "unknown_skill"}


def _call_record(event: Event) -> CallRecord:
    if event.kind == "issue":
        return CallRecord(agent=None, skill=None, outcome="invalid")
    outcome = "ok" if event.ok else ("invalid" if event.error_code in _INVALID_CODES else "failed")
    args_key = json.dumps(event.args, sort_keys=True)
    return CallRecord(agent=event.agent, skill=event.skill, args_key=args_key, outcome=outcome)


def session_seed(seed: int, session: str) -> int:
    """A sampling policy's seed for one episode: from the run's seed and the episode's session name, so the draws do
    not depend on the batch size, the batch an episode lands in, or the worker that runs it."""
    return int.from_bytes(hashlib.blake2b(f"{seed}/{session}".encode(), digest_size=8).digest(), "little")


class Policy:
    """Writes the core's turns for a batch of episodes.

    ``begin`` receives the system prompt and each episode's first user message; ``act`` returns one turn per
    listed episode; ``observe`` hands back what the environment replied. Scripted policies return plain text; the
    LLM policy also returns token counts and keeps the token-level trajectory.
    """

    name: str = "policy"
    batch_size: int = 64

    def begin(self, system: str, tasks: Sequence[Task], first_messages: Sequence[str],
              resume: Sequence[Trajectory | None] | None = None, sessions: Sequence[str] | None = None) -> None:
        """``resume[i]``, when given, holds the tokens episode ``i`` already has (a fork; token policies only).
        ``sessions[i]`` names episode ``i`` (stable across batching and workers; a sampling policy seeds from it)."""
        raise NotImplementedError

    def act(self, indices: Sequence[int]) -> list[tuple[str, int | None, bool]]:
        """(text, generated token count or None, truncated) per episode index."""
        raise NotImplementedError

    def observe(self, index: int, reply_text: str) -> None:
        pass

    def trajectory(self, index: int) -> Trajectory | None:
        return None


class Fork(BaseModel):
    """Where a forked episode starts: its parent's first turns and the tokens of those turns."""

    events: list[Event]
    trajectory: Trajectory


def run_episodes(tasks: Sequence[Task], policy: Policy, registry: AgentRegistry, config: EpisodeConfig,
                 count_tokens: Callable[[str], int], on_result: Callable[[EpisodeResult], None] = lambda r: None,
                 session_prefix: str = "ep", forks: Sequence[Fork | None] | None = None,
                 end_on_infra_error: bool = False) -> list[EpisodeResult]:
    """Run every task to completion, ``policy.batch_size`` episodes at a time; episodes at different turns
    advance together (one policy call per turn of the whole batch). ``forks[i]``, when given, makes episode ``i``
    continue from a point inside another episode instead of starting fresh (the policy must support ``resume``).
    Sessions are named after the task (and its repeat number, for groups of rollouts), never its position, so an
    episode's fault draws do not depend on which other tasks share the run, their order, or the worker it runs on.
    ``end_on_infra_error`` ends an episode whose agent transport failed as ``infra_error`` (see the module docstring;
    measurements set it, a deployed core answering users does not)."""
    system = system_prompt(registry.cards())
    repeats: Counter[str] = Counter()
    sessions = []
    for task in tasks:
        sessions.append(f"{session_prefix}-{task.id}-{repeats[task.id]}")
        repeats[task.id] += 1
    results: list[EpisodeResult] = []
    for start in range(0, len(tasks), policy.batch_size):
        batch = tasks[start:start + policy.batch_size]
        batch_sessions = sessions[start:start + len(batch)]
        envs = [NetworkTaskEnv(registry, config, session, count_tokens, end_on_infra_error)
                for session in batch_sessions]
        if forks is None:
            first = [env.reset(task) for env, task in zip(envs, batch)]
            policy.begin(system, batch, first, sessions=batch_sessions)
        else:
            batch_forks = forks[start:start + policy.batch_size]
            first = [env.restore(task, fork.events) if fork else env.reset(task)
                     for env, task, fork in zip(envs, batch, batch_forks)]
            policy.begin(system, batch, first, resume=[fork.trajectory if fork else None for fork in batch_forks],
                         sessions=batch_sessions)
        active = list(range(len(batch)))
        while active:
            turns = policy.act(active)
            still = []
            for index, (text, tokens, truncated) in zip(active, turns):
                step = envs[index].step(text, tokens, truncated)
                if step.done:
                    continue
                policy.observe(index, step.reply_text)
                still.append(index)
            active = still
        for index, env in enumerate(envs):
            result = env.result(policy.name, policy.trajectory(index))
            results.append(result)
            on_result(result)
    return results
