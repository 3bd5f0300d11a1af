"""Who may call the API: the bearer token, or the dashboard's session cookie with a CSRF token.

The dashboard never stores the API token in the browser. `/ui/login` checks it once and sets a session
cookie that is not the token: `<expiry>.<nonce>.<signature>`, signed with the token (HMAC-SHA256), valid for
`SESSION_S` (changing the token ends every session). A browser sends cookies to every port of a host, so a
page served from another port could otherwise make requests that carry the session: a state-changing request
authenticated by the cookie needs the `X-CSRF-Token` header the dashboard's pages hold (derived from the
session), and any request whose `Origin` / `Sec-Fetch-Site` says another origin made it is refused whatever
authenticates it. Scripts and clients that send `Authorization: Bearer <token>` need neither.
"""

from __future__ import annotations

import hashlib
import hmac
import ipaddress
import secrets
import threading
import time
from collections import deque
from urllib.parse import urlsplit

from fastapi import HTTPException, Request

from shared.errors import InputError

SESSION_COOKIE = "motpipe_session"
SESSION_S = 12 * 3600
CSRF_HEADER = "x-csrf-token"
SAFE_METHODS = {"GET", "HEAD", "OPTIONS"}


def _sign(token: str, message: str) -> str:
    return hmac.new(token.encode(), message.encode(), hashlib.sha256).hexdigest()


def new_session(token: str, now: float | None = None) -> str:
    expires = int((now or time.time()) + SESSION_S)
    nonce = secrets.token_hex(16)
    return f"{expires}.{nonce}.{_sign(token, f'session|{expires}|{nonce}')}"


def session_valid(cookie: str, token: str) -> bool:
    expires, _, rest = cookie.partition(".")
    nonce, _, signature = rest.partition(".")
    if not expires.isdigit() or int(expires) < time.time() or not nonce:
        return False
    return hmac.compare_digest(signature.encode(), _sign(token, f"session|{expires}|{nonce}").encode())


def csrf_token(cookie: str, token: str) -> str:
    """The value a page of this session sends back with every state-changing request."""
    return _sign(token, f"csrf|{cookie}")


def configured_token(request: Request) -> str:
    return (request.app.state.settings.api_token or "").strip()


def _bearer_ok(request: Request, token: str) -> bool:
    scheme, _, given = request.headers.get("authorization", "").partition(" ")
    return scheme.lower() == "bearer" and hmac.compare_digest(given.strip().encode(), token.encode())


def session_of(request: Request) -> str | None:
    """The request's valid dashboard session cookie, if any."""
    token = configured_token(request)
    cookie = request.cookies.get(SESSION_COOKIE, "")
    return cookie if token and cookie and session_valid(cookie, token) else None


def token_ok(request: Request) -> bool:
    """No token configured, or the bearer header carries it, or a valid dashboard session."""
    token = configured_token(request)
    return not token or _bearer_ok(request, token) or session_of(request) is not None


def cross_origin(request: Request) -> str | None:
    """Why this request comes from a page of another origin (another port of this host included), if it does."""
    fetch_site = request.headers.get("sec-fetch-site", "")
    if fetch_site in ("cross-site", "same-site"):
        return f"Sec-Fetch-Site is {fetch_site}"
    origin = request.headers.get("origin")
    if origin is None:
        return None
    host = _without_default_port(request.headers.get("host", ""), request.url.scheme)
    parts = urlsplit(origin)
    if origin != "null" and _without_default_port(parts.netloc, parts.scheme) == host:
        return None
    return f"Origin {origin} is not this server ({host})"


def _without_default_port(netloc: str, scheme: str) -> str:
    default = {"http": ":80", "https": ":443"}.get(scheme, "")
    return netloc[: -len(default)] if default and netloc.endswith(default) else netloc


def require_token(request: Request) -> None:
    """Dependency of every API route: 401 without credentials, 403 for a cross-origin or CSRF-less request."""
    if request.method not in SAFE_METHODS and (why := cross_origin(request)):
        raise HTTPException(403, f"refused: a page of another origin made this request ({why})")
    token = configured_token(request)
    if not token or _bearer_ok(request, token):
        return
    cookie = session_of(request)
    if cookie is None:
        raise HTTPException(401, "missing or wrong bearer token", headers={"WWW-Authenticate": "Bearer"})
    if request.method not in SAFE_METHODS:
        given = request.headers.get(CSRF_HEADER, "")
        if not hmac.compare_digest(given.encode(), csrf_token(cookie, token).encode()):
            raise HTTPException(403, "refused: the dashboard's CSRF token is missing or wrong (reload the page)")


class LoginLimiter:
    """At most `attempts` wrong tokens per client address in `window_s` seconds (a guess rate of minutes, not
    of the 60 per second a loop managed)."""

    def __init__(self, attempts: int = 10, window_s: float = 60.0):
        self.attempts, self.window_s = attempts, window_s
        self._failures: dict[str, deque[float]] = {}
        self._lock = threading.Lock()

    def wait_s(self, client: str) -> float:
        """Seconds until `client` may try again (0: now)."""
        with self._lock:
            recent = self._recent(client)
            return 0.0 if len(recent) < self.attempts else recent[0] + self.window_s - time.monotonic()

    def failed(self, client: str) -> None:
        with self._lock:
            self._recent(client).append(time.monotonic())

    def _recent(self, client: str) -> deque[float]:
        recent = self._failures.setdefault(client, deque())
        while recent and recent[0] < time.monotonic() - self.window_s:
            recent.popleft()
        return recent


def check_bind(settings, host: str) -> None:
    """Refuse to serve an open API on an address others can reach, unless told to (MOTPIPE_AUTH=off)."""
    if is_loopback(host) or (settings.api_token or "").strip() or settings.auth_switch == "off":
        return
    raise InputError(f"refusing to serve on {host} without MOTPIPE_API_TOKEN: anyone who reaches it could use "
                     "the API; set a token, or MOTPIPE_AUTH=off to run it open on purpose")  # fmt: skip


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False
