"""A served question as a :class:`~netgpt.tasks.schema.Task` the episode runtime can run.

The runtime needs what a benchmark task carries: the hidden state the agents read (``state``), what the core
sees (``observation``), injected faults, and — for the scripted policies, which follow a plan instead of reading
text — the family, its parameters and the reference plan. A request supplies these as:

* a whole benchmark task (``netgpt.task``), used as is (its question replaced by the message);
* or a state (``netgpt.state``) or a seeded world (``netgpt.world_seed``); without either, the world of seed 0,
  which stateless skills (channel.pathloss, phy.tbs, phy.peak_rate, knowledge.*) never read;
* an observation from ``netgpt.observation`` or from a fenced ```json block in the message; by default only the
  world's clock, so the core is not shown cells the question is not about.

Free text phrased like a template of a stateless benchmark family (path loss, TBS, peak rate, spec facts) is
*recognised*: its parameters are read back from the text, so the scripted policies can plan for it too. The LLM
core needs none of this; it reads the text.
"""

from __future__ import annotations

import json
import re
import string
from functools import lru_cache
from typing import Any

from netgpt import radio
from netgpt.serve.schema import Recognised, TaskOptions
from netgpt.tasks.families import FAMILIES, SCENARIO_NAMES, PeakRate, Tbs, clock, family
from netgpt.tasks.params import FREE_TEXT, parse_params
from netgpt.tasks.schema import AnswerSpec, Observation, Task
from netgpt.world import World, WorldConfig, generate_world

DEFAULT_WORLD_SEED = 0
# Families whose answer does not depend on the world: a question about them needs no state.
RECOGNISED_FAMILIES = ("pathloss", "tbs", "peak_rate", "spec_fact")
# The task schema requires a reference answer; a served question has none (the reward is never reported).
NO_ANSWER = AnswerSpec(kind="id", label="")

_JSON_BLOCK = re.compile(r"```json[ \t]*\n(?P<body>.*?)```", re.DOTALL | re.IGNORECASE)
_NUMBER = r"-?\d+(?:\.\d+)?"
# Template fields that are words standing for parameters: rendered text (lower case) → the parameters.
_WORDS: dict[str, dict[str, dict[str, Any]]] = {
    "scenario_name": {v.lower(): {"scenario": k} for k, v in SCENARIO_NAMES.items()},
    "los_word": {"los": {"los": True}, "nlos": {"los": False}},
    "table_name": {v.lower(): {"mcs_table": k} for k, v in Tbs._TABLE_NAMES.items()},
    "modulation": {v.lower(): {"qm": k} for k, v in PeakRate._MODULATION.items()},
    "direction_name": {"downlink": {"variant": "dl"}, "uplink": {"variant": "ul"}},
}


class TaskError(ValueError):
    """The request cannot become a task (answered with a 400)."""

    def __init__(self, message: str, code: str) -> None:
        super().__init__(message)
        self.code = code


def _normalise(text: str) -> str:
    return " ".join(text.split()).rstrip("?.! ")


def _template_regex(template: str) -> re.Pattern[str]:
    parts = []
    for literal, field, _, _ in string.Formatter().parse(_normalise(template)):
        parts.append(r"\s+".join(re.escape(word) for word in literal.split(" ")))
        if field is None:
            continue
        if field in _WORDS:
            words = sorted(_WORDS[field], key=len, reverse=True)  # "nlos" before "los"
            parts.append(f"(?P<{field}>{'|'.join(re.escape(w) for w in words)})")
        else:
            parts.append(f"(?P<{field}>{_NUMBER})")
    return re.compile("".join(parts), re.IGNORECASE)


@lru_cache(maxsize=1)
def _patterns() -> list[tuple[str, str, str, re.Pattern[str]]]:
    """(family, variant, template id, regex) for every template of the recognised families, ood ones included."""
    out = []
    for name in RECOGNISED_FAMILIES:
        fam = family(name)
        for prefix, table in (("t", fam.templates), ("ood", fam.ood_templates)):
            for variant, templates in table.items():
                out += [(name, variant, f"{variant}/{prefix}{i}", _template_regex(t)) for i, t in enumerate(templates)]
    return out


def _complete(name: str, params: dict[str, Any]) -> None:
    """Parameters a template leaves implicit but the family's plan reads (spec facts: mu ↔ SCS)."""
    if name == "spec_fact":
        if "mu" in params and "scs_khz" not in params:
            params["scs_khz"] = 15 * 2 ** params["mu"]
        elif "scs_khz" in params and "mu" not in params:
            params["mu"] = radio.mu_for_scs(params["scs_khz"])


