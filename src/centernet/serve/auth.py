"""Access control: API keys (``Authorization: Bearer KEY``), the routes left open, CORS.

With keys, every route needs one except the health probes (a load balancer carries no
key), the page and its static files (they hold no data; the page asks for the key), and
``/metrics`` when ``metrics_public``. A missing or wrong key is 401 with a JSON error and
``WWW-Authenticate: Bearer`` (RFC 6750), counted in ``centernet_auth_failures_total``; the
request never reaches a route, so it never reaches the model. Keys are compared as SHA-256
digests with ``hmac.compare_digest``, so the time taken depends neither on where a wrong
key differs nor on its length; a key is never logged, echoed or put in an error message.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

from centernet.errors import CenterNetError
from centernet.serve.config import AccessConfig

ENV_API_KEY = "CENTERNET_API_KEY"  # the default of --api-key (server, client, loadtest)
HEALTH_PATHS = frozenset({"/v2/health/live", "/v2/health/ready"})
METRICS_PATH = "/metrics"
REALM = "centernet"


def read_api_keys(
    keys: Iterable[str | None] = (), key_file: str | Path | None = None
) -> tuple[str, ...]:
    """The keys given and those of ``key_file`` (one a line; blank lines and ``#`` comments
    skipped), each checked; in order, without repeats. Errors name the place, not the key."""
    found: list[str] = []
    for key in keys:
        if key is not None:
            found.append(_checked(key.strip(), "the key given"))
    if key_file is not None:
        path = Path(key_file)
        try:
            lines = path.read_text(encoding="utf-8").splitlines()
        except (OSError, UnicodeDecodeError) as exc:
            raise CenterNetError(f"cannot read the API key file {path}: {exc}") from None
        in_file = [
            _checked(line.strip(), f"line {number} of {path}")
            for number, line in enumerate(lines, 1)
            if line.strip() and not line.lstrip().startswith("#")
        ]
        if not in_file:
            raise CenterNetError(f"the API key file {path} holds no key")
        found += in_file
    return tuple(dict.fromkeys(found))


def _checked(key: str, where: str) -> str:
    if not key:
        raise CenterNetError(f"{where}: an empty API key")
    if not all("!" <= char <= "~" for char in key):
        raise CenterNetError(
            f"{where}: an API key must be printable ASCII without spaces (it travels in a header)"
        )
    return key


def _digest(key: bytes) -> bytes:
    return hashlib.sha256(key).digest()


def is_open(path: str, access: AccessConfig, page_paths: tuple[str, ...], page_prefix: str) -> bool:
    """Whether ``path`` is served without a key."""
    if path in HEALTH_PATHS:
        return True
    if access.metrics_public and path == METRICS_PATH:
        return True
    page = path in page_paths or bool(page_prefix) and path.startswith(page_prefix)
    return access.ui and page


class BearerAuth:
    """ASGI middleware: a request to a closed route without one of ``keys`` gets 401."""

    def __init__(
        self,
        app: Any,
        keys: Sequence[str],
        access: AccessConfig,
        failures: Any,  # a prometheus Counter labelled by reason
        page_paths: tuple[str, ...] = (),
        page_prefix: str = "",
    ) -> None:
        if not keys:
            raise CenterNetError("BearerAuth needs at least one key")
        self.app = app
        self._digests = [_digest(key.encode("ascii")) for key in keys]
        self._access = access
        self._failures = failures
        self._page = (page_paths, page_prefix)

    async def __call__(self, scope: dict, receive: Any, send: Any) -> None:
        if scope["type"] != "http" or is_open(route_path(scope), self._access, *self._page):
            await self.app(scope, receive, send)
            return
        token = bearer_token(scope)
        if token is not None and self.accepts(token):
            await self.app(scope, receive, send)
            return
        reason = "missing" if token is None else "wrong"
        self._failures.labels(reason).inc()
        await unauthorized(reason)(scope, receive, send)

    def accepts(self, token: bytes) -> bool:
        """Compared with every key (no early exit), digest against digest."""
        given = _digest(token)
        matched = False
        for digest in self._digests:
            matched |= hmac.compare_digest(given, digest)
        return matched


def route_path(scope: dict) -> str:
    """The path routes are matched on (without the app's root path, as Starlette does)."""
    path, root = scope.get("path", ""), scope.get("root_path", "")
    if root and path.startswith(root):
        path = path[len(root) :]
    return path or "/"


def bearer_token(scope: dict) -> bytes | None:
    """The token of the first ``Authorization: Bearer ...`` header; None if there is none."""
    for name, value in scope.get("headers", ()):
        if name == b"authorization":
            scheme, _, token = value.strip().partition(b" ")
            token = token.strip()
            return token if scheme.lower() == b"bearer" and token else None
    return None


def unauthorized(reason: str) -> Any:
    """The 401 answer; it says what to send, never what was sent."""
    from fastapi.responses import JSONResponse

    if reason == "missing":
        message = "this server needs an API key: send the header 'Authorization: Bearer KEY'"
        challenge = f'Bearer realm="{REALM}"'
    else:
        message = "wrong API key"
        challenge = f'Bearer realm="{REALM}", error="invalid_token"'
    return JSONResponse(
        {"error": message}, status_code=401, headers={"WWW-Authenticate": challenge}
    )


def add_access_control(
    app: Any,
    access: AccessConfig,
    failures: Any,
    page_paths: tuple[str, ...] = (),
    page_prefix: str = "",
) -> None:
    """API keys (if any), then CORS (if any origin) around them: a browser's preflight is
    answered without a key, and a 401 carries the CORS headers its page needs to read it."""
    if access.api_keys:
        app.add_middleware(
            BearerAuth,
            keys=access.api_keys,
            access=access,
            failures=failures,
            page_paths=page_paths,
            page_prefix=page_prefix,
        )
    if access.cors_origins:
        from starlette.middleware.cors import CORSMiddleware

        app.add_middleware(
            CORSMiddleware,
            allow_origins=list(access.cors_origins),
            allow_methods=["GET", "POST"],
            allow_headers=["Authorization", "Content-Type", "Inference-Header-Content-Length"],
            expose_headers=[
                "Inference-Header-Content-Length", "Retry-After", "Server-Timing",
                "WWW-Authenticate",
            ],
            max_age=600,
        )  # fmt: skip
