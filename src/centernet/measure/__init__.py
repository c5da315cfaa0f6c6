"""Scoring and timing: COCO evaluation, network-only and end-to-end speed (host and
device), the side-by-side report with its chart, and the machine a figure was measured on."""

from centernet._lazy import lazy_exports

__getattr__, __dir__, __all__ = lazy_exports(
    __name__,
    {
        "APDifference": "ap_bootstrap",
        "PerImageAP": "ap_bootstrap",
        "paired_difference": "ap_bootstrap",
        "BenchResult": "bench",
        "Timing": "bench",
        "parse_batches": "bench",
        "summarize": "bench",
        "time_end_to_end": "bench",
        "time_network": "bench",
        "DeviceBenchRow": "bench_device",
        "bench_torch_model": "bench_device",
        "time_device_batches": "bench_device",
        "time_forward": "bench_device",
        "EvalOutcome": "evaluate",
        "evaluate_detector": "evaluate",
        "cpu_model_and_flags": "machine",
        "describe_machine": "machine",
        "ModelRow": "report",
        "Report": "report",
        "ReportConfig": "report",
        "make_report": "report",
        "measure_model": "report",
        "plot_report": "report_files",
        "write_report": "report_files",
    },
)
