"""Every service router in one app (`motpipe serve`): `uvicorn --factory services.gateway.app:create`."""

from services.detector.api import router as detector_router
from services.evaluator.api import router as evaluator_router
from services.gateway.ui.routes import install as install_ui
from services.tracker.api import router as tracker_router
from services.trainer.api import router as trainer_router
from services.trainer.sweep_api import router as sweep_router
from shared.api.app import create_app
from shared.settings import Settings


def create(settings: Settings | None = None):
    routers = [detector_router, tracker_router, evaluator_router, trainer_router, sweep_router]
    app = create_app(routers, settings, title="motpipe gateway")
    install_ui(app)  # the /ui dashboard
    return app
