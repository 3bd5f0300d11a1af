"""The training API on its own (compose): `uvicorn --factory services.trainer.app:create`."""

from shared.api.app import create_app

from .api import router


def create():
    return create_app([router], title="motpipe trainer")
