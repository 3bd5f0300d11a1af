"""Training jobs: `job.json` and `GET /train/{job}`."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from pydantic import Field

from .common import Progress, Schema, StageState, utcnow
from .eval import Finding
from .train import EpochRecord


class JobRecord(Schema):
    """What `job.json` holds and `GET /train/{job}` answers."""

    job: str
    model: Literal["motrv2", "dfine"] = "motrv2"
    created: datetime = Field(default_factory=utcnow)
    started: datetime | None = None
    finished: datetime | None = None
    state: StageState = StageState.pending
    error: str | None = None
    options: dict[str, Any] = Field(default_factory=dict)
    data: dict[str, Any] = Field(default_factory=dict)
    strategy: str | None = None
    trainable_params: int | None = None
    total_params: int | None = None
    notes: list[str] = Field(default_factory=list)
    accepted_findings: list[Finding] = Field(default_factory=list)
    planned_epochs: int = 0
    finished_epochs: int = 0
    planned_steps: int | None = None
    progress: Progress = Field(default_factory=Progress)  # steps done / planned
    epochs: list[EpochRecord] = Field(default_factory=list)
    checkpoints: list[str] = Field(default_factory=list)
    attempts: int = 0
    worker: dict[str, Any] = Field(default_factory=dict)  # host and pid of the process running it
    task: dict[str, Any] | None = None  # {"name", "args"} as queued: the reaper can queue it again
    queued: datetime | None = None  # when its task was (last) sent to the broker
    grid: list[dict[str, Any]] | None = None  # a grid's table: one row per combination
    name: str = ""
    tags: list[str] = Field(default_factory=list)
    note: str = ""
