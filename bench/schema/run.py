"""The whole results.json of one run, and the upgrade of files written by older versions."""
from __future__ import annotations

import copy
from typing import Any, Literal, Optional

from pydantic import BaseModel, ConfigDict, Field

from bench.schema.base import Section
from bench.schema.sections import (ConfigRecord, DatasetSection, FidelitySection, IndexSection, Interrupted,
                                   MetadataSection, ModelSection, Provenance, Quality, SearchSection, Stages,
                                   TuneSection)
from bench.schema.workloads import FilteredSection, ServeSection, StreamingSection, WORKLOAD_SECTIONS

# 1: the untyped files (until the schema existed). 2: written through this schema; upgrade() reads 1.
SCHEMA_VERSION = 2
STATUSES = ("running", "ok", "failed", "interrupted")


class Results(BaseModel):
    """One run's results.json. Every section but ``config`` and ``provenance`` is optional: a run that
    fails or is interrupted has only the sections of the stages it finished."""

    # Strict at the top: a section nobody declared is a mistake (declare a workload's in bench.schema.workloads).
    model_config = ConfigDict(extra="forbid")

    schema_version: int = Field(SCHEMA_VERSION, description="raised when a reader must tell files apart")
    status: Literal["running", "ok", "failed", "interrupted"] = Field(description="ok once every stage finished")
    error: Optional[str] = Field(None, description="why the run failed or was interrupted")
    config: ConfigRecord = Field(description="the resolved config, secrets redacted")
    provenance: Provenance = Field(description="commit, hardware, versions, weights, runtime, store")
    interrupted: Optional[Interrupted] = Field(None, description="the stage and signal that stopped the run")
    stages: Optional[Stages] = Field(None, description="wall seconds per stage, peak memory")
    model: Optional[ModelSection] = Field(None, description="the ONNX model, its conversion and embedding")
    dataset: Optional[DatasetSection] = Field(None, description="corpus and held-out queries")
    exact: Optional[Quality] = Field(None, description="category quality of exact search")
    metadata: Optional[MetadataSection] = Field(None, description="where id -> path lives")
    index: Optional[IndexSection] = Field(None, description="index type, params, load and build seconds")
    search: Optional[SearchSection] = Field(None, description="every search point: quality and timings")
    fidelity: Optional[FidelitySection] = Field(None, description="an INT8/FP16 variant against FP32")
    filtered: Optional[FilteredSection] = Field(None, description="workload=filtered")
    streaming: Optional[StreamingSection] = Field(None, description="workload=streaming")
    serve: Optional[ServeSection] = Field(None, description="workload=serve")
    tune: Optional[TuneSection] = Field(None, description="python -m bench.tune's corpus record only")

    @property
    def ok(self) -> bool:
        """Finished, with the sections every table needs."""
        return self.status == "ok" and None not in (self.model, self.dataset, self.search)

    @property
    def model_name(self) -> str:
        return (self.model.name if self.model else None) or self.config.model.name or "?"

    @property
    def index_type(self) -> str:
        return (self.index.type if self.index else None) or self.config.index.type or "?"

    @property
    def top_k(self) -> Optional[int]:
        return self.search.top_k if self.search else self.config.search.top_k

    @property
    def precision(self) -> str:
        return self.model.precision if self.model else self.config.model.precision

    @property
    def cpu_class(self) -> str:
        """The CPU class the run was measured on; "unknown" for results older than the field."""
        return str(self.provenance.hardware.cpu_class or "unknown")

    @property
    def store_label(self) -> str:
        return self.provenance.store.label


# The sections RunResult.set() accepts, each validated against its model as it is written.
SECTIONS: dict[str, type[BaseModel]] = {
    name: model for name, model in {
        "stages": Stages, "model": ModelSection, "dataset": DatasetSection, "exact": Quality,
        "metadata": MetadataSection, "index": IndexSection, "search": SearchSection, "fidelity": FidelitySection,
        "interrupted": Interrupted, "provenance": Provenance, "config": ConfigRecord, "tune": TuneSection,
        **WORKLOAD_SECTIONS}.items()}
assert set(WORKLOAD_SECTIONS) <= set(Results.model_fields), "a workload section needs a field on Results"
assert all(issubclass(m, Section) for m in (FilteredSection, StreamingSection, ServeSection))


def upgrade(data: dict[str, Any]) -> dict[str, Any]:
    """A results.json document of any version this code reads, as the current version (a new dict).

    Version 1 files hold the same sections; what readers used to branch on is filled in here, once:
    ``num_embedded_this_run`` (before resumable embedding, every embedded image was embedded by the run
    itself) and the embedding's ``threads_in_use`` (called ``intra_op_threads`` before runtimes).
    """
    version = data.get("schema_version")
    if not isinstance(version, int) or version < 1:
        raise ValueError(f"schema_version {version!r} is not a results.json version")
    if version > SCHEMA_VERSION:
        raise ValueError(f"schema_version {version} is newer than this code's {SCHEMA_VERSION}: update bench")
    data = copy.deepcopy(data)
    if version == 1:
        embedding = (data.get("model") or {}).get("embedding")
        if isinstance(embedding, dict):
            embedding.setdefault("num_embedded_this_run", embedding.get("num_embedded"))
            embedding.setdefault("threads_in_use", embedding.get("intra_op_threads"))
        data["schema_version"] = 2
    return data
