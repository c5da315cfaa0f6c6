"""JPEG decoding on the GPU (nvJPEG through ``torchvision.io.decode_jpeg``), batched, for
the device pipeline; every other image is decoded on the host as before.

Only JPEGs that nvJPEG decodes as OpenCV does go to the GPU: 8-bit baseline, extended or
progressive, one or three components, no EXIF rotation (``cv2.imdecode`` applies the EXIF
orientation; rotating on the device too would be a second code path to keep equal).
The header is read here, without decoding, to pick them. A JPEG the GPU still refuses is
decoded on the host, so one bad file never fails a batch and its error is the host's.

torchvision is optional and imported lazily: it is not installed beside the CPU torch
build this project pins (a mismatched PyPI torchvision fails to import), and without it,
or on the CPU, every image is decoded on the host.
"""

from __future__ import annotations

import struct
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import torch

from centernet.runtime.images import is_jpeg

#: Frame types nvJPEG decodes: SOF0 baseline, SOF1 extended sequential, SOF2 progressive.
_DEVICE_FRAMES = (0xC0, 0xC1, 0xC2)
_OTHER_FRAMES = (0xC3, 0xC5, 0xC6, 0xC7, 0xC9, 0xCA, 0xCB, 0xCD, 0xCE, 0xCF)
_EXIF_ORIENTATION_TAG = 0x0112

#: ``decode(list of encoded JPEGs) -> list of BGR uint8 (H, W, 3) tensors on the device``,
#: None in the place of each one it could not decode.
JpegDecoder = Callable[[Sequence[bytes]], list]


@dataclass(frozen=True)
class JpegHeader:
    """What a JPEG's markers say before its scan: frame type, bits, size, components, and
    the EXIF orientation (1: as stored)."""

    frame: int
    bits: int
    width: int
    height: int
    components: int
    orientation: int = 1


def read_jpeg_header(data: bytes) -> JpegHeader | None:
    """The header of a JPEG, or None when ``data`` is not one or its markers do not parse."""
    if not is_jpeg(data):
        return None
    pos, orientation = 2, 1
    while pos + 4 <= len(data):
        if data[pos] != 0xFF:
            return None
        marker = data[pos + 1]
        if marker == 0xFF:  # fill byte
            pos += 1
            continue
        if marker in (0x01, *range(0xD0, 0xD8)):  # markers without a length
            pos += 2
            continue
        (length,) = struct.unpack(">H", data[pos + 2 : pos + 4])
        body = data[pos + 4 : pos + 2 + length]
        if marker == 0xE1 and body[:6] == b"Exif\x00\x00":
            orientation = _exif_orientation(body[6:])
        elif marker in _DEVICE_FRAMES + _OTHER_FRAMES:
            if len(body) < 6:
                return None
            bits, height, width, components = struct.unpack(">BHHB", body[:6])
            return JpegHeader(marker, bits, width, height, components, orientation)
        elif marker == 0xDA:  # start of scan before any frame header
            return None
        pos += 2 + length
    return None


def _exif_orientation(tiff: bytes) -> int:
    """Tag 0x0112 of IFD0 in an EXIF TIFF block; 1 when absent or unreadable."""
    if len(tiff) < 8 or tiff[:2] not in (b"II", b"MM"):
        return 1
    order = "<" if tiff[:2] == b"II" else ">"
    try:
        (ifd,) = struct.unpack(order + "I", tiff[4:8])
        (count,) = struct.unpack(order + "H", tiff[ifd : ifd + 2])
        for i in range(count):
            entry = tiff[ifd + 2 + 12 * i : ifd + 14 + 12 * i]
            tag, kind, _, value = struct.unpack(order + "HHIH", entry[:10])
            if tag == _EXIF_ORIENTATION_TAG and kind == 3:  # SHORT
                return value if 1 <= value <= 8 else 1
    except struct.error:
        return 1
    return 1


def decodes_on_device(data: bytes) -> bool:
    """Whether the device decoder takes ``data`` (else the host decodes it)."""
    header = read_jpeg_header(data)
    return (
        header is not None
        and header.frame in _DEVICE_FRAMES
        and header.bits == 8
        and header.components in (1, 3)
        and header.orientation == 1
    )


def nvjpeg_decoder(device: torch.device) -> JpegDecoder | None:
    """A batched nvJPEG decoder on ``device``, or None where there is none (the CPU, or no
    importable torchvision with GPU decoding)."""
    if device.type != "cuda":
        return None
    try:
        from torchvision.io import ImageReadMode, decode_jpeg
    except Exception:  # not installed, or built for another torch: decode on the host
        return None

    def decode(encoded: Sequence[bytes]) -> list:
        tensors = [torch.frombuffer(bytearray(data), dtype=torch.uint8) for data in encoded]
        try:
            decoded = decode_jpeg(tensors, mode=ImageReadMode.RGB, device=device)
        except Exception:  # one refused file fails the batched call: retry one by one
            decoded = [_decode_one(decode_jpeg, ImageReadMode.RGB, t, device) for t in tensors]
        return [None if d is None else rgb_planes_to_bgr(d) for d in decoded]

    return decode


def rgb_planes_to_bgr(image: torch.Tensor) -> torch.Tensor:
    """torchvision's (3, H, W) RGB as the host decoder's (H, W, 3) BGR (a view)."""
    return image.flip(0).permute(1, 2, 0)


def _decode_one(decode_jpeg, mode, tensor: torch.Tensor, device: torch.device):
    try:
        return decode_jpeg(tensor, mode=mode, device=device)
    except Exception:  # the host decodes it, and names its fault if it has one
        return None
