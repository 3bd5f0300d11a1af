"""Detection: `/detect` options, a detection, where a det_db came from."""

from __future__ import annotations

import math
from typing import Any, Literal

from pydantic import ConfigDict, Field, field_validator, model_validator

from .common import SEQUENCE_RE, Schema, _finite, _finite_number


class Roi(Schema):
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
        shape = "roi must be 'x1,y1,x2,y2', a list of 4 numbers or a list of [x, y] points"
        if isinstance(value, str):
            text = value.strip()
            if not text:
                return None
            try:
                value = json.loads(text) if text.startswith("[") else [float(v) for v in text.split(",")]
            except ValueError:
                raise ValueError(f"{shape}, got {text[:80]!r}") from None
        if not isinstance(value, list | tuple):
            raise ValueError(f"{shape}, got {value!r}")
        if len(value) == 4 and all(isinstance(v, int | float) and not isinstance(v, bool) for v in value):
            x1, y1, x2, y2 = value
            if not all(math.isfinite(v) for v in value):
                raise ValueError("roi values must be finite numbers")
            if x2 <= x1 or y2 <= y1:
                raise ValueError("rectangle ROI needs x1 < x2 and y1 < y2")
            value = [(x1, y1), (x2, y1), (x2, y2), (x1, y2)]
        points = []
        for point in value:
            if not isinstance(point, list | tuple) or len(point) != 2 or not all(map(_finite_number, point)):
                raise ValueError(f"{shape}, got {value!r}"[:200])
            points.append((float(point[0]), float(point[1])))
        return cls(polygon=points)


class DetectOptions(Schema):
    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)

    detector: str = "motion"
    weights: str | None = None
    size: Literal["n", "s", "m", "l", "x"] | None = None
    dataset: Literal["coco", "obj365", "crowdhuman"] | None = None
    score_threshold: float = Field(default=0.3, ge=0.0, le=1.0)
    classes: list[int | str] | None = None
    roi: Roi | None = None
    min_area: float = Field(default=0.0, ge=0.0)
    sequence: str = "video"
    batch_size: int | None = Field(default=None, ge=1, le=256)  # dfine: frames per forward (default by device)

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

    path: str = Field(min_length=1, max_length=4096)

    @field_validator("path")
    @classmethod
    def _plain_path(cls, value: str) -> str:
        if "\x00" in value:
            raise ValueError("path contains a NUL byte")
        return value


# Each tracker's knobs with their defaults: the one place the API checks them, the CLI's help and the
# dashboard's forms read them, and the trackers take their defaults from.
class Detection(Schema):
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


class DetDbInfo(Schema):
    """Where a det_db came from; stored with the run so a wrong-detector det_db is visible."""

    detector: str
    weights: str | None = None
    sequence: str
    frames: int
    frame_size: tuple[int, int]
    keys_with_detections: int
    detections: int
    options: DetectOptions
    notes: list[str] = Field(default_factory=list)  # why a result is empty or thin, when we know
