"""One factory for every app: the gateway mounts all three service routers, a lone service one."""

from __future__ import annotations

import errno
import logging
import time

from fastapi import APIRouter, Depends, FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from prometheus_client import Counter, Histogram
from pydantic import ValidationError

from shared.celery_app import make_celery
from shared.errors import ConflictError, GoneError, InputError, MissingInputError, NotFoundError
from shared.run_store import RunStore
from shared.settings import Settings, get_settings

from .auth import check_bind, require_token
from .docs import ERRORS
from .health import metrics_router
from .health import router as health_router
from .runs import router as runs_router
from .uploads import remove_stale_parts

log = logging.getLogger("motpipe.api")
# OSErrors that mean "cannot store here" (a 507 naming it); any other OSError is a bug (500)
STORAGE_ERRNOS = {errno.ENOSPC, errno.EROFS, errno.EACCES, errno.EPERM, errno.ENOTDIR, errno.EDQUOT, errno.EEXIST}
REQUESTS = Counter("motpipe_http_requests_total", "HTTP requests", ["method", "route", "status"])
LATENCY = Histogram("motpipe_http_request_seconds", "HTTP request latency", ["route"])


# our exceptions -> HTTP status (the most specific class wins)
STATUS = ((MissingInputError, 422), (InputError, 400), (NotFoundError, 404), (ConflictError, 409), (GoneError, 410))


def _json_error(status: int):
    async def handler(request: Request, exc: Exception):
        return JSONResponse({"detail": _relative(request, str(exc))}, status_code=status)

    return handler


def _relative(request: Request, text: str) -> str:
    """Messages name files relative to the data root: the server's own layout is not the caller's business."""
    root = str(request.app.state.settings.data_root.resolve())
    return text.replace(root + "/", "").replace(root, ".")


def _error_handlers(app: FastAPI) -> None:
    for exc_type, status in STATUS:
        app.add_exception_handler(exc_type, _json_error(status))

    @app.exception_handler(OSError)
    async def _storage(request: Request, exc: OSError):  # disk full, read-only or broken data root
        if exc.errno not in STORAGE_ERRNOS:
            log.error("unexpected %s on %s", type(exc).__name__, request.url.path, exc_info=exc)
            return JSONResponse({"detail": "internal error"}, status_code=500)
        detail = f"the data root cannot be written ({type(exc).__name__}: {exc}); nothing was queued"
        return JSONResponse({"detail": _relative(request, detail)}, status_code=507)

    @app.exception_handler(RecursionError)
    async def _too_deep(_: Request, __: RecursionError):  # e.g. a JSON body nested 100,000 levels deep
        return JSONResponse({"detail": "request body nested too deeply"}, status_code=400)

    @app.exception_handler(ValidationError)
    @app.exception_handler(RequestValidationError)
    async def _invalid(_: Request, exc: RequestValidationError | ValidationError):
        detail = "; ".join(
            f"{'.'.join(str(p) for p in err['loc'] if p != 'body')}: {err['msg']}" for err in exc.errors()
        )
        return JSONResponse({"detail": detail or "invalid request"}, status_code=422)


def create_app(routers: list[APIRouter], settings: Settings | None = None, title: str = "motpipe") -> FastAPI:
    settings = settings or get_settings()
    app = FastAPI(title=title, version="0.1.0")
    app.state.settings = settings
    app.state.store = RunStore(settings.data_root, settings.database_url)
    app.state.store.index  # noqa: B018 - the index is migrated at start-up (and filled if it is new)
    app.state.celery = make_celery(settings)
    if settings.bind_host:  # the address a deployment binds to (compose): an open API there is refused
        check_bind(settings, settings.bind_host)
    if settings.auth.startswith("OFF"):
        log.warning("%s (see /healthz)", settings.auth)
    remove_stale_parts(settings.data_root / "uploads")
    _error_handlers(app)

    @app.middleware("http")
    async def _count(request: Request, call_next):
        start = time.perf_counter()
        response = await call_next(request)
        route = request.scope.get("route")
        path = getattr(route, "path", "unmatched")
        REQUESTS.labels(request.method, path, str(response.status_code)).inc()
        LATENCY.labels(path).observe(time.perf_counter() - start)
        return response

    protected = [Depends(require_token)]
    app.include_router(health_router)
    app.include_router(metrics_router, dependencies=protected)
    app.include_router(runs_router, dependencies=protected, responses=ERRORS)
    for router in routers:
        app.include_router(router, dependencies=protected, responses=ERRORS)
    return app
