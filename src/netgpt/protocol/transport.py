"""The error every transport raises when it cannot reach an endpoint: its own module, so the HTTP and MCP clients
and the registry that uses them all import it from below rather than from each other."""

from __future__ import annotations

from netgpt.protocol.messages import Reply


class TransportError(RuntimeError):
    """An endpoint could not be reached, or answered nonsense, while connecting, handing over a session or calling.

    It is the infrastructure's failure, never an agent's answer: an episode that meets one is not the core's to be
    scored on (``finish_reason == "infra_error"``, see :mod:`netgpt.core.episode`). ``reply``, when an endpoint
    gives one, is the error reply a caller that does not tell transport failures apart gets instead (by default
    ``unavailable``)."""

    def __init__(self, message: str, reply: Reply | None = None) -> None:
        super().__init__(message)
        self.reply = reply
