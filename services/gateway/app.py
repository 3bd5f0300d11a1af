"""Every service router in one app (`motpipe serve`): `uvicorn --factory services.gateway.app:create`."""

from services.detector.api import router as detector_router
from services.evaluator.api import router as evaluator_router
from services.tracker.api import router as tracker_router
from services.trainer.api import router as trainer_router
from services.trainer.sweep_api import router as sweep_router
from shared.api.app import create_app
from shared.settings import Settings


def create(settings: Settings | None = None):
    return create_app(
        [detector_router, tracker_router, evaluator_router, trainer_router, sweep_router],
        settings,
        title="motpipe gateway",
    )
