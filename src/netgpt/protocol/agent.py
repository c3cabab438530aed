"""The contract every network agent implements, whatever transport carries it."""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import Any

from netgpt.protocol.messages import AgentCard, ErrorCode
from netgpt.world import World


class AgentError(Exception):
    """A typed failure an agent reports; transports turn it into an error :class:`Reply`."""

    def __init__(self, code: ErrorCode, message: str):
        super().__init__(message)
        self.code = code
        self.message = message


class Agent(ABC):
    """A domain agent: a card describing its skills, and a pure handler.

    ``handle`` receives arguments already validated against the skill's ``args_schema`` and the hidden state of
    the caller's session (``None`` when the request has no session). It returns a JSON-serialisable dict
    matching the skill's ``result_schema`` or raises :class:`AgentError` (``invalid_args`` for arguments that are
    well-formed but meaningless, e.g. an unknown cell id). Any other exception is reported as ``internal``.
    """

    card: AgentCard

    @property
    def name(self) -> str:
        return self.card.name

    @abstractmethod
    def handle(self, skill: str, args: dict[str, Any], state: World | None) -> dict[str, Any]: ...
