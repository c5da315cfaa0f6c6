"""Every setting of a precision build, declared once: default, allowed values, help text
and command-line flag live beside each field (``config_fields.setting``); ``centernet
build``'s options are generated from these classes.

``BuildConfig`` nests one settings class per concern: ``CalibrationConfig`` (the images
and how activation ranges are chosen, honoured by both back ends or refused),
``SearchConfig`` (the int8-mixed layer search), ``FinetuneConfig`` (label-free
quantization-aware fine-tuning) and ``NncfConfig`` (what only NNCF's OpenVINO IR build
has). ``check_build_config`` refuses a setting that the chosen precision and back end
would not use: no setting is accepted and then ignored.
"""

from __future__ import annotations

from dataclasses import dataclass, fields, is_dataclass
from pathlib import Path

from centernet.config_fields import described, setting
from centernet.errors import CenterNetError

PRECISIONS = ("fp32", "fp16", "int8", "int8-mixed")
TARGETS = ("onnx", "openvino")
#: minmax: the extremes over all images; minmax-ma: the average of each batch's extremes
#: (ORT: a moving average; NNCF: the mean, its default for activations); percentile: the
#: given percentile of the values (ORT: of |x| over a histogram of ``bins``; NNCF: the mean
#: per-image quantile); entropy: the KL-divergence-minimising threshold (ORT only).
CALIBRATION_METHODS = ("minmax", "minmax-ma", "percentile", "entropy")
#: What each back end calibrates with when no method is named: measured best for the QDQ
#: build (BENCHMARKS.md, issue 15); NNCF's own default for the IR.
DEFAULT_METHODS = {"onnx": "minmax", "openvino": "minmax-ma"}
DEFAULT_PERCENTILE = 99.999
DEFAULT_BINS = 2048
#: The entropy method's quantized histogram (ORT's ``num_quantized_bins``): bins must exceed it.
ENTROPY_QUANTIZED_BINS = 128
#: int8-mixed: auto (task for a QDQ .onnx, nncf for an OpenVINO IR), task (our search by
#: the boxes, on the QDQ graph), sqnr (the older rule), nncf (NNCF's accuracy control)
MIXED_SEARCHES = ("auto", "task", "sqnr", "nncf")
SEARCH_ENGINES = ("onnxruntime", "openvino")
PRESETS = ("performance", "mixed")  # NNCF: symmetric / asymmetric activations
BIAS_CORRECTIONS = ("fast", "full", "none")
MODEL_TYPES = ("cnn", "transformer")
TARGET_DEVICES = ("CPU", "CPU_SPR", "ANY")


@dataclass(frozen=True)
class CalibrationConfig:
    """The calibration images and how activation ranges are chosen from them."""

    images: str = setting(
        flag="--calib-images", enables=True, metavar="DIR",
        help="folder of calibration images (int8, int8-mixed)",
    )  # fmt: skip
    count: int = setting(
        100, flag="--calib-count", minimum=1, metavar="N", help="images to calibrate on"
    )
    method: str | None = setting(
        None, flag="--calib-method", choices=CALIBRATION_METHODS,
        help="how activation ranges are chosen: the extremes, the average of each batch's "
        "extremes, a percentile, or the entropy (KL) threshold (QDQ .onnx only). Default: "
        + ", ".join(f"{m} for {t}" for t, m in DEFAULT_METHODS.items()),
    )  # fmt: skip
    percentile: float | None = setting(
        None, flag="--calib-percentile", metavar="P",
        help=f"percentile method: the percentile (default {DEFAULT_PERCENTILE})",
    )  # fmt: skip
    bins: int | None = setting(
        None, flag="--calib-bins", minimum=1, metavar="N",
        help=f"percentile and entropy methods of a QDQ .onnx: histogram bins "
        f"(default {DEFAULT_BINS})",
    )  # fmt: skip
    # an ORT calibration cache: reused if the file exists, written there otherwise, so that
    # builds of the same export on the same images (int8, then int8-mixed) calibrate once
    ranges_file: str | None = setting(
        None, flag="--calib-ranges", metavar="FILE",
        help="activation ranges: reused if FILE exists, written there otherwise (int8 and "
        "int8-mixed of one export on the same images then calibrate once; QDQ .onnx only)",
    )  # fmt: skip

    def method_for(self, target: str) -> str:
        """The method this build calibrates with on ``target``."""
        return self.method or DEFAULT_METHODS[target]

    def describe(self, target: str = "onnx") -> dict:
        """What the ModelSpec records about it."""
        method = self.method_for(target)
        described_: dict = {"images": Path(self.images).name, "method": method}
        if method == "percentile":
            described_["percentile"] = self.percentile or DEFAULT_PERCENTILE
        if method in ("percentile", "entropy") and target == "onnx":
            described_["bins"] = self.bins or DEFAULT_BINS
        return described_


