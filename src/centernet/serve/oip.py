"""The Open Inference Protocol (KServe v2) for this model: parse infer requests, write
responses, describe the model. Pure functions on bytes and dicts; no web framework.

Input ``IMAGE``, BYTES, shape [N]: N encoded image files, as base64 strings in JSON
``data`` or through the binary-data extension (a JSON header of
``Inference-Header-Content-Length`` bytes, then each element as a 4-byte little-endian
length and its bytes; what ``tritonclient`` sends). Outputs in the TF Object Detection
API convention, padded to the largest count K in the request.
"""

from __future__ import annotations

import base64
import binascii
import json
import struct
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

from centernet.serve.batcher import ImageResult
from centernet.serve.service import BadRequestError
from centernet.types import ModelSpec

INPUT_NAME = "IMAGE"
HEADER_LENGTH = "inference-header-content-length"
OUTPUTS = {  # name -> (datatype, shape after N; "K" is the largest count in the request)
    "num_detections": ("INT32", ()),
    "detection_boxes": ("FP32", ("K", 4)),
    "detection_scores": ("FP32", ("K",)),
    "detection_classes": ("INT32", ("K",)),
}
_NUMPY = {"INT32": np.int32, "FP32": np.float32}


@dataclass
class InferRequest:
    """What a v2 infer request asks for."""

    images: list[bytes]
    id: str | None = None
    threshold: float | None = None
    max_dets: int | None = None
    outputs: list[str] | None = None  # None: all four
    binary_outputs: set[str] | None = None  # outputs wanted as binary data


def parse_infer_request(body: bytes, header_length: str | None) -> InferRequest:
    """A v2 infer request from its body; BadRequestError (400) saying what is wrong."""
    if header_length is not None:
        try:
            split = int(header_length)
        except ValueError:
            raise BadRequestError(
                f"Inference-Header-Content-Length {header_length!r} is not a number"
            ) from None
        if not 0 < split <= len(body):
            raise BadRequestError(
                f"Inference-Header-Content-Length {split} does not fit a body of {len(body)} bytes"
            )
        header, binary = body[:split], body[split:]
    else:
        header, binary = body, b""
    try:
        request = json.loads(header)
    except (ValueError, UnicodeDecodeError) as exc:
        raise BadRequestError(f"malformed JSON in the infer request: {exc}") from None
    if not isinstance(request, dict):
        raise BadRequestError("the infer request must be a JSON object")
    inputs = request.get("inputs")
    if not isinstance(inputs, list) or len(inputs) != 1 or not isinstance(inputs[0], dict):
        raise BadRequestError(f"the infer request needs exactly one input, {INPUT_NAME!r}")
    images = _parse_image_input(inputs[0], binary)
    parameters = _dict(request.get("parameters"), "parameters")
    parsed = InferRequest(
        images=images,
        id=request.get("id") if isinstance(request.get("id"), str) else None,
        threshold=_number(parameters, "threshold", float),
        max_dets=_number(parameters, "max_dets", int),
    )
    _parse_requested_outputs(request, parameters, parsed)
    return parsed


def _parse_image_input(spec: dict, binary: bytes) -> list[bytes]:
    name, datatype, shape = spec.get("name"), spec.get("datatype"), spec.get("shape")
    if name != INPUT_NAME:
        raise BadRequestError(f"unknown input {name!r}; this model's input is {INPUT_NAME!r}")
    if datatype != "BYTES":
        raise BadRequestError(
            f"input {INPUT_NAME} has datatype BYTES (encoded image files), got {datatype!r}"
        )
    if (
        not isinstance(shape, list)
        or len(shape) != 1
        or not isinstance(shape[0], int)
        or shape[0] < 1
    ):
        raise BadRequestError(f"input {INPUT_NAME} has shape [N] with N >= 1, got {shape!r}")
    count = shape[0]
    parameters = _dict(spec.get("parameters"), "input parameters")
    if "binary_data_size" in parameters:
        size = parameters["binary_data_size"]
        if not isinstance(size, int) or size != len(binary):
            raise BadRequestError(
                f"binary_data_size {size!r} does not match the {len(binary)} bytes after the header"
            )
        images = _split_bytes_elements(binary)
    else:
        data = spec.get("data")
        if data is None:
            raise BadRequestError(f"input {INPUT_NAME} has neither data nor binary_data_size")
        images = [_base64(item, index) for index, item in enumerate(_flatten(data))]
    if len(images) != count:
        raise BadRequestError(
            f"input {INPUT_NAME} has shape [{count}] but holds {len(images)} elements"
        )
    return images


def _split_bytes_elements(binary: bytes) -> list[bytes]:
    """The v2 binary form of a BYTES tensor: each element's 4-byte LE length, then it."""
    elements, offset = [], 0
    while offset < len(binary):
        if offset + 4 > len(binary):
            raise BadRequestError("truncated binary BYTES data (a length prefix is cut off)")
        (length,) = struct.unpack_from("<I", binary, offset)
        offset += 4
        if offset + length > len(binary):
            raise BadRequestError(
                f"truncated binary BYTES data: an element of {length} bytes, "
                f"{len(binary) - offset} left"
            )
        elements.append(binary[offset : offset + length])
        offset += length
    return elements


