from __future__ import annotations

from collections.abc import Iterator

import pytest

from netgpt.protocol import AgentRegistry
from netgpt.protocol.config import builtin_faults


@pytest.fixture(scope="module")
def registry() -> Iterator[AgentRegistry]:
    """The built-in agents in-process with the default (simulated) fault model, as `netgpt serve` runs them."""
    with AgentRegistry.from_config(None, faults=builtin_faults()) as reg:
        yield reg
