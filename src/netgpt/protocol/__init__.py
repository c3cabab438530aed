"""The agentic communication protocol: cards, messages, dispatch, faults, the registry and its transports.

Light imports only here; the HTTP and MCP transports are imported from their modules
(``netgpt.protocol.http_server``, ``http_client``, ``mcp_server``, ``mcp_client``) when needed.
"""

from netgpt.protocol.agent import Agent, AgentError
from netgpt.protocol.dispatch import LocalDispatcher, reply_bytes, request_bytes
from netgpt.protocol.faults import AgentFaultConfig, FaultConfig, FaultInjection, FaultModel, LinkConfig
from netgpt.protocol.messages import (
    AgentCard,
    CostModel,
    ErrorCode,
    ErrorInfo,
    LatencyModel,
    Reply,
    Request,
    Skill,
)
from netgpt.protocol.registry import AgentRegistry, Endpoint, LocalEndpoint
from netgpt.protocol.transport import TransportError

__all__ = [
    "Agent", "AgentCard", "AgentError", "AgentFaultConfig", "AgentRegistry", "CostModel", "Endpoint", "ErrorCode",
    "ErrorInfo", "FaultConfig", "FaultInjection", "FaultModel", "LatencyModel", "LinkConfig", "LocalDispatcher",
    "LocalEndpoint", "Reply", "Request", "Skill", "TransportError", "reply_bytes", "request_bytes",
]
