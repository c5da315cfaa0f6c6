"""Running a model file on images: the Detector and its threads, the stages it runs (host:
image reading, letterbox, post-processing; device: ``runtime/device``), drawing the boxes."""

from centernet._lazy import lazy_exports

__getattr__, __dir__, __all__ = lazy_exports(
    __name__,
    {
        "Detector": "detector",
        "DetectorConfig": "detector",
        "DetectionResult": "stages",
        "ImageSource": "stages",
        "PIPELINES": "stages",
        "PreparedImage": "stages",
        "Stages": "stages",
        "HostStages": "host",
        "DEFAULT_MAX_PIXELS": "images",
        "IMAGE_SUFFIXES": "images",
        "ImageList": "images",
        "collect_image_paths": "images",
        "decode_image": "images",
        "read_image": "images",
        "PreprocessConfig": "preprocess",
        "get_affine_transform": "preprocess",
        "keep_res_pad": "preprocess",
        "make_letterbox": "preprocess",
        "preprocess_into": "preprocess",
        "PostprocessConfig": "postprocess",
        "postprocess": "postprocess",
        "StageProfile": "profiling",
        "ResultsLog": "results_log",
        "read_results_log": "results_log",
        "class_colour": "draw",
        "draw_detections": "draw",
    },
)

# `postprocess` names both a module and its function. Importing the module binds the
# package's attribute to the module, which a lazy export cannot undo, so the function is
# bound here (numpy only).
from centernet.runtime.postprocess import postprocess as postprocess  # noqa: E402
