"""Sweeps: `POST /sweeps` and `sweep.json`."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from pydantic import ConfigDict, Field, model_validator

from .common import RunId, Schema, check_grid, utcnow

SWEEP_TRACK_FIELDS = ("score_threshold", "weights")  # grid keys that set a /track field; others are knobs


class SweepSearch(Schema):
    model_config = ConfigDict(extra="forbid")

    trials: int = Field(ge=1, le=1000)


class SweepRequest(Schema):
    """`POST /sweeps`: track a run's det_db once per combination of the grid and evaluate each."""

    model_config = ConfigDict(extra="forbid")

    run: RunId
    tracker: Literal["bytetrack", "motrv2"] = "bytetrack"
    weights: list[str] | None = None
    grid: dict[str, list[float | int | str | bool]] = Field(min_length=1)
    search: SweepSearch | None = None

    @model_validator(mode="after")
    def _countable(self) -> SweepRequest:
        check_grid(self.grid, len(self.weights or []) or 1)
        return self


class SweepChild(Schema):
    run: str
    params: dict[str, Any]


class SweepRecord(Schema):
    """`<data root>/sweeps/<id>/sweep.json`; the state and leaderboard are computed from the child runs."""

    sweep: str
    run: str
    tracker: str
    created: datetime = Field(default_factory=utcnow)
    grid: dict[str, list[Any]]
    search: SweepSearch | None = None
    children: list[SweepChild] = Field(default_factory=list)
    name: str = ""
    tags: list[str] = Field(default_factory=list)
    note: str = ""
