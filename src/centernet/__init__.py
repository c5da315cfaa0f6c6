"""centernet-deploy: CenterNet from a PyTorch checkpoint to a fast, quantized inference model."""

__version__ = "0.1.0"

__all__ = ["Detector", "Detections", "Letterbox", "ModelSpec", "__version__"]


def __getattr__(name: str):
    # Lazy, so that `import centernet` stays cheap and never imports torch or an engine.
    if name == "Detector":
        from centernet.pipeline import Detector

        return Detector
    if name in ("Detections", "Letterbox", "ModelSpec"):
        from centernet import types

        return getattr(types, name)
    raise AttributeError(f"module 'centernet' has no attribute {name!r}")
