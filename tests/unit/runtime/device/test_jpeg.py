"""Which JPEGs the device decoder takes: the header read without decoding."""

from __future__ import annotations

import struct

import cv2
import numpy as np
import pytest

pytest.importorskip("torch")

from centernet.runtime.device.jpeg import decodes_on_device, nvjpeg_decoder, read_jpeg_header  # noqa: E402


def _jpeg(image: np.ndarray, *params: int) -> bytes:
    ok, data = cv2.imencode(".jpg", image, list(params))
    assert ok
    return data.tobytes()


def _with_exif_orientation(jpeg: bytes, orientation: int, byte_order: str = "II") -> bytes:
    """``jpeg`` with an APP1 EXIF block whose IFD0 holds only the orientation tag."""
    order = "<" if byte_order == "II" else ">"
    tiff = byte_order.encode() + struct.pack(order + "HI", 42, 8)
    tiff += struct.pack(order + "H", 1) + struct.pack(order + "HHIHH", 0x0112, 3, 1, orientation, 0)
    tiff += struct.pack(order + "I", 0)
    body = b"Exif\x00\x00" + tiff
    return jpeg[:2] + b"\xff\xe1" + struct.pack(">H", len(body) + 2) + body + jpeg[2:]


def test_a_photo_header(photo_paths):
    data = photo_paths[0].read_bytes()
    header = read_jpeg_header(data)
    image = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR)
    assert (header.height, header.width) == image.shape[:2]
    assert header.bits == 8 and header.components == 3 and header.orientation == 1
    assert decodes_on_device(data)


@pytest.mark.parametrize("byte_order", ["II", "MM"])
def test_exif_rotated_jpegs_stay_on_the_host(byte_order):
    """cv2.imdecode applies the EXIF orientation; the device decoder would not."""
    plain = _jpeg(np.full((16, 24, 3), 90, np.uint8))
    for orientation, on_device in [(1, True), (6, False), (3, False)]:
        data = _with_exif_orientation(plain, orientation, byte_order)
        assert read_jpeg_header(data).orientation == orientation
        assert decodes_on_device(data) is on_device
        assert cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR) is not None


def test_kinds_of_jpeg_and_non_jpegs():
    grey = _jpeg(np.full((8, 8), 50, np.uint8))
    assert read_jpeg_header(grey).components == 1 and decodes_on_device(grey)
    progressive = _jpeg(np.full((8, 8, 3), 50, np.uint8), cv2.IMWRITE_JPEG_PROGRESSIVE, 1)
    assert read_jpeg_header(progressive).frame == 0xC2 and decodes_on_device(progressive)
    ok, png = cv2.imencode(".png", np.zeros((4, 4, 3), np.uint8))
    for data in (png.tobytes(), b"", b"\xff\xd8", b"\xff\xd8\x00\x00junk", grey[:20]):
        assert read_jpeg_header(data) is None and not decodes_on_device(data)


def test_no_device_decoder_on_the_cpu():
    import torch

    assert nvjpeg_decoder(torch.device("cpu")) is None
