"""The device pipeline (torch): JPEG decode on the GPU, the letterbox warp bit-identical to
OpenCV's, and peaks/top-K/boxes on the engine's device; the same stages as the host's."""

from centernet._lazy import lazy_exports

__getattr__, __dir__, __all__ = lazy_exports(
    __name__,
    {
        "DeviceBatch": "stages",
        "DeviceStages": "stages",
        "decodes_on_device": "jpeg",
        "nvjpeg_decoder": "jpeg",
        "TopBoxes": "postprocess",
        "maps_to_top_boxes": "postprocess",
        "WarpJob": "warp",
        "opencv_arithmetic": "warp",
        "warp_bgr": "warp",
        "warp_normalise": "warp",
    },
)
