"""``cv2.warpAffine(..., INTER_LINEAR)`` + normalisation, re-expressed in torch for a batch
of images of different sizes, on any device, bit-identical to OpenCV for the letterbox.

What is promised: for the axis-aligned letterbox affines that pre-processing makes (scale
and translation, fix_res and keep_res), the same bytes as the installed OpenCV's
``warpAffine``; for any other affine (a rotation), within 1 grey level in few pixels. The
general case is not stable across OpenCV releases (5.0 matched it bit for bit, 5.1 is 1 grey
level off in ~0.05 % of the pixels of a rotated image), and the pipeline never needs it.

The device pipeline must give the host pipeline's boxes, so it must give the host's input
tensor: one grey level of difference in a few pixels already moves scores by ~1e-5. OpenCV
has two bilinear arithmetics, and this module reproduces whichever the installed OpenCV uses:

- ``"float"`` (OpenCV >= 4.11, 5.x): the inverse matrix in float32; per row
  ``Mx = f32(f32(y*M1) + M2)``; per pixel ``sx = fma(M0, x, Mx)`` in float32, fraction
  ``a = sx - floor(sx)``; ``f0 = fma(a, p01 - p00, p00)``, ``f1`` alike,
  ``v = fma(b, f1 - f0, f0)``, rounded half to even.
- ``"fixed"`` (OpenCV < 4.11): source coordinates in fixed point with 10 fraction bits,
  cut to INTER_BITS=5 (1/32 pixel), integer weights scaled by 2**15, rounded.

Every fused multiply-add is computed in float64, where the product of two float32 values is
exact, and then rounded once to float32: the result is the fma's, whether or not the device
contracts operations itself. Pixels outside the image read 0 (BORDER_CONSTANT).
Measured: bit-identical letterboxes with OpenCV 5.1.0, 5.0.0 ("float") and 4.10.0
("fixed") on photos and random images, fix_res and keep_res, from 5x7 to 1000x900 pixels,
on AVX2-only, AVX-512 and AMX CPUs (``tests/unit/test_warp.py`` checks the installed one).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from functools import lru_cache

import numpy as np
import torch

from centernet.runtime.preprocess import normalise_lut

ARITHMETICS = ("float", "fixed")
_FIXED_AB_SCALE = 1024  # OpenCV's AB_BITS = 10
_FIXED_ROUND_DELTA = 16  # AB_SCALE / INTER_TAB_SIZE / 2
_FIXED_COEF_ROUND = 1 << 14  # INTER_REMAP_COEF_SCALE / 2


def opencv_arithmetic(version: str | None = None) -> str:
    """Which bilinear arithmetic ``cv2.warpAffine`` uses: "float" from OpenCV 4.11 on."""
    if version is None:
        import cv2

        version = cv2.__version__
    major, minor = (int(part) for part in version.split(".")[:2])
    return "float" if (major, minor) >= (4, 11) else "fixed"


def opencv_inverse(to_input: np.ndarray) -> np.ndarray:
    """The inverse map ``cv2.warpAffine`` computes from ``to_input`` (2x3), in its own
    operation order, so that the float64 results are the same to the last bit."""
    m = [float(v) for v in np.asarray(to_input, np.float64).reshape(-1)]
    det = m[0] * m[4] - m[1] * m[3]
    det = 1.0 / det if det != 0 else 0.0
    a11, a22 = m[4] * det, m[0] * det
    m[0], m[1], m[3], m[4] = a11, m[1] * -det, m[3] * -det, a22
    b1 = -m[0] * m[2] - m[1] * m[5]
    b2 = -m[3] * m[2] - m[4] * m[5]
    m[2], m[5] = b1, b2
    return np.array(m, dtype=np.float64)


@dataclass(frozen=True)
class WarpJob:
    """One image to warp: BGR uint8 (H, W, 3) on the target device, and its affine."""

    image: torch.Tensor
    to_input: np.ndarray  # (2, 3) original pixels -> input pixels (Letterbox.to_input)


def warp_normalise(
    jobs: Sequence[WarpJob],
    size: tuple[int, int],
    mean: Sequence[float],
    std: Sequence[float],
    out: torch.Tensor | None = None,
    arithmetic: str | None = None,
) -> torch.Tensor:
    """Warp each job's image to ``size`` (width, height) and normalise it into row i of
    ``out`` ((N >= len(jobs), 3, H, W) float32, allocated when None); rows past the jobs
    are left as they are. Equals ``preprocess.preprocess_into`` for every row."""
    width, height = size
    if not jobs:
        raise ValueError("no images to warp")
    device = jobs[0].image.device
    if out is None:
        out = torch.empty((len(jobs), 3, height, width), dtype=torch.float32, device=device)
    if out.shape[1:] != (3, height, width) or out.shape[0] < len(jobs):
        raise ValueError(
            f"batch {tuple(out.shape)} cannot hold {len(jobs)} x (3, {height}, {width})"
        )
    levels = _warp_levels(jobs, size, arithmetic)  # (N, H, W, 3) int64 grey levels
    lut = _lut_tensor(tuple(mean), tuple(std), device)  # (3 * 256,): channel c at 256 c
    levels += torch.arange(0, 768, 256, device=device)
    out[: len(jobs)].copy_(lut[levels].permute(0, 3, 1, 2))
    return out


def warp_bgr(
    jobs: Sequence[WarpJob], size: tuple[int, int], arithmetic: str | None = None
) -> torch.Tensor:
    """The warped images, (N, H, W, 3) uint8, as ``cv2.warpAffine`` gives them."""
    return _warp_levels(jobs, size, arithmetic).to(torch.uint8)


def _warp_levels(
    jobs: Sequence[WarpJob], size: tuple[int, int], arithmetic: str | None
) -> torch.Tensor:
    """The warped grey levels, (N, H, W, 3) int64."""
    arithmetic = arithmetic or opencv_arithmetic()
    if arithmetic not in ARITHMETICS:
        raise ValueError(f"unknown warp arithmetic {arithmetic!r}; choose {ARITHMETICS}")
    if not jobs:
        raise ValueError("no images to warp")
    width, height = size
    device = jobs[0].image.device
    table, starts = _pixel_table(jobs)
    inverse = np.stack([opencv_inverse(job.to_input) for job in jobs])  # (N, 6) float64
    if arithmetic == "float":
        ix, iy, ax, ay = _float_coordinates(inverse, width, height, device)
    else:
        ix, iy, ax, ay = _fixed_coordinates(inverse, width, height, device)
    # Every neighbour of a pixel is read, inside or not: coordinates are clamped into the
    # table's zero border of _BORDER pixels, which stands for BORDER_CONSTANT 0 (a pixel
    # whose two neighbours lie outside reads two border zeros, as it would read two zeros).
    src_w = torch.tensor([job.image.shape[1] for job in jobs], device=device).view(-1, 1, 1)
    src_h = torch.tensor([job.image.shape[0] for job in jobs], device=device).view(-1, 1, 1)
    stride = src_w + 2 * _BORDER  # table row length of each image
    ix = torch.minimum(ix.clamp(min=-_BORDER), src_w) + _BORDER
    iy = torch.minimum(iy.clamp(min=-_BORDER), src_h) + _BORDER
    top_left = (torch.tensor(starts, device=device).view(-1, 1, 1) + iy * stride) + ix
    top_left = top_left.expand(len(jobs), height, width).reshape(-1)
    below = stride.expand(len(jobs), height, width).reshape(-1)

    def fetch(index: torch.Tensor) -> torch.Tensor:
        picked = table.index_select(0, index).view(torch.uint8)  # B, G, R, 0 per pixel
        return picked.view(len(jobs), height, width, 4)

    p00, p01 = fetch(top_left), fetch(top_left + 1)
    p10, p11 = fetch(top_left + below), fetch(top_left + below + 1)
    if arithmetic == "float":
        levels = _float_interpolate(p00, p01, p10, p11, ax, ay)
    else:
        levels = _fixed_interpolate(p00, p01, p10, p11, ax, ay)
    return levels[..., :3]


_BORDER = 2  # zero pixels around each image in the table: enough for any clamped pair


def _pixel_table(jobs: Sequence[WarpJob]) -> tuple[torch.Tensor, list[int]]:
    """Every image's pixels, with a zero border, in one int32 table (B, G, R and a zero
    byte per pixel), and the entry where each bordered image starts: one gather serves a
    batch of differently sized images."""
    starts, total = [], 0
    for job in jobs:
        image = job.image
        if image.dtype != torch.uint8 or image.ndim != 3 or image.shape[2] != 3:
            raise ValueError(
                f"expected BGR uint8 (H, W, 3), got {image.dtype} {tuple(image.shape)}"
            )
        starts.append(total)
        total += (image.shape[0] + 2 * _BORDER) * (image.shape[1] + 2 * _BORDER)
    table = torch.zeros((total, 4), dtype=torch.uint8, device=jobs[0].image.device)
    for job, first in zip(jobs, starts):
        rows, cols = job.image.shape[0] + 2 * _BORDER, job.image.shape[1] + 2 * _BORDER
        framed = table[first : first + rows * cols].view(rows, cols, 4)
        framed[_BORDER:-_BORDER, _BORDER:-_BORDER, :3] = job.image
    return table.view(torch.int32).view(-1), starts


def _float_coordinates(
    inverse: np.ndarray, width: int, height: int, device: torch.device
) -> tuple[torch.Tensor, ...]:
    """Integer source pixel and float32 fraction per output pixel, OpenCV >= 4.11.

    Shapes broadcast to (N, H, W); a letterbox (no rotation) gives x per column (N, 1, W)
    and y per row (N, H, 1), with the same values as the general formula.
    """
    m = inverse.astype(np.float32)  # (N, 6)
    rows = np.arange(height, dtype=np.float32)[None, :]
    # per row in float32, unfused: f32(f32(y * M1) + M2)
    row_x = (rows * m[:, 1:2]).astype(np.float32) + m[:, 2:3]
    row_y = (rows * m[:, 4:5]).astype(np.float32) + m[:, 5:6]
    sx = _fused_map(m[:, 0], row_x, width, device)
    sy = _fused_map(m[:, 3], row_y, width, device)
    fx, fy = torch.floor(sx), torch.floor(sy)
    return fx.to(torch.int64), fy.to(torch.int64), sx - fx, sy - fy


def _fused_map(step: np.ndarray, per_row: np.ndarray, width: int, device) -> torch.Tensor:
    """float32 ``fma(step, x, per_row[y])`` per output pixel; a zero ``step`` or a constant
    ``per_row`` keeps that axis of length 1 (broadcast later, same values)."""
    if np.all(per_row == per_row[:, :1]):
        per_row = per_row[:, :1]
    row = torch.from_numpy(per_row.astype(np.float64)).to(device).unsqueeze(2)
    if not np.any(step):
        return row.to(torch.float32)  # fma(0, x, r) = r
    cols = torch.arange(width, dtype=torch.float64, device=device).view(1, 1, -1)
    step64 = torch.from_numpy(step.astype(np.float64)).to(device).view(-1, 1, 1)
    return (cols * step64 + row).to(torch.float32)  # exact product, one rounding


def _fixed_coordinates(
    inverse: np.ndarray, width: int, height: int, device: torch.device
) -> tuple[torch.Tensor, ...]:
    """Integer source pixel and fraction in 1/32 per output pixel, OpenCV < 4.11."""
    rows = np.arange(height, dtype=np.float64)[None, :]
    cols = np.arange(width, dtype=np.float64)[None, :]
    scale = _FIXED_AB_SCALE
    # cvRound (half to even) of double values, exactly as OpenCV's row and column tables
    row_x = np.rint((inverse[:, 1:2] * rows + inverse[:, 2:3]) * scale).astype(np.int64)
    row_y = np.rint((inverse[:, 4:5] * rows + inverse[:, 5:6]) * scale).astype(np.int64)
    col_x = np.rint(inverse[:, 0:1] * cols * scale).astype(np.int64)
    col_y = np.rint(inverse[:, 3:4] * cols * scale).astype(np.int64)

    def combine(per_row: np.ndarray, per_col: np.ndarray) -> torch.Tensor:
        if np.all(per_row == per_row[:, :1]):
            per_row = per_row[:, :1]
        if np.all(per_col == per_col[:, :1]):
            per_col = per_col[:, :1]
        r = torch.from_numpy(per_row + _FIXED_ROUND_DELTA).to(device).unsqueeze(2)
        c = torch.from_numpy(per_col).to(device).unsqueeze(1)
        return torch.bitwise_right_shift(r + c, 5)  # to INTER_BITS = 5 fraction bits

    x, y = combine(row_x, col_x), combine(row_y, col_y)
    return x >> 5, y >> 5, x & 31, y & 31


def _float_interpolate(p00, p01, p10, p11, ax, ay) -> torch.Tensor:
    """OpenCV's float32 bilinear step; each fma is exact in float64 (a product of two
    float32 fits its mantissa) and rounded once to float32. Grey levels, int64."""
    a = ax.unsqueeze(3).to(torch.float64)
    b = ay.unsqueeze(3).to(torch.float64)

    def along_x(left: torch.Tensor, right: torch.Tensor) -> torch.Tensor:
        low = left.to(torch.float64)
        return torch.addcmul(low, right.to(torch.float64).sub_(low), a).to(torch.float32)

    f0, f1 = along_x(p00, p01), along_x(p10, p11)
    step = f1.sub_(f0).to(torch.float64)  # f1 - f0 rounded in float32, as OpenCV's v_sub
    value = torch.addcmul(f0.to(torch.float64), step, b).to(torch.float32)
    return value.round_().clamp_(0, 255).to(torch.int64)  # half to even, as v_round


def _fixed_interpolate(p00, p01, p10, p11, ax, ay) -> torch.Tensor:
    """OpenCV's integer bilinear step: weights are products of 1/32 steps times 2**15."""
    ax, ay = ax.unsqueeze(3), ay.unsqueeze(3)
    w00, w01 = (32 - ax) * (32 - ay) * 32, ax * (32 - ay) * 32
    w10, w11 = (32 - ax) * ay * 32, ax * ay * 32
    total = p00.to(torch.int64) * w00 + p01.to(torch.int64) * w01
    total += p10.to(torch.int64) * w10 + p11.to(torch.int64) * w11
    return ((total + _FIXED_COEF_ROUND) >> 15).clamp_(0, 255)


@lru_cache(maxsize=8)
def _lut_tensor(mean: tuple[float, ...], std: tuple[float, ...], device: torch.device):
    """The host's normalisation table, (3 * 256,) float32, channel c at offset 256 c."""
    lut = normalise_lut(mean, std)  # (256, 1, 3)
    return torch.from_numpy(np.ascontiguousarray(lut[:, 0, :].T).reshape(-1)).to(device)
