from __future__ import annotations

from collections.abc import Iterator

import pytest
from protocol_testkit import TOKEN, ProbeAgent, uvicorn_thread, world

from netgpt.protocol import AgentRegistry, FaultConfig
from netgpt.world import World


@pytest.fixture(scope="session")
def state() -> World:
    return world()


@pytest.fixture
def registry() -> Iterator[AgentRegistry]:
    """The probe agent in-process, with the default (simulated) fault model."""
    with AgentRegistry() as reg:
        reg.register(ProbeAgent())
        yield reg


@pytest.fixture(scope="module")
def server() -> Iterator[tuple[str, AgentRegistry]]:
    """An agent server on loopback hosting the probe agent, with a token and a 64 KiB body limit."""
    from netgpt.protocol.http_server import create_app

    hosted = AgentRegistry(FaultConfig(simulate=False), max_sessions=64, offload_local=True)
    hosted.register(ProbeAgent())
    with uvicorn_thread(create_app(hosted, token=TOKEN, max_body_bytes=64 * 1024)) as url:
        yield url, hosted
    hosted.close()
