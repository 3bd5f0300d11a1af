"""`GET /healthz` (liveness and readiness: data root writable, broker reachable) and `GET /metrics`."""

from __future__ import annotations

import shutil
import tempfile

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, Response
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from shared.run_store import RESERVE_BYTES

from .docs import binary

router = APIRouter(tags=["health"])
metrics_router = APIRouter(tags=["health"])  # behind the token: request counts are the operator's business


@router.get("/healthz")
def healthz(request: Request):
    settings = request.app.state.settings
    checks = {}
    try:
        settings.data_root.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=settings.data_root):
            pass
        free = shutil.disk_usage(settings.data_root).free
        checks["data_root"] = "ok" if free >= RESERVE_BYTES else f"disk almost full: {free:,} bytes free"
    except OSError as exc:
        checks["data_root"] = f"not writable: {exc}"
    try:
        with request.app.state.celery.connection_for_write() as conn:
            conn.ensure_connection(max_retries=1, timeout=2)
        checks["broker"] = "ok"
    except Exception as exc:  # any broker failure means not ready
        checks["broker"] = f"unreachable: {type(exc).__name__}"
    ok = all(v == "ok" for v in checks.values())
    body = {"status": "ok" if ok else "degraded", "checks": checks, "auth": settings.auth}
    return JSONResponse(body, status_code=200 if ok else 503)


@metrics_router.get("/metrics", response_class=Response, responses=binary("text/plain", description="Prometheus text"))
def metrics() -> Response:
    return Response(generate_latest(), media_type=CONTENT_TYPE_LATEST)
