"""Every payload that crosses a boundary (HTTP, Celery task arguments, run.json) is a model here."""

from __future__ import annotations

import math
import re
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

RUN_ID_RE = re.compile(r"^[0-9a-f]{16}$")
SEQUENCE_RE = re.compile(r"^[A-Za-z0-9_.-]+(/[A-Za-z0-9_.-]+)*$")
STAGES = ("detect", "track", "eval")


def utcnow() -> datetime:
    return datetime.now(UTC)


class StageState(StrEnum):
    pending = "pending"
    running = "running"
    succeeded = "succeeded"
    failed = "failed"


class Progress(BaseModel):
    done: int = 0
    total: int | None = None


class StageRecord(BaseModel):
    state: StageState = StageState.pending
    progress: Progress = Field(default_factory=Progress)
    error: str | None = None
    params: dict[str, Any] = Field(default_factory=dict)
    attempts: int = 0
    started: datetime | None = None
    finished: datetime | None = None


class ArtifactInfo(BaseModel):
    bytes: int
    url: str | None = None


class RunRecord(BaseModel):
    """What `run.json` holds and `GET /runs/{run}` answers."""

    run: str
    created: datetime = Field(default_factory=utcnow)
    stages: dict[str, StageRecord] = Field(default_factory=dict)
    artifacts: dict[str, ArtifactInfo] = Field(default_factory=dict)
    inputs: dict[str, Any] = Field(default_factory=dict)


def _finite(value: float | None, name: str) -> float | None:
    if value is not None and not math.isfinite(value):
        raise ValueError(f"{name} must be a finite number")
    return value


class Roi(BaseModel):
    """Region of interest: a detection is kept when its box centre lies inside."""

    polygon: list[tuple[float, float]] = Field(min_length=3)

    @classmethod
    def parse(cls, value: str | list | dict | Roi | None) -> Roi | None:
        """Accept `x1,y1,x2,y2`, a JSON list of 4 numbers (rectangle) or of [x, y] points."""
        import json

        if value is None or isinstance(value, Roi):
            return value
        if isinstance(value, dict):
            return cls.model_validate(value)
        if isinstance(value, str):
            text = value.strip()
            if not text:
                return None
            value = json.loads(text) if text.startswith("[") else [float(v) for v in text.split(",")]
        if len(value) == 4 and all(isinstance(v, int | float) for v in value):
            x1, y1, x2, y2 = value
            if x2 <= x1 or y2 <= y1:
                raise ValueError("rectangle ROI needs x1 < x2 and y1 < y2")
            value = [(x1, y1), (x2, y1), (x2, y2), (x1, y2)]
        return cls(polygon=[tuple(p) for p in value])


class DetectOptions(BaseModel):
    model_config = ConfigDict(extra="forbid")

    detector: str = "motion"
    weights: str | None = None
    size: str | None = None
    dataset: str | None = None
    score_threshold: float = Field(default=0.3, ge=0.0, le=1.0)
    classes: list[int | str] | None = None
    roi: Roi | None = None
    min_area: float = Field(default=0.0, ge=0.0)
    sequence: str = "video"

    @field_validator("sequence")
    @classmethod
    def _sequence_name(cls, value: str) -> str:
        if not SEQUENCE_RE.match(value) or ".." in value.split("/"):
            raise ValueError("sequence must be letters, digits, '_', '-', '.' and '/' (no '..')")
        return value

    @field_validator("classes", mode="before")
    @classmethod
    def _classes_list(cls, value: Any) -> Any:
        if isinstance(value, str):
            parts = [p.strip() for p in value.split(",") if p.strip()]
            return [int(p) if p.lstrip("-").isdigit() else p for p in parts] or None
        return value

    @field_validator("roi", mode="before")
    @classmethod
    def _roi(cls, value: Any) -> Any:
        return Roi.parse(value)


class DetectRequest(DetectOptions):
    """`POST /detect` with a JSON body: a file or glob under the data root instead of an upload."""

    path: str


class TrackOptions(BaseModel):
    model_config = ConfigDict(extra="forbid")

    tracker: str = "bytetrack"
    weights: str | None = None
    score_threshold: float | None = Field(default=None, ge=0.0, le=1.0)
    # tracker-specific knobs (bytetrack: lost_track_buffer, ...; motrv2: miss_tolerance, ...)
    options: dict[str, float | int | str | bool] = Field(default_factory=dict)


class TrackRequest(TrackOptions):
    run: str

    @field_validator("run")
    @classmethod
    def _run_id(cls, value: str) -> str:
        if not RUN_ID_RE.match(value):
            raise ValueError("not a run id")
        return value


class Detection(BaseModel):
    left: float
    top: float
    width: float = Field(ge=0)
    height: float = Field(ge=0)
    score: float
    label: int | None = None

    @model_validator(mode="after")
    def _all_finite(self) -> Detection:
        for name in ("left", "top", "width", "height", "score"):
            _finite(getattr(self, name), name)
        return self


class TrackRow(BaseModel):
    frame: int = Field(ge=1)
    id: int
    left: float
    top: float
    width: float = Field(ge=0)
    height: float = Field(ge=0)
    score: float = 1.0
    label: int = -1


class DetDbInfo(BaseModel):
    """Where a det_db came from; stored with the run so a wrong-detector det_db is visible."""

    detector: str
    weights: str | None = None
    sequence: str
    frames: int
    frame_size: tuple[int, int]
    keys_with_detections: int
    detections: int
    options: DetectOptions


class TaskResult(BaseModel):
    run: str
    stage: Literal["detect", "track", "eval"]
    state: StageState
    error: str | None = None


class MetricsReport(BaseModel):
    """The metrics JSON of ARCHITECTURE.md (filled by the evaluator)."""

    iou_threshold: float = 0.5
    classes: list[int] | None = None
    trackeval: dict[str, float | list[float]] = Field(default_factory=dict)
    framewise: dict[str, float] = Field(default_factory=dict)
    losses: dict[str, float] = Field(default_factory=dict)
    per_frame: list[dict[str, float]] = Field(default_factory=list)


class Severity(StrEnum):
    error = "error"
    warning = "warning"
    info = "info"


class Finding(BaseModel):
    """One problem the dataset doctor found: stable code, severity, evidence and a one-line fix."""

    code: str
    severity: Severity
    message: str
    evidence: dict[str, Any] = Field(default_factory=dict)
    fix: str


class DoctorReport(BaseModel):
    findings: list[Finding] = Field(default_factory=list)

    @property
    def has_errors(self) -> bool:
        return any(f.severity == Severity.error for f in self.findings)
