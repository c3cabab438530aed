"""The core as the MCP tool `solve_network_task`: in memory and over streamable HTTP from `netgpt serve --mcp`."""

from __future__ import annotations

from collections.abc import AsyncIterator

import httpx
import pytest
from mcp import Client, MCPError
from mcp.client.streamable_http import streamable_http_client
from mcp.shared._httpx_utils import create_mcp_http_client
from serve_testkit import (
    PATHLOSS_QUESTION,
    TBS_ANSWER,
    TBS_QUESTION,
    TOKEN,
    dev_task,
    oracle_mcp_client,
    serving,
)

from netgpt import radio
from netgpt.core.policies import OraclePolicy
from netgpt.protocol import AgentRegistry
from netgpt.serve.mcp_tool import TOOL_NAME
from netgpt.tasks import score_answer

pytestmark = pytest.mark.anyio


@pytest.fixture
async def client(registry: AgentRegistry) -> AsyncIterator[Client]:
    async with oracle_mcp_client(registry) as connected:
        yield connected


async def test_one_tool_with_schemas(client: Client) -> None:
    [tool] = (await client.list_tools()).tools
    assert tool.name == TOOL_NAME and tool.annotations.read_only_hint
    assert tool.input_schema["required"] == ["question"] and "world_seed" in tool.input_schema["properties"]
    assert set(tool.output_schema["required"]) == {"answer", "trace"}


async def test_solves_free_text_and_bench_tasks(client: Client) -> None:
    tbs = await client.call_tool(TOOL_NAME, {"question": TBS_QUESTION})
    assert not tbs.is_error and tbs.content[0].text == TBS_ANSWER
    assert tbs.structured_content["answer"] == TBS_ANSWER
    assert [e["skill"] for e in tbs.structured_content["trace"]["events"] if e["kind"] == "call"] == ["mcs", "tbs"]
    task = dev_task("slice_allocation")
    solved = await client.call_tool(TOOL_NAME, {"question": task.question, "task": task.model_dump(mode="json")})
    assert score_answer(task.answer, solved.structured_content["answer"]) == 1.0


async def test_bad_calls(client: Client) -> None:
    refused = await client.call_tool(TOOL_NAME, {"question": "What is the meaning of life?"})
    assert refused.is_error and refused.structured_content["error"]["code"] == "unsupported_question"
    invalid = await client.call_tool(TOOL_NAME, {"question": TBS_QUESTION, "max_turns": 0})
    assert invalid.is_error
    with pytest.raises(MCPError, match="unknown tool"):
        await client.call_tool("solve", {"question": TBS_QUESTION})


async def test_over_streamable_http_with_the_token(registry: AgentRegistry) -> None:
    with serving(OraclePolicy(), registry, mcp=True) as url:
        async with httpx.AsyncClient() as anonymous:
            assert (await anonymous.post(f"{url}/mcp", json={})).status_code == 401
        async with create_mcp_http_client(headers={"authorization": f"Bearer {TOKEN}"}) as http:
            async with Client(streamable_http_client(f"{url}/mcp", http_client=http)) as remote:
                solved = await remote.call_tool(TOOL_NAME, {"question": PATHLOSS_QUESTION})
    expected = radio.pathloss("uma", 250, 3.5, los=False, h_bs_m=25, h_ut_m=1.5)
    assert solved.structured_content["answer"] == f"{expected:.2f} dB"
