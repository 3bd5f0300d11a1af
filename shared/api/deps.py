"""Dependencies: settings, run store and Celery app from `app.state` (auth: `auth.py`), paths confined."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

from celery import Celery
from fastapi import Path as PathParameter
from fastapi import Request

from shared.errors import InputError
from shared.run_store import RunStore
from shared.schemas import RUN_ID_RE
from shared.settings import Settings

# ids in paths as the OpenAPI document declares them (a malformed one is a 422 naming it, before any lookup)
RunIdPath = Annotated[str, PathParameter(pattern=RUN_ID_RE.pattern, description="a run id (16 hex digits)")]
IdPath = Annotated[str, PathParameter(pattern=RUN_ID_RE.pattern, description="a job or sweep id (16 hex digits)")]


def get_settings_dep(request: Request) -> Settings:
    return request.app.state.settings


def get_store(request: Request) -> RunStore:
    return request.app.state.store


def get_celery_dep(request: Request) -> Celery:
    return request.app.state.celery


def confine(settings: Settings, user_path: str, field: str = "path") -> Path:
    """A caller's path resolved inside the data root; anything escaping it (or no path at all) is refused."""
    if "\0" in user_path:
        raise InputError("a path cannot hold a NUL byte", field=field)
    root = settings.data_root.resolve()
    candidate = (root / user_path).resolve() if not Path(user_path).is_absolute() else Path(user_path).resolve()
    # globs are resolved on their non-magic prefix; the pattern part may not climb out either
    if ".." in Path(user_path).parts or not candidate.is_relative_to(root):
        raise InputError(f"path {user_path!r} is outside the data root", field=field)
    return candidate
