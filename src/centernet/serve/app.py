"""The HTTP routes: /v1/detect, the Open Inference Protocol (v2), /metrics; every error a
JSON body ``{"error": "..."}`` with the status that says what kind it is.

The app only owns the transport (bodies, limits, status codes, metrics); every image goes
through the DetectionService, i.e. the Detector's stages.
"""

from __future__ import annotations

import time
from contextlib import asynccontextmanager
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from starlette.datastructures import UploadFile
from starlette.exceptions import HTTPException as StarletteHTTPException

from centernet import __version__
from centernet.errors import CenterNetError, as_command_line
from centernet.serve import oip
from centernet.serve.auth import add_access_control
from centernet.serve.batcher import ImageResult
from centernet.serve.deadline import ReceiveDeadline
from centernet.serve.metrics import CONTENT_TYPE, ServerMetrics
from centernet.serve.page import PAGE_PATHS, STATIC_PREFIX, add_page
from centernet.serve.service import (
    BadRequestError,
    DetectionService,
    QueueFullError,
    RequestTimeoutError,
)

RETRY_AFTER_S = 1  # what a 503 (queue full, draining) tells the client to wait


def create_app(service: DetectionService) -> FastAPI:
    """The ASGI app over ``service``; its lifespan warms the model up and closes it.

    Middleware, outermost first: metrics (every request counted, 401s and preflights
    too), the receive deadline, CORS, API keys; then the routes.
    """

    @asynccontextmanager
    async def lifespan(_: FastAPI):
        if not service.ready:
            service.start()
        yield
        service.close()

    app = FastAPI(
        title="centernet", version=__version__, lifespan=lifespan, docs_url=None, redoc_url=None
    )
    access = service.config.access
    add_access_control(app, access, service.metrics.auth_failures, PAGE_PATHS, STATIC_PREFIX)
    app.add_middleware(ReceiveDeadline, seconds=service.config.limits.receive_timeout_s)
    app.add_middleware(_ObservedRequests, metrics=service.metrics)
    _add_error_handlers(app)
    _add_v1_routes(app, service)
    _add_v2_routes(app, service)
    if access.ui:
        add_page(app)

    @app.get("/metrics")
    async def metrics() -> Response:
        return Response(service.metrics.exposition(), media_type=CONTENT_TYPE)

    return app


# -- errors ------------------------------------------------------------------------------


def error_response(status: int, message: str, headers: dict[str, str] | None = None) -> Response:
    return JSONResponse({"error": as_command_line(message)}, status_code=status, headers=headers)


def _status_of(exc: Exception) -> tuple[int, dict[str, str] | None]:
    if isinstance(exc, BadRequestError):
        return exc.status, None
    if isinstance(exc, QueueFullError):
        return 503, {"Retry-After": str(RETRY_AFTER_S)}
    if isinstance(exc, RequestTimeoutError):
        return 504, None
    return 500, None


def _add_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(CenterNetError)
    async def expected(_: Request, exc: CenterNetError) -> Response:
        status, headers = _status_of(exc)
        return error_response(status, str(exc), headers)

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, exc: StarletteHTTPException) -> Response:
        if exc.status_code == 404:
            return error_response(404, f"no route {request.url.path}")
        if exc.status_code == 405:
            return error_response(405, f"{request.method} is not allowed on {request.url.path}")
        return error_response(exc.status_code, str(exc.detail))

    @app.exception_handler(RequestValidationError)
    async def invalid(_: Request, exc: RequestValidationError) -> Response:
        return error_response(400, f"invalid request: {exc.errors()}")

    @app.exception_handler(Exception)
    async def unexpected(_: Request, exc: Exception) -> Response:
        return error_response(500, f"internal error: {type(exc).__name__}: {exc}")


