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
#: minmax: the extremes over all images; minmax-ma: the average of each batch's extremes
#: (ORT: a moving average; NNCF: the mean, its default for activations); percentile: the
#: given percentile of the values (ORT: of |x| over a histogram of ``bins``; NNCF: the mean
#: per-image quantile); entropy: the KL-divergence-minimising threshold (ORT only).
CALIBRATION_METHODS = ("minmax", "minmax-ma", "percentile", "entropy")
#: What each kind of build calibrates with when no method is named: the mean of each
#: image's extremes, NNCF's own default for the IR, and measured best for the QDQ .onnx on
#: the full-size DLA-34 (BENCHMARKS.md, issue 30: 0.12 AP points and 60 % less output
#: error than minmax, the extremes over all images, which issue 15 had measured best on a
#: small model within its noise).
DEFAULT_METHODS = {"onnxruntime": "minmax-ma", "openvino": "minmax-ma"}
DEFAULT_PERCENTILE = 99.999
DEFAULT_BINS = 2048
#: The entropy method's quantized histogram (ORT's ``num_quantized_bins``): bins must exceed it.
ENTROPY_QUANTIZED_BINS = 128
#: int8-mixed: auto (task), task (our search by the boxes, on the QDQ graph or the quantized
#: IR), sqnr (the older rule), nncf (NNCF's accuracy control, IR only)
MIXED_SEARCHES = ("auto", "task", "sqnr", "nncf")
PRESETS = ("performance", "mixed")  # NNCF: symmetric / asymmetric activations
BIAS_CORRECTIONS = ("fast", "full", "none")
#: auto: "enable" where the building CPU has no int8 dot product (VNNI/AMX), else NNCF's
#: "first_layer" (``nncf_common.resolved_overflow_fix``)
OVERFLOW_FIXES = ("auto", "first_layer", "enable", "disable")
MODEL_TYPES = ("cnn", "transformer")
TARGET_DEVICES = ("CPU", "CPU_SPR", "ANY")


def _default_methods() -> str:
    """The default calibration methods in words, for the help."""
    methods = set(DEFAULT_METHODS.values())
    if len(methods) == 1:
        return f"{methods.pop()} for every build"
    return ", ".join(f"{m} for {e}" for e, m in DEFAULT_METHODS.items())


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
        "extremes, a percentile, or the entropy (KL) threshold (.onnx only). "
        "Default: " + _default_methods(),
    )  # fmt: skip
    percentile: float | None = setting(
        None, flag="--calib-percentile", metavar="P",
        help=f"percentile method: the percentile (default {DEFAULT_PERCENTILE})",
    )  # fmt: skip
    bins: int | None = setting(
        None, flag="--calib-bins", minimum=1, metavar="N",
        help=f"percentile and entropy methods of an .onnx build: histogram bins "
        f"(default {DEFAULT_BINS})",
    )  # fmt: skip
    # an ORT calibration cache: reused if the file exists, written there otherwise, so that
    # builds of the same export on the same images (int8, then int8-mixed) calibrate once
    ranges_file: str | None = setting(
        None, flag="--calib-ranges", metavar="FILE",
        help="activation ranges: reused if FILE exists, written there otherwise (int8 and "
        "int8-mixed of one export on the same images then calibrate once; .onnx only)",
    )  # fmt: skip

    def method_for(self, engine: str) -> str:
        """The method a build laid out for ``engine`` calibrates with."""
        return self.method or DEFAULT_METHODS[engine]

    def describe(self, engine: str = "onnxruntime") -> dict:
        """What the ModelSpec records about it."""
        method = self.method_for(engine)
        described_: dict = {"images": Path(self.images).name, "method": method}
        if method == "percentile":
            described_["percentile"] = self.percentile or DEFAULT_PERCENTILE
        if method in ("percentile", "entropy") and engine == "onnxruntime":
            described_["bins"] = self.bins or DEFAULT_BINS
        return described_


