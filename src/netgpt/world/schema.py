"""Typed, JSON-serialisable hidden state of one simulated xG network.

A :class:`World` is what the agents read (the *state* of a task). The core never sees it whole: the task's
observation is a filtered view of it. Everything here is plain data; the numbers derived from it (SINR,
forecasts, allocations, paths) are computed by :mod:`netgpt.radio` and :mod:`netgpt.analytics`.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

Scenario = Literal["uma", "umi", "rma", "inh"]
SliceType = Literal["embb", "urllc", "mmtc"]
KpiMetric = Literal["throughput_mbps", "prb_util_pct", "bler_pct", "latency_ms"]
KPI_METRICS: tuple[KpiMetric, ...] = ("throughput_mbps", "prb_util_pct", "bler_pct", "latency_ms")


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class Carrier(_Frozen):
    """The single co-channel NR carrier every cell of the world transmits on."""

    fr: Literal[1, 2]
    fc_ghz: float
    bandwidth_mhz: int
    scs_khz: int
    mu: int = Field(description="numerology: SCS = 15·2^mu kHz")
    n_rb: int = Field(description="TS 38.101-1/-2 Table 5.3.2-1 maximum transmission bandwidth configuration")


class Cell(_Frozen):
    id: str
    x_m: float
    y_m: float
    h_bs_m: float
    tx_power_dbm: float = Field(description="total transmit power over the carrier bandwidth")
    max_layers: int


class Link(_Frozen):
    """Large-scale propagation state between one UE and one cell (serving or interferer)."""

    cell_id: str
    d2d_m: float
    los: bool
    shadow_fading_db: float = Field(description="frozen log-normal shadow-fading draw (TR 38.901 sigma_SF)")


class UE(_Frozen):
    id: str
    x_m: float
    y_m: float
    h_ut_m: float
    serving_cell: str
    slice_id: str
    noise_figure_db: float
    links: list[Link] = Field(description="one entry per cell in the world, the serving cell among them")

    @model_validator(mode="after")
    def _one_link_per_cell_serving_included(self) -> UE:
        # the link budget reads the serving link by cell id: a missing or doubled one would give a silent wrong SINR
        ids = [link.cell_id for link in self.links]
        if len(set(ids)) != len(ids):
            raise ValueError(f"{self.id} has more than one link to the same cell: {ids}")
        if self.serving_cell not in ids:
            raise ValueError(f"{self.id}'s serving cell {self.serving_cell} is not among its links {ids}")
        return self


class SliceSla(_Frozen):
    min_throughput_mbps: float
    max_latency_ms: float


class Slice(_Frozen):
    id: str
    type: SliceType
    cell_id: str
    sla: SliceSla
    demand_mbps: float = Field(description="offered load; PRBs beyond it are wasted on this slice")
    mcs_index: int = Field(description="typical MCS (Table 5.1.3.1-1) of the slice's users")
    layers: int
    priority: int = Field(description="1 = highest; spare PRBs go to higher priority first")


class TopologyNode(_Frozen):
    id: str
    kind: Literal["gnb", "aggregation", "core"]


class TopologyLink(_Frozen):
    id: str
    a: str
    b: str
    latency_ms: float
    capacity_gbps: float


class Topology(_Frozen):
    nodes: list[TopologyNode]
    links: list[TopologyLink]


class CellSeries(_Frozen):
    """Hourly series of one cell; the last element is the current hour (``World.now_h``)."""

    cell_id: str
    load_pct: list[float] = Field(description="PRB load history, oldest first")
    kpi: dict[KpiMetric, list[float]] = Field(description="recent KPI window, oldest first")


class World(_Frozen):
    seed: int
    scenario: Scenario
    now_h: int = Field(description="hour index of 'now' counted from a Monday 00:00")
    carrier: Carrier
    cells: list[Cell]
    ues: list[UE]
    slices: list[Slice]
    topology: Topology
    series: list[CellSeries]

    def cell(self, cell_id: str) -> Cell:
        return _by_id(self.cells, cell_id, "cell")

    def ue(self, ue_id: str) -> UE:
        return _by_id(self.ues, ue_id, "UE")

    def slice(self, slice_id: str) -> Slice:
        return _by_id(self.slices, slice_id, "slice")

    def cell_series(self, cell_id: str) -> CellSeries:
        for s in self.series:
            if s.cell_id == cell_id:
                return s
        raise KeyError(f"no series for cell {cell_id!r}")


def _by_id(items, item_id: str, what: str):
    for item in items:
        if item.id == item_id:
            return item
    known = ", ".join(i.id for i in items)
    raise KeyError(f"unknown {what} {item_id!r} (known: {known})")
