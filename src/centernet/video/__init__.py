"""Video files, stream URLs and cameras: a front over the Detector, like ``serve``.

``sources.py`` decodes frames (OpenCV's FFmpeg backend) on a thread of their own, with
each frame's index and container timestamp; ``tracking.py`` adapts ByteTrack
(supervision, the ``video`` extra) to our Detections; ``output.py`` writes the per-video
JSON lines and the annotated video; ``run.py`` feeds one source's frames through one
``Detector.stream`` and ties the rest together. Nothing here is imported by
``centernet`` itself or by the Detector.
"""
