"""Runs: the run record (`run.json`, `GET /runs/{run}`) and what a person may change of it."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

from pydantic import ConfigDict, Field, field_validator

from .common import Schema, StageRecord, utcnow


class ArtifactInfo(Schema):
    bytes: int
    url: str | None = None


class RunRecord(Schema):
    """What `run.json` holds and `GET /runs/{run}` answers."""

    run: str
    created: datetime = Field(default_factory=utcnow)
    stages: dict[str, StageRecord] = Field(default_factory=dict)
    artifacts: dict[str, ArtifactInfo] = Field(default_factory=dict)
    inputs: dict[str, Any] = Field(default_factory=dict)
    name: str = ""  # the uploaded file's or the path's name; a child: its parent's plus what changed
    tags: list[str] = Field(default_factory=list)
    note: str = ""
    parent: str | None = None  # the run this one tracks or detects again (its det_db / video, ground truth)
    children: list[str] = Field(default_factory=list)


MAX_TAGS, MAX_TAG_CHARS, MAX_NAME_CHARS, MAX_NOTE_CHARS = 32, 64, 200, 10_000


class RunPatch(Schema):
    """`PATCH /runs/{run}`: what a person may change of a run (anything left out stays)."""

    model_config = ConfigDict(extra="forbid")

    name: str | None = Field(None, max_length=MAX_NAME_CHARS)
    tags: list[Annotated[str, Field(min_length=1, max_length=MAX_TAG_CHARS)]] | None = Field(None, max_length=MAX_TAGS)
    note: str | None = Field(None, max_length=MAX_NOTE_CHARS)

    @field_validator("name")
    @classmethod
    def _named(cls, name: str | None) -> str | None:
        if name is not None and not name.strip():
            raise ValueError("a name cannot be blank (leave it out to keep the current one)")
        return None if name is None else name.strip()

    @field_validator("tags")
    @classmethod
    def _distinct(cls, tags: list[str] | None) -> list[str] | None:
        return None if tags is None else list(dict.fromkeys(t.strip() for t in tags if t.strip()))