@dataclass(frozen=True)
class SearchConfig:
    """The int8-mixed layer search: how hard it tries, and against what."""

    method: str = setting(
        "auto", flag="--mixed-search", choices=MIXED_SEARCHES,
        help="int8-mixed: how float layers are picked. task: our search by their effect on "
        "the boxes, on the QDQ graph; nncf: NNCF's quantize_with_accuracy_control with the "
        "same score (OpenVINO target only); sqnr: per-layer SQNR with all heads float (the "
        "older rule); auto: task for .onnx, nncf for an OpenVINO IR",
    )  # fmt: skip
    max_drop: float = setting(
        0.002, flag="--max-drop",
        help="int8-mixed: largest AP drop against the float model (0.002 = 0.2 points)",
    )  # fmt: skip
    max_layers: int = setting(
        6, flag="--mixed-max-layers", minimum=0,
        help="int8-mixed: most convolutions the search keeps float",
    )  # fmt: skip
    probe_images: int = setting(
        32, flag="--probe-images", minimum=1,
        help="int8-mixed: calibration images the layer search picks layers on (sqnr: the "
        "first 8 of them)",
    )  # fmt: skip
    check_images: int = setting(
        64, flag="--check-images", minimum=0,
        help="int8-mixed: the next calibration images, which the search judges the build on "
        "(never picks on); 0 judges on the probe images",
    )  # fmt: skip
    pseudo_gt_threshold: float = setting(
        0.3, help="float boxes scoring at least this are the reference (label-free scoring)"
    )
    annotations: str | None = setting(
        None, flag="--calib-ann", metavar="FILE",
        help="instances.json of the calibration images: the int8-mixed search scores real AP "
        "(else agreement with the float model's boxes)",
    )  # fmt: skip
    # "within noise": a drop of at most this many of its bootstrap standard deviations
    noise_sigmas: float = setting(
        2.0, flag="--mixed-noise", minimum=0,
        help="int8-mixed: the search also stops when the drop left on the check images is "
        "within this many of its standard deviations over bootstrap resamples of those "
        "images (it cannot be told from no drop there); 0: only --max-drop stops it",
    )  # fmt: skip
    min_error_cut: float = setting(
        0.02, help="share of int8's output error a kept layer must remove"
    )
    engine: str = setting(
        "onnxruntime", flag="--search-engine", choices=SEARCH_ENGINES,
        help="int8-mixed (task search): the engine the layer search runs its trials on, i.e. "
        "the one the build is meant for (int8 arithmetic differs between them)",
    )  # fmt: skip
    # None: every int8 convolution is a candidate (one trial each). N: only the N whose
    # output loses the most SQNR in the int8 build are tried: quicker, may miss a layer
    max_candidates: int | None = setting(
        None, flag="--mixed-candidates", minimum=1, metavar="N",
        help="int8-mixed (task search): try only the N convolutions whose output loses the "
        "most SQNR (quicker; default: every int8 convolution is tried)",
    )  # fmt: skip
    min_drop_db: float = setting(
        1.0, flag="--mixed-min-drop-db",
        help="int8-mixed (sqnr search): keep a convolution float whose SQNR drop exceeds this",
    )  # fmt: skip


@dataclass(frozen=True)
class FinetuneConfig:
    """Label-free quantization-aware fine-tuning before the int8 build (``finetune.py``)."""

    steps: int = setting(
        300, flag="--qat-steps", enables=True, minimum=1, metavar="N",
        help="int8/int8-mixed: first fine-tune the weights for N steps (300 is a good start) "
        "so that the int8 model reproduces the float model's own outputs on the calibration "
        "images (label-free quantization-aware training with NNCF; needs torch). Off unless "
        "given",
    )  # fmt: skip
    batch: int = setting(4, flag="--qat-batch", minimum=1, help="fine-tuning: crops per step")
    crop: int = setting(
        256, flag="--qat-crop", minimum=0,
        help="fine-tuning: side of the random crops trained on (0: whole images)",
    )  # fmt: skip
    # Adam moves each weight by about lr per step: 300 steps at 1e-6 stay within about half
    # a weight quantization step of a trained network (measured: 1e-5 overfits 150 images)
    lr: float = setting(1e-6, flag="--qat-lr", help="fine-tuning: Adam learning rate")
    seed: int = setting(0, help="random crops")
    init_images: int | None = setting(
        None, help="images the quantizer ranges start from (None: all)"
    )
    holdout: int = setting(
        16, help="the last calibration images: never trained on, they judge the fine-tuning"
    )


