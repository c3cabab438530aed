"""NetGPT-Bench: task schema, families, generation, scoring and task files."""

from netgpt.tasks.families import FAMILIES, Family, family
from netgpt.tasks.generate import generate_split, make_task, training_stream
from netgpt.tasks.io import CheckReport, TaskFileError, check_file, load_tasks, verify_task
from netgpt.tasks.params import FAMILY_PARAMS, FamilyParams, UnknownFamilyError, parse_params
from netgpt.tasks.schema import AnswerSpec, CachedReport, InjectedFault, Observation, PlannedCall, Task
from netgpt.tasks.scoring import score_answer

__all__ = [
    "FAMILIES", "FAMILY_PARAMS", "AnswerSpec", "CachedReport", "CheckReport", "Family", "FamilyParams",
    "InjectedFault", "Observation", "PlannedCall", "Task", "TaskFileError", "UnknownFamilyError", "check_file",
    "family", "generate_split", "load_tasks", "make_task", "parse_params", "score_answer", "training_stream",
    "verify_task",
]
