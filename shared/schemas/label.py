"""The annotation loop over HTTP: `POST /runs/{run}/label` and `POST /runs/{run}/label/pull`."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from .common import Schema


class LabelPush(Schema):
    """Pick `frames` frames of the run by `pick` and send those the project lacks to Label Studio."""

    frames: int = Field(50, ge=1, le=10_000)
    pick: Literal["uncertain", "disagree", "errors", "uniform"] = "uncertain"
    min_gap: int = Field(15, ge=0, le=1_000_000)
    project: str | None = Field(
        None, min_length=1, max_length=200, description="id or title; default: 'motpipe <run name>'"
    )


class LabelPull(Schema):
    project: str = Field(min_length=1, max_length=200, description="the project's id or title")