def _flatten(data: Any) -> list[Any]:
    if isinstance(data, list):
        return [leaf for item in data for leaf in _flatten(item)]
    return [data]


def _base64(item: Any, index: int) -> bytes:
    if not isinstance(item, str):
        raise BadRequestError(f"element {index} of {INPUT_NAME} must be a base64 string")
    try:
        return base64.b64decode(item, validate=True)
    except (binascii.Error, ValueError):
        raise BadRequestError(
            f"element {index} of {INPUT_NAME} is not base64; send image files base64-encoded "
            "in JSON, or as binary data (tritonclient: set_data_from_numpy(..., binary_data=True))"
        ) from None


def _dict(value: Any, what: str) -> dict:
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise BadRequestError(f"{what} must be a JSON object")
    return value


def _number(parameters: dict, key: str, kind: type) -> Any:
    value = parameters.get(key)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise BadRequestError(f"parameter {key} must be a number, got {value!r}")
    if kind is int and value != int(value):
        raise BadRequestError(f"parameter {key} must be an integer, got {value!r}")
    return kind(value)


def _parse_requested_outputs(request: dict, parameters: dict, parsed: InferRequest) -> None:
    binary_all = parameters.get("binary_data_output") is True
    outputs = request.get("outputs")
    if outputs is None:
        parsed.binary_outputs = set(OUTPUTS) if binary_all else set()
        return
    if not isinstance(outputs, list):
        raise BadRequestError("outputs must be a list")
    parsed.outputs, parsed.binary_outputs = [], set()
    for item in outputs:
        name = item.get("name") if isinstance(item, dict) else None
        if name not in OUTPUTS:
            raise BadRequestError(f"unknown output {name!r}; outputs: {', '.join(OUTPUTS)}")
        parsed.outputs.append(name)
        wanted = _dict(item.get("parameters"), "output parameters").get("binary_data")
        if wanted is True or (wanted is None and binary_all):
            parsed.binary_outputs.add(name)


def output_tensors(results: Sequence[ImageResult]) -> dict[str, np.ndarray]:
    """The four outputs for a request's images, rows padded with zeros to the largest K."""
    count = len(results)
    k = max((len(r.detections) for r in results), default=0)
    tensors = {
        "num_detections": np.zeros(count, np.int32),
        "detection_boxes": np.zeros((count, k, 4), np.float32),
        "detection_scores": np.zeros((count, k), np.float32),
        "detection_classes": np.zeros((count, k), np.int32),
    }
    for row, result in enumerate(results):
        found = result.detections
        n = len(found)
        tensors["num_detections"][row] = n
        tensors["detection_boxes"][row, :n] = found.xyxy
        tensors["detection_scores"][row, :n] = found.scores
        tensors["detection_classes"][row, :n] = found.class_ids
    return tensors


def encode_infer_response(
    model_name: str, request: InferRequest, results: Sequence[ImageResult]
) -> tuple[bytes, int | None]:
    """The response body, and the JSON header's length when binary data follows it."""
    tensors = output_tensors(results)
    binary_outputs = request.binary_outputs or set()
    entries, blobs = [], []
    for name in request.outputs or list(OUTPUTS):
        value = tensors[name]
        entry: dict[str, Any] = {
            "name": name,
            "datatype": OUTPUTS[name][0],
            "shape": list(value.shape),
        }
        if name in binary_outputs:
            blob = np.ascontiguousarray(value, dtype=_NUMPY[OUTPUTS[name][0]]).tobytes()
            entry["parameters"] = {"binary_data_size": len(blob)}
            blobs.append(blob)
        else:
            entry["data"] = value.reshape(-1).tolist()
        entries.append(entry)
    response: dict[str, Any] = {"model_name": model_name, "model_version": "1", "outputs": entries}
    if request.id is not None:
        response["id"] = request.id
    header = json.dumps(response).encode()
    if not blobs:
        return header, None
    return header + b"".join(blobs), len(header)


def model_metadata(model_name: str, spec: ModelSpec, platform: str) -> dict[str, Any]:
    """GET /v2/models/{name}: the tensors, plus the ModelSpec under ``centernet``."""
    return {
        "name": model_name,
        "versions": ["1"],
        "platform": platform,
        "inputs": [{"name": INPUT_NAME, "datatype": "BYTES", "shape": [-1]}],
        "outputs": [
            {
                "name": name,
                "datatype": datatype,
                "shape": [-1, *(-1 if d == "K" else d for d in dims)],
            }
            for name, (datatype, dims) in OUTPUTS.items()
        ],
        "centernet": asdict(spec),
    }
