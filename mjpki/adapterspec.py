"""Resolve an adapter given as ``module:factory`` (the form of ``--adapter`` and ``--jpki-adapter``)."""

from __future__ import annotations

import importlib
import sys
from pathlib import Path

from adapters.system import AdapterFactory

__all__ = ["DEFAULT_ADAPTER", "AdapterSpecError", "load_factory"]

DEFAULT_ADAPTER = "adapters.reference:factory"
"""The reference implementation (impl/): what runs when no adapter is named."""


class AdapterSpecError(ValueError):
    """An adapter specification that does not name a callable factory."""


def load_factory(spec: str) -> AdapterFactory:
    """The factory named by ``module:attribute`` (a dotted module path, or a .py file path before the colon)."""
    module_name, sep, attr = spec.partition(":")
    if not sep or not module_name or not attr:
        raise AdapterSpecError(f"adapter {spec!r}: write it as module:factory, e.g. {DEFAULT_ADAPTER}")
    if module_name.endswith(".py"):
        path = Path(module_name).resolve()
        if not path.is_file():
            raise AdapterSpecError(f"adapter {spec!r}: there is no file {path}")
        sys.path.insert(0, str(path.parent))
        module_name = path.stem
    elif "" not in sys.path and str(Path.cwd()) not in sys.path:
        sys.path.insert(0, str(Path.cwd()))  # like `python -m`, let users name modules in their working directory
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        raise AdapterSpecError(f"adapter {spec!r}: cannot import {module_name!r} ({exc})") from exc
    obj: object = module
    for part in attr.split("."):
        if not hasattr(obj, part):
            raise AdapterSpecError(f"adapter {spec!r}: {module_name} has no attribute {attr!r}")
        obj = getattr(obj, part)
    if not callable(obj):
        raise AdapterSpecError(f"adapter {spec!r}: {attr} is a {type(obj).__name__}, not a callable that takes a World")
    return obj  # type: ignore[return-value]
