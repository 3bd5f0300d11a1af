"""Dashboard pages. Each page renders what the stores hold now; `static/app.js` keeps live parts fresh by
polling the same JSON endpoints any client uses (`/runs`, `/eval/{run}`, `/sweeps/{id}`, `/train/{job}`).

With `MOTPIPE_API_TOKEN` set, `/ui/login` checks the token once (at most 10 wrong ones a minute per address)
and sets a signed session cookie (HttpOnly, SameSite=Strict; not the token, see shared/api/auth.py); every page
carries the session's CSRF token for the requests its script makes.
"""

from __future__ import annotations

import contextlib
import hmac
import json
import math
import re
from pathlib import Path
from urllib.parse import urlencode

from fastapi import APIRouter, Depends, Form, HTTPException, Request
from fastapi.responses import HTMLResponse, RedirectResponse
from fastapi.staticfiles import StaticFiles
from fastapi.templating import Jinja2Templates

from services.trainer.api import list_jobs
from services.trainer.jobs import read_job
from services.trainer.sweep_api import list_sweeps, read_sweep, sweep_status
from shared.api.auth import SESSION_COOKIE, SESSION_S, LoginLimiter, csrf_token, new_session, session_of, token_ok
from shared.api.deps import get_settings_dep, get_store
from shared.api.runs import lost_after
from shared.errors import InputError, NotFoundError
from shared.run_index import PageQuery
from shared.run_store import RunStore, check_run_id, shown
from shared.schemas import (
    BYTETRACK_DEFAULTS,
    MOTRV2_SCORE_THRESHOLD,
    RUN_ID_RE,
    TRACKER_KNOBS,
    score_threshold_of,
    tracker_knobs,
    utcnow,
)
from shared.settings import Settings

HERE = Path(__file__).parent
templates = Jinja2Templates(directory=HERE / "templates")
templates.env.filters["tojson_pretty"] = lambda value: json.dumps(value, indent=1, default=str)


def query_string(args: dict, change: dict, path: str = "/ui") -> str:
    """`path` with the page's query `args` changed by `change` (a None value removes that key)."""
    merged = {k: v for k, v in {**args, **change}.items() if v not in (None, "")}
    return f"{path}?{urlencode(merged)}" if merged else path


templates.env.globals["query_string"] = query_string
router = APIRouter(prefix="/ui", include_in_schema=False)
static = StaticFiles(directory=HERE / "static")
_JOB_ID = re.compile(r"^[0-9a-f]{16}$")
_logins = LoginLimiter()


class LoginRequired(Exception):
    """Raised by pages when a token is configured and the visitor has not logged in."""


def login_required(request: Request) -> None:
    if not token_ok(request):
        raise LoginRequired


def _page(request: Request, name: str, **context) -> HTMLResponse:
    settings = request.app.state.settings
    session = session_of(request)
    csrf = csrf_token(session, settings.api_token) if session else ""
    return templates.TemplateResponse(request, name, {"auth": bool(settings.api_token), "csrf": csrf, **context})


@router.get("/login")
def login_form(request: Request, error: str | None = None):
    return _page(request, "login.html", error=error)


@router.post("/login")
def login(request: Request, token: str = Form(...), settings: Settings = Depends(get_settings_dep)):
    if not settings.api_token:
        return RedirectResponse("/ui", status_code=303)
    client = request.client.host if request.client else "?"
    if wait := _logins.wait_s(client):
        page = _page(request, "login.html", error=f"too many wrong tokens: try again in {math.ceil(wait)} s")
        page.status_code, page.headers["Retry-After"] = 429, str(math.ceil(wait))
        return page
    if not hmac.compare_digest(token.strip().encode(), settings.api_token.encode()):
        _logins.failed(client)
        return _page(request, "login.html", error="wrong token")
    answer = RedirectResponse("/ui", status_code=303)
    answer.set_cookie(SESSION_COOKIE, new_session(settings.api_token), max_age=SESSION_S, httponly=True,
                      samesite="strict", path="/")  # fmt: skip
    return answer


@router.post("/logout")
def logout():
    answer = RedirectResponse("/ui/login", status_code=303)
    answer.delete_cookie(SESSION_COOKIE, path="/")
    return answer


RUN_FILTERS = ("tag", "state", "detector", "tracker", "parent", "sweep")


