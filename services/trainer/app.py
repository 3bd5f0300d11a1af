"""Training jobs and sweeps on their own (compose): `uvicorn --factory services.trainer.app:create`."""

from shared.api.app import create_app

from .api import router
from .sweep_api import router as sweep_router


def create():
    return create_app([router, sweep_router], title="motpipe trainer")
