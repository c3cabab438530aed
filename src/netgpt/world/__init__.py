"""Seeded xG network worlds: the hidden state that agents read and tasks are computed from."""

from netgpt.world.generator import PROFILES, WorldConfig, generate_world
from netgpt.world.schema import (
    KPI_METRICS,
    UE,
    Carrier,
    Cell,
    CellSeries,
    Link,
    Slice,
    SliceSla,
    Topology,
    TopologyLink,
    TopologyNode,
    World,
)

__all__ = [
    "KPI_METRICS", "PROFILES", "UE", "Carrier", "Cell", "CellSeries", "Link", "Slice", "SliceSla", "Topology",
    "TopologyLink", "TopologyNode", "World", "WorldConfig", "generate_world",
]
