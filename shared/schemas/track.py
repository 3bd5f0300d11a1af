"""Tracking: `/track` options, each tracker's knobs and defaults, a track row."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from .common import RunId, Schema

BYTETRACK_DEFAULTS = {"score_threshold": 0.5, "high_score_threshold": 0.5, "lost_track_buffer": 30,
                      "minimum_iou": 0.1, "minimum_consecutive_frames": 1, "frame_rate": 30.0}  # fmt: skip
MOTRV2_DEFAULTS = {"update_score_threshold": 0.5, "miss_tolerance": 20, "area_threshold": 100.0, "autocast": False}
MOTRV2_SCORE_THRESHOLD = 0.5  # the official inference script's `--score_threshold`


def score_threshold_of(track_params: dict | None) -> float:
    """The score threshold a track stage ran with (its parameters): the one given, else its tracker's default."""
    params = track_params or {}
    default = MOTRV2_SCORE_THRESHOLD if params.get("tracker") == "motrv2" else BYTETRACK_DEFAULTS["score_threshold"]
    return params.get("score_threshold") or default


class ByteTrackKnobs(Schema):
    """`bytetrack`'s own knobs (the `options` of /track), checked at the request."""

    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)

    score_threshold: float | None = Field(None, ge=0.0, le=1.0, description="score a detection needs to start a track")
    high_score_threshold: float | None = Field(
        None,
        ge=0.0,
        le=1.0,
        description="score of the first association's detections (follows a lower score_threshold)",
    )
    lost_track_buffer: int | None = Field(None, ge=0, le=100_000, description="frames a lost track is kept")
    minimum_iou: float | None = Field(None, ge=0.0, le=1.0, description="IoU a match needs")
    minimum_consecutive_frames: int | None = Field(
        None, ge=1, le=100_000, description="frames a track must be seen before it gets an id"
    )
    frame_rate: float | None = Field(None, gt=0.0, le=10_000, description="frames per second (scales the buffer)")


class MOTRv2Knobs(Schema):
    """`motrv2`'s own knobs (the official inference script's), checked at the request."""

    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)

    update_score_threshold: float | None = Field(
        None, ge=0.0, le=1.0, description="score a track needs for its query to be updated (QIM)"
    )
    miss_tolerance: int | None = Field(None, ge=0, le=100_000, description="frames a track may be missed")
    area_threshold: float | None = Field(None, ge=0.0, description="smallest box area written, in pixels")
    autocast: bool | None = Field(None, description="bfloat16 on a GPU")


TRACKER_KNOBS: dict[str, type[BaseModel]] = {"bytetrack": ByteTrackKnobs, "motrv2": MOTRv2Knobs}
TRACKER_DEFAULTS = {"bytetrack": BYTETRACK_DEFAULTS, "motrv2": MOTRV2_DEFAULTS}


def tracker_knobs(tracker: str) -> list[tuple[str, Any, str]]:
    """(knob, default, description) of a tracker, in the schema's order."""
    fields = TRACKER_KNOBS[tracker].model_fields
    return [(name, TRACKER_DEFAULTS[tracker][name], field.description or "") for name, field in fields.items()]


class TrackOptions(Schema):
    model_config = ConfigDict(extra="forbid")

    tracker: Literal["bytetrack", "motrv2"] = "bytetrack"
    weights: str | None = None
    score_threshold: float | None = Field(default=None, ge=0.0, le=1.0)
    # tracker-specific knobs (bytetrack: lost_track_buffer, ...; motrv2: miss_tolerance, ...)
    options: dict[str, float | int | str | bool] = Field(default_factory=dict)

    @model_validator(mode="after")
    def _knobs(self) -> TrackOptions:
        """Unknown knobs and values out of range fail here (a 422 naming `options.<knob>`), never in a worker."""
        knobs = TRACKER_KNOBS.get(self.tracker)
        if knobs is not None:
            try:
                checked = knobs.model_validate(self.options)
            except ValueError as exc:
                errors = getattr(exc, "errors", lambda: [])()
                where = ".".join(str(p) for p in errors[0]["loc"]) if errors else "?"
                message = errors[0]["msg"] if errors else str(exc)
                known = ", ".join(knobs.model_fields)
                raise ValueError(f"options.{where}: {message} (known {self.tracker} knobs: {known})") from None
            self.options = checked.model_dump(exclude_none=True)
        return self


class TrackRequest(TrackOptions):
    run: RunId


class TrackRow(Schema):
    frame: int = Field(ge=1)
    id: int
    left: float
    top: float
    width: float = Field(ge=0)
    height: float = Field(ge=0)
    score: float = 1.0
    label: int = -1