@router.get("", dependencies=[Depends(login_required)])
def runs_page(request: Request, store: RunStore = Depends(get_store), settings: Settings = Depends(get_settings_dep)):
    """One page of the run index with the filters, sort and cursor of the address (as `GET /runs` takes
    them); a bad value shows the page's first results with the reason instead of an error page."""
    args = {k: v for k, v in request.query_params.items() if v and (k in RUN_FILTERS or k in ("q", "sort", "cursor"))}
    filters = tuple((k, args[k][:200]) for k in RUN_FILTERS if k in args)
    query = PageQuery(limit=50, cursor=args.get("cursor"), sort=args.get("sort", "-created"), q=args.get("q"),
                      filters=filters)  # fmt: skip
    lost_before = utcnow().timestamp() - lost_after(settings)
    problem = None
    try:
        found = store.runs_page(query, lost_before)
    except InputError as exc:
        problem = str(exc)
        found = store.runs_page(PageQuery(filters=filters, q=query.q), lost_before)
        args.pop("cursor", None)
        args.pop("sort", None)
    return _page(request, "runs.html", page=found, args=args, problem=problem, sort=args.get("sort", "-created"),
                 ball=any(r["HOTA_ball"] is not None for r in found["runs"]))  # fmt: skip


@router.get("/upload", dependencies=[Depends(login_required)])
def upload_page(request: Request):
    return _page(request, "upload.html")


@router.get("/runs/{run_id}", dependencies=[Depends(login_required)])
def run_page(request: Request, run_id: str, store: RunStore = Depends(get_store)):
    check_run_id(run_id)
    record = shown(store.get(run_id), lost_after(request.app.state.settings), store.root)  # as GET /runs/{run}
    has_gt = store.gt_file(run_id) is not None
    knobs = {tracker: tracker_knobs(tracker) for tracker in TRACKER_KNOBS}  # the forms offer what the API checks
    scores = {"bytetrack": BYTETRACK_DEFAULTS["score_threshold"], "motrv2": MOTRV2_SCORE_THRESHOLD}
    parent_name = None
    if record.parent:
        with contextlib.suppress(NotFoundError, OSError, ValueError):
            parent_name = store.get(record.parent).name
    settings = request.app.state.settings
    label_studio = settings.label_studio_url if settings.label_studio_url and settings.label_studio_token else None
    return _page(request, "run.html", run=record, has_gt=has_gt, knobs=knobs, score_defaults=scores,
                 parent_name=parent_name, label_studio=label_studio)  # fmt: skip


def _review_pane(record) -> dict:
    """What the review page needs of one run: its video's geometry and the tracker's score threshold."""
    video = record.inputs.get("video") or {}
    detect = record.stages.get("detect")
    info = detect.params.get("det_db", {}) if detect else {}
    track = record.stages.get("track")
    tracker = track.params.get("tracker") if track else None
    threshold = score_threshold_of(track.params if track else None)
    return {"run": record.run, "name": record.name or record.run, "tracker": tracker, "threshold": threshold,
            "frames": video.get("frames") or info.get("frames") or 1, "fps": video.get("fps") or 25,
            "width": video.get("width") or 1280, "height": video.get("height") or 720}  # fmt: skip


def _family(store: RunStore, record) -> list[dict]:
    """Runs to review beside `record`: its parent, its children and its siblings, those with tracks."""
    found = {}
    for parent in filter(None, (record.run, record.parent)):
        query = PageQuery(limit=100, filters=(("parent", parent), ("track_state", "succeeded")))
        found |= {r["run"]: r for r in store.runs_page(query)["runs"]}
    if record.parent:
        with contextlib.suppress(NotFoundError, OSError, ValueError):
            parent = store.get(record.parent)
            found[parent.run] = {"run": parent.run, "name": parent.name or parent.run}
    found.pop(record.run, None)
    return [{"run": r["run"], "name": r["name"] or r["run"]} for r in found.values()]


