"""Lazy exports for package ``__init__`` files: a public name is imported from its module
on first use, so that importing a package (and ``import centernet``) stays cheap and
never pulls in torch, OpenVINO or an engine before they are needed."""

from __future__ import annotations

TYPE_CHECKING = False  # not typing.TYPE_CHECKING: importing typing costs more than the rest
if TYPE_CHECKING:
    from collections.abc import Callable


def lazy_exports(
    package: str, names: dict[str, str]
) -> tuple[Callable[[str], object], Callable[[], list[str]], list[str]]:
    """``__getattr__``, ``__dir__`` and ``__all__`` for ``package``, where ``names`` maps
    each public name to the module (relative to the package) that defines it."""

    def __getattr__(name: str) -> object:
        module = names.get(name)
        if module is None:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        # __import__ with a fromlist returns the submodule itself (no importlib import)
        return getattr(__import__(f"{package}.{module}", fromlist=[name]), name)

    def __dir__() -> list[str]:
        return sorted(names)

    return __getattr__, __dir__, sorted(names)
