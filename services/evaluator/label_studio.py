"""A small client of Label Studio's REST API for the annotation loop: projects with motpipe's box config,
frame images uploaded into Label Studio, tasks with the run's tracks as predictions, and the JSON export.

Why not `label-studio-sdk`: its 2.x releases pin `opencv-python-headless<4.13`, whose wheels pin
`numpy<2.3`, which contradicts TrackEval's `numpy>=2.3.2` (our parity reference) in one environment. The
endpoints used here are the documented, stable ones; both kinds of token work: a legacy API key
(`Authorization: Token …`) or a personal access token, a JWT refresh token exchanged at `/api/token/refresh/`
for short-lived access tokens (Label Studio ≥ 1.20 turns legacy keys off for new organisations). Every
failure is a `LabelStudioError` of one line: which setting, what answered."""

from __future__ import annotations

import xml.etree.ElementTree as ElementTree
from typing import Any

import httpx

LABELS = ("player", "ball")  # the group's classes 1 and 2, in that order
LABEL_CONFIG = """<View>
  <Image name="image" value="$image" zoom="true"/>
  <RectangleLabels name="label" toName="image">
    <Label value="player" background="#1f77b4"/>
    <Label value="ball" background="#ff7f0e"/>
  </RectangleLabels>
</View>"""


class LabelStudioError(RuntimeError):
    """Label Studio could not be reached, refused the token, or answered something motpipe cannot use."""

    def __init__(self, message: str, status: int = 502):
        super().__init__(message)
        # what the HTTP API answers: 502 when Label Studio failed, 409 for a project or a setting that does not
        # fit, 404 for a project it does not have
        self.status = status


def _detail(response: httpx.Response) -> str:
    try:
        body = response.json()
    except ValueError:
        return response.text.strip().splitlines()[0][:200] if response.text.strip() else response.reason_phrase
    if isinstance(body, dict):
        return str(body.get("detail") or body.get("validation_errors") or body)[:200]
    return str(body)[:200]


