"""3GPP knowledge agent: BM25 retrieval over a fact base shipped with the package, and exact table lookups.

The fact base is built at load time from two sources: ``data/facts.yaml`` (5QI characteristics, NR bands, formula
passages) and the radio library's own tables (numerology, N_RB, MCS), so the passages and the computations share
one copy of every number.
"""

from __future__ import annotations

import re
from functools import cached_property
from importlib import resources

import yaml
from pydantic import BaseModel, Field
from rank_bm25 import BM25Okapi

from netgpt import radio
from netgpt.agents.base import Args, Result, SkillAgent, skill
from netgpt.protocol.messages import CostModel, LatencyModel
from netgpt.radio import nr


class Passage(BaseModel):
    text: str
    source: str


def _numerology_passages() -> list[Passage]:
    out = []
    for mu in range(0, 5):
        scs = radio.scs_khz_for_mu(mu)
        slots = 2**mu
        cp = "normal or extended cyclic prefix" if mu == 2 else "normal cyclic prefix"
        out.append(Passage(
            source="TS 38.211 §4.2, §4.3.2 (Table 4.3.2-1)",
            text=(f"NR numerology mu = {mu}: subcarrier spacing {scs} kHz ({cp}); slot duration {1 / slots:g} ms; "
                  f"{slots} slots per subframe, {10 * slots} slots per frame; 14 OFDM symbols per slot with normal "
                  f"cyclic prefix; symbol duration about {1000 / (14 * slots):.2f} microseconds."),
        ))
    return out


def _n_rb_passages() -> list[Passage]:
    out = []
    tables = ((1, nr.N_RB_FR1, "TS 38.101-1 Table 5.3.2-1"), (2, nr.N_RB_FR2, "TS 38.101-2 Table 5.3.2-1"))
    for fr, table, spec in tables:
        for scs, row in table.items():
            cells = ", ".join(f"{bw} MHz: {n} RB" for bw, n in row.items())
            text = (f"Maximum transmission bandwidth configuration N_RB for FR{fr}, "
                    f"subcarrier spacing {scs} kHz: {cells}.")
            out.append(Passage(source=spec, text=text))
    return out


def _mcs_passages() -> list[Passage]:
    names = {1: "Table 5.1.3.1-1 (64QAM)", 2: "Table 5.1.3.1-2 (256QAM)",
             3: "Table 5.1.3.1-3 (low spectral efficiency)"}
    out = []
    for table, rows in nr.MCS_TABLES.items():
        entries = "; ".join(f"I_MCS {i}: Q_m {qm}, R x 1024 = {rate:g}" for i, (qm, rate) in enumerate(rows))
        out.append(Passage(source=f"TS 38.214 {names[table].split(' (')[0]}",
                           text=f"MCS index table {table} for PDSCH, {names[table]}: {entries}."))
    return out


def _yaml_passages() -> list[Passage]:
    facts = yaml.safe_load(resources.files("netgpt.agents").joinpath("data/facts.yaml").read_text())
    out = [Passage(**p) for p in facts["passages"]]
    for qi, (kind, prio, pdb, per, services) in facts["five_qi"].items():
        out.append(Passage(source="TS 23.501 Table 5.7.4-1", text=(
            f"5QI {qi}: resource type {kind}, default priority level {prio}, packet delay budget {pdb} ms, "
            f"packet error rate {per:g}; example services: {services}.")))
    for band, (duplex, ul, dl, source) in facts["bands"].items():
        out.append(Passage(source=source, text=(
            f"NR operating band {band}: {duplex}, uplink {ul} MHz, downlink {dl} MHz.")))
    return out


def tokenize(text: str) -> list[str]:
    """Lower-case words and numbers; "mu = 2" / "μ=2" become one token "mu2" so numerologies stay distinct."""
    text = re.sub(r"(?<![a-z])(?:mu|μ)\s*=?\s*(\d)", r"mu\1", text.lower())
    return re.findall(r"[a-z]+\d*|\d+(?:\.\d+)?", text)


class SearchArgs(Args):
    query: str = Field(min_length=1, max_length=300)
    k: int = Field(3, ge=1, le=10)


class ScoredPassage(Result):
    text: str
    source: str
    score: float


class SearchResult(Result):
    passages: list[ScoredPassage]


class NrbArgs(Args):
    fr: int = Field(ge=1, le=2)
    scs_khz: int
    bandwidth_mhz: float


class NrbResult(Result):
    n_rb: int
    source: str


class KnowledgeAgent(SkillAgent):
    agent_name = "knowledge"
    description = ("3GPP knowledge base: BM25 search over numerology, N_RB, MCS, TBS, peak-rate, 5QI and band "
                   "facts with their source clauses, and exact N_RB lookup (TS 38.101-1/-2 Table 5.3.2-1).")
    cost = CostModel(latency=LatencyModel(median_ms=40.0, sigma=0.3, floor_ms=5.0), per_call_cost=0.5,
                     reliability=0.99)

    @cached_property
    def passages(self) -> list[Passage]:
        return _numerology_passages() + _n_rb_passages() + _mcs_passages() + _yaml_passages()

    @cached_property
    def _index(self) -> BM25Okapi:
        return BM25Okapi([tokenize(p.text + " " + p.source) for p in self.passages])

    @skill("search", "Top-k passages of the 3GPP fact base for a free-text query.", SearchArgs, SearchResult)
    def search(self, a: SearchArgs) -> SearchResult:
        scores = self._index.get_scores(tokenize(a.query))
        ranked = sorted(range(len(self.passages)), key=lambda i: -scores[i])[: a.k]
        return SearchResult(passages=[ScoredPassage(text=self.passages[i].text, source=self.passages[i].source,
                                                    score=round(float(scores[i]), 4)) for i in ranked])

    @skill("n_rb", "Maximum transmission bandwidth configuration N_RB for (FR, SCS, channel bandwidth).", NrbArgs,
           NrbResult)
    def n_rb(self, a: NrbArgs) -> NrbResult:
        spec = "TS 38.101-1 Table 5.3.2-1" if a.fr == 1 else "TS 38.101-2 Table 5.3.2-1"
        return NrbResult(n_rb=radio.n_rb(a.fr, a.scs_khz, a.bandwidth_mhz), source=spec)