@dataclass(frozen=True)
class NncfConfig:
    """What only the OpenVINO IR build (NNCF) has; activation ranges come from
    ``CalibrationConfig``, like the QDQ build's."""

    bias_correction: str = setting(
        "fast", flag="--bias-correction", choices=BIAS_CORRECTIONS,
        help="openvino target: NNCF's bias correction (full: layer by layer, slower build)",
    )  # fmt: skip
    preset: str = setting(
        "performance", choices=PRESETS,
        help="symmetric activations (performance) or asymmetric (mixed)",
    )  # fmt: skip
    model_type: str = setting("cnn", choices=MODEL_TYPES, help="NNCF's model type")
    target_device: str = setting("CPU", choices=TARGET_DEVICES, help="NNCF's target device")


@dataclass(frozen=True)
class BuildConfig:
    """One precision build of an fp32 export."""

    precision: str = setting(
        "fp32", flag="--precision", choices=PRECISIONS, required=True,
        help="the build's precision",
    )  # fmt: skip
    calibration: CalibrationConfig | None = None  # int8 and int8-mixed
    target: str | None = setting(
        None, flag="--target", choices=TARGETS,
        help="onnx: a QDQ .onnx for any runtime; openvino: an OpenVINO IR (.xml + .bin) "
        "quantized by NNCF. Default: openvino when the output ends in .xml, else onnx",
    )  # fmt: skip
    batch: int | None = setting(
        None, flag="--batch", minimum=1, help="a static batch size (default: the export's)"
    )
    dynamic_batch: bool = setting(False, flag="--dynamic-batch", help="free batch dimension")
    search: SearchConfig = setting(factory=SearchConfig, help="int8-mixed's layer search")
    finetune: FinetuneConfig | None = None  # int8 / int8-mixed of a QDQ .onnx
    nncf: NncfConfig = setting(factory=NncfConfig, help="the OpenVINO IR build's settings")
    keep_float_layers: tuple[str, ...] = setting(
        (), flag="--keep-float", metavar="NAMES",
        help="int8: convolutions to keep float, comma-separated node names (as a build "
        "summary lists them), e.g. a recipe found on a smaller model of the same architecture",
    )  # fmt: skip
    # False quantizes the heads' last convolutions too (the logits in 8 bits): for
    # comparison with builds made before this rule, not for use
    head_outputs_float: bool = setting(True, help="keep the hm/wh/reg logits float")

    def target_for(self, output: str | Path) -> str:
        """The back end that writes ``output``: the asked target, else by its suffix."""
        if self.target is not None:
            return self.target
        return "openvino" if Path(output).suffix.lower() == ".xml" else "onnx"

    def search_method(self, target: str) -> str:
        """The int8-mixed search this build runs on ``target`` (``auto`` resolved)."""
        if self.search.method != "auto":
            return self.search.method
        return "nncf" if target == "openvino" else "task"


def check_build_config(config: BuildConfig, target: str) -> None:
    """Refuse values outside their choices, and every setting the build would not use.

    A setting counts as given when it differs from its default; a given setting that
    this precision and back end ignore is an error that names it.
    """
    check_choices(config)
    int8 = config.precision.startswith("int8")
    mixed = config.precision == "int8-mixed"
    unused: list[tuple[str, str]] = []
    if config.batch is not None and config.dynamic_batch:
        raise CenterNetError("`batch` and `dynamic_batch` exclude each other: give one")
    if not int8:
        for name in ("calibration", "finetune"):
            if getattr(config, name) is not None:
                unused.append((name, "int8 and int8-mixed builds only"))
        for name in ("keep_float_layers", "head_outputs_float"):
            if _given(config, name):
                unused.append((name, "int8 and int8-mixed builds only"))
    if int8 and config.calibration is None:
        raise CenterNetError(f"{config.precision} needs calibration images (`calib_images`)")
    if config.calibration is not None:
        unused += _unused_calibration(config.calibration, target)
    unused += _unused_search(config, target, mixed)
    if target == "openvino" and config.finetune is not None:
        raise CenterNetError(
            "`qat_steps` makes a QDQ .onnx build (which OpenVINO runs as well): write an .onnx"
        )
    if target == "onnx" or not int8:
        unused += [
            (f"nncf.{item.name}", "the OpenVINO IR's int8 build (NNCF) only")
            for item in fields(config.nncf)
            if _given(config.nncf, item.name)
        ]
    if unused:
        name, why = unused[0]
        raise CenterNetError(
            f"`{name}` is not used by a {config.precision} {target} build: it applies to {why}"
        )


