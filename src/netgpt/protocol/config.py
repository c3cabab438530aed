"""Which agents the core can reach, as a YAML file (``configs/agents.yaml``) validated by pydantic.

Three kinds of entry: ``local`` (an agent built in this process), ``http`` (an agent server, see
:mod:`netgpt.protocol.http_server`) and ``mcp`` (an external MCP server whose tools become one agent's skills).
Tokens come from the file or, better, from an environment variable named by ``token_env``. Only files the
operator controls are read here; ``factory`` import paths are never taken from requests.
"""

from __future__ import annotations

import importlib
import os
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Discriminator, Field, Tag, model_validator

from netgpt.protocol.agent import Agent
from netgpt.protocol.faults import AgentFaultConfig, FaultConfig
from netgpt.protocol.messages import CostModel, LatencyModel

if TYPE_CHECKING:
    from netgpt.protocol.http_client import HttpAgentClient
    from netgpt.protocol.mcp_client import McpAgentClient

BUILTIN_AGENTS = ("channel", "channel_lite", "phy", "knowledge", "traffic", "traffic_lite", "ran", "topology", "kpi")
"""The agents of ``netgpt.agents``, served when no config is given."""


class _Entry(BaseModel):
    model_config = ConfigDict(extra="forbid")


def _token(token: str | None, token_env: str | None) -> str | None:
    if token_env is None:
        return token
    value = os.environ.get(token_env)
    if not value:
        raise ValueError(f"environment variable {token_env} (token_env) is not set")
    return value


def resolve_factory(path: str) -> Any:
    """``'package.module:attr.attr'`` → the object (an :class:`Agent` subclass or a function returning one)."""
    module_name, _, attr = path.partition(":")
    if not module_name or not attr:
        raise ValueError(f"factory {path!r} must look like 'package.module:callable'")
    obj: Any = importlib.import_module(module_name)
    for part in attr.split("."):
        obj = getattr(obj, part)
    return obj


class LocalAgentEntry(_Entry):
    """An agent in this process: ``netgpt.agents.build_agent(name, **options)`` or ``factory(**options)``."""

    kind: Literal["local"] = "local"
    name: str | None = None
    factory: str | None = Field(None, description="'module:callable' building the agent (for your own agents)")
    options: dict[str, Any] = Field(default_factory=dict)

    @model_validator(mode="after")
    def _named(self) -> LocalAgentEntry:
        if self.name is None and self.factory is None:
            raise ValueError("a local agent needs a name, a factory, or both")
        return self

    def build(self) -> Agent:
        if self.factory is not None:
            agent = resolve_factory(self.factory)(**self.options)
        else:
            try:
                from netgpt.agents import build_agent  # type: ignore[import-not-found]
            except ImportError as exc:
                raise RuntimeError(f"cannot build agent {self.name!r}: netgpt.agents.build_agent is not "
                                   f"available ({exc})") from exc
            agent = build_agent(self.name, **self.options)
        if not isinstance(agent, Agent):
            raise TypeError(f"{self.factory or self.name!r} built {type(agent).__name__}, not an Agent")
        if self.name is not None and agent.name != self.name:
            raise ValueError(f"factory {self.factory!r} built agent {agent.name!r}, config expects {self.name!r}")
        return agent


class HttpAgentEntry(_Entry):
    """An agent server reached over HTTP; ``only`` picks some of its agents (default: all)."""

    kind: Literal["http"]
    url: str
    token: str | None = None
    token_env: str | None = Field(None, description="environment variable holding the bearer token")
    only: list[str] | None = None
    timeout_s: float = Field(10.0, gt=0, description="bound on card and session requests")

    def build(self) -> HttpAgentClient:
        from netgpt.protocol.http_client import HttpAgentClient

        return HttpAgentClient(self.url, _token(self.token, self.token_env), self.timeout_s)


class McpAgentEntry(_Entry):
    """An external MCP server as one agent named ``name``: launched by ``command`` (stdio) or at ``url``."""

    kind: Literal["mcp"]
    name: str
    command: list[str] | None = Field(None, min_length=1)
    env: dict[str, str] | None = None
    cwd: str | None = None
    url: str | None = Field(None, description="streamable HTTP endpoint, e.g. http://host:port/mcp")
    token: str | None = None
    token_env: str | None = None
    description: str | None = None
    cost: CostModel = Field(default_factory=lambda: CostModel(latency=LatencyModel(median_ms=100.0)))
    timeout_s: float = Field(30.0, gt=0, description="bound on connecting and listing tools")

    @model_validator(mode="after")
    def _one_target(self) -> McpAgentEntry:
        if (self.command is None) == (self.url is None):
            raise ValueError("an mcp agent needs exactly one of command (stdio) or url (streamable HTTP)")
        return self

    def build(self) -> McpAgentClient:
        from mcp import StdioServerParameters

        from netgpt.protocol.mcp_client import McpAgentClient

        target: StdioServerParameters | str
        if self.command is not None:
            target = StdioServerParameters(command=self.command[0], args=self.command[1:], env=self.env,
                                           cwd=self.cwd)
        else:
            target = self.url  # type: ignore[assignment]  # the validator guarantees one of the two
        return McpAgentClient(self.name, target, token=_token(self.token, self.token_env),
                              description=self.description, cost=self.cost, timeout=self.timeout_s)


def _entry_kind(value: Any) -> str:
    return value.get("kind", "local") if isinstance(value, dict) else getattr(value, "kind", "local")


AgentEntry = Annotated[
    Annotated[LocalAgentEntry, Tag("local")] | Annotated[HttpAgentEntry, Tag("http")]
    | Annotated[McpAgentEntry, Tag("mcp")],
    Discriminator(_entry_kind),
]


class RegistryConfig(_Entry):
    agents: list[AgentEntry]
    faults: FaultConfig | str | None = Field(None, description="fault model, inline or a YAML path "
                                                               "relative to this file")

    def fault_config(self) -> FaultConfig | None:
        return FaultConfig.load(self.faults) if isinstance(self.faults, str) else self.faults


def builtin_faults() -> FaultConfig:
    """The benchmark's fault model (what ``configs/faults.yaml`` holds): card defaults, the default link,
    and the cheap SINR estimator's 1 dB Gaussian error."""
    return FaultConfig(agents={"channel_lite": AgentFaultConfig(noise={"sinr_db": 1.0})})


def default_config() -> RegistryConfig:
    """The built-in agents in-process, with :func:`builtin_faults`."""
    return RegistryConfig(agents=[LocalAgentEntry(name=name) for name in BUILTIN_AGENTS], faults=builtin_faults())


def load_config(source: RegistryConfig | str | Path | None = None) -> RegistryConfig:
    """A config object as is, a YAML file (``yaml.safe_load``), or the built-in agents when ``None``."""
    if source is None:
        return default_config()
    if isinstance(source, RegistryConfig):
        return source
    path = Path(source)
    config = RegistryConfig.model_validate(yaml.safe_load(path.read_text()) or {})
    if isinstance(config.faults, str):
        config = config.model_copy(update={"faults": FaultConfig.load(path.parent / config.faults)})
    return config
