"""The parameters of each task family, as typed models.

A task's ``params`` is one of these models; on disk it is the model's JSON object, whose keys come in field order
(the order the generator has always written them, so task files stay byte-identical). :class:`~netgpt.tasks.schema.Task`
validates ``params`` against the model of its ``family`` (:func:`parse_params`), so a task whose parameters do not
fit its family is refused where it is read, naming the field, instead of failing later inside a family method.
Units are in the field names (``_m``, ``_ghz``, ``_db``, ``_mbps``, ``_h``) and in the descriptions.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, TypeAdapter, model_validator

from netgpt.world.schema import KpiMetric

# A served question that no family recognised (``netgpt serve``): a task with no parameters.
FREE_TEXT = "free_text"

Scenario = Literal["uma", "umi", "rma", "inh"]
McsTable = Literal[1, 2]


class FamilyParams(BaseModel):
    """Base of every family's parameters: immutable, and unknown fields are an error."""

    model_config = ConfigDict(frozen=True, extra="forbid")



class ObservationLookupParams(FamilyParams):
    variant: Literal["kpi"] = Field(description="the latest value of one KPI")
    cell_id: str = Field(description="the cell whose KPI is asked")
    metric: KpiMetric = Field(description="the KPI asked; its unit is in its name (Mbps, %, %, ms)")


class PathlossParams(FamilyParams):
    variant: Literal["pl"] = Field(description="one link's path loss")
    scenario: Scenario = Field(description="TR 38.901 scenario")
    d2d_m: float = Field(gt=0, description="2D distance between BS and UT, m")
    fc_ghz: float = Field(gt=0, description="carrier frequency, GHz")
    los: bool = Field(description="line of sight (false: NLOS)")
    h_bs_m: float = Field(gt=0, description="BS antenna height, m")
    h_ut_m: float = Field(gt=0, description="UT antenna height, m")


class LinkBudgetParams(FamilyParams):
    variant: Literal["sinr"] = Field(description="a UE's current downlink SINR")
    ue_id: str = Field(description="the UE whose downlink SINR is asked")
    precision_db: Literal[0.5, 3.0] = Field(description="the precision asked, dB: it is the answer's tolerance, and "
                                                        "below 1 dB only the precise channel agent is adequate")


class PeakRateParams(FamilyParams):
    variant: Literal["dl", "ul"] = Field(description="the direction: downlink or uplink")
    fr: Literal[1, 2] = Field(description="frequency range")
    scs_khz: int = Field(gt=0, description="subcarrier spacing, kHz")
    bandwidth_mhz: int = Field(gt=0, description="channel bandwidth, MHz")
    layers: int = Field(ge=1, le=8, description="MIMO layers")
    qm: Literal[1, 2, 4, 6, 8] = Field(description="modulation order Q_m, bits per symbol (1: π/2-BPSK)")
    scaling: float = Field(gt=0, le=1, description="TS 38.306 scaling factor f")


class TbsParams(FamilyParams):
    variant: Literal["tbs"] = Field(description="one transport block's size")
    mcs_table: McsTable = Field(description="TS 38.214 MCS table: 1 = Table 5.1.3.1-1 (64QAM), 2 = -2 (256QAM)")
    mcs_index: int = Field(ge=0, le=28, description="I_MCS (at most 27 in table 2)")
    n_prb: int = Field(ge=1, le=275, description="allocated PRBs")
    n_symb: int = Field(ge=1, le=14, description="PDSCH symbols in the slot")
    n_dmrs_per_prb: int = Field(ge=0, description="DMRS resource elements per PRB")
    n_oh_per_prb: int = Field(ge=0, description="xOverhead resource elements per PRB")
    layers: int = Field(ge=1, le=8, description="MIMO layers")

    @model_validator(mode="after")
    def _index_in_table(self) -> TbsParams:
        _check_mcs(self.mcs_table, self.mcs_index)
        return self


class LoadForecastParams(FamilyParams):
    variant: Literal["level"] = Field(description="the mean load at the horizon")
    cell_id: str = Field(description="the cell whose PRB load is forecast")
    horizon_h: int = Field(ge=1, le=168, description="how far ahead, hours")


class SliceAllocationParams(FamilyParams):
    variant: Literal["prbs"] = Field(description="one slice's share of the cell's PRBs")
    cell_id: str = Field(description="the cell whose PRBs are split across its slices")
    slice_id: str = Field(description="the slice whose share is asked, '<cell>/<type>'")


class PathLatencyParams(FamilyParams):
    variant: Literal["latency", "failover"] = Field(description="failover: the path avoids ``failed_link``")
    src: str = Field(description="the gNB the path starts at")
    dst: str = Field(description="the core node the path ends at")
    failed_link: str | None = Field(description="the link that is down (failover only)")

    @model_validator(mode="after")
    def _failed_link_iff_failover(self) -> PathLatencyParams:
        if (self.variant == "failover") != (self.failed_link is not None):
            raise ValueError("failed_link is given exactly when the variant is failover")
        return self


class KpiAnomalyParams(FamilyParams):
    variant: Literal["which_cell", "which_metric"] = Field(
        description="which_cell names the metric and asks for the cell; which_metric the other way round")
    metric: KpiMetric | None = Field(description="the KPI with the anomaly (which_cell only)")
    cell_id: str | None = Field(description="the cell with the anomaly (which_metric only)")

    @model_validator(mode="after")
    def _one_clue(self) -> KpiAnomalyParams:
        if self.variant == "which_cell" and (self.metric is None or self.cell_id is not None):
            raise ValueError("which_cell gives the metric and no cell_id")
        if self.variant == "which_metric" and (self.cell_id is None or self.metric is not None):
            raise ValueError("which_metric gives the cell_id and no metric")
        return self


