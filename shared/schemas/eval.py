"""Evaluation: the metrics report, the doctor's findings, a task's result."""

from __future__ import annotations

from enum import StrEnum
from typing import Any, Literal

from pydantic import Field

from .common import Schema, StageState


class TaskResult(Schema):
    run: str
    stage: Literal["detect", "track", "eval", "label"]
    state: StageState
    error: str | None = None


class MetricsReport(Schema):
    """The metrics JSON of ARCHITECTURE.md (filled by the evaluator)."""

    iou_threshold: float = 0.5
    classes: list[int] | None = None
    trackeval: dict[str, float | list[float]] = Field(default_factory=dict)
    framewise: dict[str, float] = Field(default_factory=dict)
    losses: dict[str, float] = Field(default_factory=dict)
    per_frame: list[dict[str, float]] = Field(default_factory=list)
    # ground truth with 2+ classes: {"player": {"trackeval", "framewise", "losses", "per_frame"}, "ball": {...}}
    per_class: dict[str, dict[str, Any]] | None = None
    frames: str | None = None  # "all" (TrackEval's default) or which frames were scored
    notes: list[str] = Field(default_factory=list)


class Severity(StrEnum):
    error = "error"
    warning = "warning"
    info = "info"


class Finding(Schema):
    """One problem the dataset doctor found: stable code, severity, evidence and a one-line fix."""

    code: str
    severity: Severity
    message: str
    evidence: dict[str, Any] = Field(default_factory=dict)
    fix: str


class DoctorReport(Schema):
    findings: list[Finding] = Field(default_factory=list)

    @property
    def has_errors(self) -> bool:
        return any(f.severity == Severity.error for f in self.findings)


# -- training jobs ------------------------------------------------------------------------------------------
