"""Resolve an object given as ``module:attribute``: an adapter factory (``--adapter``, ``--jpki-adapter``) or a served
applet class (``mjpki serve-se --applet``).

The module is a dotted module path or a ``.py`` file path. The working directory is importable, as with ``python -m``,
and so is a file's folder (first), so a file may import its neighbours and the packages of the working directory.

Every way a specification can be wrong (its form, a missing file, module or attribute, an import that fails, a syntax
error) is an AdapterSpecError with a one-line message.

An adapter module may define `preflight()`: no arguments, called once before anything runs (`mjpki run`, `replay` and
`serve-system`, in whichever process builds the systems); it raises with a one-line message saying what to set when
the adapter cannot run here (a missing key, reader or setting), which the CLI reports as a usage error (exit 2)
instead of the same failure in every check.
"""

from __future__ import annotations

import importlib
import sys
from pathlib import Path
from types import ModuleType

from mjpki.adapters.system import AdapterFactory

__all__ = ["DEFAULT_ADAPTER", "PREFLIGHT", "AdapterSpecError", "load_factory", "load_object", "preflight"]

DEFAULT_ADAPTER = "mjpki.adapters.reference:factory"
"""The reference implementation (impl/): what runs when no adapter is named."""
PREFLIGHT = "preflight"
"""The optional function of an adapter module that says, before any check, whether the adapter can run here."""


class AdapterSpecError(ValueError):
    """A ``module:attribute`` specification that does not name what it should (the message says why, on one line)."""


def load_factory(spec: str) -> AdapterFactory:
    """The factory named by ``module:attribute`` (a dotted module path, or a .py file path before the colon)."""
    obj = load_object(spec)
    if not callable(obj):
        raise AdapterSpecError(f"adapter {spec!r}: {spec.partition(':')[2]} is a {type(obj).__name__}, not a callable that takes a World")
    return obj  # type: ignore[return-value]


def preflight(spec: str) -> str | None:
    """Load the factory and call its module's optional preflight(); the one-line problem it raised, or None if it can run.

    AdapterSpecError if the factory does not load."""
    load_factory(spec)
    # The hook of the module the spec names (whose factory may well be imported from elsewhere), already imported now.
    module_name = spec.partition(":")[0]
    module = _import_file(module_name, spec) if module_name.endswith(".py") else _import_module(module_name, spec)
    hook = getattr(module, PREFLIGHT, None)
    if hook is None:
        return None
    if not callable(hook):
        return f"adapter {spec!r}: {module.__name__}.{PREFLIGHT} is a {type(hook).__name__}, not a function"
    try:
        hook()
    except Exception as exc:  # the adapter's own account of what is missing: its message, on one line
        why = " ".join(str(exc).split()) or type(exc).__name__
        return f"adapter {spec!r} cannot run here: {why}"
    return None


def load_object(spec: str, *, what: str = "adapter", form: str = "module:factory", example: str = DEFAULT_ADAPTER) -> object:
    """The object named by ``module:attribute``; `what`, `form` and `example` word the errors (e.g. "applet")."""
    module_name, sep, attr = spec.partition(":")
    if not sep or not module_name or not attr:
        raise AdapterSpecError(f"{what} {spec!r}: write it as {form} or path/to/file.py:{form.partition(':')[2]}, e.g. {example}")
    where = f"{what} {spec!r}"
    if "" not in sys.path and str(Path.cwd()) not in sys.path:
        sys.path.insert(0, str(Path.cwd()))  # like `python -m`, let users name modules (and files import them) from here
    module = _import_file(module_name, where) if module_name.endswith(".py") else _import_module(module_name, where)
    obj: object = module
    for part in attr.split("."):
        if not hasattr(obj, part):
            raise AdapterSpecError(f"{where}: {module.__name__} has no attribute {attr!r}")
        obj = getattr(obj, part)
    return obj


def _import_file(file_name: str, where: str) -> ModuleType:
    """Import a .py file as the module named by its stem, with its folder on sys.path (for its own imports)."""
    path = Path(file_name).resolve()
    if not path.is_file():
        raise AdapterSpecError(f"{where}: there is no file {path}")
    if str(path.parent) not in sys.path:
        sys.path.insert(0, str(path.parent))
    module = _import_module(path.stem, where)
    loaded = getattr(module, "__file__", None)
    if loaded is None or Path(loaded).resolve() != path:
        # the stem names a module imported earlier (e.g. a file called json.py): importing would not read this file
        raise AdapterSpecError(f"{where}: a module named {path.stem!r} is already loaded from {loaded}; rename {path.name}")
    return module


def _import_module(module_name: str, where: str) -> ModuleType:
    """importlib.import_module, with every way the import can fail turned into one line."""
    try:
        return importlib.import_module(module_name)
    except SyntaxError as exc:
        raise AdapterSpecError(f"{where}: syntax error in {exc.filename}, line {exc.lineno}: {exc.msg}") from exc
    except ImportError as exc:
        raise AdapterSpecError(f"{where}: cannot import {module_name!r} ({exc})") from exc
    except Exception as exc:  # the module's own code failed while it was imported: report it, not a traceback
        raise AdapterSpecError(f"{where}: importing {module_name!r} raised {type(exc).__name__}: {exc}") from exc