# the fields each spec_fact variant's plan reads
_SPEC_FACT_NEEDS = {"n_rb": ("fr", "scs_khz", "bandwidth_mhz"), "slot": ("mu", "scs_khz"),
                    "qm": ("mcs_table", "mcs_index")}


class SpecFactParams(FamilyParams):
    """A benchmark task sets every field; a served question only those its variant reads (``_SPEC_FACT_NEEDS``)."""

    variant: Literal["n_rb", "slot", "qm"] = Field(description="N_RB of a carrier, a slot duration, or Q_m of an MCS")
    fr: Literal[1, 2] | None = Field(None, description="frequency range")
    scs_khz: int | None = Field(None, gt=0, description="subcarrier spacing, kHz (15 · 2^mu)")
    bandwidth_mhz: int | None = Field(None, gt=0, description="channel bandwidth, MHz")
    mu: int | None = Field(None, ge=0, le=6, description="numerology")
    mcs_table: McsTable | None = Field(None, description="TS 38.214 MCS table: 1 = Table 5.1.3.1-1, 2 = -2")
    mcs_index: int | None = Field(None, ge=0, le=28, description="I_MCS (at most 27 in table 2)")

    @model_validator(mode="after")
    def _variant_fields(self) -> SpecFactParams:
        missing = [name for name in _SPEC_FACT_NEEDS[self.variant] if getattr(self, name) is None]
        if missing:
            raise ValueError(f"the {self.variant} variant needs {', '.join(missing)}")
        if self.mu is not None and self.scs_khz is not None and self.scs_khz != 15 * 2 ** self.mu:
            raise ValueError(f"scs_khz {self.scs_khz} is not the SCS of numerology mu = {self.mu}")
        if self.mcs_table is not None and self.mcs_index is not None:
            _check_mcs(self.mcs_table, self.mcs_index)
        return self


class SlaCheckParams(FamilyParams):
    variant: Literal["yes_no"] = Field(description="whether the rate reaches the target")
    ue_id: str = Field(description="the UE whose rate is checked")
    n_prb: int = Field(ge=1, le=275, description="PRBs it would be scheduled on")
    layers: int = Field(ge=1, le=8, description="MIMO layers")
    target_mbps: float = Field(gt=0, description="the rate it must reach, Mbps")


class RecoveryLatencyParams(PathLatencyParams):
    """agent_recovery's path-latency question: no failed link (the failing part is the topology agent)."""

    variant: Literal["latency"] = Field(description="the best path's latency, no link failed")


class RecoverySinrParams(LinkBudgetParams):
    """agent_recovery's link-budget question: always the tight precision, so the failing agent is the precise one."""

    precision_db: Literal[0.5] = Field(description="the precision asked, dB (the answer's tolerance)")


RecoveryParams = RecoveryLatencyParams | RecoverySinrParams
AgentRecoveryParams = Annotated[RecoveryParams, Field(discriminator="variant")]


class FreeTextParams(FamilyParams):
    """A served question no family recognised carries no parameters."""


# every family's parameters: the type of Task.params (its JSON Schema lists each model)
AnyFamilyParams = (ObservationLookupParams | PathlossParams | LinkBudgetParams | PeakRateParams | TbsParams
                   | LoadForecastParams | SliceAllocationParams | PathLatencyParams | KpiAnomalyParams | SpecFactParams
                   | SlaCheckParams | RecoveryLatencyParams | RecoverySinrParams | FreeTextParams)


def _check_mcs(table: int, index: int) -> None:
    if index > (28 if table == 1 else 27):
        raise ValueError(f"mcs_index {index} is not in MCS table {table}")


# family name -> the type of its parameters (a model, or a union tagged by variant)
FAMILY_PARAMS: dict[str, Any] = {
    "observation_lookup": ObservationLookupParams,
    "pathloss": PathlossParams,
    "link_budget": LinkBudgetParams,
    "peak_rate": PeakRateParams,
    "tbs": TbsParams,
    "load_forecast": LoadForecastParams,
    "slice_allocation": SliceAllocationParams,
    "path_latency": PathLatencyParams,
    "kpi_anomaly": KpiAnomalyParams,
    "spec_fact": SpecFactParams,
    "sla_check": SlaCheckParams,
    "agent_recovery": AgentRecoveryParams,
    FREE_TEXT: FreeTextParams,
}
_ADAPTERS: dict[str, TypeAdapter[FamilyParams]] = {name: TypeAdapter(kind) for name, kind in FAMILY_PARAMS.items()}


class UnknownFamilyError(ValueError):
    """A task names a family the benchmark does not have."""


def check_family(name: str) -> str:
    if name not in FAMILY_PARAMS:
        raise UnknownFamilyError(f"unknown task family {name!r} (known: {', '.join(FAMILY_PARAMS)})")
    return name


def parse_params(family: str, params: Any) -> FamilyParams:
    """``params`` (a JSON object, or already a model) as the typed parameters of ``family``.

    Raises :class:`UnknownFamilyError` or a pydantic ``ValidationError`` (both ``ValueError``\\ s) naming the field.
    """
    return _ADAPTERS[check_family(family)].validate_python(params)