@router.get("/runs/{run_id}/review", dependencies=[Depends(login_required)])
def review_page(request: Request, run_id: str, store: RunStore = Depends(get_store)):
    """The run's video, its boxes and its errors, frame by frame (`static/app.js`, `reviewPage`); `?with=RUN`
    puts a second run of the same video beside it, on one timeline, in step."""
    check_run_id(run_id)
    record = store.get(run_id)
    panes, problem = [_review_pane(record)], None
    other = request.query_params.get("with", "").strip()
    if other:
        try:
            check_run_id(other)
            second = _review_pane(store.get(other))
        except (NotFoundError, InputError) as exc:
            problem = f"cannot show {other[:40]!r} beside this run: {exc}"
        else:
            geometry = ("frames", "width", "height")
            if any(second[k] != panes[0][k] for k in geometry):
                problem = (f"run {other} is not of the same video ({second['frames']} frames of {second['width']}×"
                           f"{second['height']}, this run {panes[0]['frames']} of {panes[0]['width']}×"
                           f"{panes[0]['height']}): side by side needs the same video")  # fmt: skip
            elif other != run_id:
                panes.append(second)
    return _page(request, "review.html", run=record, panes=panes, first=panes[0], problem=problem,
                 family=_family(store, record), other=other)  # fmt: skip


@router.get("/compare", dependencies=[Depends(login_required)])
def compare_page(request: Request, store: RunStore = Depends(get_store)):
    """2 to 6 runs side by side (`?runs=a&runs=b…`, or `?runs=a,b`; `?a=&b=` as before)."""
    asked = [value for key in ("runs", "a", "b") for value in request.query_params.getlist(key)]
    chosen = list(dict.fromkeys(r.strip() for value in asked for r in value.split(",") if RUN_ID_RE.match(r.strip())))
    problem = None
    if len(chosen) > 6:
        problem, chosen = f"{len(chosen)} runs chosen: comparing the first 6", chosen[:6]
    elif len(chosen) == 1:
        problem = "choose at least two runs"
    runs = store.runs_page(PageQuery(limit=500, filters=(("track_state", "succeeded"),)))["runs"]
    return _page(request, "compare.html", runs=runs, chosen=chosen if len(chosen) >= 2 else [], problem=problem)


@router.get("/sweeps/{sweep_id}", dependencies=[Depends(login_required)])
def sweep_page(
    request: Request,
    sweep_id: str,
    store: RunStore = Depends(get_store),
    settings: Settings = Depends(get_settings_dep),
):
    return _page(request, "sweep.html", sweep=sweep_status(store, read_sweep(settings, sweep_id)))


def _jobs_root(settings: Settings) -> Path:
    return settings.data_root.resolve() / "jobs"


def _listing_args(request: Request) -> dict:
    """The q, tag and cursor of a sweeps or jobs page address (bounded as the API bounds them)."""
    return {k: v[:512] for k, v in request.query_params.items() if v and k in ("q", "tag", "cursor")}


def _listing(request: Request, template: str, fetch, store: RunStore) -> HTMLResponse:
    """A sweeps or jobs page: the API's listing for the address's query; a stale cursor shows page 1 and why."""
    args = _listing_args(request)
    params = {"store": store, "settings": request.app.state.settings, "limit": 50, "cursor": args.get("cursor"),
              "q": args.get("q"), "tag": args.get("tag")}  # fmt: skip
    problem = None
    try:
        found = fetch(**params)
    except HTTPException as exc:
        problem = "; ".join(d.get("msg", "") for d in exc.detail) if isinstance(exc.detail, list) else str(exc.detail)
        args.pop("cursor", None)
        found = fetch(**{**params, "cursor": None})
    return _page(request, template, page=found, args=args, problem=problem)


@router.get("/sweeps", dependencies=[Depends(login_required)])
def sweeps_page(request: Request, store: RunStore = Depends(get_store)):
    return _listing(request, "sweeps.html", list_sweeps, store)


@router.get("/train", dependencies=[Depends(login_required)])
def jobs_page(request: Request, store: RunStore = Depends(get_store)):
    return _listing(request, "jobs.html", list_jobs, store)


@router.get("/train/{job_id}", dependencies=[Depends(login_required)])
def job_page(request: Request, job_id: str, settings: Settings = Depends(get_settings_dep)):
    folder = _jobs_root(settings) / job_id
    if not _JOB_ID.match(job_id) or not (folder / "job.json").is_file():
        raise NotFoundError(f"no training job {job_id!r}")
    return _page(request, "job.html", job=read_job(folder))


def install(app) -> None:
    """Mount the pages, their static files and the login redirect on an app."""
    app.include_router(router)
    app.mount("/ui/static", static, name="ui-static")

    @app.exception_handler(LoginRequired)
    async def _to_login(_: Request, __: LoginRequired):
        return RedirectResponse("/ui/login", status_code=303)