def recognise(question: str) -> Recognised | None:
    """The family and parameters of a question phrased like one of the stateless families' templates."""
    text = _normalise(question)
    for name, variant, template, pattern in _patterns():
        match = pattern.fullmatch(text)
        if match is None:
            continue
        params: dict[str, Any] = {"variant": variant}
        for field, value in match.groupdict().items():
            if field in _WORDS:
                params.update(_WORDS[field][value.lower()])
            else:
                params[field] = float(value) if "." in value else int(value)
        try:
            _complete(name, params)
            parse_params(name, params)
        except ValueError:  # e.g. an SCS that is no numerology, a fractional PRB count: not this template's question
            continue
        return Recognised(family=name, template=template, params=params)
    return None


@lru_cache(maxsize=64)
def seeded_world(seed: int) -> World:
    return generate_world(WorldConfig(seed=seed))


def split_message(text: str) -> tuple[str, Observation | None]:
    """(question, observation) of a user message: a fenced ```json block, if any, is the observation."""
    blocks = list(_JSON_BLOCK.finditer(text))
    if not blocks:
        return text.strip(), None
    if len(blocks) > 1:
        raise TaskError("at most one ```json observation block per message", "invalid_observation")
    try:
        observation = Observation.model_validate(json.loads(blocks[0]["body"]))
    except ValueError as exc:  # json.JSONDecodeError and pydantic.ValidationError are both ValueErrors
        raise TaskError(f"the ```json block is not an observation: {_first_line(exc)}", "invalid_observation") \
            from None
    return _JSON_BLOCK.sub("", text).strip(), observation


def _first_line(exc: Exception) -> str:
    return str(exc).splitlines()[0][:300]


def build_task(task_id: str, message: str, options: TaskOptions, *, needs_plan: bool) -> tuple[Task, Recognised | None]:
    """The task for one request. ``needs_plan``: the policy follows plans (scripted), so the question must be a
    benchmark task or be recognised."""
    question, observation = split_message(message)
    if not question:
        raise TaskError("the last user message holds no question", "empty_question")
    if observation is not None and options.observation is not None:
        raise TaskError("observation given twice (```json block and netgpt.observation)", "invalid_observation")
    observation = observation or options.observation
    if options.task is not None:
        # options.task was validated against its family's parameter model when the request was parsed (Task)
        if needs_plan and options.task.family not in FAMILIES:
            raise TaskError(f"netgpt.task.family: {options.task.family!r} is not a benchmark family, so this scripted "
                            "policy has no plan for it", "unsupported_question")
        update: dict[str, Any] = {"id": task_id, "question": question}
        if observation is not None:
            update["observation"] = observation
        if options.faults is not None:
            update["faults"] = options.faults
        task = options.task.model_copy(update=update)
        return task, Recognised(family=task.family, template=task.template, params=task.params.model_dump())

    world = options.state or seeded_world(options.world_seed if options.world_seed is not None else DEFAULT_WORLD_SEED)
    observation = observation or Observation(time=clock(world.now_h))
    recognised = recognise(question)
    plan = []
    if recognised is not None:
        try:
            params = parse_params(recognised.family, recognised.params)  # recognise() checked they parse
            plan = family(recognised.family).plan(world, params, observation)
        except (ValueError, KeyError) as exc:  # e.g. a bandwidth with no N_RB entry (RadioRangeError)
            if needs_plan:
                raise TaskError(f"recognised as {recognised.family}, but: {exc}", "unsupported_question") from None
            recognised = None
    if recognised is None and needs_plan:
        raise TaskError("this scripted policy only answers NetGPT-Bench tasks: pass netgpt.task, or phrase the "
                        f"question like a template of {', '.join(RECOGNISED_FAMILIES)}; an LLM policy reads any "
                        "text", "unsupported_question")
    # observability and difficulty are benchmark metadata the runtime does not read
    return Task(id=task_id, family=recognised.family if recognised else FREE_TEXT,
                template=recognised.template if recognised else FREE_TEXT, split="serve", question=question,
                params=recognised.params if recognised else {}, observability="low", observation=observation,
                state=world, answer=NO_ANSWER, reference_plan=plan, faults=options.faults or [],
                difficulty="easy"), recognised
