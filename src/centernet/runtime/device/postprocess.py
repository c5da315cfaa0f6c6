"""``postprocess.py`` re-expressed in torch: peaks, top-K, box assembly and the inverse
affine on the device that ran the network, so only K boxes per image reach the host.

Same rules as the host: a peak is a cell where ``hm == hm_max``; the K highest peaks over
all classes and positions, ties broken by the lower flat index (the host's lexsort);
centre + ``reg`` offset, box = centre -/+ ``wh``/2 in output cells (float32), then the
inverse affine in float64. ``torch.topk`` breaks ties arbitrarily, so it ranks a 64-bit
key instead: the score's float32 bits (ordered like the scores, which are >= 0) above
the complement of the index, one total order equal to the host's.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from centernet.types import Detections

_LOW_32 = 0xFFFFFFFF


@dataclass
class TopBoxes:
    """The K best boxes of each image, on the host: xyxy (N, K, 4) float32 in original
    pixels, scores (N, K) float32 by descending score (0 where a map had fewer peaks),
    class ids (N, K) int64."""

    xyxy: np.ndarray
    scores: np.ndarray
    class_ids: np.ndarray

    def take(self, rows: list[int]) -> TopBoxes:
        """Only ``rows``, in that order (a server groups rows by request settings)."""
        return TopBoxes(self.xyxy[rows], self.scores[rows], self.class_ids[rows])

    def detections(self, row: int, threshold: float = 0.0, max_dets: int | None = None):
        """Row ``row`` as Detections: scores above 0 and at least ``threshold``."""
        scores = self.scores[row]
        keep = int(np.count_nonzero((scores > 0) & (scores >= threshold)))  # a prefix
        if max_dets is not None:
            keep = min(keep, max_dets)
        return Detections(
            self.xyxy[row, :keep].copy(), scores[:keep].copy(), self.class_ids[row, :keep].copy()
        )


def top_peaks(hm: torch.Tensor, hm_max: torch.Tensor, k: int) -> tuple[torch.Tensor, ...]:
    """(scores, flat indices into C*H*W), (N, k) each, of the k highest peaks per image,
    by descending score then ascending index; non-peaks count as score 0."""
    n = hm.shape[0]
    peaks = torch.where(hm == hm_max, hm, torch.zeros((), dtype=hm.dtype, device=hm.device))
    bits = peaks.reshape(n, -1).contiguous().view(torch.int32).to(torch.int64)
    cells = bits.shape[1]
    index = torch.arange(cells, dtype=torch.int64, device=hm.device)
    keys = (bits << 32) | (_LOW_32 - index)
    best = torch.topk(keys, min(k, cells), dim=1, sorted=True).values
    scores = (best >> 32).to(torch.int32).view(torch.float32)
    return scores, _LOW_32 - (best & _LOW_32)


def maps_to_top_boxes(
    maps: tuple[torch.Tensor, ...], output_to_original: np.ndarray, k: int
) -> TopBoxes:
    """The K best boxes per image from the network's ``(hm_max, hm, wh, reg)`` for the
    first ``len(output_to_original)`` rows; ``output_to_original`` is (N, 2, 3), each
    image's ``Letterbox.output_to_original``. One copy to the host at the end."""
    rows = len(output_to_original)
    hm_max, hm, wh, reg = (m[:rows].float() for m in maps)
    _, height, width = hm.shape[1:]
    scores, flat = top_peaks(hm, hm_max, k)
    classes = torch.div(flat, height * width, rounding_mode="floor")
    position = flat - classes * (height * width)
    ys = torch.div(position, width, rounding_mode="floor")
    xs = position - ys * width
    at = position.unsqueeze(1).expand(-1, 2, -1)
    offset = torch.gather(reg.reshape(rows, 2, -1), 2, at)  # (N, 2, K)
    size = torch.gather(wh.reshape(rows, 2, -1), 2, at)
    cx = xs.to(torch.float32) + offset[:, 0]
    cy = ys.to(torch.float32) + offset[:, 1]
    half_w, half_h = size[:, 0] / 2, size[:, 1] / 2
    corners = torch.stack([cx - half_w, cy - half_h, cx + half_w, cy + half_h], dim=2)
    points = corners.reshape(rows, -1, 2).to(torch.float64)  # (N, 2K, 2)
    matrix = torch.from_numpy(np.asarray(output_to_original, np.float64)).to(hm.device)
    mapped = points @ matrix[:, :, :2].transpose(1, 2) + matrix[:, None, :, 2]
    xyxy = mapped.reshape(rows, -1, 4).to(torch.float32)
    packed = (
        torch.cat(  # one transfer: float64 holds float32 values and int indices exactly
            [xyxy.double(), scores.double().unsqueeze(2), classes.double().unsqueeze(2)], dim=2
        )
        .cpu()
        .numpy()
    )
    return TopBoxes(
        np.ascontiguousarray(packed[..., :4], dtype=np.float32),
        np.ascontiguousarray(packed[..., 4], dtype=np.float32),
        packed[..., 5].astype(np.int64),
    )
