"""Finding image files and decoding them to BGR uint8, with a reason for every failure."""

from __future__ import annotations

import glob
from collections.abc import Iterable
from pathlib import Path

import cv2
import numpy as np

from centernet.errors import CenterNetError, ImageReadError

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff", ".webp")
_JPEG_SOI = b"\xff\xd8"
_JPEG_EOI = b"\xff\xd9"
_JPEG_SOS = b"\xff\xda"


def collect_image_paths(items: Iterable[str], file_list: str | Path | None = None) -> list[str]:
    """Expand files, folders (their images, sorted) and globs into a list of paths.

    A named file that does not exist stays in the list, so that it is reported as failed
    with the rest; a glob or folder that matches nothing is an error.
    """
    names = list(items)
    if file_list is not None:
        try:
            lines = Path(file_list).read_text(encoding="utf-8").splitlines()
        except (OSError, UnicodeDecodeError) as exc:
            raise CenterNetError(f"cannot read file list {file_list}: {exc}") from None
        names += [line.strip() for line in lines if line.strip()]
    paths: list[str] = []
    for name in names:
        path = Path(name)
        if path.is_dir():
            found = sorted(
                str(p) for p in path.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES and p.is_file()
            )
            if not found:
                raise CenterNetError(
                    f"{name}: folder holds no images ({', '.join(IMAGE_SUFFIXES)})"
                )
            paths += found
        elif glob.has_magic(name):
            found = sorted(p for p in glob.glob(name) if Path(p).is_file())
            if not found:
                raise CenterNetError(f"{name}: no files match")
            paths += found
        else:
            paths.append(name)
    return paths


def to_bgr8(image: np.ndarray) -> np.ndarray:
    """Convert grayscale, BGRA, 16-bit or float [0, 1] arrays to contiguous BGR uint8."""
    if image.ndim == 3 and image.shape[2] == 1:
        image = image[:, :, 0]
    if image.ndim not in (2, 3) or (image.ndim == 3 and image.shape[2] not in (3, 4)):
        raise ValueError(f"not an image array: shape {image.shape}")
    if image.size == 0:
        raise ValueError("empty image array")
    if image.dtype == np.uint16:
        image = (image >> 8).astype(np.uint8)
    elif image.dtype in (np.float32, np.float64):
        image = np.clip(image * 255.0 + 0.5, 0, 255).astype(np.uint8)
    elif image.dtype != np.uint8:
        raise ValueError(f"unsupported image dtype {image.dtype}")
    if image.ndim == 2:
        image = cv2.cvtColor(image, cv2.COLOR_GRAY2BGR)
    elif image.shape[2] == 4:
        image = cv2.cvtColor(image, cv2.COLOR_BGRA2BGR)
    return np.ascontiguousarray(image)


def decode_image(data: bytes, name: str = "<bytes>") -> np.ndarray:
    """Decode encoded image bytes to BGR uint8, or raise ImageReadError with the reason."""
    if not data:
        raise ImageReadError(name, "empty file")
    if data[:2] == _JPEG_SOI and _JPEG_EOI not in data[data.rfind(_JPEG_SOS) :]:
        # libjpeg fills a truncated JPEG with grey and only warns: treat it as unreadable.
        raise ImageReadError(name, "truncated JPEG (no end-of-image marker after its last scan)")
    # IMREAD_COLOR as the original's cv2.imread: EXIF orientation applied, grey and BGRA
    # made BGR, 16-bit scaled to 8-bit.
    image = cv2.imdecode(np.frombuffer(data, dtype=np.uint8), cv2.IMREAD_COLOR)
    if image is None:
        raise ImageReadError(name, "not a decodable image")
    return image


def read_image(path: str | Path) -> np.ndarray:
    """Read an image file to BGR uint8, or raise ImageReadError naming the path and reason."""
    name = str(path)
    try:
        data = Path(path).read_bytes()
    except FileNotFoundError:
        raise ImageReadError(name, "no such file") from None
    except IsADirectoryError:
        raise ImageReadError(name, "is a directory") from None
    except OSError as exc:
        raise ImageReadError(name, exc.strerror or str(exc)) from None
    return decode_image(data, name)