class LabelStudio:
    def __init__(self, url: str | None, token: str | None, timeout: float = 60.0):
        if not url:
            raise LabelStudioError("MOTPIPE_LABEL_STUDIO_URL is not set (the address of your Label Studio)", 409)
        if not token:
            raise LabelStudioError("MOTPIPE_LABEL_STUDIO_TOKEN is not set (Account & Settings → Access Token)", 409)
        self.url = url.rstrip("/")
        self.token = token.strip()
        self.personal = self.token.count(".") == 2  # a JWT: a personal access token
        self.client = httpx.Client(base_url=self.url, timeout=timeout)
        self._access: str | None = None

    def close(self) -> None:
        self.client.close()

    def _send(self, method: str, path: str, **kwargs) -> httpx.Response:
        try:
            return self.client.request(method, path, **kwargs)
        except httpx.HTTPError as exc:
            raise LabelStudioError(f"Label Studio at {self.url} did not answer ({type(exc).__name__}: {exc}); "
                                   "check MOTPIPE_LABEL_STUDIO_URL") from None  # fmt: skip

    def _authorization(self, renew: bool = False) -> str:
        if not self.personal:
            return f"Token {self.token}"
        if self._access is None or renew:
            answer = self._send("POST", "/api/token/refresh/", json={"refresh": self.token})
            if answer.status_code != 200 or "access" not in answer.text:
                raise LabelStudioError(
                    f"Label Studio at {self.url} refused the personal access token "
                    f"({answer.status_code}: {_detail(answer)}); check MOTPIPE_LABEL_STUDIO_TOKEN"
                )
            self._access = answer.json()["access"]
        return f"Bearer {self._access}"

    def call(self, method: str, path: str, **kwargs) -> Any:
        """The JSON Label Studio answers `method path`, or a LabelStudioError saying what went wrong."""
        headers = {"Authorization": self._authorization()}
        answer = self._send(method, path, headers=headers, **kwargs)
        if answer.status_code == 401 and self.personal:  # the access token expired: once more with a new one
            answer = self._send(method, path, headers={"Authorization": self._authorization(renew=True)}, **kwargs)
        if answer.status_code in (401, 403):
            raise LabelStudioError(f"Label Studio at {self.url} refused the token ({answer.status_code}: "
                                   f"{_detail(answer)}); check MOTPIPE_LABEL_STUDIO_TOKEN")  # fmt: skip
        if answer.status_code == 404:
            raise LabelStudioError(f"Label Studio at {self.url} has no {path} (404)", 404)
        if answer.status_code >= 400:
            raise LabelStudioError(f"Label Studio at {self.url} answered {answer.status_code} to {method} {path}: "
                                   f"{_detail(answer)}")  # fmt: skip
        if not answer.content:
            return None
        try:
            return answer.json()
        except ValueError:
            raise LabelStudioError(f"{self.url}{path} answered with something that is not JSON: is "
                                   "MOTPIPE_LABEL_STUDIO_URL the address of Label Studio?") from None  # fmt: skip

    def check(self) -> None:
        """One cheap request: is this Label Studio, and does it take the token?"""
        self.call("GET", "/api/projects", params={"page": 1, "page_size": 1})

    # projects ---------------------------------------------------------------------------------------------
    def project(self, name_or_id: str | int) -> dict:
        """The project with this id or title; a title nobody has yet makes a project with motpipe's config."""
        if str(name_or_id).isdigit():
            try:
                found = self.call("GET", f"/api/projects/{name_or_id}")
            except LabelStudioError as exc:
                if exc.status == 404:
                    raise LabelStudioError(f"Label Studio at {self.url} has no project {name_or_id}", 404) from None
                raise
        else:
            found = next((p for p in self._projects() if p.get("title") == str(name_or_id)), None)
            if found is None:
                found = self.call(
                    "POST", "/api/projects", json={"title": str(name_or_id), "label_config": LABEL_CONFIG}
                )
        check_config(found)
        return found

    def _projects(self) -> list[dict]:
        out, page = [], 1
        while True:
            body = self.call("GET", "/api/projects", params={"page": page, "page_size": 100})
            results = body.get("results", []) if isinstance(body, dict) else body
            out += results
            if not isinstance(body, dict) or not body.get("next"):
                return out
            page += 1

    # tasks ------------------------------------------------------------------------------------------------
    def tasks(self, project: int) -> list[dict]:
        out, page = [], 1
        while True:
            try:
                body = self.call("GET", "/api/tasks", params={"project": project, "page": page, "page_size": 500})
            except LabelStudioError as exc:
                if exc.status == 404 and page > 1:  # asked past the last page
                    return out
                raise
            found = body.get("tasks", []) if isinstance(body, dict) else body
            out += found
            if len(found) < 500:
                return out
            page += 1

    def upload_images(self, project: int, images: list[tuple[str, bytes]]) -> dict[str, str]:
        """Image files into Label Studio's storage (no task yet): {file name: the URL a task's data uses}."""
        files = [(f"file{i}", (name, data, "image/jpeg")) for i, (name, data) in enumerate(images)]
        body = self.call("POST", f"/api/projects/{project}/import", params={"commit_to_project": "false"}, files=files)
        ids = body.get("file_upload_ids") or []
        uploads = self.call("GET", f"/api/projects/{project}/file-uploads", params={"ids": str(list(ids))})
        urls = {}
        for upload in uploads:
            stored = str(upload["file"])  # upload/<project>/<random>-<our name>
            name = next((n for n, _ in images if stored.endswith(n)), None)
            if name is not None:
                urls[name] = "/data/" + stored.lstrip("/")
        missing = [n for n, _ in images if n not in urls]
        if missing:
            raise LabelStudioError(f"Label Studio at {self.url} did not keep the uploaded image(s) {missing[:3]}")
        return urls

    def import_tasks(self, project: int, tasks: list[dict]) -> None:
        self.call("POST", f"/api/projects/{project}/import", json=tasks)

    def export(self, project: int) -> list[dict]:
        """Every task of the project that has an annotation, in Label Studio's JSON export."""
        body = self.call("GET", f"/api/projects/{project}/export", params={"exportType": "JSON"})
        if not isinstance(body, list):
            raise LabelStudioError(f"Label Studio at {self.url} exported something that is not a task list")
        return body


def check_config(project: dict) -> None:
    """motpipe's boxes need one `RectangleLabels` with exactly the labels player and ball."""
    where = f"project {project.get('id')} ({project.get('title')!r})"
    try:
        root = ElementTree.fromstring(project.get("label_config") or "<View/>")
    except ElementTree.ParseError:
        raise LabelStudioError(f"{where} has a labeling config that is not XML", 409) from None
    boxes = root.findall(".//RectangleLabels")
    labels = sorted(label.get("value", "") for box in boxes for label in box.findall("Label"))
    if len(boxes) != 1 or labels != sorted(LABELS):
        raise LabelStudioError(f"{where} has another labeling config (box labels {labels or 'none'}); motpipe "
                               "needs one RectangleLabels with exactly player and ball: choose another project "
                               "or a new name", 409)  # fmt: skip
