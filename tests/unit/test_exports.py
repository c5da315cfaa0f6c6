"""Every name a package exports lazily is the object its module defines, also after every
submodule has been imported (importing ``pkg.name`` binds ``pkg.name`` to the module,
which would shadow a function of the same name)."""

from __future__ import annotations

import importlib
import pkgutil

import pytest

import centernet

PACKAGES = ["centernet"] + [
    f"centernet.{m.name}" for m in pkgutil.iter_modules(centernet.__path__) if m.ispkg
]


def lazy_names(package) -> dict[str, str]:
    """The package's public name -> defining module (relative), from its lazy map."""
    mapping = getattr(package, "_EXPORTS", None)
    if mapping is None:  # lazy_exports keeps its map in the closure of __getattr__
        getter = package.__dict__.get("__getattr__")
        closure = getattr(getter, "__closure__", None) or ()
        mapping = next((c.cell_contents for c in closure if isinstance(c.cell_contents, dict)), {})
    return dict(mapping)


@pytest.mark.parametrize("name", PACKAGES)
def test_exports_resolve_to_their_objects_after_every_submodule_is_imported(name):
    package = importlib.import_module(name)
    names = lazy_names(package)
    if not names:
        pytest.skip(f"{name} has no lazy exports")
    for module in sorted(set(names.values())):
        try:
            importlib.import_module(f"{name}.{module}")
        except ImportError as error:  # an optional extra (torch, openvino) not installed
            pytest.skip(f"{name}.{module}: {error}")
    for public, module in names.items():
        defined = getattr(importlib.import_module(f"{name}.{module}"), public)
        assert getattr(package, public) is defined, f"{name}.{public} is not {module}.{public}"