def _unused_calibration(calib: CalibrationConfig, target: str) -> list[tuple[str, str]]:
    method = calib.method_for(target)
    unused = []
    if calib.percentile is not None and method != "percentile":
        unused.append(("calibration.percentile", "the percentile method"))
    if calib.bins is not None and (target != "onnx" or method not in ("percentile", "entropy")):
        unused.append(
            ("calibration.bins", "the percentile and entropy methods of a QDQ .onnx "
             "(NNCF computes its quantiles without a histogram)")
        )  # fmt: skip
    if calib.ranges_file is not None and target != "onnx":
        unused.append(
            ("calibration.ranges_file", "a QDQ .onnx (ONNX Runtime's calibration ranges; "
             "the OpenVINO IR is calibrated by NNCF)")
        )  # fmt: skip
    if method == "entropy" and calib.bins is not None and calib.bins <= ENTROPY_QUANTIZED_BINS:
        raise CenterNetError(
            f"`calibration.bins` must be above {ENTROPY_QUANTIZED_BINS} for the entropy "
            f"method (it compares the histogram with {ENTROPY_QUANTIZED_BINS}-level ones)"
        )
    if target == "openvino" and method == "entropy":
        raise CenterNetError(
            "`calib_method=\"entropy\"` has no NNCF counterpart (NNCF calibrates by extremes, "
            "their mean, or quantiles): choose minmax, minmax-ma or percentile for an "
            "OpenVINO IR, or write a QDQ .onnx"
        )
    return unused


def _unused_search(config: BuildConfig, target: str, mixed: bool) -> list[tuple[str, str]]:
    """Search settings that the build's search (none unless int8-mixed) would not read."""
    method = config.search_method(target)
    reads = {
        "task": {"max_drop", "max_layers", "probe_images", "check_images", "annotations",
                 "noise_sigmas", "min_error_cut", "engine", "max_candidates",
                 "pseudo_gt_threshold"},
        "nncf": {"max_drop", "max_layers", "probe_images", "check_images", "annotations",
                 "noise_sigmas", "pseudo_gt_threshold"},
        "sqnr": {"max_layers", "probe_images", "min_drop_db"},
    }  # fmt: skip
    if mixed and method == "nncf" and target != "openvino":
        raise CenterNetError(
            'NNCF\'s accuracy control makes OpenVINO IRs: use `target="openvino"` (an .xml '
            'output), or `mixed_search="task"` for a QDQ .onnx'
        )
    used = reads[method] | {"method"} if mixed else set()
    where = f"the {method} search of an int8-mixed build" if mixed else "int8-mixed builds"
    return [
        (f"search.{item.name}", where)
        for item in fields(config.search)
        if item.name not in used and _given(config.search, item.name)
    ]


def _given(config: object, name: str) -> bool:
    """Whether a field differs from its declared default."""
    item = next(f for f in fields(config) if f.name == name)
    default = item.default_factory() if callable(item.default_factory) else item.default
    return getattr(config, name) != default


def check_choices(config: object, path: str = "") -> None:
    """Every field with declared choices or a minimum holds an allowed value (nested
    settings included); the error names the parameter and what it may be."""
    for item in fields(config):
        value = getattr(config, item.name)
        name = f"{path}{item.name}"
        if is_dataclass(value):
            check_choices(value, f"{name}.")
            continue
        declared = described(item) or {}
        choices, minimum = declared.get("choices"), declared.get("minimum")
        if value is None:
            continue
        if choices is not None and value not in choices:
            raise CenterNetError(
                f"unknown `{name}` {value!r}; choose from {', '.join(map(str, choices))}"
            )
        if minimum is not None and value < minimum:
            raise CenterNetError(f"`{name}` must be at least {minimum:g}, not {value!r}")


__all__ = [
    "BIAS_CORRECTIONS",
    "BuildConfig",
    "CALIBRATION_METHODS",
    "CalibrationConfig",
    "DEFAULT_METHODS",
    "FinetuneConfig",
    "MIXED_SEARCHES",
    "NncfConfig",
    "PRECISIONS",
    "SearchConfig",
    "TARGETS",
    "check_build_config",
    "check_choices",
]
