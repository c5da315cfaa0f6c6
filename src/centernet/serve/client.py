"""A small client of ``centernet serve``: post an image to /v1/detect, get Detections.

Standard library only, so a client needs nothing but this package's core install::

    from centernet.serve.client import detect
    found = detect("http://127.0.0.1:8000", "photo.jpg", threshold=0.3)

A server with API keys wants ``api_key=``; an HTTPS server with a certificate the system
does not trust (self-signed) wants ``cafile=`` naming that certificate.
"""

from __future__ import annotations

import json
import mimetypes
import ssl
import urllib.error
import urllib.request
from pathlib import Path

import cv2
import numpy as np

from centernet.errors import CenterNetError
from centernet.types import Detections


class ServerError(CenterNetError):
    """The server answered with an error status; carries it and the server's reason."""

    def __init__(self, status: int, reason: str) -> None:
        super().__init__(f"server answered {status}: {reason}")
        self.status = status
        self.reason = reason


def encode_for_upload(image: str | Path | bytes | np.ndarray) -> tuple[bytes, str]:
    """(body, content type) for an image file, its bytes, or a BGR array (sent as PNG,
    lossless, so the server sees exactly these pixels)."""
    if isinstance(image, np.ndarray):
        ok, encoded = cv2.imencode(".png", image)
        if not ok:
            raise CenterNetError(f"cannot encode an array of shape {image.shape} as PNG")
        return encoded.tobytes(), "image/png"
    if isinstance(image, bytes):
        return image, "application/octet-stream"
    path = Path(image)
    return path.read_bytes(), mimetypes.guess_type(path.name)[0] or "application/octet-stream"


def detect_json(
    url: str,
    image: str | Path | bytes | np.ndarray,
    threshold: float | None = None,
    max_dets: int | None = None,
    timeout_s: float = 60.0,
    api_key: str | None = None,
    cafile: str | Path | None = None,
) -> dict:
    """The server's JSON answer for one image (docs/serving.md, docs/output-formats.md)."""
    body, content_type = encode_for_upload(image)
    query = "&".join(
        f"{key}={value}"
        for key, value in (("threshold", threshold), ("max_dets", max_dets))
        if value is not None
    )
    request = urllib.request.Request(
        f"{url.rstrip('/')}/v1/detect" + (f"?{query}" if query else ""),
        data=body,
        headers={"Content-Type": content_type, **auth_headers(api_key)},
        method="POST",
    )
    context = ssl.create_default_context(cafile=str(cafile)) if cafile is not None else None
    try:
        with urllib.request.urlopen(request, timeout=timeout_s, context=context) as response:
            return json.loads(response.read())
    except urllib.error.HTTPError as exc:
        raise ServerError(exc.code, _reason(exc.read())) from None
    except urllib.error.URLError as exc:
        raise CenterNetError(f"cannot reach {url}: {exc.reason}") from None


def detect(
    url: str,
    image: str | Path | bytes | np.ndarray,
    threshold: float | None = None,
    max_dets: int | None = None,
    timeout_s: float = 60.0,
    api_key: str | None = None,
    cafile: str | Path | None = None,
) -> Detections:
    """Detections of one image from a server at ``url`` (original-image pixels)."""
    answer = detect_json(url, image, threshold, max_dets, timeout_s, api_key, cafile)
    found = answer["detections"]
    return Detections(
        xyxy=np.array([d["box"] for d in found], dtype=np.float32).reshape(-1, 4),
        scores=np.array([d["score"] for d in found], dtype=np.float32),
        class_ids=np.array([_class_index(d) for d in found], dtype=np.int64),
    )


def _class_index(detection: dict) -> int:
    """A detection's class index; ``class_id`` is what a 0.2 server calls it."""
    return int(detection["class_index"] if "class_index" in detection else detection["class_id"])


def auth_headers(api_key: str | None) -> dict[str, str]:
    """The header that carries ``api_key``; none without one."""
    return {"Authorization": f"Bearer {api_key}"} if api_key else {}


def _reason(body: bytes) -> str:
    try:
        return str(json.loads(body)["error"])
    except (ValueError, KeyError, TypeError):
        return body.decode("utf-8", "replace")[:200]
