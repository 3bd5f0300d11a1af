"""Ids, names and validators every payload uses; stage states."""

from __future__ import annotations

import math
import re
from datetime import UTC, datetime
from enum import StrEnum
from typing import Annotated, Any

from pydantic import AfterValidator, BaseModel, ConfigDict, Field

RUN_ID_RE = re.compile(r"^[0-9a-f]{16}$")
SEQUENCE_RE = re.compile(r"^[A-Za-z0-9_.-]+(/[A-Za-z0-9_.-]+)*$")
STAGES = ("detect", "track", "eval")
# A grid (training jobs, sweeps) is counted from its lists' lengths before any combination is built.
MAX_GRID_COMBINATIONS = 10_000
SEED_MAX = 2**32 - 1  # numpy's seeds are 32-bit


def utcnow() -> datetime:
    return datetime.now(UTC)


class Schema(BaseModel):
    """Every contract model. `defer_build`: a model's validator is built when first used, not at import
    (importing this module: 125 -> 76 ms here; a command uses few of its models)."""

    model_config = ConfigDict(defer_build=True)


class StageState(StrEnum):
    pending = "pending"
    running = "running"
    succeeded = "succeeded"
    failed = "failed"


class Progress(Schema):
    done: int = 0
    total: int | None = None


class StageRecord(Schema):
    state: StageState = StageState.pending
    progress: Progress = Field(default_factory=Progress)
    error: str | None = None
    params: dict[str, Any] = Field(default_factory=dict)
    attempts: int = 0
    started: datetime | None = None
    finished: datetime | None = None
    heartbeat: datetime | None = None  # refreshed by the worker while the stage runs
    queued: datetime | None = None  # when its task was (last) sent to the broker
    task: dict[str, Any] | None = None  # {"name", "args"} as queued: the reaper can queue it again
    notes: list[str] = Field(default_factory=list)  # what the stage found worth saying (e.g. thresholds)


def check_grid(grid: dict[str, list], factor: int = 1) -> dict[str, list]:
    """Every key has values and the combinations (times `factor`, e.g. a sweep's weights) stay countable."""
    for key, values in grid.items():
        if not values:
            raise ValueError(f"grid key {key!r} has no values")
    count = math.prod(len(v) for v in grid.values()) * factor
    if count > MAX_GRID_COMBINATIONS:
        raise ValueError(f"the grid has {count:,} combinations; at most {MAX_GRID_COMBINATIONS:,}")
    return grid


def _no_parent(value: str) -> str:
    if ".." in value.split("/"):
        raise ValueError("a sequence name cannot hold '..'")
    return value


SequenceName = Annotated[
    str, Field(min_length=1, max_length=200, pattern=SEQUENCE_RE.pattern), AfterValidator(_no_parent)
]
# a parameter-name prefix of the model (`--trainable`): letters, digits, '_' and '.'
ParameterKey = Annotated[str, Field(min_length=1, max_length=200, pattern=r"^[A-Za-z0-9_.]+$")]
# D-FINE `--val`: a sequence, a frame range A-B, or SEQ:A-B
ValItem = Annotated[
    str, Field(min_length=1, max_length=200, pattern=r"^([A-Za-z0-9_./-]+|([A-Za-z0-9_./-]+:)?\d{1,9}-\d{1,9})$")
]


def _finite(value: float | None, name: str) -> float | None:
    if value is not None and not math.isfinite(value):
        raise ValueError(f"{name} must be a finite number")
    return value


def _finite_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


def _run_id(value: str) -> str:
    if not RUN_ID_RE.match(value):
        raise ValueError("not a run id")
    return value


RunId = Annotated[str, AfterValidator(_run_id)]