@dataclass(frozen=True)
class SearchConfig:
    """The int8-mixed layer search: how hard it tries, and against what."""

    method: str = setting(
        "auto", flag="--mixed-search", choices=MIXED_SEARCHES,
        help="int8-mixed: how float layers are picked. task: our search by their effect on "
        "the boxes, on the QDQ graph (run by the engine `--engine auto` picks) or on the "
        "quantized OpenVINO IR; nncf: NNCF's quantize_with_accuracy_control with the same "
        "score (an OpenVINO IR only; slower, with no speed budget); sqnr: per-layer SQNR "
        "with all heads float (the older rule, .onnx only); auto: task",
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
    # N: only the N whose output loses the most SQNR in the int8 build are tried alone
    # (one trial each on the probe images); 0: every int8 convolution within the cost
    # budget: slower, it can find a layer that the SQNR proxy ranks low
    max_candidates: int = setting(
        8, flag="--mixed-candidates", minimum=0, metavar="N",
        help="int8-mixed (task search): try only the N convolutions whose output loses the "
        "most SQNR (a full-size DLA-34 build stays within 10 minutes on 2 cores); 0: every "
        "int8 convolution within the cost budget",
    )  # fmt: skip
    # a float layer costs speed by its share of the work: with int8 kernels 2-4x as fast as
    # float, 1 % of the multiply-adds in float costs about 1-3 % of the network's speed
    max_float_cost: float = setting(
        0.01, flag="--mixed-max-cost", minimum=0,
        help="int8-mixed (task search): the largest share of the network's convolution "
        "multiply-adds the layers it keeps float may do (0.01: 1 %%, which keeps the build "
        "within about 3 %% of int8's speed)",
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
    ``CalibrationConfig``, like every build's."""

    bias_correction: str = setting(
        "fast", flag="--bias-correction", choices=BIAS_CORRECTIONS,
        help="an OpenVINO IR (NNCF): bias correction (full: layer by layer, slower build)",
    )  # fmt: skip
    # CPUs without an int8 dot-product instruction (no VNNI or AMX: AVX2 only) multiply
    # uint8 by int8 in 16-bit pairs that can saturate; 7-bit weights cannot (NNCF's fix).
    # Measured on AVX2 (BENCHMARKS, issue 30): the bundled model's IR int8 lost 3.2 AP
    # points with NNCF's first-layer default and 0.3 with 7-bit weights everywhere
    overflow_fix: str = setting(
        "auto", flag="--overflow-fix", choices=OVERFLOW_FIXES,
        help="an OpenVINO IR (NNCF): weights in 7 bits where 8-bit products could saturate "
        "on CPUs without VNNI/AMX: in the first layer only (NNCF's default), everywhere, "
        "nowhere, or auto: everywhere when the CPU that builds has no VNNI/AMX (the IR is "
        "then right for such CPUs), else the first layer",
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

    def search_method(self, target: BuildTarget) -> str:
        """The int8-mixed search this build runs for ``target`` (``auto``: our task search,
        on the QDQ graph or on the quantized IR itself)."""
        return "task" if self.search.method == "auto" else self.search.method


@dataclass(frozen=True)
class BuildTarget:
    """What a build writes, from its output's suffix: a QDQ ``.onnx`` by ONNX Runtime's
    quantization rules, or an OpenVINO IR (``.xml``) by NNCF's; ``engine`` names whose
    rules (and calibration defaults) apply."""

    engine: str  # "onnxruntime" (a QDQ .onnx) or "openvino" (an IR)
    ir: bool = False

    def __str__(self) -> str:
        return "an OpenVINO IR" if self.ir else "a QDQ .onnx"


def resolve_target(output: str | Path) -> BuildTarget:
    """The kind of file ``output`` asks for: an OpenVINO IR for ``.xml``, else QDQ ONNX."""
    if Path(output).suffix.lower() == ".xml":
        return BuildTarget("openvino", ir=True)
    return BuildTarget("onnxruntime")


def check_build_config(config: BuildConfig, target: BuildTarget) -> None:
    """Refuse values outside their choices, and every setting the build would not use.

    A setting counts as given when it differs from its default; a given setting that
    this precision and target ignore is an error that names it.
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
    if target.ir and config.finetune is not None:
        raise CenterNetError(
            "`qat_steps` makes a QDQ .onnx build (which OpenVINO runs as well): write an .onnx"
        )
    if not target.ir or not int8:
        unused += [
            (f"nncf.{item.name}", "int8 OpenVINO IR builds (NNCF) only")
            for item in fields(config.nncf)
            if _given(config.nncf, item.name)
        ]
    if unused:
        name, why = unused[0]
        raise CenterNetError(
            f"`{name}` is not used by a {config.precision} build ({target}): it applies to "
            f"{why}"
        )


def _unused_calibration(calib: CalibrationConfig, target: BuildTarget) -> list[tuple[str, str]]:
    method = calib.method_for(target.engine)
    ort = not target.ir
    unused = []
    if calib.percentile is not None and method != "percentile":
        unused.append(("calibration.percentile", "the percentile method"))
    if calib.bins is not None and (not ort or method not in ("percentile", "entropy")):
        unused.append(
            ("calibration.bins", "the percentile and entropy methods of a QDQ .onnx (NNCF "
             "computes its quantiles without a histogram)")
        )  # fmt: skip
    if calib.ranges_file is not None and not ort:
        unused.append(
            ("calibration.ranges_file", "a QDQ .onnx (ONNX Runtime's calibration ranges; "
             "an OpenVINO IR is calibrated by NNCF)")
        )  # fmt: skip
    if method == "entropy" and calib.bins is not None and calib.bins <= ENTROPY_QUANTIZED_BINS:
        raise CenterNetError(
            f"`calibration.bins` must be above {ENTROPY_QUANTIZED_BINS} for the entropy "
            f"method (it compares the histogram with {ENTROPY_QUANTIZED_BINS}-level ones)"
        )
    if not ort and method == "entropy":
        raise CenterNetError(
            "`calib_method=\"entropy\"` has no NNCF counterpart (NNCF calibrates by extremes, "
            "their mean, or quantiles): choose minmax, minmax-ma or percentile for a build "
            'for an OpenVINO IR, or write a QDQ .onnx'
        )
    return unused


def _unused_search(config: BuildConfig, target: BuildTarget, mixed: bool) -> list[tuple[str, str]]:
    """Search settings that the build's search (none unless int8-mixed) would not read."""
    method = config.search_method(target)
    reads = {
        "task": {"max_drop", "max_layers", "probe_images", "check_images", "annotations",
                 "noise_sigmas", "min_error_cut", "max_candidates", "pseudo_gt_threshold",
                 "max_float_cost"},
        "nncf": {"max_drop", "max_layers", "probe_images", "check_images", "annotations",
                 "noise_sigmas", "pseudo_gt_threshold"},
        "sqnr": {"max_layers", "probe_images", "min_drop_db"},
    }  # fmt: skip
    if mixed and method == "nncf" and not target.ir:
        raise CenterNetError(
            "NNCF's accuracy control makes OpenVINO IRs: write an .xml, or "
            '`mixed_search="task"` for a QDQ .onnx'
        )
    if mixed and method == "sqnr" and target.ir:
        raise CenterNetError(
            '`mixed_search="sqnr"` (the older rule) makes a QDQ .onnx: write an .onnx, or use '
            "the task or nncf search"
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
    "BuildTarget",
    "resolve_target",
    "check_build_config",
    "check_choices",
]