class _ObservedRequests:
    """ASGI middleware: counts every HTTP request by route and status, and times it; the
    answer says its server-side time (``Server-Timing: app;dur=MS``, arrival to answer)."""

    def __init__(self, app: Any, metrics: ServerMetrics) -> None:
        self.app = app
        self.metrics = metrics

    async def __call__(self, scope: dict, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started, status = time.perf_counter(), 500

        async def observed_send(message: dict) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                took = (time.perf_counter() - started) * 1e3
                timing = (b"server-timing", f"app;dur={took:.2f}".encode())
                message = {**message, "headers": [*message.get("headers", ()), timing]}
            await send(message)

        try:
            await self.app(scope, receive, observed_send)
        finally:
            route = scope.get("route")
            endpoint = getattr(route, "path", None) or "unmatched"
            self.metrics.requests.labels(endpoint, str(status)).inc()
            self.metrics.request_seconds.labels(endpoint).observe(time.perf_counter() - started)


# -- request bodies ----------------------------------------------------------------------


async def read_body(request: Request, limit: int) -> bytes:
    """The whole body, refused with 413 as soon as it is known to be over ``limit``: from
    Content-Length before reading, or while reading a chunked body."""
    declared = request.headers.get("content-length")
    if declared is not None:
        try:
            size = int(declared)
        except ValueError:
            raise BadRequestError(f"Content-Length {declared!r} is not a number") from None
        if size > limit:
            raise _too_big(size, limit)
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise _too_big(size, limit, at_least=True)
        chunks.append(chunk)
    return b"".join(chunks)


def _too_big(size: int, limit: int, at_least: bool = False) -> BadRequestError:
    more = "more than " if at_least else ""
    return BadRequestError(
        f"body of {more}{size / 2**20:.1f} MB is over the {limit / 2**20:g} MB limit "
        "(--max-body-mb)",
        status=413,
    )


async def _multipart_file(request: Request, body: bytes) -> bytes:
    """The bytes of the form field ``file`` of a multipart body already read."""

    async def replay() -> dict:
        return {"type": "http.request", "body": body, "more_body": False}

    try:
        form = await Request(request.scope, replay).form(max_files=1, max_fields=10)
    except Exception as exc:  # the multipart parser's own error types vary by version
        raise BadRequestError(f"malformed multipart body: {exc}") from None
    upload = form.get("file")
    if not isinstance(upload, UploadFile):
        raise BadRequestError("the multipart body has no file field named 'file'")
    return await upload.read()


def _query_number(request: Request, key: str, kind: type) -> Any:
    text = request.query_params.get(key)
    if text is None:
        return None
    try:
        return kind(text)
    except ValueError:
        raise BadRequestError(f"query parameter {key}={text!r} is not a {kind.__name__}") from None


# -- /v1 ---------------------------------------------------------------------------------


def _add_v1_routes(app: FastAPI, service: DetectionService) -> None:
    limits = service.config.limits
    names = service.spec.class_names

    @app.post("/v1/detect")
    async def detect(request: Request) -> Response:
        """The encoded image as the body (image/*), or as the multipart field ``file``."""
        config = service.postprocess_config(
            _query_number(request, "threshold", float), _query_number(request, "max_dets", int)
        )
        body = await read_body(request, limits.max_body_bytes)
        content_type = request.headers.get("content-type", "")
        if content_type.startswith("multipart/form-data"):
            body = await _multipart_file(request, body)
        elif content_type.startswith(("application/json", "text/", "application/x-www-form")):
            raise BadRequestError(
                f"send the image file itself as the body (Content-Type image/jpeg, image/png, "
                f"...) or as multipart field 'file', not {content_type.split(';')[0]}"
            )
        if not body:
            raise BadRequestError("empty body: send an encoded image (JPEG, PNG, ...)")
        [result] = await service.detect([body], config)
        return JSONResponse({"model": service.name, **v1_result(result, names)})


def v1_result(result: ImageResult, class_names: list[str]) -> dict[str, Any]:
    """One image's answer; boxes and scores rounded as ``centernet detect`` writes them, the
    class as every output gives it (``category_id``, ``class_index``, ``class_name``).
    ``class_id`` (= ``class_index``) is the 0.2 name, kept for one release."""
    from centernet.datasets.coco import category_ids_for, class_fields

    found = result.detections
    category_ids = category_ids_for(class_names)
    return {
        "width": result.width,
        "height": result.height,
        "detections": [
            {
                "box": [round(float(v), 2) for v in box],
                "score": round(float(score), 5),
                **class_fields(int(class_index), category_ids, class_names),
                "class_id": int(class_index),  # deprecated: class_index
            }
            for box, score, class_index in zip(found.xyxy, found.scores, found.class_ids)
        ],
    }


# -- /v2: the Open Inference Protocol ----------------------------------------------------


def _add_v2_routes(app: FastAPI, service: DetectionService) -> None:
    limits = service.config.limits
    prefixes = ("/v2/models/{name}", "/v2/models/{name}/versions/{version}")

    def check_model(name: str, version: str | None = None) -> None:
        if name != service.name or version not in (None, "1"):
            asked = name if version is None else f"{name} version {version}"
            raise BadRequestError(
                f"unknown model {asked!r}; this server serves {service.name!r} (version 1)",
                status=404,
            )

    @app.get("/v2")
    async def server_metadata() -> dict:
        return {"name": "centernet", "version": __version__, "extensions": ["binary_tensor_data"]}

    @app.post("/v2/repository/index")
    async def repository_index() -> list[dict]:
        """Triton's model-repository index: the page learns the model's name from it."""
        state = "READY" if service.ready else "UNAVAILABLE"
        return [{"name": service.name, "version": "1", "state": state}]

    @app.get("/v2/health/live")
    async def live() -> dict:
        return {"live": True}

    @app.get("/v2/health/ready")
    async def ready() -> Response:
        if not service.ready:
            return error_response(503, "not ready", {"Retry-After": str(RETRY_AFTER_S)})
        return JSONResponse({"ready": True})

    async def model_metadata(name: str, version: str | None = None) -> dict:
        check_model(name, version)
        platform = f"centernet_{service.engine_name}"
        return oip.model_metadata(service.name, service.spec, platform)

    async def model_ready(name: str, version: str | None = None) -> Response:
        check_model(name, version)
        if not service.ready:
            return error_response(503, "not ready", {"Retry-After": str(RETRY_AFTER_S)})
        return JSONResponse({"name": service.name, "ready": True})

    async def infer(request: Request, name: str, version: str | None = None) -> Response:
        check_model(name, version)
        body = await read_body(request, limits.max_body_bytes)
        parsed = oip.parse_infer_request(body, request.headers.get(oip.HEADER_LENGTH))
        config = service.postprocess_config(parsed.threshold, parsed.max_dets)
        try:
            results = await service.detect(parsed.images, config)
        except BadRequestError as exc:
            index = getattr(exc, "index", None)
            if index is None or len(parsed.images) == 1:
                raise
            raise BadRequestError(
                f"image {index} of {len(parsed.images)}: {exc}", exc.status
            ) from None
        content, header_length = oip.encode_infer_response(service.name, parsed, results)
        if header_length is None:
            return Response(content, media_type="application/json")
        return Response(
            content,
            media_type="application/octet-stream",
            headers={"Inference-Header-Content-Length": str(header_length)},
        )

    for prefix in prefixes:
        app.add_api_route(prefix, model_metadata, methods=["GET"])
        app.add_api_route(f"{prefix}/ready", model_ready, methods=["GET"])
        app.add_api_route(f"{prefix}/infer", infer, methods=["POST"])
