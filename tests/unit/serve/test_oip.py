"""The Open Inference Protocol codec: binary BYTES tensors, JSON/base64, padded outputs."""

from __future__ import annotations

import base64
import json

import numpy as np
import pytest

pytest.importorskip("prometheus_client", reason="the serve extra is not installed")

from centernet.serve import oip  # noqa: E402
from centernet.serve.batcher import ImageResult  # noqa: E402
from centernet.serve.service import BadRequestError  # noqa: E402
from centernet.types import Detections  # noqa: E402


def bytes_tensor(*elements: bytes) -> bytes:
    """The v2 binary form, written out by hand: 4-byte little-endian length, then the bytes."""
    return b"".join(len(e).to_bytes(4, "little") + e for e in elements)


def binary_request(*elements: bytes, **request) -> tuple[bytes, str]:
    blob = bytes_tensor(*elements)
    header = json.dumps(
        {
            "inputs": [
                {
                    "name": "IMAGE",
                    "datatype": "BYTES",
                    "shape": [len(elements)],
                    "parameters": {"binary_data_size": len(blob)},
                }
            ],
            **request,
        }
    ).encode()
    return header + blob, str(len(header))


def test_binary_and_base64_requests_give_the_same_images():
    files = [b"\xff\xd8first", b"", b"third\x00\x01" * 100]
    body, length = binary_request(*files, parameters={"threshold": 0.25, "max_dets": 7})
    parsed = oip.parse_infer_request(body, length)
    assert parsed.images == files
    assert (parsed.threshold, parsed.max_dets) == (0.25, 7)
    as_json = {
        "inputs": [
            {
                "name": "IMAGE",
                "datatype": "BYTES",
                "shape": [3],
                "data": [base64.b64encode(f).decode() for f in files],
            }
        ]
    }
    assert oip.parse_infer_request(json.dumps(as_json).encode(), None).images == files


@pytest.mark.parametrize(
    ("body", "length", "fragment"),
    [
        (bytes_tensor(b"abc")[:-1], None, "malformed JSON"),
        (*binary_request(b"abc"), None),  # valid: checked below not to raise
        (b'{"inputs": []}', None, "exactly one input"),
        (b'{"inputs": [{"name": "IMAGE", "datatype": "BYTES", "shape": [1]}]}', None,
         "neither data nor binary_data_size"),
        (b'{"inputs": [{"name": "IMAGE", "datatype": "BYTES", "shape": [0], "data": []}]}', None,
         "N >= 1"),
        (b'{"inputs": [{"name": "IMAGE", "datatype": "BYTES", "shape": [1], "data": ["aGk="]}],'
         b' "parameters": {"max_dets": 2.5}}', None, "must be an integer"),
        (b'{"inputs": [{"name": "IMAGE", "datatype": "BYTES", "shape": [1], "data": ["aGk="]}],'
         b' "parameters": {"threshold": "high"}}', None, "must be a number"),
        (b"{}", "99", "does not fit a body of 2 bytes"),
        (b"{}", "x", "is not a number"),
    ],
)  # fmt: skip
def test_malformed_requests_say_what_is_wrong(body, length, fragment):
    if fragment is None:
        oip.parse_infer_request(body, length)
        return
    with pytest.raises(BadRequestError, match=fragment) as info:
        oip.parse_infer_request(body, length)
    assert info.value.status == 400


def test_truncated_binary_elements_are_refused():
    blob = bytes_tensor(b"abcdef")[:-2]
    header = json.dumps(
        {"inputs": [{"name": "IMAGE", "datatype": "BYTES", "shape": [1],
                     "parameters": {"binary_data_size": len(blob)}}]}
    ).encode()  # fmt: skip
    with pytest.raises(BadRequestError, match="truncated binary BYTES data"):
        oip.parse_infer_request(header + blob, str(len(header)))


def results(*counts: int) -> list[ImageResult]:
    rng = np.random.default_rng(0)
    return [
        ImageResult(
            Detections(
                rng.uniform(0, 500, (n, 4)).astype(np.float32),
                np.sort(rng.uniform(0, 1, n)).astype(np.float32)[::-1].copy(),
                rng.integers(0, 80, n),
            ),
            640,
            480,
        )
        for n in counts
    ]


def test_outputs_are_padded_to_the_largest_count():
    answers = results(3, 0, 5)
    tensors = oip.output_tensors(answers)
    assert tensors["num_detections"].tolist() == [3, 0, 5]
    assert tensors["detection_boxes"].shape == (3, 5, 4)
    for row, answer in enumerate(answers):
        n = len(answer.detections)
        assert np.array_equal(tensors["detection_boxes"][row, :n], answer.detections.xyxy)
        assert np.array_equal(tensors["detection_scores"][row, :n], answer.detections.scores)
        assert np.array_equal(tensors["detection_classes"][row, :n], answer.detections.class_ids)
        assert not tensors["detection_scores"][row, n:].any()
    assert oip.output_tensors(results(0, 0))["detection_boxes"].shape == (2, 0, 4)


def test_binary_response_decodes_to_the_same_tensors():
    answers = results(2, 4)
    body, length = binary_request(b"x", b"y")
    request = oip.parse_infer_request(body, length)
    request.outputs = ["detection_boxes", "num_detections"]
    request.binary_outputs = {"detection_boxes"}
    content, header_length = oip.encode_infer_response("m", request, answers)
    header = json.loads(content[:header_length])
    assert [o["name"] for o in header["outputs"]] == ["detection_boxes", "num_detections"]
    boxes_entry, count_entry = header["outputs"]
    size = boxes_entry["parameters"]["binary_data_size"]
    boxes = np.frombuffer(content[header_length : header_length + size], np.float32)
    assert len(content) == header_length + size
    expected = oip.output_tensors(answers)
    assert np.array_equal(boxes.reshape(boxes_entry["shape"]), expected["detection_boxes"])
    assert count_entry["data"] == [2, 4] and count_entry["datatype"] == "INT32"
    # without binary outputs: plain JSON, no header length
    request.binary_outputs = set()
    content, header_length = oip.encode_infer_response("m", request, answers)
    assert header_length is None and json.loads(content)["outputs"][0]["shape"] == [2, 4, 4]
