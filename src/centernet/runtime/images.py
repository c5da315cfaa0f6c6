"""Finding image files and decoding them to BGR uint8, with a reason for every failure."""

from __future__ import annotations

import glob
import io
import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

import cv2
import imagesize
import numpy as np

from centernet.errors import CenterNetError, ImageReadError, ImageTooLargeError

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff", ".webp")
_JPEG_SOI = b"\xff\xd8"
_JPEG_EOI = b"\xff\xd9"
_JPEG_SOS = b"\xff\xda"
#: Largest image decoded by default (pixels declared in the header): a 100 Mpx BGR image is
#: 300 MB; larger ones are refused before decoding, so a "decompression bomb" (a small file
#: declaring a huge image) cannot exhaust memory in the reader threads.
DEFAULT_MAX_PIXELS = 100_000_000


@dataclass
class ImageList:
    """What a command line's image arguments name.

    ``paths``: files to read, in order; a named file that does not exist stays here, so the
    reader reports it with the rest. ``unmatched``: (folder or glob, reason) for each item
    that names no image at all. Both are per-input failures: reported, skipped, exit 1.
    """

    paths: list[str] = field(default_factory=list)
    unmatched: list[tuple[str, str]] = field(default_factory=list)


def collect_image_paths(items: Iterable[str], file_list: str | Path | None = None) -> ImageList:
    """Expand files, folders (their images, sorted) and globs, in the order given."""
    names = list(items)
    if file_list is not None:
        try:
            lines = Path(file_list).read_text(encoding="utf-8").splitlines()
        except (OSError, UnicodeDecodeError) as exc:
            raise CenterNetError(f"cannot read file list {file_list}: {exc}") from None
        names += [line.strip() for line in lines if line.strip()]
    found = ImageList()
    for name in names:
        path = Path(name)
        if path.is_dir():
            images = sorted(
                str(p) for p in path.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES and p.is_file()
            )
            if not images:
                found.unmatched.append(
                    (name, f"folder holds no images ({', '.join(IMAGE_SUFFIXES)})")
                )
            found.paths += images
        elif glob.has_magic(name):
            matches = sorted(p for p in glob.glob(name) if Path(p).is_file())
            if not matches:
                found.unmatched.append((name, "no files match"))
            found.paths += matches
        else:
            found.paths.append(name)
    return found


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


def declared_size(data: bytes) -> tuple[int, int] | None:
    """(width, height) as the header declares it, read without decoding; None if unknown.

    Uses ``imagesize`` (JPEG, PNG, BMP, TIFF, WebP, GIF, ...). A header it cannot parse
    gives None: the decoder then gives its own reason, still under OpenCV's own limit.
    """
    try:
        width, height = imagesize.get(io.BytesIO(data), exif_rotation=False)
    except Exception:  # a malformed header: any parser error means "size unknown"
        return None
    return (int(width), int(height)) if width > 0 and height > 0 else None


def decode_image(
    data: bytes, name: str = "<bytes>", max_pixels: int | None = DEFAULT_MAX_PIXELS
) -> np.ndarray:
    """Decode encoded image bytes to BGR uint8, or raise ImageReadError with the reason.

    ``max_pixels`` (None: no limit of ours) is checked against the header before decoding.
    """
    check_encoded(data, name, max_pixels)
    # IMREAD_COLOR as the original's cv2.imread: EXIF orientation applied, grey and BGRA
    # made BGR, 16-bit scaled to 8-bit.
    try:
        image = cv2.imdecode(np.frombuffer(data, dtype=np.uint8), cv2.IMREAD_COLOR)
    except cv2.error as exc:  # e.g. a header beyond OpenCV's own pixel limit
        raise ImageReadError(name, f"OpenCV cannot decode it ({_opencv_reason(exc)})") from None
    if image is None:
        raise ImageReadError(name, "not a decodable image")
    return image


def check_encoded(
    data: bytes, name: str = "<bytes>", max_pixels: int | None = DEFAULT_MAX_PIXELS
) -> None:
    """The checks made before any decoder sees ``data`` (empty, over ``max_pixels`` by its
    header, truncated JPEG): ImageReadError with the reason, whichever decoder follows."""
    if not data:
        raise ImageReadError(name, "empty file")
    size = declared_size(data) if max_pixels else None
    if size and size[0] * size[1] > max_pixels:
        raise ImageTooLargeError(
            name,
            f"declares {size[0]}x{size[1]} pixels ({size[0] * size[1] / 1e6:.0f} Mpx), over the "
            f"{max_pixels / 1e6:g} Mpx limit (`max_pixels`)",
        )
    if is_jpeg(data) and _JPEG_EOI not in data[data.rfind(_JPEG_SOS) :]:
        # libjpeg fills a truncated JPEG with grey and only warns: treat it as unreadable.
        raise ImageReadError(name, "truncated JPEG (no end-of-image marker after its last scan)")


def is_jpeg(data: bytes) -> bool:
    """Whether ``data`` starts like a JPEG file (its start-of-image marker)."""
    return data[:2] == _JPEG_SOI


def _opencv_reason(exc: Exception) -> str:
    """'Assertion failed: pixels <= CV_IO_MAX_IMAGE_PIXELS' from OpenCV's long message."""
    text = str(exc)
    found = re.search(r"error: \(-?\d+:([^)]*)\) (.*?) in function", text)
    if found:
        return f"{found.group(1)}: {found.group(2)}"
    lines = [line for line in text.strip().splitlines() if line.strip()]
    return lines[-1].strip() if lines else type(exc).__name__


def read_file(path: str | Path) -> bytes:
    """A file's bytes, or ImageReadError naming the path and why it cannot be read."""
    name = str(path)
    try:
        return Path(path).read_bytes()
    except FileNotFoundError:
        raise ImageReadError(name, "no such file") from None
    except IsADirectoryError:
        raise ImageReadError(name, "is a directory") from None
    except OSError as exc:
        raise ImageReadError(name, exc.strerror or str(exc)) from None


def read_image(path: str | Path, max_pixels: int | None = DEFAULT_MAX_PIXELS) -> np.ndarray:
    """Read an image file to BGR uint8, or raise ImageReadError naming the path and reason."""
    return decode_image(read_file(path), str(path), max_pixels)
