"""The installed package: everything under the mjpki namespace, and the wheel works outside the checkout (issue 13, part 1)."""

from __future__ import annotations

import ast
import os
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
GENERIC = ("spec", "impl", "properties", "adapters")
"""Top-level names that belong to other PyPI projects: mjpki installs these folders as mjpki.spec, mjpki.impl, ..."""
SKIP_DIRS = {".venv", ".git", "out", ".hypothesis", "node_modules", "__pycache__", "mjpki.egg-info"}


def _python_files() -> list[Path]:
    found = []
    for dirpath, dirnames, filenames in os.walk(ROOT):  # os.walk does not follow the mjpki/spec -> ../spec links
        dirnames[:] = [d for d in dirnames if d not in SKIP_DIRS and not (Path(dirpath) / d).is_symlink()]
        found += [Path(dirpath) / f for f in filenames if f.endswith(".py")]
    return found


def test_no_module_imports_a_generic_top_level_name() -> None:
    # In the checkout, tests/ puts the repository on sys.path, so `import spec` would still work here and load a second
    # copy of the spec beside mjpki.spec (two Kind enums that never compare equal); installed, it fails outright.
    offenders = []
    for path in _python_files():
        tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
        for node in ast.walk(tree):
            names = []
            if isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                names = [node.module]
            offenders += [f"{path.relative_to(ROOT)}:{node.lineno} {n}" for n in names if n.split(".")[0] in GENERIC]
    assert offenders == []
    assert len(_python_files()) > 100  # the walk saw the repository


def test_the_namespace_links_point_at_the_top_level_folders() -> None:
    for name in GENERIC:
        link = ROOT / "mjpki" / name
        assert link.is_symlink() and os.readlink(link) == f"../{name}", f"mjpki/{name} must be a link to ../{name}"
    assert (ROOT / "mjpki" / "diagrams").resolve() == (ROOT / "docs" / "diagrams").resolve()


@pytest.fixture(scope="module")
def installed(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A fresh venv outside the checkout with only the built wheel (and its dependencies) installed; returns its bin/."""
    base = tmp_path_factory.mktemp("wheel")
    wheels = base / "dist"
    # Build from a copy: an in-tree build would leave build/ and egg-info in the checkout.
    src = base / "src"
    shutil.copytree(ROOT, src, symlinks=True, ignore=shutil.ignore_patterns(*SKIP_DIRS, "build", "*.egg-info"))
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--quiet", "--no-deps", "-w", str(wheels), str(src)], check=True, cwd=base)
    (wheel,) = wheels.glob("mjpki-*.whl")
    with zipfile.ZipFile(wheel) as zf:
        names = zf.namelist()
    tops = {n.split("/")[0] for n in names if not n.split("/")[0].endswith(".dist-info")}
    assert tops == {"mjpki"}, f"the wheel installs top-level {sorted(tops)}"
    assert "mjpki/spec/machine.py" in names and "mjpki/diagrams/se-lifecycle.svg" in names
    venv = base / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    # Dependencies come from PyPI (or pip's cache, which the bootstrap filled): the same resolution a user gets.
    subprocess.run([str(venv / "bin" / "python"), "-m", "pip", "install", "--quiet", str(wheel)], check=True, cwd=base)
    return venv / "bin"


def _env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV")}
    env["HYPOTHESIS_PROFILE"] = "quick"
    return env


def test_the_installed_package_owns_no_generic_name(installed: Path, tmp_path: Path) -> None:
    probe = "import importlib.util as u; print([n for n in ('spec','impl','properties','adapters') if u.find_spec(n)])"
    done = subprocess.run([str(installed / "python"), "-c", probe], capture_output=True, text=True, cwd=tmp_path, env=_env())
    assert done.returncode == 0 and done.stdout.strip() == "[]", done.stdout + done.stderr


def test_the_main_job_conforms_from_an_empty_folder(installed: Path, tmp_path: Path) -> None:
    done = subprocess.run(
        [str(installed / "mjpki"), "run", "--profile", "quick", "--out", "out", "-q"],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        env=_env(),
        timeout=600,
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    assert "CONFORMS" in done.stdout
    assert (tmp_path / "out" / "result.json").is_file()
    assert not (tmp_path / "mjpki").exists()  # nothing came from a checkout


def test_the_pytest_plugin_runs_from_an_empty_folder(installed: Path, tmp_path: Path) -> None:
    done = subprocess.run(
        [str(installed / "python"), "-m", "pytest", "-q", "-p", "no:cacheprovider", "--jpki-adapter=mjpki.adapters.reference:factory",
         "--jpki-out=out", "-k", "scenario and (issue-both-kinds or lost-card-found or verifier)"],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        env=_env(),
        timeout=600,
    )  # fmt: skip
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    assert " passed" in done.stdout and "failed" not in done.stdout
    assert (tmp_path / "out" / "result.json").is_file()
