"""`POST /runs/{run}/gt`: upload ground truth (Label Studio JSON or MOT txt), validated before it is stored."""

from __future__ import annotations

from pathlib import Path

from fastapi import APIRouter, Depends, Request
from starlette.concurrency import run_in_threadpool

from shared.api.deps import get_settings_dep, get_store
from shared.api.uploads import receive_multipart
from shared.atomic import atomic_move
from shared.errors import InputError
from shared.run_store import RunStore
from shared.settings import Settings

from .ground_truth import parse_ground_truth

router = APIRouter(tags=["evaluator"])
GT_NAMES = {"labelstudio": "gt.json", "mot": "gt.txt"}


@router.post("/runs/{run_id}/gt", status_code=201)
async def upload_gt(
    run_id: str,
    request: Request,
    settings: Settings = Depends(get_settings_dep),
    store: RunStore = Depends(get_store),
):
    folder = store.run_dir(run_id)  # 404 before reading a byte of the body
    upload = await receive_multipart(request, settings.data_root / "uploads", settings.upload_limit_bytes)
    try:
        if "file" not in upload.files:
            raise InputError("multipart field 'file' (the ground truth) is missing", field="file")
        filename, temp_path, _ = upload.files["file"]
        data = Path(temp_path).read_bytes()
        kind, table = await run_in_threadpool(parse_ground_truth, data, filename or "upload")
        name = GT_NAMES[kind]
        atomic_move(temp_path, folder / name)
    finally:
        upload.discard()

    def record(r):
        for other in set(GT_NAMES.values()) - {name}:
            r.artifacts.pop(other, None)
            (folder / other).unlink(missing_ok=True)
        store.record_artifacts(r, folder, [name])
        r.inputs["gt"] = {"format": kind, "file": filename}

    store.update(run_id, record)
    frames = [int(table.frame.min()), int(table.frame.max())] if len(table) else []
    return {
        "run": run_id,
        "format": kind,
        "artifact": name,
        "rows": len(table),
        "tracks": len(set(table.id.tolist())),
        "frames": frames,
    }
