"""Library messages name parameters; the CLI and the server show them as flags."""

from __future__ import annotations

from centernet.errors import as_command_line


def test_parameters_read_as_flags_on_the_command_line():
    assert as_command_line('use `device="cpu"`') == "use --device cpu"
    assert as_command_line("over the 4 Mpx limit (`max_pixels`)") == (
        "over the 4 Mpx limit (--max-pixels)"
    )
    assert as_command_line('a `precision="fp16|int8"` build') == "a --precision fp16|int8 build"
    assert as_command_line("`keep_float_layers` names no convolution") == (
        "--keep-float names no convolution"
    )
    plain = "no such file: 'model.onnx' (a `quoted` word stays a flag only in backquotes)"
    assert as_command_line("nothing to change") == "nothing to change"
    assert "--quoted" in as_command_line(plain)
