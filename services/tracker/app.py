"""The tracker API on its own (compose): `uvicorn --factory services.tracker.app:create`."""

from shared.api.app import create_app

from .api import router


def create():
    return create_app([router], title="motpipe tracker")
