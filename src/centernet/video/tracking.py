"""Track ids across frames: supervision's ByteTrack adapted to our Detections.

Why supervision 0.30: its ``ByteTrack`` is the maintained ByteTrack we can install. From
0.30 supervision no longer requires ``opencv-python`` (which, installed next to our
``opencv-python-headless``, overwrites the same ``cv2`` package); Roboflow's ``trackers``,
where ByteTrack moved (supervision deprecated it in 0.28 and removed it in 0.31), still
requires ``opencv-python``. So the ``video`` extra pins ``supervision>=0.30,<0.31`` and
this module is the one place that names it.

ByteTrack associates in two passes: boxes at or above the activation threshold first,
then boxes down to 0.1 (supervision's fixed floor) to keep tracks alive through dips in
score. So a tracked run detects at ``LOW_THRESHOLD`` and keeps only boxes at the
user's threshold for output (``run.detector_threshold``).

ByteTrack is class-agnostic: one object, one box. CenterNet has no NMS and often puts a
weaker box of another class on the same object (a circle also seen as a square); those
two boxes would compete for one track and swap ids. So boxes are first merged across
classes (supervision's class-agnostic NMS at ``duplicate_iou``, the higher score kept):
a tracked run writes one box per object.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass

import numpy as np

from centernet.errors import MissingDependencyError
from centernet.types import Detections

#: supervision's ByteTrack uses boxes scoring above 0.1 in its second association.
LOW_THRESHOLD = 0.1


@dataclass(frozen=True)
class TrackConfig:
    """ByteTrack's knobs (supervision's names and defaults)."""

    lost_track_buffer: int = 30  # frames (at 30 fps) a lost track is kept for re-finding
    minimum_matching_threshold: float = 0.8  # first association: IoU distance (1 - IoU) below
    minimum_consecutive_frames: int = 1  # frames before a new track gets its id
    duplicate_iou: float = 0.7  # boxes overlapping more (any classes) are one object


class Tracker:
    """ByteTrack over one video: ``update(detections)`` once per frame, in order, gives the
    frame's boxes (duplicates across classes merged) and each one's track id (int64, -1
    for a box no track holds yet)."""

    def __init__(
        self,
        frame_rate: float,
        activation_threshold: float,
        settings: TrackConfig = TrackConfig(),
    ) -> None:
        try:
            import supervision as sv
        except ImportError:
            raise MissingDependencyError("supervision", "video") from None
        self._sv = sv
        self.settings = settings
        with warnings.catch_warnings():  # deprecated in supervision 0.28: see the docstring
            warnings.simplefilter("ignore", FutureWarning)
            warnings.simplefilter("ignore", DeprecationWarning)
            self._tracker = sv.ByteTrack(
                track_activation_threshold=activation_threshold,
                lost_track_buffer=settings.lost_track_buffer,
                minimum_matching_threshold=settings.minimum_matching_threshold,
                frame_rate=frame_rate if frame_rate > 0 else 30.0,
                minimum_consecutive_frames=settings.minimum_consecutive_frames,
            )

    def update(self, detections: Detections) -> tuple[Detections, np.ndarray]:
        """The boxes tracked (``detections`` less duplicates, in score order) and their ids."""
        given = self._sv.Detections(
            xyxy=detections.xyxy.astype(np.float32, copy=False).reshape(-1, 4),
            confidence=detections.scores.astype(np.float32, copy=False),
            class_id=detections.class_ids.astype(int, copy=False),
            data={"row": np.arange(len(detections))},
        )
        if len(given):
            given = given.with_nms(threshold=self.settings.duplicate_iou, class_agnostic=True)
        rows = np.sort(np.asarray(given.data["row"], dtype=np.int64))
        kept = detections[rows]
        tracked = self._tracker.update_with_detections(given)
        ids = np.full(len(detections), -1, dtype=np.int64)
        if len(tracked):
            ids[np.asarray(tracked.data["row"], dtype=np.int64)] = tracked.tracker_id
        return kept, ids[rows]


def require_tracking() -> None:
    """Raise MissingDependencyError now, before any work, when supervision is missing."""
    import importlib.util

    if importlib.util.find_spec("supervision") is None:
        raise MissingDependencyError("supervision", "video")
